//! A repository under S3 Object Lock (docs/object-lock.md): which of its objects are
//! locked, for how long each is locked when written, and deletes that remove every version
//! of an object (in a versioned bucket a plain DELETE only hides it behind a delete marker,
//! and the bytes stay billed).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::file::FileType;
use crate::store::{
    DynStore, LockMode, ObjectInfo, Retention, Store, StoreError, ThawState, ThawTier, Version,
};

/// `init --object-lock MODE --lock-days N`, kept in the repository's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    pub mode: LockMode,
    /// Every locked object is retained this long when written, and `objlock::extend` keeps
    /// what kept snapshots need retained at least this far ahead.
    pub days: u32,
}

impl ObjectLock {
    /// Retained from `now` (Unix seconds) for `days` and the slack.
    pub fn from(&self, now: i64) -> Retention {
        Retention {
            mode: self.mode,
            until: now + i64::from(self.days) * 86_400 + self.slack(),
        }
    }

    /// Seconds granted beyond what is needed, whenever a retention is set: a quarter of
    /// `days`, at least a day. A retention is raised only once it ends within `days`, so
    /// an object reused by a snapshot every 4 hours gets one raise per slack, not one per
    /// snapshot (each raise is a request: S3 bills it as a PUT).
    pub fn slack(&self) -> i64 {
        (i64::from(self.days) / 4).max(1) * 86_400
    }
}

/// Whether objects under `key` are locked. The config, key files, packs and snapshot
/// manifests are: losing any of them loses snapshots. Index objects are not: they are
/// rebuilt from the packs' own headers (`repair index`), and every prune replaces some, which
/// a lock would forbid. Locks, doomed lists and drill reports must be removable.
pub fn is_locked(key: &str) -> bool {
    [
        FileType::Config,
        FileType::Key,
        FileType::Pack,
        FileType::Snapshot,
    ]
    .iter()
    .any(|t| key.starts_with(t.prefix()))
}

/// This machine's clock, for the retention of what the wrapper writes (it has no
/// `Repository`; code that has one uses `repo.env().now()`, which a simulation replaces).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The store of a locked repository: locked objects are written with a retention of the
/// repository's `days` (by this machine's clock: `objlock::extend` raises what kept
/// snapshots need, by their own policy), and a delete removes every version of the key.
pub struct Retaining {
    inner: DynStore,
    lock: ObjectLock,
}

impl Retaining {
    pub fn wrap(inner: DynStore, lock: ObjectLock) -> DynStore {
        Arc::new(Retaining { inner, lock })
    }

    async fn put_kept(
        &self,
        key: &str,
        data: Vec<u8>,
        class: Option<&str>,
        if_absent: bool,
    ) -> Result<(), StoreError> {
        let keep = self.lock.from(now());
        self.inner
            .put_retained(key, data, class, keep, if_absent)
            .await
    }
}

#[async_trait]
impl Store for Retaining {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        match is_locked(key) {
            true => self.put_kept(key, data, None, false).await,
            false => self.inner.put(key, data).await,
        }
    }

    async fn put_class(&self, key: &str, data: Vec<u8>, class: &str) -> Result<(), StoreError> {
        match is_locked(key) {
            true => self.put_kept(key, data, Some(class), false).await,
            false => self.inner.put_class(key, data, class).await,
        }
    }

    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        match is_locked(key) {
            true => self.put_kept(key, data, None, true).await,
            false => self.inner.put_if_absent(key, data).await,
        }
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.inner.get(key, range).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list(prefix).await
    }

    /// Every version and delete marker of `key`, one by one: a locked version refuses
    /// (S3 AccessDenied) and the error says so; callers check retention first
    /// (`prune`, `forget`). A failed listing is an error, never "nothing to delete".
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let versions = self.inner.versions(key).await?;
        for v in versions.iter().filter(|v| v.key == key) {
            self.inner.delete_version(key, &v.id).await?;
        }
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<u64, StoreError> {
        self.inner.head(key).await
    }

    async fn thaw(&self, key: &str, days: u32, tier: ThawTier) -> Result<ThawState, StoreError> {
        self.inner.thaw(key, days, tier).await
    }

    async fn thaw_state(&self, key: &str) -> Result<ThawState, StoreError> {
        self.inner.thaw_state(key).await
    }

    async fn object_lock_enabled(&self) -> Result<bool, StoreError> {
        self.inner.object_lock_enabled().await
    }

    async fn put_retained(
        &self,
        key: &str,
        data: Vec<u8>,
        class: Option<&str>,
        keep: Retention,
        if_absent: bool,
    ) -> Result<(), StoreError> {
        self.inner
            .put_retained(key, data, class, keep, if_absent)
            .await
    }

    async fn retained_until(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        self.inner.retained_until(key, version).await
    }

    async fn retain(
        &self,
        key: &str,
        version: Option<&str>,
        keep: Retention,
    ) -> Result<(), StoreError> {
        self.inner.retain(key, version, keep).await
    }

    async fn versions(&self, prefix: &str) -> Result<Vec<Version>, StoreError> {
        self.inner.versions(prefix).await
    }

    async fn delete_version(&self, key: &str, version: &str) -> Result<(), StoreError> {
        self.inner.delete_version(key, version).await
    }

    async fn get_version(&self, key: &str, version: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.get_version(key, version).await
    }

    async fn restore_version(
        &self,
        key: &str,
        version: &str,
        class: Option<&str>,
        keep: Option<Retention>,
    ) -> Result<(), StoreError> {
        self.inner.restore_version(key, version, class, keep).await
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_locked() {
        let cases = [
            ("config", true),
            ("keys/ab", true),
            ("data/ab/abcd", true),
            ("snapshots/01", true),
            ("index/01", false),
            ("locks/01", false),
            ("doomed/01", false),
            ("drills/01", false),
        ];
        for (key, locked) in cases {
            assert_eq!(is_locked(key), locked, "{key}");
        }
    }
}
