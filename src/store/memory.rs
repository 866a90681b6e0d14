//! In-memory store for unit tests.

use std::collections::BTreeMap;
use std::ops::Range;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{range_error, ObjectInfo, Store, StoreError};

#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        match self.objects.lock().entry(key.to_string()) {
            std::collections::btree_map::Entry::Occupied(_) => {
                Err(StoreError::Exists(key.to_string()))
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(data);
                Ok(())
            }
        }
    }

    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.objects.lock().insert(key.to_string(), data);
        Ok(())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        let objects = self.objects.lock();
        let data = objects
            .get(key)
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
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
            .map(|(k, v)| ObjectInfo {
                key: k.clone(),
                size: v.len() as u64,
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
            .map(|v| v.len() as u64)
            .ok_or_else(|| StoreError::NotFound(key.to_string()))
    }

    fn location(&self) -> String {
        "memory".to_string()
    }
}
