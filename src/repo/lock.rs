//! Repository locks, as restic's: `locks/<id>` objects, shared (ingest, forget) or
//! exclusive (prune's plan and delete phases). The design and the safety argument are in
//! docs/prune.md; in short:
//! - acquire = write our lock, then list every lock: if a live lock conflicts, remove ours
//!   and fail. Of two racing writers the later one always sees the earlier one.
//! - a holder refreshes its lock every `REFRESH_EVERY` (a new object; then, if the old one
//!   is still there, it is deleted, else the lock is lost); a lock not refreshed for
//!   `STALE_AFTER`, or whose process is gone on this host, is stale. An exclusive locker
//!   deletes stale locks it would conflict with, then lists again.
//! - before committing, a shared holder checks `Lock::check`: its lock is still in the
//!   store and was refreshed within `STALE_AFTER / 2`. A holder whose lock was judged stale
//!   and removed therefore never commits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::file::FileType;
use super::{block, Repository};
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::store::{DynStore, StoreError};

const LOCK_AAD: &[u8] = b"cofre-lock-v1";

/// Seconds from an environment variable (tests shorten the timings), else the default.
fn secs(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// A lock not refreshed for this long is stale (restic: 30 minutes).
pub fn stale_after() -> Duration {
    secs("COFRE_LOCK_STALE_SECS", 30 * 60)
}

fn refresh_every() -> Duration {
    secs("COFRE_LOCK_REFRESH_SECS", 5 * 60)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub purpose: String,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    /// Unix seconds of the holder's clock when it took the lock.
    pub created: i64,
    /// Unix seconds of the holder's clock at the last refresh.
    pub time: i64,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl LockInfo {
    /// Stale: not refreshed for `stale_after()` by our clock, or taken on this host by a
    /// process that no longer exists.
    pub fn is_stale(&self, host: &str) -> bool {
        if unix_now() - self.time > stale_after().as_secs() as i64 {
            return true;
        }
        // SAFETY: kill with signal 0 only checks that the process exists.
        self.hostname == host
            && unsafe { libc::kill(self.pid as libc::pid_t, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }

    pub fn describe(&self) -> String {
        let mode = if self.exclusive {
            "exclusive"
        } else {
            "shared"
        };
        format!(
            "{mode} lock for {} by {}@{} (pid {}), refreshed {}s ago",
            self.purpose,
            self.username,
            self.hostname,
            self.pid,
            unix_now() - self.time
        )
    }
}

/// Store access the refresher thread owns (it outlives no borrow of the repository).
#[derive(Clone)]
struct Io {
    store: DynStore,
    rt: Handle,
    keys: Keys,
}

impl Io {
    fn write(&self, info: &LockInfo) -> Result<String> {
        let plain = serde_json::to_vec(info).map_err(|e| Error::corrupt("lock", e.to_string()))?;
        let sealed = self.keys.seal(&plain, LOCK_AAD);
        let name = blake3::hash(&sealed).to_hex().to_string();
        block(&self.rt, self.store.put(&FileType::Lock.key(&name), sealed))?;
        Ok(name)
    }

    fn delete(&self, name: &str) -> Result<()> {
        match block(&self.rt, self.store.delete(&FileType::Lock.key(name))) {
            Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn exists(&self, name: &str) -> Result<bool> {
        match block(&self.rt, self.store.head(&FileType::Lock.key(name))) {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Every lock in the store. A lock deleted between the listing and the read is left out
/// (it was released); an unreadable one is kept as `Err` and counts as live.
pub fn list_locks(repo: &Repository) -> Result<Vec<(String, Result<LockInfo>)>> {
    let mut out = Vec::new();
    for (name, _) in repo.list_type(FileType::Lock)? {
        let key = FileType::Lock.key(&name);
        let info = match repo.get_sealed(&key, LOCK_AAD) {
            Err(Error::Store(StoreError::NotFound(_))) => continue,
            Err(e @ Error::Store(_)) => return Err(e),
            r => r.and_then(|plain| {
                serde_json::from_slice::<LockInfo>(&plain)
                    .map_err(|e| Error::corrupt(&key, e.to_string()))
            }),
        };
        out.push((name, info));
    }
    Ok(out)
}

struct State {
    name: String,
    refreshed: Instant,
    lost: Option<String>,
}

/// A held lock. Refreshed in the background; released (deleted) on drop.
pub struct Lock {
    io: Io,
    state: Arc<Mutex<State>>,
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub info: LockInfo,
}

impl Lock {
    /// Takes the lock, retrying for up to `wait` while another process holds a
    /// conflicting one.
    pub fn acquire(
        repo: &Repository,
        exclusive: bool,
        purpose: &str,
        wait: Duration,
    ) -> Result<Lock> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            match Lock::try_acquire(repo, exclusive, purpose) {
                Err(Error::Locked(msg)) if start.elapsed() + delay <= wait => {
                    tracing::info!("waiting for the lock: {msg}");
                    // Jitter: two lockers that saw each other back off by different
                    // amounts, or they would collide again and again in lockstep.
                    std::thread::sleep(delay.mul_f64(0.5 + rand::random::<f64>()));
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                r => return r,
            }
        }
    }

    fn try_acquire(repo: &Repository, exclusive: bool, purpose: &str) -> Result<Lock> {
        let (hostname, username) = crate::ingest::host_and_user();
        let now = unix_now();
        let info = LockInfo {
            exclusive,
            purpose: purpose.to_string(),
            hostname,
            username,
            pid: std::process::id(),
            created: now,
            time: now,
        };
        let io = Io {
            store: repo.store().clone(),
            rt: repo.runtime().clone(),
            keys: repo.keys().clone(),
        };
        let name = io.write(&info)?;
        if let Err(e) = check_others(repo, &io, &name, &info) {
            if let Err(d) = io.delete(&name) {
                tracing::warn!(
                    "could not remove our lock locks/{name}: {d}; `cofre unlock` removes it"
                );
            }
            return Err(e);
        }
        let state = Arc::new(Mutex::new(State {
            name,
            refreshed: Instant::now(),
            lost: None,
        }));
        let (stop, stopped) = bounded::<()>(1);
        let thread = {
            let (io, state, mut info) = (io.clone(), state.clone(), info.clone());
            std::thread::spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(refresh_every())
                {
                    info.time = unix_now();
                    refresh(&io, &state, &info);
                }
            })
        };
        Ok(Lock {
            io,
            state,
            stop: Some(stop),
            thread: Some(thread),
            info,
        })
    }

    /// Ok while the lock is certainly still ours: its object exists and it was refreshed
    /// well within the stale time. Call before committing anything that relies on it.
    pub fn check(&self) -> Result<()> {
        let (name, refreshed, lost) = {
            let st = self.state.lock();
            (st.name.clone(), st.refreshed, st.lost.clone())
        };
        if let Some(why) = lost {
            return Err(Error::LockLost(why));
        }
        if refreshed.elapsed() > stale_after() / 2 {
            return Err(Error::LockLost(format!(
                "not refreshed for {}s",
                refreshed.elapsed().as_secs()
            )));
        }
        if !self.io.exists(&name)? {
            return Err(Error::LockLost(format!(
                "locks/{name} was removed by another process"
            )));
        }
        Ok(())
    }
}

fn refresh(io: &Io, state: &Mutex<State>, info: &LockInfo) {
    let old = state.lock().name.clone();
    let new = match io.write(info) {
        Ok(n) => n,
        Err(e) => return tracing::warn!("lock refresh failed: {e}"),
    };
    // Only now check that the old lock is still there. An exclusive locker that removed it
    // as stale either removed it before this check (we see it gone: lost), or lists the
    // locks again after removing it and finds the new one (it backs off) — never neither.
    match io.exists(&old) {
        Ok(true) => {
            {
                let mut st = state.lock();
                st.name = new;
                st.refreshed = Instant::now();
            }
            if let Err(e) = io.delete(&old) {
                tracing::warn!("old lock locks/{old} not removed: {e}");
            }
        }
        Ok(false) => {
            state.lock().lost = Some(format!("locks/{old} was removed by another process"));
            if let Err(e) = io.delete(&new) {
                tracing::warn!("lock locks/{new} not removed: {e}");
            }
        }
        Err(e) => {
            tracing::warn!("lock refresh failed: {e}");
            let _ = io.delete(&new);
        }
    }
}

/// Fails with `Locked` if a live lock conflicts with ours. An exclusive locker removes
/// stale locks in its way (so their holders, if alive after all, fail `Lock::check`), then
/// looks again: a holder refreshing meanwhile has written a new lock by then.
fn check_others(repo: &Repository, io: &Io, ours: &str, info: &LockInfo) -> Result<()> {
    loop {
        let mut removed = false;
        for (name, other) in list_locks(repo)? {
            if name == ours {
                continue;
            }
            let other = match other {
                Ok(o) => o,
                Err(e) => {
                    return Err(Error::Locked(format!(
                        "lock locks/{name} cannot be read ({e}); if no other cofre runs, `cofre unlock --remove-all`"
                    )))
                }
            };
            if !(info.exclusive || other.exclusive) {
                continue;
            }
            if other.is_stale(&info.hostname) {
                if info.exclusive {
                    tracing::warn!("removing stale lock locks/{name}: {}", other.describe());
                    io.delete(&name)?;
                    removed = true;
                }
                continue;
            }
            return Err(Error::Locked(other.describe()));
        }
        if !removed {
            return Ok(());
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let name = self.state.lock().name.clone();
        if let Err(e) = self.io.delete(&name) {
            tracing::warn!(
                "lock locks/{name} not removed: {e}; it goes stale, or `cofre unlock` removes it"
            );
        }
    }
}

/// `cofre unlock`: removes stale locks (all locks with `all`). Returns what was removed.
pub fn unlock(repo: &Repository, all: bool) -> Result<Vec<String>> {
    let (host, _) = crate::ingest::host_and_user();
    let mut removed = Vec::new();
    for (name, info) in list_locks(repo)? {
        let stale = info.as_ref().is_ok_and(|i| i.is_stale(&host));
        if all || stale {
            repo.delete(FileType::Lock, &name)?;
            removed.push(match info {
                Ok(i) => format!("locks/{name}: {}", i.describe()),
                Err(e) => format!("locks/{name}: unreadable ({e})"),
            });
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn repo(rt: &tokio::runtime::Runtime) -> Repository {
        Repository::init(Arc::new(MemoryStore::new()), rt.handle().clone(), b"pw").expect("init")
    }

    #[test]
    fn shared_locks_coexist_and_exclusive_ones_exclude() {
        let rt = tokio::runtime::Runtime::new().expect("rt");
        let r = repo(&rt);
        let z = Duration::ZERO;
        let cases = [
            (false, false, true),
            (false, true, false),
            (true, false, false),
            (true, true, false),
        ];
        for (first, second, both) in cases {
            let a = Lock::acquire(&r, first, "a", z).expect("first");
            let b = Lock::acquire(&r, second, "b", z);
            assert_eq!(b.is_ok(), both, "{first} then {second}");
            if let Err(e) = b {
                assert!(matches!(e, Error::Locked(_)), "{e}");
                // The loser left no lock behind.
                assert_eq!(list_locks(&r).expect("list").len(), 1);
            }
            drop(a);
        }
        assert!(
            list_locks(&r).expect("list").is_empty(),
            "locks are released on drop"
        );
    }

    #[test]
    fn a_stale_lock_is_removed_by_an_exclusive_locker_and_its_holder_fails_check() {
        let rt = tokio::runtime::Runtime::new().expect("rt");
        let r = repo(&rt);
        let holder = Lock::acquire(&r, false, "ingest", Duration::ZERO).expect("shared");
        assert!(holder.check().is_ok());
        // Age the holder's lock object: rewrite it with a time 31 minutes ago.
        let name = holder.state.lock().name.clone();
        let mut old = holder.info.clone();
        old.time -= 31 * 60;
        let aged = holder.io.write(&old).expect("write");
        holder.io.delete(&name).expect("delete");
        holder.state.lock().name = aged;
        let prune = Lock::acquire(&r, true, "prune", Duration::ZERO).expect("stale lock ignored");
        assert!(matches!(holder.check(), Err(Error::LockLost(_))));
        drop(prune);
        drop(holder);
    }

    #[test]
    fn a_refresh_after_removal_marks_the_lock_lost_and_leaves_nothing() {
        let rt = tokio::runtime::Runtime::new().expect("rt");
        let r = repo(&rt);
        let holder = Lock::acquire(&r, false, "ingest", Duration::ZERO).expect("shared");
        let name = holder.state.lock().name.clone();
        r.delete(FileType::Lock, &name).expect("remove as stale");
        refresh(&holder.io, &holder.state, &holder.info);
        assert!(matches!(holder.check(), Err(Error::LockLost(_))));
        assert!(
            list_locks(&r).expect("list").is_empty(),
            "the lost lock was resurrected"
        );
        // A normal refresh replaces the object and keeps the lock.
        let other = Lock::acquire(&r, false, "ingest", Duration::ZERO).expect("shared");
        let before = other.state.lock().name.clone();
        let mut info = other.info.clone();
        info.time += 1;
        refresh(&other.io, &other.state, &info);
        assert_ne!(other.state.lock().name, before);
        assert!(other.check().is_ok());
        assert_eq!(list_locks(&r).expect("list").len(), 1);
    }
}
