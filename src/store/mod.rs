//! The store layer: one small async trait over object storage. Wrappers (fault injection,
//! later retry/cache) stack on it; `conformance` is the one suite every store must pass.

pub mod conformance;
pub mod fault;
pub mod local;
pub mod memory;
pub mod s3;

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error("{op} {key}: {source}")]
    Io {
        op: &'static str,
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("object {0} already exists")]
    Exists(String),
    #[error("{0} is in an archive storage class: restore it from the archive tier first (e.g. `aws s3api restore-object`), then retry")]
    Archived(String),
    #[error("{op} {key}: {msg}")]
    Backend {
        op: &'static str,
        key: String,
        msg: String,
    },
}

impl StoreError {
    pub fn io(op: &'static str, key: &str, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            key: key.to_string(),
            source,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// When the object was written, in Unix seconds by the *store's* clock (S3
    /// `LastModified`, a file's mtime). Lock staleness and the minimum age of unindexed
    /// packs are judged by this clock, never by a client's (docs/prune.md "Clocks").
    pub modified: Option<i64>,
    /// The storage class the store reports for it (S3's listing does), when not the
    /// default: a pack re-indexed from the store gets its class from here (its header does
    /// not carry one).
    pub class: Option<String>,
}

/// Object storage. Keys are `/`-separated relative names. Objects are written once and
/// never modified; `put` of an existing key with the same content is allowed (idempotent).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores `data` durably under `key`: when this returns Ok the object survives a crash.
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError>;
    /// Reads the object, or `range` of it. A range past the end is an error.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError>;
    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Size of the object, or NotFound.
    async fn head(&self, key: &str) -> Result<u64, StoreError>;
    /// `put` in a storage class (S3); stores without classes ignore it.
    async fn put_class(&self, key: &str, data: Vec<u8>, class: &str) -> Result<(), StoreError> {
        let _ = class;
        self.put(key, data).await
    }
    /// Stores `data` under `key` only if no object is there (S3 `If-None-Match: *`); fails
    /// with `Exists` otherwise. Used where two writers must not both win (`init`).
    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError>;
    /// Human-readable location, for messages.
    fn location(&self) -> String;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a repository URL names: `s3://bucket/prefix`, or a local path (the
/// embedded default). `rt` runs the S3 client's setup; call from outside the runtime.
pub fn open(url: &str, rt: &tokio::runtime::Handle) -> crate::error::Result<DynStore> {
    open_with(url, rt, s3::S3Options::default())
}

pub fn open_with(
    url: &str,
    rt: &tokio::runtime::Handle,
    s3opts: s3::S3Options,
) -> crate::error::Result<DynStore> {
    let store: DynStore = if url.starts_with("s3://") {
        Arc::new(rt.block_on(s3::S3Store::new(url, s3opts))?)
    } else if url.contains("://") {
        return Err(crate::error::Error::UnsupportedUrl(url.to_string()));
    } else {
        Arc::new(local::LocalStore::new(url))
    };
    Ok(with_test_hooks(store))
}

/// Test hooks (tests/lifecycle*.rs), only in a build with the `test-hooks` feature (`cargo
/// test`; never a release build): a delay before every store call, one call at a time, so
/// races land mid-operation; a log of the calls; a SIGKILL at one exact call.
#[cfg(feature = "test-hooks")]
fn with_test_hooks(store: DynStore) -> DynStore {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let delay = var("COFRE_TEST_STORE_DELAY_MS").and_then(|v| v.parse::<u64>().ok());
    let kill_at_call = var("COFRE_TEST_KILL_AT_CALL").and_then(|v| v.parse::<u64>().ok());
    let call_log = var("COFRE_TEST_CALL_LOG").map(std::path::PathBuf::from);
    let stop_at_delete = var("COFRE_TEST_STOP_AT_DELETE");
    if delay.is_none() && kill_at_call.is_none() && call_log.is_none() && stop_at_delete.is_none() {
        return store;
    }
    Arc::new(fault::FaultStore::new(
        store,
        fault::Faults {
            delay: Some(std::time::Duration::from_millis(delay.unwrap_or(0))),
            serial: true,
            kill_at_call,
            call_log,
            stop_at_delete,
            ..Default::default()
        },
    ))
}

#[cfg(not(feature = "test-hooks"))]
fn with_test_hooks(store: DynStore) -> DynStore {
    store
}

pub(crate) fn range_error(op: &'static str, key: &str, range: &Range<u64>, len: u64) -> StoreError {
    StoreError::Backend {
        op,
        key: key.to_string(),
        msg: format!(
            "range {}..{} outside object of {} bytes",
            range.start, range.end, len
        ),
    }
}
