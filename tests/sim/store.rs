//! The simulated processes' view of the one shared store: every mutating call (put,
//! delete, list) is a numbered step of its process, where the driver can pause it (a
//! SIGSTOP, a suspended laptop) or crash it (before or after the call reaches the store).
//! Waiting is async, so a paused process blocks only its own runtime.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use cofre::store::memory::MemoryStore;
use cofre::store::{ObjectInfo, Store, StoreError};
use parking_lot::Mutex;

pub enum Event {
    Paused,
    Done(Result<String, String>),
}

/// A fault planned for one process: at its n-th mutating call.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    None,
    Pause(u64),
    /// Pause at the first delete of a key under this prefix (`index/`, `data/`: prune's
    /// deletions, after its last checks; `snapshots/`: forget's; `locks/`: a release).
    PauseAtDelete(&'static str),
    /// Crash before (false) or after (true) the call reaches the store.
    Crash(u64, bool),
}

pub struct Ctl {
    /// Set while the process is paused: every call of any of its threads waits.
    paused: AtomicBool,
    /// Set while the driver runs the paused process's lock refresh on its behalf.
    pub bypass: AtomicBool,
    calls: AtomicU64,
    deletes: AtomicU64,
    pub fault: Fault,
    pub crashed: AtomicBool,
    resume: tokio::sync::Notify,
    events: Mutex<std::sync::mpsc::Sender<Event>>,
}

impl Ctl {
    pub fn new(fault: Fault, events: std::sync::mpsc::Sender<Event>) -> Arc<Ctl> {
        Arc::new(Ctl {
            paused: AtomicBool::new(false),
            bypass: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            fault,
            crashed: AtomicBool::new(false),
            resume: tokio::sync::Notify::new(),
            events: Mutex::new(events),
        })
    }

    pub fn send(&self, e: Event) {
        let _ = self.events.lock().send(e);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.resume.notify_waiters();
        self.resume.notify_one();
    }

    async fn pause_here(&self) {
        self.paused.store(true, Ordering::SeqCst);
        self.send(Event::Paused);
        self.wait_while_paused().await;
    }

    async fn wait_while_paused(&self) {
        if self.bypass.load(Ordering::SeqCst) {
            return;
        }
        while self.paused.load(Ordering::SeqCst) {
            let woken = self.resume.notified();
            if !self.paused.load(Ordering::SeqCst) {
                break;
            }
            woken.await;
        }
    }
}

pub struct SimStore {
    pub inner: Arc<MemoryStore>,
    pub ctl: Arc<Ctl>,
}

fn crash(key: &str) -> StoreError {
    StoreError::Backend {
        op: "sim",
        key: key.to_string(),
        msg: "simulated crash".into(),
    }
}

impl SimStore {
    /// Before a call: Err if the process is dead. `Ok(true)`: crash right after the call.
    async fn before(&self, key: &str, mutating: bool) -> Result<bool, StoreError> {
        self.before_call(key, mutating, false).await
    }

    async fn before_call(
        &self,
        key: &str,
        mutating: bool,
        delete: bool,
    ) -> Result<bool, StoreError> {
        // Another thread of this process paused it: a paused process makes no calls.
        self.ctl.wait_while_paused().await;
        if self.ctl.crashed.load(Ordering::SeqCst) {
            return Err(crash(key));
        }
        if !mutating {
            return Ok(false);
        }
        let n = self.ctl.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let first_delete_here = |prefix: &str| {
            delete
                && key.starts_with(prefix)
                && self.ctl.deletes.fetch_add(1, Ordering::SeqCst) == 0
        };
        match self.ctl.fault {
            Fault::PauseAtDelete(prefix) if first_delete_here(prefix) => {
                self.ctl.pause_here().await;
                Ok(false)
            }
            Fault::Crash(at, after) if at == n => {
                if !after {
                    self.ctl.crashed.store(true, Ordering::SeqCst);
                    return Err(crash(key));
                }
                Ok(true)
            }
            Fault::Pause(at) if at == n => {
                self.ctl.pause_here().await;
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    fn after<T>(
        &self,
        key: &str,
        crash_now: bool,
        r: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if crash_now {
            self.ctl.crashed.store(true, Ordering::SeqCst);
            return Err(crash(key));
        }
        r
    }
}

#[async_trait]
impl Store for SimStore {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let c = self.before(key, true).await?;
        if std::env::var_os("COFRE_SIM_TRACE").is_some() {
            eprintln!("TRACE put {key}");
        }
        let r = self.inner.put(key, data).await;
        self.after(key, c, r)
    }
    async fn put_class(&self, key: &str, data: Vec<u8>, class: &str) -> Result<(), StoreError> {
        let c = self.before(key, true).await?;
        if std::env::var_os("COFRE_SIM_TRACE").is_some() {
            eprintln!("TRACE put {key} {class}");
        }
        let r = self.inner.put_class(key, data, class).await;
        self.after(key, c, r)
    }
    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let c = self.before(key, true).await?;
        let r = self.inner.put_if_absent(key, data).await;
        self.after(key, c, r)
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.before(key, false).await?;
        self.inner.get(key, range).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let c = self.before(prefix, true).await?;
        let r = self.inner.list(prefix).await;
        self.after(prefix, c, r)
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let c = self.before_call(key, true, true).await?;
        if std::env::var_os("COFRE_SIM_TRACE").is_some() {
            eprintln!("TRACE delete {key}");
        }
        let r = self.inner.delete(key).await;
        self.after(key, c, r)
    }
    async fn head(&self, key: &str) -> Result<u64, StoreError> {
        self.before(key, false).await?;
        self.inner.head(key).await
    }
    fn location(&self) -> String {
        "sim".into()
    }
}

/// The store as a thaw would show it: archived objects readable (the checker reads every
/// snapshot's bytes this way; whether they are readable at the snapshot's own class is a
/// separate check).
pub struct Thawed(pub Arc<MemoryStore>);

#[async_trait]
impl Store for Thawed {
    async fn put(&self, _: &str, _: Vec<u8>) -> Result<(), StoreError> {
        Err(crash("read-only"))
    }
    async fn put_if_absent(&self, _: &str, _: Vec<u8>) -> Result<(), StoreError> {
        Err(crash("read-only"))
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        let data = self
            .0
            .peek(key)
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        Ok(match range {
            Some(r) => data
                .get(r.start as usize..r.end as usize)
                .ok_or_else(|| crash(key))?
                .to_vec(),
            None => data,
        })
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.0.list(prefix).await
    }
    async fn delete(&self, _: &str) -> Result<(), StoreError> {
        Err(crash("read-only"))
    }
    async fn head(&self, key: &str) -> Result<u64, StoreError> {
        self.0.head(key).await
    }
    fn location(&self) -> String {
        "thawed".into()
    }
}
