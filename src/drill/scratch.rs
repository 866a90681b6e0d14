//! The drill's scratch directories, `$TMPDIR/cofre-drill-<pid>-<hex>` (default
//! `/var/tmp`): one per run, private, removed when the drill ends. A drill that is killed
//! (a timeout in cron, systemd stopping it, the OOM killer) cannot remove its own. Left
//! alone, each such run would leave its copy of a whole snapshot on the disk, and a PITR
//! drill a PostgreSQL server running on the copy. So every drill first sweeps the
//! directories of drills that are gone.
//!
//! **Gone** is proven by a lock, not a pid: each drill holds an exclusive `flock` on
//! `<dir>.lock`, taken before its directory exists and let go only when the directory has
//! been removed (or by the kernel, when the drill dies). A sweeper that can take that lock
//! knows the drill is dead, whatever PID namespace it ran in (a container sharing
//! `/var/tmp` has pids of its own), and holds the lock while it cleans, so two sweepers
//! never clean one directory. Only a directory made before these locks existed (no lock
//! file) falls back to its pid, and a live pid keeps it.
//!
//! Cleaning a dead drill's directory:
//! - cofre FUSE mounts inside it are detached (`fusermount3 -u -z`); the directory is kept
//!   if one remains, since removing files under a live mount would walk the snapshot;
//! - a scratch cluster's postmaster is stopped at once (SIGQUIT), only when it is the
//!   process named in `postmaster.pid` *and* its working directory is that data directory
//!   (a pid reused by another program is left alone); the directory is kept if it does not
//!   stop;
//! - then the directory is removed, then its lock file.
//!
//! A directory that belongs to another user is never touched. (The mount child of a
//! killed drill also gets SIGTERM from the kernel, `PR_SET_PDEATHSIG` in `start_mount`, so
//! it normally unmounts before any sweep.)

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const PREFIX: &str = "cofre-drill-";

/// A drill's scratch directory, and the lock that says its drill is alive. Dropping it
/// removes the directory, then the lock file.
pub(super) struct Scratch {
    pub dir: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::fs::remove_dir_all(&self.dir).is_ok() {
            let _ = std::fs::remove_file(&self.lock_path);
        }
    }
}

/// Where scratch directories go.
fn base() -> PathBuf {
    std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from)
}

fn lock_path(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// A new private scratch directory for this drill, after sweeping those of dead drills.
pub(super) fn new_dir() -> Result<Scratch> {
    new_dir_in(&base())
}

fn new_dir_in(base: &Path) -> Result<Scratch> {
    std::fs::create_dir_all(base).map_err(|e| Error::io(base, e))?;
    sweep(base);
    let dir = base.join(format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    ));
    let lock_path = lock_path(&dir);
    // The lock first: a directory without a held lock is a dead drill's to a sweeper.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    crate::fsutil::flock(&lock, true).map_err(|e| Error::io(&lock_path, e))?;
    // Not recursive: a directory already there (made by someone else) is an error.
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        let _ = std::fs::remove_file(&lock_path);
        return Err(Error::io(&dir, e));
    }
    Ok(Scratch {
        dir,
        lock_path,
        _lock: lock,
    })
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
        let mine = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if !mine {
            continue;
        }
        // Held while cleaning: `None` for a directory from before the locks.
        let lock = match std::fs::File::open(lock_path(&dir)) {
            Ok(f) => match crate::fsutil::flock(&f, false) {
                Ok(true) => Some(f),
                _ => continue, // its drill is alive (or the lock cannot be read: leave it)
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if pid == std::process::id() as i32 || alive(pid) {
                    continue;
                }
                None
            }
            Err(_) => continue,
        };
        match clean(&dir) {
            Ok(()) => {
                if lock.is_some() {
                    let _ = std::fs::remove_file(lock_path(&dir));
                }
                tracing::info!(
                    "removed {}, left by a drill that did not finish",
                    dir.display()
                )
            }
            Err(why) => tracing::warn!(
                "{} was left by a drill that did not finish and is kept: {why}",
                dir.display()
            ),
        }
    }
}

fn clean(dir: &Path) -> std::result::Result<(), String> {
    let dir = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    for mp in mounts_under(&dir) {
        crate::mount::mounts::detach(&mp);
    }
    if let Some(mp) = mounts_under(&dir).first() {
        return Err(format!("{} is still mounted", mp.display()));
    }
    let subdirs = std::fs::read_dir(&dir).map_err(|e| e.to_string())?;
    for d in subdirs.flatten() {
        if d.file_name().as_bytes().starts_with(b"pitr-") {
            stop_postmaster(&d.path())?;
        }
    }
    std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())
}

