//! A real FUSE mount of the binary under test, and what its tests wait on.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{wait_for, Env};

pub fn is_mounted(p: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = p.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*want))
}

/// A running `cofre mount`; SIGTERM and a check that it unmounted on drop.
pub struct Mount {
    pub dir: PathBuf,
    child: std::process::Child,
}

impl Mount {
    pub fn start(env: &Env, name: &str, extra: &[&str]) -> Mount {
        Self::spawn(env, name, extra, std::process::Stdio::inherit())
    }

    fn spawn(env: &Env, name: &str, extra: &[&str], stderr: std::process::Stdio) -> Mount {
        let dir = env.path(name);
        // A dead mount left there (ENOTCONN) is cofre's to clean up, not ours.
        if let Err(e) = std::fs::create_dir_all(&dir) {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::AlreadyExists,
                "mountpoint: {e}"
            );
        }
        let child = env
            .cmd()
            .arg("mount")
            .arg(&dir)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn mount");
        let mut m = Mount { dir, child };
        let ok = wait_for(std::time::Duration::from_secs(20), || {
            is_mounted(&m.dir) || m.child.try_wait().ok().flatten().is_some()
        });
        assert!(
            ok && is_mounted(&m.dir),
            "cofre mount did not come up at {}",
            m.dir.display()
        );
        m
    }

    /// As `start`, with the mount's stderr (its log) going to `log`.
    pub fn start_logged(env: &Env, name: &str, extra: &[&str], log: &Path) -> Mount {
        let file = std::fs::File::create(log).expect("log file");
        Self::spawn(env, name, extra, std::process::Stdio::from(file))
    }

    /// SIGKILL, as the OOM killer would: the kernel mount stays behind.
    pub fn kill(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
        std::mem::forget(self);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path inside the mount of `src` in the set's latest snapshot.
    pub fn latest(&self, set: &str, src: &Path) -> PathBuf {
        self.dir
            .join(set)
            .join("latest")
            .join(src.strip_prefix("/").expect("absolute"))
    }

    /// SIGTERM; returns the exit status once the process is gone.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait mount");
        assert!(
            !is_mounted(&self.dir),
            "still mounted after SIGTERM: {}",
            self.dir.display()
        );
        status
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.child.wait();
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.dir)
                .status();
        }
    }
}

/// The requests of each kind a mount logged at unmount (`-v`), by name.
pub fn fuse_requests(log: &std::path::Path) -> std::collections::HashMap<String, u64> {
    let text = std::fs::read_to_string(log).expect("mount log");
    let line = text
        .lines()
        .find_map(|l| l.split_once("FUSE requests: ").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("no request counts in the log:\n{text}"));
    line.split(", ")
        .filter_map(|kv| kv.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().expect("count")))
        .collect()
}
