//! Simulated hosts and processes over one shared in-memory store. Each host has its own
//! wall-clock offset, hostname, boot id and PID namespace (two of them share a hostname,
//! like cloned VMs); each operation runs as its own process (its own runtime, store
//! handle, identity and nonce) on a thread of its own, and may be paused or crashed at
//! a numbered store call. The true time is the store's clock; it moves only when the
//! driver advances it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cofre::repo::env::{Env, Identity, LockTiming};
use cofre::repo::Repository;
use cofre::store::memory::MemoryStore;
use parking_lot::Mutex;

use super::store::{Ctl, Event, Fault, SimStore};

/// One repository initialised per test process and copied into every seed's store:
/// `init` derives its key with Argon2 (64 MiB), which was two thirds of a seed's time.
fn template() -> &'static Repository {
    static T: std::sync::OnceLock<(tokio::runtime::Runtime, Repository)> =
        std::sync::OnceLock::new();
    &T.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let repo = Repository::init(Arc::new(MemoryStore::new()), rt.handle().clone(), b"sim")
            .expect("init");
        (rt, repo)
    })
    .1
}

/// The template's objects (config and key file), to put into each seed's fresh store.
fn template_objects() -> &'static [(String, Vec<u8>)] {
    static O: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    O.get_or_init(|| {
        let t = template();
        let names = t.list("").expect("list template");
        names
            .iter()
            .map(|o| {
                (
                    o.key.clone(),
                    t.get_raw(&o.key, None).expect("get template"),
                )
            })
            .collect()
    })
}

pub struct Host {
    pub name: String,
    pub boot: String,
    pub skew: i64,
    pub src: PathBuf,
    pub catalog: PathBuf,
}

pub struct World {
    pub clock: Arc<AtomicI64>,
    pub store: Arc<MemoryStore>,
    pub base: Repository,
    pub rt: tokio::runtime::Runtime,
    /// (boot id, pid) of every process alive.
    pub alive: Arc<Mutex<HashSet<(String, u32)>>>,
    pub hosts: Vec<Host>,
    next_pid: u32,
}

/// The refresh of the lock a process holds, if any (see `Env::lock_taken`).
pub type Refresher = Arc<Mutex<Option<Arc<dyn Fn() + Send + Sync>>>>;

struct SimEnv {
    refresher: Refresher,
    id: Identity,
    clock: Arc<AtomicI64>,
    skew: i64,
    alive: Arc<Mutex<HashSet<(String, u32)>>>,
}

impl Env for SimEnv {
    fn now(&self) -> (i64, u32) {
        (self.clock.load(Ordering::SeqCst) + self.skew, 0)
    }
    fn elapsed(&self) -> Duration {
        Duration::from_secs(self.clock.load(Ordering::SeqCst).max(0) as u64)
    }
    fn identity(&self) -> &Identity {
        &self.id
    }
    fn process_alive(&self, pid: u32) -> bool {
        self.alive.lock().contains(&(self.id.boot_id.clone(), pid))
    }
    fn lock_timing(&self) -> LockTiming {
        LockTiming::default()
    }
    fn workers(&self) -> Option<usize> {
        Some(1)
    }
    fn lock_taken(&self, refresh: Arc<dyn Fn() + Send + Sync>) {
        *self.refresher.lock() = Some(refresh);
    }
    fn lock_released(&self) {
        *self.refresher.lock() = None;
    }
}

/// A process: its operation on a thread, and the channel it reports on.
pub struct Proc {
    pub what: String,
    pub host: usize,
    pub ctl: Arc<Ctl>,
    pub events: std::sync::mpsc::Receiver<Event>,
    pub thread: Option<std::thread::JoinHandle<()>>,
    pub refresher: Refresher,
    key: (String, u32),
}

pub type Op = Box<dyn FnOnce(&Repository, &Host) -> Result<String, String> + Send>;

