//! Azure Blob Storage (`az://container/prefix`), through Apache Arrow's `object_store` (the
//! client DataFusion and delta-rs use: retries, credentials from the usual places), behind
//! the same `Store` trait and conformance suite as S3 and local directories
//! (docs/stores.md).
//!
//! Credentials: `AZURE_STORAGE_ACCOUNT` (or `AZURE_STORAGE_ACCOUNT_NAME`) with
//! `AZURE_STORAGE_KEY` (or `AZURE_STORAGE_ACCOUNT_KEY`), or a SAS token
//! (`AZURE_STORAGE_SAS_KEY`), or the other `AZURE_*` settings `object_store` reads (managed
//! identity, a service principal); `AZURE_STORAGE_USE_EMULATOR=true` and
//! `AZURITE_BLOB_STORAGE_URL` for Azurite.
//!
//! `put_if_absent` is Azure's own precondition (`If-None-Match: *`), which `object_store`
//! sends for `PutMode::Create`.
//!
//! Storage classes are written as access tiers (`access_tier`).
//!
//! Google Cloud Storage (`gs://`) is not on this client: see `gcs.rs` for why.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, PutMode, PutOptions, PutPayload,
};

use super::{ObjectInfo, Store, StoreError};

pub const SCHEME: &str = "az://";

pub struct AzureStore {
    inner: Arc<dyn ObjectStore>,
    /// Keys live under this (no leading or trailing `/`; empty for the bucket's root).
    prefix: String,
    url: String,
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl AzureStore {
    pub fn new(url: &str) -> Result<AzureStore, StoreError> {
        let bad = |msg: String| StoreError::Backend {
            op: "open",
            key: url.to_string(),
            msg,
        };
        let (container, prefix) = super::split_bucket_url(url, SCHEME)
            .ok_or_else(|| bad(format!("expected {SCHEME}CONTAINER/PREFIX")))?;
        // `from_env` reads the `AZURE_*` settings; the two names Azure's own tools use for
        // the account and its key are taken too.
        let mut b =
            object_store::azure::MicrosoftAzureBuilder::from_env().with_container_name(&container);
        if let Some(a) = env(&["AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCOUNT_NAME"]) {
            b = b.with_account(a);
        }
        if let Some(k) = env(&["AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY"]) {
            b = b.with_access_key(k);
        }
        let inner: Arc<dyn ObjectStore> = Arc::new(b.build().map_err(|e| bad(e.to_string()))?);
        Ok(AzureStore {
            inner,
            prefix,
            url: url.to_string(),
        })
    }

    fn path(&self, key: &str) -> ObjPath {
        match self.prefix.is_empty() {
            true => ObjPath::from(key),
            false => ObjPath::from(format!("{}/{key}", self.prefix)),
        }
    }

    /// A key of ours from a path the service listed under our prefix; None for one that is
    /// not (never taken for one of ours).
    fn key_of(&self, p: &ObjPath) -> Option<String> {
        let s = p.as_ref();
        match self.prefix.is_empty() {
            true => Some(s.to_string()),
            false => s
                .strip_prefix(&self.prefix)
                .and_then(|k| k.strip_prefix('/'))
                .map(str::to_string),
        }
    }
}

fn err(op: &'static str, key: &str, e: object_store::Error) -> StoreError {
    // Azure answers a read of a blob in the Archive tier (or on its way out of it) with 409
    // `BlobArchived` (`BlobBeingRehydrated`), which the client takes for "already exists":
    // told apart by the service's error code in the body, never by the rest of the message
    // (which names the key).
    if let object_store::Error::AlreadyExists { source, .. } = &e {
        let body = source.to_string();
        if [
            "<Code>BlobArchived</Code>",
            "<Code>BlobBeingRehydrated</Code>",
        ]
        .iter()
        .any(|c| body.contains(c))
        {
            return StoreError::Archived(key.to_string());
        }
    }
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound(key.to_string()),
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
            if op == "put" =>
        {
            StoreError::Exists(key.to_string())
        }
        e => StoreError::Backend {
            op,
            key: key.to_string(),
            msg: e.to_string(),
        },
    }
}

/// cofre's storage classes (S3's names: the index records them, and `tier` ranks them) as
/// Azure access tiers: the infrequent-access classes Cool, instant-retrieval archive Cold
/// (online, 90 days minimum), the archive classes Archive (offline: a blob must be
/// rehydrated before it is read, as S3's GLACIER must be restored). docs/stores.md.
pub fn access_tier(class: &str) -> Option<&'static str> {
    match class {
        "STANDARD" | "INTELLIGENT_TIERING" => Some("Hot"),
        "STANDARD_IA" | "ONEZONE_IA" => Some("Cool"),
        "GLACIER_IR" => Some("Cold"),
        "GLACIER" | "DEEP_ARCHIVE" => Some("Archive"),
        _ => None,
    }
}

