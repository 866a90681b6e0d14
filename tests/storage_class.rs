//! Data packs go to the requested storage class; trees, index and manifests never do,
//! so listing and browsing never touch an archive tier.

mod common;

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use cofre::catalog::Catalog;
use cofre::ingest::{ingest, IngestOptions};
use cofre::repo::Repository;
use cofre::store::memory::MemoryStore;
use cofre::store::{ObjectInfo, Store, StoreError};
use parking_lot::Mutex;

/// Records the class of every put.
struct Recorder {
    inner: MemoryStore,
    puts: Mutex<Vec<(String, Option<String>)>>,
}

#[async_trait]
impl Store for Recorder {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.puts.lock().push((key.to_string(), None));
        self.inner.put(key, data).await
    }
    async fn put_class(&self, key: &str, data: Vec<u8>, class: &str) -> Result<(), StoreError> {
        self.puts
            .lock()
            .push((key.to_string(), Some(class.to_string())));
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.puts.lock().push((key.to_string(), None));
        self.inner.put_if_absent(key, data).await
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.inner.get(key, range).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn head(&self, key: &str) -> Result<u64, StoreError> {
        self.inner.head(key).await
    }
    fn location(&self) -> String {
        "recorder".into()
    }
}

#[test]
fn data_packs_get_the_class_and_metadata_does_not() {
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let env = common::Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("sub/f"), common::noise(3_000_000, 4)).expect("write");
    let rec = Arc::new(Recorder {
        inner: MemoryStore::new(),
        puts: Mutex::new(Vec::new()),
    });
    let repo = Repository::init(rec.clone(), rt.handle().clone(), b"pw").expect("init");
    let mut cat = Catalog::open(&env.path("cat.db")).expect("cat");
    let opts = IngestOptions {
        set: "weekly".into(),
        data_class: Some("GLACIER_IR".into()),
        atime: false,
        delta: true,
        ..common::ingest_opts(&src)
    };
    ingest(&repo, &mut cat, opts).expect("ingest");
    let puts = rec.puts.lock().clone();
    let classed: Vec<_> = puts.iter().filter(|(_, c)| c.is_some()).collect();
    assert!(!classed.is_empty(), "{puts:?}");
    for (key, class) in &puts {
        if class.is_some() {
            assert!(key.starts_with("data/"), "{key} must not be archived");
        }
        if key.starts_with("index/") || key.starts_with("snapshots/") {
            assert!(class.is_none());
        }
    }
    // Exactly one pack (the tree pack) is unclassed: trees must read instantly.
    let unclassed_packs = puts
        .iter()
        .filter(|(k, c)| k.starts_with("data/") && c.is_none())
        .count();
    assert_eq!(unclassed_packs, 1, "{puts:?}");
}