impl World {
    pub fn new(dir: &std::path::Path, skews: [i64; 3]) -> World {
        let clock = Arc::new(AtomicI64::new(1_800_000_000));
        let c = clock.clone();
        let store = Arc::new(MemoryStore::with_clock(Arc::new(move || {
            c.load(Ordering::SeqCst)
        })));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let base = template().reopen(
            store.clone(),
            cofre::repo::env::system(),
            rt.handle().clone(),
        );
        for (key, bytes) in template_objects() {
            base.put_raw(key, bytes.clone()).expect("put");
        }
        // Two hosts share a hostname (a cloned VM); the third runs its clock apart.
        let names = [("web", "boot-a"), ("web", "boot-b"), ("db", "boot-c")];
        let hosts = names
            .iter()
            .zip(skews)
            .enumerate()
            .map(|(i, ((name, boot), skew))| {
                let src = dir.join(format!("h{i}/src"));
                std::fs::create_dir_all(&src).expect("mkdir");
                Host {
                    name: name.to_string(),
                    boot: boot.to_string(),
                    skew,
                    src,
                    catalog: dir.join(format!("h{i}/catalog.db")),
                }
            })
            .collect();
        World {
            clock,
            store,
            base,
            rt,
            alive: Arc::new(Mutex::new(HashSet::new())),
            hosts,
            next_pid: 100,
        }
    }

    pub fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    /// Starts `op` as a new process on `host`; returns at once.
    pub fn spawn(&mut self, host: usize, what: String, fault: Fault, nonce: u64, op: Op) -> Proc {
        self.next_pid += 1;
        let pid = self.next_pid;
        let h = &self.hosts[host];
        let (tx, rx) = std::sync::mpsc::channel();
        let ctl = Ctl::new(fault, tx);
        let refresher: Refresher = Arc::new(Mutex::new(None));
        let env = SimEnv {
            refresher: refresher.clone(),
            id: Identity {
                hostname: h.name.clone(),
                username: "root".into(),
                boot_id: h.boot.clone(),
                pid_ns: "pid:[1]".into(),
                pid,
                nonce,
            },
            clock: self.clock.clone(),
            skew: h.skew,
            alive: self.alive.clone(),
        };
        let key = (h.boot.clone(), pid);
        self.alive.lock().insert(key.clone());
        let store = Arc::new(SimStore {
            inner: self.store.clone(),
            ctl: ctl.clone(),
        });
        let base = self
            .base
            .reopen(store, Arc::new(env), self.rt.handle().clone());
        let host_copy = Host {
            name: h.name.clone(),
            boot: h.boot.clone(),
            skew: h.skew,
            src: h.src.clone(),
            catalog: h.catalog.clone(),
        };
        let ctl2 = ctl.clone();
        let thread = std::thread::spawn(move || {
            // Its own runtime (one worker, as the process's concurrent store calls run
            // one at a time): a paused process blocks nobody else's store calls.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let repo = base.reopen(
                base.store().clone(),
                base.env().clone(),
                rt.handle().clone(),
            );
            drop(base);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let r = op(&repo, &host_copy);
                drop(repo);
                r
            }))
            .unwrap_or_else(|_| Err("PANIC".to_string()));
            ctl2.send(Event::Done(r));
        });
        Proc {
            what,
            host,
            ctl,
            events: rx,
            thread: Some(thread),
            refresher,
            key,
        }
    }

    /// Waits until the process pauses (true) or ends (false, with its result).
    pub fn wait(&self, p: &mut Proc) -> (bool, Option<Result<String, String>>) {
        let ev = p
            .events
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("{} neither paused nor ended within 120 s", p.what));
        match ev {
            Event::Paused => (true, None),
            Event::Done(r) => {
                if let Some(t) = p.thread.take() {
                    t.join().expect("process thread");
                }
                self.alive.lock().remove(&p.key);
                (false, Some(r))
            }
        }
    }
}