/// cofre's FUSE mounts at or below `dir` (canonical).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    crate::mount::mounts::cofre_mounts()
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect()
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
        .filter(|p| *p > 0)
    else {
        return Ok(());
    };
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    if cwd.is_none() || cwd != std::fs::canonicalize(data).ok() {
        return Ok(()); // not running, or the pid now belongs to something else
    }
    tracing::info!("stopping the PostgreSQL server (pid {pid}) of a drill that did not finish");
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

    fn sleeper(cwd: &Path) -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("600")
            .current_dir(cwd)
            .spawn()
            .expect("sleep")
    }

    /// Which directories a sweep removes and which it leaves, and which processes it stops.
    #[test]
    fn a_sweep_removes_only_dead_drills_and_stops_only_their_servers() {
        let base = tempfile::tempdir().expect("tempdir");
        let b = base.path();
        let mut gone = std::process::Command::new("true").spawn().expect("true");
        let dead = gone.id();
        gone.wait().expect("wait");
        let mkdir = |name: &str| {
            let d = b.join(name);
            std::fs::create_dir_all(d.join("copy-default/etc")).expect("mkdir");
            std::fs::write(d.join("copy-default/etc/passwd"), b"x").expect("write");
            d
        };
        let pidfile = |data: &Path, pid: u32| {
            std::fs::create_dir_all(data).expect("mkdir");
            std::fs::write(data.join("postmaster.pid"), format!("{pid}\n")).expect("pid file");
        };
        // A dead drill (its lock free) whose pid is this live process's: the lock decides.
        let unlocked = mkdir(&format!("{PREFIX}{}-0000000a", std::process::id()));
        File::create(lock_path(&unlocked)).expect("lock file");
        let data = unlocked.join("pitr-default");
        std::fs::create_dir_all(&data).expect("mkdir");
        let mut server = sleeper(&data);
        pidfile(&data, server.id());
        // A live drill (its lock held), named with a dead pid: kept.
        let held = mkdir(&format!("{PREFIX}{dead}-0000000b"));
        let lock = File::create(lock_path(&held)).expect("lock file");
        assert!(crate::fsutil::flock(&lock, false).expect("flock"));
        // From before the locks: a dead pid goes, a live one stays.
        let old_dead = mkdir(&format!("{PREFIX}{dead}-0000000c"));
        let mut live = sleeper(b);
        let old_live = mkdir(&format!("{PREFIX}{}-0000000d", live.id()));
        // A dead drill whose pid file names a process running elsewhere: that process stays.
        let reused = mkdir(&format!("{PREFIX}{dead}-0000000e"));
        let mut other = sleeper(b);
        pidfile(&reused.join("pitr-default"), other.id());
        let unrelated = mkdir("cofre-drill-notes");

        sweep(b);

        for (d, kept) in [
            (&unlocked, false),
            (&held, true),
            (&old_dead, false),
            (&old_live, true),
            (&reused, false),
            (&unrelated, true),
        ] {
            assert_eq!(d.exists(), kept, "{}", d.display());
        }
        assert!(
            !lock_path(&unlocked).exists(),
            "a dead drill's lock file goes too"
        );
        use std::os::unix::process::ExitStatusExt;
        let status = server.wait().expect("wait");
        assert_eq!(
            status.signal(),
            Some(libc::SIGQUIT),
            "its server was stopped"
        );
        for p in [&mut live, &mut other] {
            assert_eq!(p.try_wait().expect("try_wait"), None, "left alone");
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    #[test]
    fn a_new_directory_is_locked_until_dropped() {
        let base = tempfile::tempdir().expect("tempdir");
        let s = new_dir_in(base.path()).expect("new_dir");
        assert!(s.dir.starts_with(base.path()));
        let other = File::open(lock_path(&s.dir)).expect("lock file");
        assert!(
            !crate::fsutil::flock(&other, false).expect("flock"),
            "held while the drill runs"
        );
        sweep(base.path());
        assert!(s.dir.exists(), "a live drill's directory stays");
        let (dir, lock) = (s.dir.clone(), lock_path(&s.dir));
        drop(s);
        assert!(!dir.exists() && !lock.exists());
    }
}
