//! Repository locks, as restic's: `locks/<id>` objects, shared (ingest, forget, check,
//! repair) or exclusive (prune). The design and the safety argument are in docs/prune.md;
//! in short:
//! - acquire = write our lock, then list every lock: if a live lock conflicts, remove ours
//!   and fail. Of two racing writers the later one always sees the earlier one.
//! - a holder refreshes its lock every `LockTiming::refresh` (a new object; then, if the old
//!   one is still there, it is deleted, else the lock is lost).
//! - staleness is judged by the *store's* clock (the objects' write times), never by
//!   comparing two clients' clocks, and by process liveness only between processes of one
//!   boot of one kernel in one PID namespace (never by hostname + pid). A client clock far
//!   from the store's is refused.
//! - any locker, shared or exclusive, that meets a conflicting lock either backs off or, if
//!   the lock is stale, deletes it and lists again: a shared locker never proceeds past an
//!   exclusive lock it did not remove itself.
//! - before committing (ingest) or deleting (prune), a holder calls `Lock::check`: its lock
//!   is still in the store and was refreshed within half the stale time.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::env::{DynEnv, Identity, LockTiming};
use super::file::FileType;
use super::{block, Repository};
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::store::{DynStore, StoreError};

const LOCK_AAD: &[u8] = b"cofre-lock-v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub purpose: String,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    /// Unix seconds of the holder's clock when it took the lock.
    pub created: i64,
    /// Unix seconds of the holder's clock at the last refresh (for people: staleness
    /// uses the store's clock).
    pub time: i64,
    /// Random per process (absent in locks of older versions: 0).
    #[serde(default)]
    pub nonce: u64,
    #[serde(default)]
    pub boot_id: String,
    #[serde(default)]
    pub pid_ns: String,
}

impl LockInfo {
    fn new(id: &Identity, exclusive: bool, purpose: &str, now: i64) -> LockInfo {
        LockInfo {
            exclusive,
            purpose: purpose.to_string(),
            hostname: id.hostname.clone(),
            username: id.username.clone(),
            pid: id.pid,
            created: now,
            time: now,
            nonce: id.nonce,
            boot_id: id.boot_id.clone(),
            pid_ns: id.pid_ns.clone(),
        }
    }

    /// Same kernel boot and PID namespace as `me`: only then does its pid mean anything here.
    fn same_pid_space(&self, me: &Identity) -> bool {
        !self.boot_id.is_empty()
            && !self.pid_ns.is_empty()
            && self.boot_id == me.boot_id
            && self.pid_ns == me.pid_ns
    }

    pub fn describe(&self, age: i64) -> String {
        let mode = if self.exclusive {
            "exclusive"
        } else {
            "shared"
        };
        format!(
            "{mode} lock for {} by {}@{} (pid {}), refreshed {age}s ago",
            self.purpose, self.username, self.hostname, self.pid,
        )
    }
}

/// What a locker makes of another lock object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Held by this very process (an old object a refresh has not removed yet).
    Ours,
    Live,
    Stale(String),
}

