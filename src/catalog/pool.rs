//! A few catalog connections shared by threads (SQLite connections are not Sync).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::Catalog;
use crate::error::Result;

pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Catalog>>,
    /// Bumped by `reset`: connections of an older epoch are closed, not reused.
    epoch: AtomicU64,
}

pub struct Conn<'a> {
    pool: &'a Pool,
    cat: Option<Catalog>,
    epoch: u64,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Catalog;
    fn deref(&self) -> &Catalog {
        self.cat.as_ref().expect("connection present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.cat.take() {
            let mut idle = self.pool.idle.lock();
            if self.epoch == self.pool.epoch.load(Ordering::SeqCst) {
                idle.push(c);
            }
        }
    }
}

impl Pool {
    pub fn new(path: PathBuf) -> Pool {
        Pool {
            path,
            idle: Mutex::new(Vec::new()),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn get(&self) -> Result<Conn<'_>> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let cat = match self.idle.lock().pop() {
            Some(c) => c,
            None => Catalog::open(&self.path)?,
        };
        Ok(Conn {
            pool: self,
            cat: Some(cat),
            epoch,
        })
    }

    /// The catalog file was replaced: drop every connection to the old one (an open
    /// connection keeps reading a deleted file), so every later `get` reads the new one.
    pub fn reset(&self) {
        let mut idle = self.idle.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        idle.clear();
    }
}
