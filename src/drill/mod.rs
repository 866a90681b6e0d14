//! `cofre drill`: the recovery test. For each set, mount its snapshot (a `cofre mount` child
//! process, as a user would), copy it out with the system's `cp -a` (or `rsync -aHAX`),
//! verify every entry against the snapshot (content by whole-file blake3, and metadata),
//! unmount, and report the times: the RTO as measured, the RPO as the snapshot's age, each
//! against the set's targets (`rto`, `rpo` in the configuration).

mod driller;
pub mod pg;
mod pitr;
pub mod record;
mod scratch;
pub mod verify;

pub use driller::{sets_to_drill, DrillArgs, Driller};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::catalog::{Catalog, SnapshotRow};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copier {
    Cp,
    Rsync,
}

impl Copier {
    pub fn parse(s: &str) -> std::result::Result<Copier, String> {
        match s {
            "cp" => Ok(Copier::Cp),
            "rsync" => Ok(Copier::Rsync),
            _ => Err(format!("{s:?}: cp or rsync")),
        }
    }

    fn command(self, from: &Path, to: &Path) -> Command {
        let mut c = match self {
            Copier::Cp => {
                let mut c = Command::new("cp");
                c.arg("-a").arg(from.join(".")).arg(to);
                c
            }
            Copier::Rsync => {
                let mut c = Command::new("rsync");
                c.arg("-aHAX")
                    .arg(format!("{}/", from.display()))
                    .arg(format!("{}/", to.display()));
                c
            }
        };
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }
}

/// How to start the mount child: the cofre binary and its global arguments (repository,
/// catalog, password source), resolved by the caller.
pub struct MountCommand {
    pub exe: PathBuf,
    pub args: Vec<std::ffi::OsString>,
    /// Environment for the child (the password, when it was given as a value).
    pub env: Vec<(String, String)>,
}

pub struct DrillOptions {
    pub copier: Copier,
    /// Where to copy (must be absent or empty); default: a temporary directory, removed
    /// after the drill.
    pub target: Option<PathBuf>,
    /// Targets: seconds.
    pub rto: Option<u64>,
    pub rpo: Option<u64>,
    pub now: i64,
    /// The set's PostgreSQL drill and its dump's path in the snapshot (`stdin_name`).
    pub pg: Option<(crate::config::PgDrill, String)>,
}

#[derive(Debug, Serialize)]
pub struct SetReport {
    pub set: String,
    pub snapshot: String,
    pub snapshot_time: String,
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    pub mount_seconds: f64,
    pub copy_seconds: f64,
    pub verify_seconds: f64,
    pub throughput_bytes_per_second: f64,
    /// Mount + copy: how long getting the whole set back took.
    pub rto_seconds: f64,
    pub rto_target_seconds: Option<u64>,
    /// The age of the newest data at the drill (the snapshot's, or for a point-in-time
    /// drill that passed, the last commit it recovered): what a loss now would lose.
    pub rpo_seconds: i64,
    pub rpo_target_seconds: Option<u64>,
    pub mismatches: Vec<String>,
    pub problems: Vec<String>,
    /// The dump restored into a scratch database, checked, dropped.
    pub pg: Option<pg::PgReport>,
    pub passed: bool,
}

/// The mount child, unmounted (SIGTERM, then a lazy unmount) when dropped.
struct MountChild {
    child: Child,
    mountpoint: PathBuf,
}

impl Drop for MountChild {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.mountpoint)
            .status();
    }
}

/// `cmd`, to be sent `signal` by the kernel when the drill dies (`PR_SET_PDEATHSIG`), so a
/// killed drill leaves no mount or copier running. PDEATHSIG follows the spawning *thread*:
/// each child here is waited for on the thread that started it.
pub(crate) fn dies_with_drill(mut cmd: Command, signal: i32) -> Command {
    let parent = std::process::id() as i32;
    // SAFETY: prctl and getppid are async-signal-safe, as pre_exec requires.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The drill died between fork and prctl: run nothing for nobody.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd
}