/// The staleness rule, pure: `age` is the lock object's age by the store's clock. A lock
/// is stale when not refreshed for the stale time, or when its holder shares our kernel
/// boot and PID namespace and its pid is gone. A hostname is never evidence: two hosts can
/// share one, and two containers of one host can share a pid.
pub fn judge(
    me: &Identity,
    other: &LockInfo,
    age: i64,
    timing: &LockTiming,
    alive: &dyn Fn(u32) -> bool,
) -> Verdict {
    if other.nonce != 0 && other.nonce == me.nonce && other.pid == me.pid {
        return Verdict::Ours;
    }
    if age > timing.stale.as_secs() as i64 {
        return Verdict::Stale(format!("not refreshed for {age}s by the store's clock"));
    }
    if other.same_pid_space(me) && !alive(other.pid) {
        return Verdict::Stale(format!("process {} no longer exists", other.pid));
    }
    Verdict::Live
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

/// One object in `locks/`.
pub struct LockEntry {
    pub name: String,
    /// Write time by the store's clock.
    pub modified: Option<i64>,
    /// Unreadable locks are kept as `Err` and count as live.
    pub info: Result<LockInfo>,
}

/// Every lock in the store. A lock deleted between the listing and the read is left out
/// (it was released).
pub fn list_locks(repo: &Repository) -> Result<Vec<LockEntry>> {
    let mut out = Vec::new();
    for o in repo.list(FileType::Lock.prefix())? {
        let Some(name) = FileType::Lock.name_of(&o.key).map(str::to_string) else {
            continue;
        };
        let info = match repo.get_sealed(&o.key, LOCK_AAD) {
            Err(Error::Store(StoreError::NotFound(_))) => continue,
            Err(e @ Error::Store(_)) => return Err(e),
            r => r.and_then(|plain| {
                serde_json::from_slice::<LockInfo>(&plain)
                    .map_err(|e| Error::corrupt(&o.key, e.to_string()))
            }),
        };
        out.push(LockEntry {
            name,
            modified: o.modified,
            info,
        });
    }
    Ok(out)
}

struct State {
    name: String,
    /// `Env::elapsed` at the last successful refresh.
    refreshed: Duration,
    lost: Option<String>,
}

/// A held lock. Refreshed in the background; released (deleted) on drop.
pub struct Lock {
    io: Io,
    env: DynEnv,
    state: Arc<Mutex<State>>,
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub info: LockInfo,
    /// The store's clock when we took the lock, and `Env::elapsed` then.
    store_time: (i64, Duration),
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
        let env = repo.env().clone();
        let start = env.elapsed();
        let mut delay = Duration::from_millis(200);
        loop {
            match Lock::try_acquire(repo, exclusive, purpose) {
                Err(Error::Locked(msg)) if env.elapsed() - start + delay <= wait => {
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
        let env = repo.env().clone();
        let info = LockInfo::new(env.identity(), exclusive, purpose, env.now().0);
        let io = Io {
            store: repo.store().clone(),
            rt: repo.runtime().clone(),
            keys: repo.keys().clone(),
        };
        let name = io.write(&info)?;
        let store_now = match check_others(repo, &io, &name, &info) {
            Ok(t) => t,
            Err(e) => {
                if let Err(d) = io.delete(&name) {
                    tracing::warn!(
                        "could not remove our lock locks/{name}: {d}; `cofre unlock` removes it"
                    );
                }
                return Err(e);
            }
        };
        let timing = env.lock_timing();
        let state = Arc::new(Mutex::new(State {
            name,
            refreshed: env.elapsed(),
            lost: None,
        }));
        {
            let (io, state, info, env2) = (io.clone(), state.clone(), info.clone(), env.clone());
            env.lock_taken(Arc::new(move || {
                let mut info = info.clone();
                info.time = env2.now().0;
                refresh(&io, &state, &info, env2.elapsed());
            }));
        }
        let (stop, stopped) = bounded::<()>(1);
        let thread = {
            let (io, state, mut info, env) = (io.clone(), state.clone(), info.clone(), env.clone());
            std::thread::spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(timing.refresh)
                {
                    info.time = env.now().0;
                    refresh(&io, &state, &info, env.elapsed());
                }
            })
        };
        Ok(Lock {
            io,
            state,
            stop: Some(stop),
            thread: Some(thread),
            info,
            store_time: (store_now, env.elapsed()),
            env,
        })
    }

    /// The store's clock now, as far as we know it: its time when we took the lock plus
    /// the time elapsed here since (prune's minimum age of unindexed packs uses it).
    pub fn store_now(&self) -> i64 {
        let (t, at) = self.store_time;
        t + self.env.elapsed().saturating_sub(at).as_secs() as i64
    }

    /// Ok while the lock is certainly still ours: its object exists and it was refreshed
    /// well within the stale time. Call before committing or deleting anything that relies
    /// on it.
    pub fn check(&self) -> Result<()> {
        self.verify(&|name| self.io.exists(name), true)
    }

    /// Ok if no other process removed our lock since we took it: our current lock object
    /// exists and no refresh found the previous one gone. Unlike `check`, the time since the
    /// last refresh does not matter: this asks whether anyone *did* judge us stale.
    pub fn still_held(&self) -> Result<()> {
        self.verify(&|name| self.io.exists(name), false)
    }

    #[cfg(test)]
    fn check_with(&self, exists: &dyn Fn(&str) -> Result<bool>) -> Result<()> {
        self.verify(exists, true)
    }

    /// `check` (with `fresh`: refreshed within half the stale time) or `still_held`.
    fn verify(&self, exists: &dyn Fn(&str) -> Result<bool>, fresh: bool) -> Result<()> {
        let stale = self.env.lock_timing().stale;
        for _ in 0..3 {
            let (name, refreshed, lost) = {
                let st = self.state.lock();
                (st.name.clone(), st.refreshed, st.lost.clone())
            };
            if let Some(why) = lost {
                return Err(Error::LockLost(why));
            }
            let since = self.env.elapsed().saturating_sub(refreshed);
            if fresh && since > stale / 2 {
                return Err(Error::LockLost(format!(
                    "not refreshed for {}s",
                    since.as_secs()
                )));
            }
            if exists(&name)? {
                return Ok(());
            }
            // A refresh may have replaced the object between our copy of its name and the
            // test: then the state names the new one, and we look again.
            if self.state.lock().name == name {
                return Err(Error::LockLost(format!(
                    "locks/{name} was removed by another process"
                )));
            }
        }
        Err(Error::LockLost("the lock changed under every check".into()))
    }
}

fn refresh(io: &Io, state: &Mutex<State>, info: &LockInfo, now: Duration) {
    let old = state.lock().name.clone();
    let new = match io.write(info) {
        Ok(n) => n,
        Err(e) => return tracing::warn!("lock refresh failed: {e}"),
    };
    // Only now check that the old lock is still there. A locker that removed it as stale
    // either removed it before this check (we see it gone: lost), or lists the locks again
    // after removing it and finds the new one (it backs off) — never neither.
    match io.exists(&old) {
        Ok(true) => {
            {
                let mut st = state.lock();
                st.name = new;
                st.refreshed = now;
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

/// Fails with `Locked` if a live lock conflicts with ours, and with `ClockSkew` if our
/// clock is too far from the store's. A stale conflicting lock is removed (so its holder,
/// if alive after all, fails `Lock::check`) and the locks are listed again: a holder
/// refreshing meanwhile has written a new lock by then. Returns the store's clock at our
/// lock's write.
fn check_others(repo: &Repository, io: &Io, ours: &str, info: &LockInfo) -> Result<i64> {
    let env = repo.env();
    let timing = env.lock_timing();
    let alive = |pid: u32| env.process_alive(pid);
    loop {
        let locks = list_locks(repo)?;
        // The store's clock: our own object's write time, from this very listing.
        let store_now = match locks.iter().find(|l| l.name == ours) {
            Some(LockEntry {
                modified: Some(t), ..
            }) => *t,
            Some(_) => env.now().0,
            None => {
                return Err(Error::LockLost(format!(
                    "locks/{ours} is not in the listing right after it was written"
                )))
            }
        };
        let skew = info.time - store_now;
        // One second of slack: the two clocks are read at slightly different moments.
        if skew.unsigned_abs() > timing.max_skew.as_secs() + 1 {
            return Err(Error::ClockSkew(skew, timing.max_skew.as_secs()));
        }
        let mut removed = false;
        for l in locks {
            if l.name == ours {
                continue;
            }
            let other = match l.info {
                Ok(o) => o,
                Err(e) => {
                    return Err(Error::Locked(format!(
                        "lock locks/{} cannot be read ({e}); if no other cofre runs, `cofre unlock --remove-all`",
                        l.name
                    )))
                }
            };
            if !(info.exclusive || other.exclusive) {
                continue;
            }
            let age = store_now - l.modified.unwrap_or(other.time);
            match judge(env.identity(), &other, age, &timing, &alive) {
                Verdict::Ours => continue,
                Verdict::Live => return Err(Error::Locked(other.describe(age))),
                Verdict::Stale(why) => {
                    tracing::warn!(
                        "removing stale lock locks/{} ({why}): {}",
                        l.name,
                        other.describe(age)
                    );
                    io.delete(&l.name)?;
                    removed = true;
                }
            }
        }
        if !removed {
            return Ok(store_now);
        }
    }
}

impl Lock {
    /// Other locks in the store that are not stale, described. Prune calls this between
    /// deleting index objects and deleting packs: a lock there means someone removed ours
    /// or ignored it, and the packs stay.
    pub fn others_live(&self, repo: &Repository) -> Result<Vec<String>> {
        let mine = self.state.lock().name.clone();
        let timing = self.env.lock_timing();
        let alive = |pid: u32| self.env.process_alive(pid);
        let now = self.store_now();
        let mut out = Vec::new();
        for l in list_locks(repo)? {
            if l.name == mine {
                continue;
            }
            let Ok(info) = l.info else {
                out.push(format!("locks/{} (unreadable)", l.name));
                continue;
            };
            let age = now - l.modified.unwrap_or(info.time);
            if judge(self.env.identity(), &info, age, &timing, &alive) == Verdict::Live {
                out.push(info.describe(age));
            }
        }
        Ok(out)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.env.lock_released();
        let name = self.state.lock().name.clone();
        if let Err(e) = self.io.delete(&name) {
            tracing::warn!(
                "lock locks/{name} not removed: {e}; it goes stale, or `cofre unlock` removes it"
            );
        }
    }
}

/// `cofre unlock`: removes stale locks (all locks with `all`). Returns what was removed.
/// Ages are by the store's clock, read from the newest lock object when there is one that
/// this process wrote just now: a probe lock, written and removed here.
pub fn unlock(repo: &Repository, all: bool) -> Result<Vec<String>> {
    let env = repo.env().clone();
    let io = Io {
        store: repo.store().clone(),
        rt: repo.runtime().clone(),
        keys: repo.keys().clone(),
    };
    let probe = LockInfo::new(env.identity(), false, "unlock (probe)", env.now().0);
    let probe_name = io.write(&probe)?;
    let listed = list_locks(repo);
    io.delete(&probe_name)?;
    let locks = listed?;
    let store_now = locks
        .iter()
        .find(|l| l.name == probe_name)
        .and_then(|l| l.modified)
        .unwrap_or(env.now().0);
    let timing = env.lock_timing();
    let alive = |pid: u32| env.process_alive(pid);
    let mut removed = Vec::new();
    for l in locks {
        if l.name == probe_name {
            continue;
        }
        let age = l
            .info
            .as_ref()
            .map(|i| store_now - l.modified.unwrap_or(i.time))
            .unwrap_or(0);
        let stale = l.info.as_ref().is_ok_and(|i| {
            matches!(
                judge(env.identity(), i, age, &timing, &alive),
                Verdict::Stale(_)
            )
        });
        if all || stale {
            repo.delete(FileType::Lock, &l.name)?;
            removed.push(match l.info {
                Ok(i) => format!("locks/{}: {}", l.name, i.describe(age)),
                Err(e) => format!("locks/{}: unreadable ({e})", l.name),
            });
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
