//! What a process knows about itself and its machine: its clocks, who it is, and whether
//! another process of the same kernel and PID namespace is alive. Locks and snapshot times
//! read them here, not from the system directly, so the simulation (`tests/sim`) can run
//! many "hosts" with their own clocks, names and process lifetimes in one test process.

use std::sync::Arc;
use std::time::Duration;

/// Who holds a lock. Two processes are the same machine's only when `boot_id` and `pid_ns`
/// agree: a hostname is not unique (cloned VMs, containers), and a pid means something only
/// inside its own PID namespace of one boot of one kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub hostname: String,
    pub username: String,
    /// `/proc/sys/kernel/random/boot_id`: a random id per boot of a kernel.
    pub boot_id: String,
    /// The PID namespace (`readlink /proc/self/ns/pid`, e.g. `pid:[4026531836]`).
    pub pid_ns: String,
    pub pid: u32,
    /// Random per process: tells two processes apart even if everything else agrees.
    pub nonce: u64,
}

/// The lock timings (docs/prune.md "Locks").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTiming {
    /// A lock whose newest object is older than this by the store's clock is stale.
    pub stale: Duration,
    /// How often a holder writes a fresh lock object.
    pub refresh: Duration,
    /// A client clock further than this from the store's is refused.
    pub max_skew: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        LockTiming {
            stale: Duration::from_secs(30 * 60),
            refresh: Duration::from_secs(5 * 60),
            max_skew: Duration::from_secs(10 * 60),
        }
    }
}

pub trait Env: Send + Sync {
    /// Wall clock: Unix seconds and nanoseconds.
    fn now(&self) -> (i64, u32);
    /// A clock that never goes back and counts time suspended (CLOCK_BOOTTIME).
    fn elapsed(&self) -> Duration;
    fn identity(&self) -> &Identity;
    /// Whether `pid` names a live process. Only asked about a lock of the same `boot_id`
    /// and `pid_ns` as ours, where a pid means the same thing to both.
    fn process_alive(&self, pid: u32) -> bool;
    fn lock_timing(&self) -> LockTiming;
    /// Worker threads a command may use for one pipeline (None: one per core, up to 4).
    /// The simulation uses 1, so each process issues its store calls in one order.
    fn workers(&self) -> Option<usize> {
        None
    }
    /// A lock was taken; `refresh` does what the refresher thread does every
    /// `LockTiming::refresh`. The simulation keeps it to run when a paused process resumes
    /// (its refresher thread then races its main thread; the simulation lets it win).
    fn lock_taken(&self, refresh: Arc<dyn Fn() + Send + Sync>) {
        let _ = refresh;
    }
    fn lock_released(&self) {}
}

pub type DynEnv = Arc<dyn Env>;

/// The real machine.
pub struct SystemEnv {
    identity: Identity,
    timing: LockTiming,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl SystemEnv {
    pub fn new() -> SystemEnv {
        let mut names = crate::ingest::fsmeta::Names::default();
        // SAFETY: getuid cannot fail.
        let username = names.user(unsafe { libc::getuid() });
        SystemEnv {
            identity: Identity {
                hostname: read_trimmed("/proc/sys/kernel/hostname"),
                username,
                boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
                pid_ns: std::fs::read_link("/proc/self/ns/pid")
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                pid: std::process::id(),
                nonce: rand::random(),
            },
            timing: system_timing(),
        }
    }
}

impl Default for SystemEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Shortened lock timings for the integration tests, only in a build with the
/// `test-hooks` feature (which `cargo test` enables and a release build does not): a
/// shipped binary never lets the environment weaken prune's safety margin.
#[cfg(feature = "test-hooks")]
fn system_timing() -> LockTiming {
    let secs = |var: &str, d: Duration| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(d, Duration::from_secs)
    };
    let d = LockTiming::default();
    LockTiming {
        stale: secs("COFRE_LOCK_STALE_SECS", d.stale),
        refresh: secs("COFRE_LOCK_REFRESH_SECS", d.refresh),
        max_skew: secs("COFRE_LOCK_MAX_SKEW_SECS", d.max_skew),
    }
}

#[cfg(not(feature = "test-hooks"))]
fn system_timing() -> LockTiming {
    LockTiming::default()
}

impl Env for SystemEnv {
    fn now(&self) -> (i64, u32) {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        (d.as_secs() as i64, d.subsec_nanos())
    }

    fn elapsed(&self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        Duration::new(
            ts.tv_sec.max(0) as u64,
            ts.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    }

    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn process_alive(&self, pid: u32) -> bool {
        // SAFETY: kill with signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        !(r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH))
    }

    fn lock_timing(&self) -> LockTiming {
        self.timing
    }
}

/// The process-wide system environment (one nonce per process).
pub fn system() -> DynEnv {
    static ENV: std::sync::OnceLock<DynEnv> = std::sync::OnceLock::new();
    ENV.get_or_init(|| Arc::new(SystemEnv::new())).clone()
}
