//! Hooks around a set's run, and the per-set run lock.
//! Environment given to every hook: `COFRE_SET`, `COFRE_CLASS`, and after a snapshot
//! `COFRE_SNAPSHOT_ID`, `COFRE_EXIT_CODE`; on failure `COFRE_EXIT_CODE`, `COFRE_ERROR`.
//! A before-hook exiting 75 (EX_TEMPFAIL, as borgmatic) skips the set; any other non-zero
//! exit fails it, and nothing is committed.

use std::path::Path;

use crate::config::{ClassConfig, Config, SetConfig};
use crate::error::{Error, Result};

pub const SKIP: i32 = 75;

#[derive(Clone, Default)]
pub struct Env(Vec<(&'static str, String)>);

impl Env {
    pub fn new(set: &str, class: &str) -> Env {
        Env(vec![
            ("COFRE_SET", set.into()),
            ("COFRE_CLASS", class.into()),
        ])
    }

    pub fn with_snapshot(mut self, id: &str, code: i32) -> Env {
        self.0.push(("COFRE_SNAPSHOT_ID", id.into()));
        self.0.push(("COFRE_EXIT_CODE", code.to_string()));
        self
    }

    pub fn with_error(mut self, code: i32, error: &str) -> Env {
        self.0.push(("COFRE_EXIT_CODE", code.to_string()));
        self.0.push(("COFRE_ERROR", error.into()));
        self
    }
}

fn shell(what: &str, cmd: &str, env: &Env) -> Result<i32> {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.0.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::Hook(format!("{what} hook `{cmd}`: {e}")))?;
    Ok(status.code().unwrap_or(EXIT_SIGNALLED))
}

const EXIT_SIGNALLED: i32 = 128;

pub enum Before {
    Go,
    Skip(String),
}

/// Global then set/class before-hooks.
pub fn before(cfg: &Config, set: &SetConfig, class: &ClassConfig, env: &Env) -> Result<Before> {
    let hooks = [
        &cfg.hooks.before,
        &set.main.hooks.before,
        &class.hooks.before,
    ];
    let mut seen = Vec::new();
    for cmd in hooks.into_iter().flatten() {
        if seen.contains(&cmd) {
            continue; // the main class's hooks are the set's
        }
        seen.push(cmd);
        match shell("before", cmd, env)? {
            0 => {}
            SKIP => {
                return Ok(Before::Skip(format!(
                    "before hook `{cmd}` exited 75: skipped"
                )))
            }
            code => {
                return Err(Error::Hook(format!(
                    "before hook `{cmd}` exited {code}: nothing was taken"
                )))
            }
        }
    }
    Ok(Before::Go)
}

fn run_all(what: &str, cmds: [&Option<String>; 3], env: &Env) -> Result<()> {
    let mut seen = Vec::new();
    for cmd in cmds.into_iter().flatten() {
        if seen.contains(&cmd) {
            continue;
        }
        seen.push(cmd);
        let code = shell(what, cmd, env)?;
        if code != 0 {
            return Err(Error::Hook(format!("{what} hook `{cmd}` exited {code}")));
        }
    }
    Ok(())
}

/// Set/class then global after-hooks (the snapshot is committed already).
pub fn after(cfg: &Config, set: &SetConfig, class: &ClassConfig, env: &Env) -> Result<()> {
    run_all(
        "after",
        [&class.hooks.after, &set.main.hooks.after, &cfg.hooks.after],
        env,
    )
}

/// Failure hooks; their own failure is only logged (the set has failed already).
pub fn failure(cfg: &Config, set: &SetConfig, class: &ClassConfig, env: &Env) {
    let cmds = [
        &class.hooks.failure,
        &set.main.hooks.failure,
        &cfg.hooks.failure,
    ];
    if let Err(e) = run_all("failure", cmds, env) {
        tracing::warn!("{e}");
    }
}

/// An exclusive `flock` on `<dir>/run-<set>.lock`, held while a run works on the set.
pub struct SetLock {
    /// Holding the descriptor holds the lock; closing it (drop, or death) releases it.
    _file: std::fs::File,
}

impl SetLock {
    pub fn try_lock(dir: &Path, set: &str) -> Result<Option<SetLock>> {
        crate::catalog::private_dir(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(format!("run-{set}.lock"));
        let file = crate::fsutil::lock_file(&path, false).map_err(|e| Error::io(&path, e))?;
        Ok(file.map(|f| SetLock { _file: f }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_per_set_at_a_time() {
        let dir = std::env::temp_dir().join(format!("cofre-setlock-{}", std::process::id()));
        let first = SetLock::try_lock(&dir, "db").expect("lock").expect("free");
        assert!(
            SetLock::try_lock(&dir, "db").expect("lock").is_none(),
            "second run got in"
        );
        assert!(
            SetLock::try_lock(&dir, "files").expect("lock").is_some(),
            "other sets are free"
        );
        drop(first);
        assert!(
            SetLock::try_lock(&dir, "db").expect("lock").is_some(),
            "released on drop"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
