//! The drill's scratch directories, `$TMPDIR/cofre-drill-<pid>-<hex>` (default
//! `/var/tmp`): one per run, private, removed when the drill ends. A drill that is killed
//! (a timeout in cron, systemd stopping it, the OOM killer) cannot remove its own. Left
//! alone, each such run would leave its copy of a whole snapshot on the disk, and a PITR
//! drill a PostgreSQL server running on the copy. So every drill first sweeps the
//! directories of drills whose process is gone:
//! - a mount still inside one is detached (`fusermount3 -u -z`); the directory is kept if
//!   that fails, since removing files under a live mount would walk the snapshot;
//! - a scratch cluster's postmaster is stopped at once (SIGQUIT), only when it is the
//!   process named in `postmaster.pid` *and* its working directory is that data directory
//!   (a pid reused by another program is left alone);
//! - then the directory is removed.
//!
//! A directory whose drill is alive, or which belongs to another user, is never touched.
//! (The mount child of a killed drill also gets SIGTERM from the kernel, `PR_SET_PDEATHSIG`
//! in `start_mount`, so it normally unmounts before any sweep.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const PREFIX: &str = "cofre-drill-";

/// Where scratch directories go.
fn base() -> PathBuf {
    std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from)
}

/// A new private scratch directory for this drill, after sweeping those of dead drills.
pub(super) fn new_dir() -> Result<PathBuf> {
    let base = base();
    sweep(&base);
    let dir = base.join(format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    ));
    crate::catalog::private_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// The pid in a scratch directory's name.
fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, tag) = rest.split_once('-')?;
    (tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| pid.parse().ok())
        .flatten()
        .filter(|p| *p > 0)
}

/// Whether process `pid` runs (a zombie, dead but not reaped yet, does not).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    // The state follows the command name, which is in parentheses and may hold anything.
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s[s.rfind(')')? + 1..].trim_start().starts_with('Z')))
        .unwrap_or(false);
    exists && !zombie
}

/// Removes the scratch directories under `base` whose drill is gone (module comment).
pub(super) fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        let dir = e.path();
        use std::os::unix::fs::MetadataExt;
        let mine = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if !mine || pid == std::process::id() as i32 || alive(pid) {
            continue;
        }
        match clean(&dir) {
            Ok(()) => tracing::info!(
                "removed {}, left by a drill that did not finish",
                dir.display()
            ),
            Err(why) => tracing::warn!(
                "{} was left by a drill that did not finish and is kept: {why}",
                dir.display()
            ),
        }
    }
}

fn clean(dir: &Path) -> std::result::Result<(), String> {
    for mp in mounts_under(dir) {
        let _ = std::process::Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&mp)
            .output();
    }
    if let Some(mp) = mounts_under(dir).first() {
        return Err(format!("{} is still mounted", mp.display()));
    }
    let subdirs = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    for d in subdirs.flatten() {
        if d.file_name().to_string_lossy().starts_with("pitr-") {
            stop_postmaster(&d.path())?;
        }
    }
    std::fs::remove_dir_all(dir).map_err(|e| e.to_string())
}

/// Mount points at or below `dir`, from /proc/self/mountinfo (field 5, octal escapes).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|f| PathBuf::from(unescape(f)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn unescape(field: &str) -> String {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(o)) => {
                out.push(o.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
        .to_string_lossy()
        .into_owned()
}

/// Stops the postmaster running on `data` (a killed PITR drill's scratch cluster), if it is
/// still running there; waits up to 30 s for it to go.
fn stop_postmaster(data: &Path) -> std::result::Result<(), String> {
    let Ok(pidfile) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return Ok(());
    };
    let Some(pid) = pidfile
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    else {
        return Ok(());
    };
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    let here = std::fs::canonicalize(data).ok();
    if pid <= 0 || cwd.is_none() || cwd != here {
        return Ok(()); // not running, or the pid now belongs to something else
    }
    // SAFETY: signalling a process we identified by its pid file and working directory.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    match alive(pid) {
        true => Err(format!("its PostgreSQL server (pid {pid}) did not stop")),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scratch_names_have_an_owner() {
        let cases: &[(&str, Option<i32>)] = &[
            ("cofre-drill-1234-0badf00d", Some(1234)),
            ("cofre-drill-1-abcdef01", Some(1)),
            ("cofre-drill-0-abcdef01", None),
            ("cofre-drill-1234-0badf00", None),
            ("cofre-drill-1234-0badf00dd", None),
            ("cofre-drill-x-0badf00d", None),
            ("cofre-drill-1234", None),
            ("other-1234-0badf00d", None),
            ("cofre-drill--5-0badf00d", None),
        ];
        for (name, want) in cases {
            assert_eq!(owner_pid(name), *want, "{name}");
        }
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        let cases = [
            (r"/tmp/a\040b", "/tmp/a b"),
            (r"/tmp/tab\011x", "/tmp/tab\tx"),
            (r"/tmp/back\134slash", r"/tmp/back\slash"),
            ("/plain", "/plain"),
            (r"/short\04", r"/short\04"),
        ];
        for (field, want) in cases {
            assert_eq!(unescape(field), want, "{field}");
        }
    }

    /// A dead drill's directory goes; its "postmaster" (a process whose working directory
    /// is the data directory, named in postmaster.pid) is stopped. A live drill's
    /// directory, and a pid file naming a process elsewhere, are left alone.
    #[test]
    fn a_dead_drills_directory_and_server_go_and_a_live_ones_stay() {
        let base = tempfile::tempdir().expect("tempdir");
        let mut gone = std::process::Command::new("true").spawn().expect("true");
        let dead = gone.id();
        gone.wait().expect("wait");
        let stale = base.path().join(format!("{PREFIX}{dead}-0badf00d"));
        let data = stale.join("pitr-default");
        std::fs::create_dir_all(stale.join("copy-default/etc")).expect("mkdir");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(stale.join("copy-default/etc/passwd"), b"x").expect("write");
        let mut server = std::process::Command::new("sleep")
            .arg("600")
            .current_dir(&data)
            .spawn()
            .expect("sleep");
        std::fs::write(
            data.join("postmaster.pid"),
            format!("{}\n{}\n", server.id(), data.display()),
        )
        .expect("pid file");
        // A live drill (this test), with a pid file naming a process running elsewhere.
        let live = base
            .path()
            .join(format!("{PREFIX}{}-0badf00d", std::process::id()));
        let live_data = live.join("pitr-default");
        std::fs::create_dir_all(&live_data).expect("mkdir");
        let mut other = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("sleep");
        std::fs::write(
            live_data.join("postmaster.pid"),
            format!("{}\n", other.id()),
        )
        .expect("pid file");
        let unrelated = base.path().join("cofre-drill-notes");
        std::fs::create_dir_all(&unrelated).expect("mkdir");

        sweep(base.path());

        assert!(!stale.exists(), "the dead drill's directory is removed");
        let status = server.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGQUIT),
            "its server was stopped"
        );
        assert!(live.exists() && unrelated.exists());
        assert_eq!(
            other.try_wait().expect("try_wait"),
            None,
            "a process elsewhere is left alone"
        );
        let _ = other.kill();
        let _ = other.wait();
    }
}
