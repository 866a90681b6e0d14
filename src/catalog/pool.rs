//! A few catalog connections shared by threads (SQLite connections are not Sync).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::Catalog;
use crate::error::{Error, Result};

pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Catalog>>,
    /// Bumped by `reset`: connections of an older epoch are closed, not reused.
    epoch: AtomicU64,
    /// The catalog generation the user of the pool works with: a new connection that finds
    /// another one (the file was replaced) fails with `CatalogReplaced` instead of mixing.
    expected: Mutex<Option<String>>,
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
            expected: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn get(&self) -> Result<Conn<'_>> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let idle = self.idle.lock().pop();
        let cat = match idle {
            Some(c) => c,
            None => {
                let c = Catalog::open(&self.path)?;
                let expected = self.expected.lock().clone();
                if expected.is_some_and(|g| g != c.generation().unwrap_or_default()) {
                    return Err(Error::CatalogReplaced);
                }
                c
            }
        };
        Ok(Conn {
            pool: self,
            cat: Some(cat),
            epoch,
        })
    }

    /// From now on new connections must find generation `g`.
    pub fn expect_generation(&self, g: String) {
        *self.expected.lock() = Some(g);
    }

    /// The catalog file was replaced: drop every connection to the old one (an open
    /// connection keeps reading a deleted file), so every later `get` reads the new one.
    pub fn reset(&self) {
        let mut idle = self.idle.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        idle.clear();
    }
}
