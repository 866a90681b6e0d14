//! A few catalog connections shared by threads (SQLite connections are not Sync).

use std::path::PathBuf;

use parking_lot::Mutex;

use super::Catalog;
use crate::error::Result;

pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Catalog>>,
}

pub struct Conn<'a> {
    pool: &'a Pool,
    cat: Option<Catalog>,
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
            self.pool.idle.lock().push(c);
        }
    }
}

impl Pool {
    pub fn new(path: PathBuf) -> Pool {
        Pool {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn get(&self) -> Result<Conn<'_>> {
        let cat = match self.idle.lock().pop() {
            Some(c) => c,
            None => Catalog::open(&self.path)?,
        };
        Ok(Conn {
            pool: self,
            cat: Some(cat),
        })
    }
}
