//! Lock rules and protocol against a store with a controllable clock.

use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::repo::env::Env;
use crate::store::memory::MemoryStore;

/// A process on a simulated machine: its wall clock is the store's plus `skew`.
struct TestEnv {
    id: Identity,
    clock: Arc<AtomicI64>,
    skew: i64,
    dead: Vec<u32>,
}

impl Env for TestEnv {
    fn now(&self) -> (i64, u32) {
        (self.clock.load(Ordering::SeqCst) + self.skew, 0)
    }
    fn elapsed(&self) -> Duration {
        Duration::from_secs(self.clock.load(Ordering::SeqCst) as u64)
    }
    fn identity(&self) -> &Identity {
        &self.id
    }
    fn process_alive(&self, pid: u32) -> bool {
        !self.dead.contains(&pid)
    }
    fn lock_timing(&self) -> LockTiming {
        LockTiming::default()
    }
}

fn ident(host: &str, boot: &str, ns: &str, pid: u32, nonce: u64) -> Identity {
    Identity {
        hostname: host.into(),
        username: "root".into(),
        boot_id: boot.into(),
        pid_ns: ns.into(),
        pid,
        nonce,
    }
}

struct World {
    _rt: tokio::runtime::Runtime,
    base: Repository,
    store: DynStore,
    clock: Arc<AtomicI64>,
}

impl World {
    fn new() -> World {
        let rt = tokio::runtime::Runtime::new().expect("rt");
        let clock = Arc::new(AtomicI64::new(1_000_000));
        let c = clock.clone();
        let store: DynStore = Arc::new(MemoryStore::with_clock(Arc::new(move || {
            c.load(Ordering::SeqCst)
        })));
        let base = Repository::init(store.clone(), rt.handle().clone(), b"pw").expect("init");
        World {
            _rt: rt,
            base,
            store,
            clock,
        }
    }

    fn process(&self, id: Identity, skew: i64, dead: Vec<u32>) -> Repository {
        let env = TestEnv {
            id,
            clock: self.clock.clone(),
            skew,
            dead,
        };
        self.base
            .reopen(self.store.clone(), Arc::new(env), self._rt.handle().clone())
    }

    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }
}

fn count(r: &Repository) -> usize {
    list_locks(r).expect("list").len()
}

#[test]
fn shared_locks_coexist_and_exclusive_ones_exclude() {
    let w = World::new();
    let r = w.process(ident("h", "b", "ns", 1, 1), 0, vec![]);
    let r2 = w.process(ident("h", "b", "ns", 2, 2), 0, vec![]);
    let z = Duration::ZERO;
    let cases = [
        (false, false, true),
        (false, true, false),
        (true, false, false),
        (true, true, false),
    ];
    for (first, second, both) in cases {
        let a = Lock::acquire(&r, first, "a", z).expect("first");
        let b = Lock::acquire(&r2, second, "b", z);
        assert_eq!(b.is_ok(), both, "{first} then {second}");
        if let Err(e) = b {
            assert!(matches!(e, Error::Locked(_)), "{e}");
            assert_eq!(count(&r), 1, "the loser left no lock behind");
        }
        drop(a);
    }
    assert_eq!(count(&r), 0, "locks are released on drop");
}

/// The staleness rule: (holder, its age by the store's clock, whether its pid is alive
/// here) → verdict. Hostnames never decide; pids decide only within one boot and PID
/// namespace; our own nonce is ours.
#[test]
fn staleness_rule_table() {
    let me = ident("web1", "boot-A", "pid:[1]", 100, 7);
    let t = LockTiming::default();
    let stale = t.stale.as_secs() as i64;
    let cases: [(&str, Identity, i64, bool, &str); 9] = [
        (
            "same process",
            ident("web1", "boot-A", "pid:[1]", 100, 7),
            0,
            true,
            "ours",
        ),
        (
            "fresh, alive",
            ident("web1", "boot-A", "pid:[1]", 200, 8),
            10,
            true,
            "live",
        ),
        (
            "fresh, dead, same boot and ns",
            ident("web1", "boot-A", "pid:[1]", 200, 8),
            10,
            false,
            "stale",
        ),
        (
            "fresh, dead, same name, other boot (cloned VM)",
            ident("web1", "boot-B", "pid:[1]", 200, 8),
            10,
            false,
            "live",
        ),
        (
            "fresh, dead, same boot, other ns (container)",
            ident("web1", "boot-A", "pid:[2]", 200, 8),
            10,
            false,
            "live",
        ),
        (
            "fresh, dead, old lock without boot id",
            ident("web1", "", "", 200, 0),
            10,
            false,
            "live",
        ),
        (
            "just within the stale time",
            ident("db1", "boot-C", "pid:[1]", 200, 8),
            stale,
            true,
            "live",
        ),
        (
            "past the stale time",
            ident("db1", "boot-C", "pid:[1]", 200, 8),
            stale + 1,
            true,
            "stale",
        ),
        (
            "same pid, other nonce, dead",
            ident("web1", "boot-A", "pid:[1]", 100, 9),
            10,
            false,
            "stale",
        ),
    ];
    for (what, holder, age, alive, want) in cases {
        let info = LockInfo::new(&holder, true, "prune", 0);
        let got = match judge(&me, &info, age, &t, &|_| alive) {
            Verdict::Ours => "ours",
            Verdict::Live => "live",
            Verdict::Stale(_) => "stale",
        };
        assert_eq!(got, want, "{what}");
    }
}

