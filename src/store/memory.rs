//! In-memory store for unit tests and the simulation (`tests/sim`). It keeps each object's
//! storage class and write time by its own clock, and refuses reads of archive classes as S3
//! does, so class and clock rules are exercised without a server.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{range_error, ObjectInfo, Store, StoreError};

/// The store's own clock, in Unix seconds.
pub type StoreClock = Arc<dyn Fn() -> i64 + Send + Sync>;

struct Object {
    data: Vec<u8>,
    class: Option<String>,
    modified: i64,
}

pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Object>>,
    clock: StoreClock,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        }))
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose write times come from `clock` (the simulation's true time).
    pub fn with_clock(clock: StoreClock) -> Self {
        MemoryStore {
            objects: Mutex::new(BTreeMap::new()),
            clock,
        }
    }

    /// The storage class an object was written in (None: the default).
    pub fn class_of(&self, key: &str) -> Option<String> {
        self.objects.lock().get(key).and_then(|o| o.class.clone())
    }

    /// An object's bytes whatever its class: what a thaw would give (the simulation's
    /// checker reads archived snapshots this way).
    pub fn peek(&self, key: &str) -> Option<Vec<u8>> {
        self.objects.lock().get(key).map(|o| o.data.clone())
    }

    fn insert(&self, key: &str, data: Vec<u8>, class: Option<&str>) {
        let o = Object {
            data,
            class: class.map(str::to_string),
            modified: (self.clock)(),
        };
        self.objects.lock().insert(key.to_string(), o);
    }
}

fn archived(class: &Option<String>) -> bool {
    matches!(class.as_deref(), Some("GLACIER" | "DEEP_ARCHIVE"))
}

#[async_trait]
impl Store for MemoryStore {
    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        if self.objects.lock().contains_key(key) {
            return Err(StoreError::Exists(key.to_string()));
        }
        self.insert(key, data, None);
        Ok(())
    }

    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.insert(key, data, None);
        Ok(())
    }

    async fn put_class(&self, key: &str, data: Vec<u8>, class: &str) -> Result<(), StoreError> {
        self.insert(key, data, Some(class));
        Ok(())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        let objects = self.objects.lock();
        let o = objects
            .get(key)
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        if archived(&o.class) {
            return Err(StoreError::Archived(key.to_string()));
        }
        let data = &o.data;
        match range {
            None => Ok(data.clone()),
            Some(r) if r.start <= r.end && r.end <= data.len() as u64 => {
                Ok(data[r.start as usize..r.end as usize].to_vec())
            }
            Some(r) => Err(range_error("get", key, &r, data.len() as u64)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        Ok(self
            .objects
            .lock()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| ObjectInfo {
                key: k.clone(),
                size: o.data.len() as u64,
                modified: Some(o.modified),
                class: o.class.clone().filter(|c| c != "STANDARD"),
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.lock().remove(key);
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<u64, StoreError> {
        self.objects
            .lock()
            .get(key)
            .map(|o| o.data.len() as u64)
            .ok_or_else(|| StoreError::NotFound(key.to_string()))
    }

    fn location(&self) -> String {
        "memory".to_string()
    }
}