impl AzureStore {
    async fn put_with(&self, key: &str, data: Vec<u8>, opts: PutOptions) -> Result<(), StoreError> {
        self.inner
            .put_opts(&self.path(key), PutPayload::from(data), opts)
            .await
            .map(|_| ())
            .map_err(|e| err("put", key, e))
    }
}

#[async_trait]
impl Store for AzureStore {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.put_with(key, data, PutOptions::default()).await
    }

    async fn put_class(&self, key: &str, data: Vec<u8>, class: &str) -> Result<(), StoreError> {
        let tier = access_tier(class).ok_or_else(|| StoreError::Backend {
            op: "put",
            key: key.to_string(),
            msg: format!(
                "storage class {class} has no Azure access tier: use STANDARD (Hot), \
                 STANDARD_IA (Cool), GLACIER_IR (Cold), GLACIER or DEEP_ARCHIVE (Archive)"
            ),
        })?;
        let opts = PutOptions {
            attributes: Attributes::from_iter([(Attribute::StorageClass, tier)]),
            ..Default::default()
        };
        self.put_with(key, data, opts).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        let opts = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..Default::default()
        };
        let got = self
            .inner
            .get_opts(&self.path(key), opts)
            .await
            .map_err(|e| err("get", key, e))?;
        let bytes = got.bytes().await.map_err(|e| err("get", key, e))?;
        // A range past the end is an error, never a short answer taken for the whole.
        if let Some(r) = range {
            if bytes.len() as u64 != r.end - r.start {
                return Err(StoreError::Backend {
                    op: "get",
                    key: key.to_string(),
                    msg: format!("asked for bytes {r:?}, got {}", bytes.len()),
                });
            }
        }
        Ok(bytes.to_vec())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        // The service lists by path segment: list the directory part, keep what starts
        // with the whole prefix.
        let dir = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let base = match (self.prefix.is_empty(), dir.is_empty()) {
            (true, true) => None,
            (true, false) => Some(ObjPath::from(dir)),
            (false, true) => Some(ObjPath::from(self.prefix.as_str())),
            (false, false) => Some(ObjPath::from(format!("{}/{dir}", self.prefix))),
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .inner
            .list(base.as_ref())
            .try_collect()
            .await
            .map_err(|e| err("list", prefix, e))?;
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            // The service was asked for what is under our prefix: anything else means the
            // listing is not what we think, and a wrong listing is never used.
            let key = self
                .key_of(&m.location)
                .ok_or_else(|| StoreError::Backend {
                    op: "list",
                    key: prefix.to_string(),
                    msg: format!("listed {} outside {}", m.location, self.prefix),
                })?;
            if key.starts_with(prefix) {
                out.push(ObjectInfo {
                    key,
                    size: m.size,
                    modified: Some(m.last_modified.timestamp()),
                    class: None,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(err("delete", key, e)),
        }
    }

    async fn head(&self, key: &str) -> Result<u64, StoreError> {
        self.inner
            .head(&self.path(key))
            .await
            .map(|m| m.size)
            .map_err(|e| err("head", key, e))
    }

    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.put_with(key, data, opts).await
    }

    fn location(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_access_tiers_no_warmer_than_their_rank() {
        use crate::repo::index::tier;
        let table = [
            ("STANDARD", Some("Hot")),
            ("INTELLIGENT_TIERING", Some("Hot")),
            ("STANDARD_IA", Some("Cool")),
            ("ONEZONE_IA", Some("Cool")),
            ("GLACIER_IR", Some("Cold")),
            ("GLACIER", Some("Archive")),
            ("DEEP_ARCHIVE", Some("Archive")),
            ("Cool", None),
            ("", None),
        ];
        for (class, want) in table {
            assert_eq!(access_tier(class), want, "{class}");
            // A class dedup takes for readable at once must never land offline.
            if tier(Some(class)) == 0 {
                assert_ne!(access_tier(class), Some("Archive"), "{class}");
            }
        }
    }

    #[test]
    fn urls_split_into_container_and_prefix() {
        let table = [
            ("az://c/p/q", Some(("c", "p/q"))),
            ("az://c", Some(("c", ""))),
            ("az://c/host1/", Some(("c", "host1"))),
            ("az://", None),
            ("s3://b/p", None),
            ("az://c/a%20b", None),
            ("az://c/a//b", None),
            ("az://c/../x", None),
        ];
        for (url, want) in table {
            let got = crate::store::split_bucket_url(url, SCHEME);
            let want = want.map(|(b, p)| (b.to_string(), p.to_string()));
            assert_eq!(got, want, "{url}");
        }
    }
}