/// Acquire against one other lock: (we exclusive?, other exclusive?, other stale?) →
/// (we get it?, the other lock is gone?). A shared locker never passes a live exclusive
/// lock; it passes a stale one only after removing it.
#[test]
fn acquire_table() {
    let cases = [
        (false, false, false, true, false),
        (false, true, false, false, false),
        (false, true, true, true, true),
        (true, false, false, false, false),
        (true, false, true, true, true),
        (true, true, true, true, true),
        (false, false, true, true, false),
    ];
    for (we_excl, other_excl, other_stale, got, other_gone) in cases {
        let w = World::new();
        let holder = w.process(ident("h", "boot-A", "ns", 1, 1), 0, vec![]);
        let h = Lock::acquire(&holder, other_excl, "other", Duration::ZERO).expect("holder");
        if other_stale {
            // Paused, not refreshed, for 31 minutes (the store's clock moves on).
            w.advance(31 * 60);
        }
        // Same hostname, another machine (boot id): cannot judge the pid.
        let me = w.process(ident("h", "boot-B", "ns", 1, 2), 0, vec![1]);
        let r = Lock::acquire(&me, we_excl, "me", Duration::ZERO);
        let case = (we_excl, other_excl, other_stale);
        assert_eq!(r.is_ok(), got, "{case:?}: {:?}", r.as_ref().err());
        let name = h.state.lock().name.clone();
        let gone = !h.io.exists(&name).expect("head");
        assert_eq!(gone, other_gone, "{case:?}");
        if other_gone {
            assert!(matches!(h.check(), Err(Error::LockLost(_))), "{case:?}");
        }
    }
}

#[test]
fn a_clock_far_from_the_stores_is_refused() {
    let w = World::new();
    for (skew, ok) in [
        (0, true),
        (9 * 60, true),
        (40 * 60, false),
        (-40 * 60, false),
    ] {
        let r = w.process(ident("h", "b", "ns", 1, 1), skew, vec![]);
        let got = Lock::acquire(&r, true, "prune", Duration::ZERO);
        assert_eq!(got.is_ok(), ok, "skew {skew}");
        if !ok {
            assert!(matches!(got, Err(Error::ClockSkew(..))));
        }
        drop(got);
        assert_eq!(count(&r), 0, "skew {skew}: no lock left behind");
    }
}

#[test]
fn a_refresh_after_removal_marks_the_lock_lost_and_leaves_nothing() {
    let w = World::new();
    let r = w.process(ident("h", "b", "ns", 1, 1), 0, vec![]);
    let holder = Lock::acquire(&r, false, "ingest", Duration::ZERO).expect("shared");
    let name = holder.state.lock().name.clone();
    r.delete(FileType::Lock, &name).expect("remove as stale");
    refresh(&holder.io, &holder.state, &holder.info, r.env().elapsed());
    assert!(matches!(holder.check(), Err(Error::LockLost(_))));
    assert_eq!(count(&r), 0, "the lost lock was resurrected");
    // A normal refresh replaces the object and keeps the lock.
    let other = Lock::acquire(&r, false, "ingest", Duration::ZERO).expect("shared");
    let before = other.state.lock().name.clone();
    let mut info = other.info.clone();
    info.time += 1;
    refresh(&other.io, &other.state, &info, r.env().elapsed());
    assert_ne!(other.state.lock().name, before);
    assert!(other.check().is_ok());
    assert_eq!(count(&r), 1);
}

#[test]
fn check_is_not_fooled_by_a_refresh_between_its_copy_and_its_test() {
    let w = World::new();
    let r = w.process(ident("h", "b", "ns", 1, 1), 0, vec![]);
    let holder = Lock::acquire(&r, false, "ingest", Duration::ZERO).expect("shared");
    let old = holder.state.lock().name.clone();
    // The refresher runs exactly between check's copy of the name and its HEAD.
    let raced = |name: &str| -> Result<bool> {
        if name == old {
            let mut info = holder.info.clone();
            info.time += 1;
            refresh(&holder.io, &holder.state, &info, r.env().elapsed());
        }
        holder.io.exists(name)
    };
    holder
        .check_with(&raced)
        .expect("a refreshed lock is not lost");
    assert_ne!(holder.state.lock().name, old);
    // Whereas a lock really removed is lost.
    let name = holder.state.lock().name.clone();
    r.delete(FileType::Lock, &name).expect("remove");
    assert!(matches!(holder.check(), Err(Error::LockLost(_))));
}

#[test]
fn the_store_clock_moves_with_elapsed_time() {
    let w = World::new();
    let r = w.process(ident("h", "b", "ns", 1, 1), 0, vec![]);
    let l = Lock::acquire(&r, true, "prune", Duration::ZERO).expect("lock");
    let t0 = l.store_now();
    w.advance(100);
    assert_eq!(l.store_now(), t0 + 100);
}