fn start_mount(
    mc: &MountCommand,
    mountpoint: &Path,
    set: &str,
    ready: &Path,
    no_xattrs: bool,
) -> Result<MountChild> {
    // The mount's messages go to a file: a pipe nobody reads while the copy runs would fill
    // up with read warnings and stall the mount.
    let name = mountpoint
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let log_path = mountpoint.with_file_name(format!("{}.log", name.unwrap_or_default()));
    let log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
    // If the drill is killed, the kernel sends the mount SIGTERM and it unmounts: no mount
    // outlives its drill.
    let child = dies_with_drill(Command::new(&mc.exe), libc::SIGTERM)
        .args(&mc.args)
        .arg("mount")
        .arg(mountpoint)
        .args(["--set", set])
        .args(no_xattrs.then_some("--no-xattrs"))
        .envs(mc.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| Error::io(&mc.exe, e))?;
    let mut m = MountChild {
        child,
        mountpoint: mountpoint.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if ready.exists() {
            return Ok(m);
        }
        if let Ok(Some(status)) = m.child.try_wait() {
            let err = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(Error::InvalidArgument(format!(
                "the drill's mount exited ({status}): {}",
                err.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Error::InvalidArgument(format!(
        "the drill's mount at {} did not show {} within 120 s",
        mountpoint.display(),
        ready.display()
    )))
}

/// Drills one snapshot of `set`.
pub fn drill(
    cat: &Catalog,
    mc: &MountCommand,
    set: &str,
    snap: &SnapshotRow,
    scratch: &Path,
    o: &DrillOptions,
) -> Result<SetReport> {
    let mountpoint = scratch.join(format!("mnt-{set}"));
    std::fs::create_dir_all(&mountpoint).map_err(|e| Error::io(&mountpoint, e))?;
    let target = match &o.target {
        Some(t) => t.join(set),
        None => scratch.join(format!("copy-{set}")),
    };
    if std::fs::read_dir(&target).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::InvalidArgument(format!(
            "{} is not empty: the drill copies into an empty directory",
            target.display()
        )));
    }
    std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
    let source = mountpoint.join("ids").join(&snap.id[..8]);

    let t0 = Instant::now();
    // Without xattrs anywhere, the copy makes no xattr round trips (a third of its time).
    let no_xattrs = !cat.any_xattrs()?;
    let mount = start_mount(mc, &mountpoint, set, &source, no_xattrs)?;
    let mount_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let out = dies_with_drill(o.copier.command(&source, &target), libc::SIGKILL)
        .output()
        .map_err(|e| Error::InvalidArgument(format!("{:?}: {e}", o.copier)))?;
    let copy_seconds = t1.elapsed().as_secs_f64();
    let mut problems = Vec::new();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first: Vec<&str> = err.lines().take(5).collect();
        problems.push(format!(
            "{} exited {}: {}",
            match o.copier {
                Copier::Cp => "cp -a",
                Copier::Rsync => "rsync -aHAX",
            },
            out.status.code().unwrap_or(-1),
            first.join("; ")
        ));
    }
    // The database is restored from the mount, as a restore after an incident would.
    let pg =
        o.pg.as_ref()
            .map(|(cfg, name)| pg::drill(&source.join(name.trim_start_matches('/')), set, cfg));
    if let Some(p) = &pg {
        let failed = std::iter::once(&p.restore)
            .chain(&p.checks)
            .chain(&p.command)
            .filter(|s| !s.ok);
        for s in failed {
            problems.push(format!("PostgreSQL: {}: {}", s.what, s.output));
        }
    }
    drop(mount);
    let t2 = Instant::now();
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let v = verify::verify(cat, snap.root_rowid, &target, root)?;
    let verify_seconds = t2.elapsed().as_secs_f64();
    if o.target.is_none() {
        let _ = std::fs::remove_dir_all(&target);
    }
    let _ = std::fs::remove_dir(&mountpoint);

    let rto_seconds = mount_seconds + copy_seconds;
    let rpo_seconds = o.now - snap.manifest.time.0;
    if let Some(t) = o.rto.filter(|t| rto_seconds > *t as f64) {
        problems.push(format!(
            "RTO missed: {rto_seconds:.1} s to get the set back, target {t} s"
        ));
    }
    if let Some(t) = o.rpo.filter(|t| rpo_seconds > *t as i64) {
        problems.push(format!(
            "RPO missed: the snapshot is {rpo_seconds} s old, target {t} s"
        ));
    }
    let passed =
        problems.is_empty() && v.mismatches.is_empty() && pg.as_ref().is_none_or(|p| p.passed);
    Ok(SetReport {
        set: set.to_string(),
        snapshot: snap.id.clone(),
        snapshot_time: crate::ingest::format_time(snap.manifest.time),
        files: v.files,
        dirs: v.dirs,
        other: v.other,
        bytes: v.bytes,
        mount_seconds,
        copy_seconds,
        verify_seconds,
        throughput_bytes_per_second: v.bytes as f64 / copy_seconds.max(1e-6),
        rto_seconds,
        rto_target_seconds: o.rto,
        rpo_seconds,
        rpo_target_seconds: o.rpo,
        mismatches: v.mismatches,
        problems,
        pg,
        passed,
    })
}
