//! A few catalog connections shared by threads (SQLite connections are not Sync).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::Catalog;
use crate::error::{Error, Result};

/// `Pool::reader`'s page cache per connection, in KiB.
const READER_PAGE_CACHE_KIB: u32 = 512;

pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Catalog>>,
    /// Bumped by `reset`: connections of an older epoch are closed, not reused.
    epoch: AtomicU64,
    /// SQLite's page cache per connection, in KiB (`None`: SQLite's default, 2 MiB).
    page_cache_kib: Option<u32>,
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
            page_cache_kib: None,
            expected: Mutex::new(None),
        }
    }

    /// A pool for threads that only look things up (a mount's and `serve`'s): SQLite's page
    /// cache at a quarter of its default per connection. The mount held eight or so such
    /// connections, each caching pages of the same file that the kernel caches anyway: 13 MiB
    /// at the peak of a copy, a seventh of its memory beyond its chunk cache. A catalog sync
    /// (inserts) opens its own connection, with the default.
    pub fn reader(path: PathBuf) -> Pool {
        Pool {
            page_cache_kib: Some(READER_PAGE_CACHE_KIB),
            ..Pool::new(path)
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
                if let Some(kib) = self.page_cache_kib {
                    c.set_page_cache_kib(kib)?;
                }
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
