//! Google Cloud Storage (`gs://bucket/prefix`), through its JSON API with the
//! `gcloud-storage` client, behind the same `Store` trait and conformance suite as S3, Azure
//! and local directories (docs/stores.md).
//!
//! Credentials: the usual Google sources (`GOOGLE_APPLICATION_CREDENTIALS`, a service
//! account key file; `GOOGLE_APPLICATION_CREDENTIALS_JSON`; the metadata server on GCE/GKE).
//! `STORAGE_EMULATOR_HOST` (the variable Google's own client libraries honour) points the
//! client at an emulator, without credentials: the tests' fake-gcs-server.
//!
//! `put_if_absent` is GCS's own precondition, `ifGenerationMatch=0`. Storage classes are
//! written as GCS classes (`gcs_class`). Transient failures (408, 429, 5xx, connection
//! errors and timeouts) are tried again with backoff (`retrying`: a retry middleware cannot
//! replay the multipart uploads that carry a class); each attempt times out after 120 s.

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use gcloud_storage::client::{Client, ClientConfig};
use gcloud_storage::http::objects::delete::DeleteObjectRequest;
use gcloud_storage::http::objects::download::Range as GcsRange;
use gcloud_storage::http::objects::get::GetObjectRequest;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use gcloud_storage::http::objects::upload::{Media, UploadObjectRequest, UploadType};
use gcloud_storage::http::objects::Object;
use gcloud_storage::http::Error as GcsError;

use super::{ObjectInfo, Store, StoreError};

pub const SCHEME: &str = "gs://";

pub struct GcsStore {
    client: Client,
    bucket: String,
    /// Keys live under this (no leading or trailing `/`; empty for the bucket's root).
    prefix: String,
    url: String,
}

/// cofre's storage classes (S3's names, which the index records) as GCS classes; GCS's own
/// names pass through. Every GCS class is readable at once (ARCHIVE too, with a 365-day
/// minimum), so the ranking the index keeps for S3's archive classes only errs on the safe
/// side here.
pub fn gcs_class(class: &str) -> Option<&'static str> {
    match class {
        "STANDARD" | "INTELLIGENT_TIERING" => Some("STANDARD"),
        "STANDARD_IA" | "ONEZONE_IA" | "NEARLINE" => Some("NEARLINE"),
        "GLACIER_IR" | "COLDLINE" => Some("COLDLINE"),
        "GLACIER" | "DEEP_ARCHIVE" | "ARCHIVE" => Some("ARCHIVE"),
        _ => None,
    }
}

fn status(e: &GcsError) -> Option<u16> {
    match e {
        GcsError::Response(r) => Some(r.code),
        GcsError::HttpClient(e) => e.status().map(|s| s.as_u16()),
        _ => None,
    }
}

/// Tries after these waits (then gives up): about 40 s in all.
const BACKOFF_MS: [u64; 6] = [200, 500, 1_000, 3_000, 10_000, 25_000];

/// Worth another try: the service busy or failing, or the connection lost or slow.
fn transient(e: &GcsError) -> bool {
    match (status(e), e) {
        (Some(code), _) => matches!(code, 408 | 429 | 500..=599),
        (None, GcsError::HttpClient(e)) => e.is_timeout() || e.is_connect() || e.is_request(),
        _ => false,
    }
}

/// `f` until it succeeds, fails for good, or the backoff runs out. A retried create whose
/// first try landed unseen answers 412: `upload` tells that from another writer's object.
async fn retrying<T, F, Fut>(what: &str, mut f: F) -> Result<T, GcsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, GcsError>>,
{
    for wait in BACKOFF_MS {
        match f().await {
            Err(e) if transient(&e) => {
                tracing::debug!("GCS {what}: {e}; trying again in {wait} ms");
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            r => return r,
        }
    }
    f().await
}

fn err(op: &'static str, key: &str, e: GcsError) -> StoreError {
    match status(&e) {
        // A missing bucket answers 404 too: NotFound only where it can mean the object.
        Some(404) if matches!(op, "get" | "head" | "delete") => {
            StoreError::NotFound(key.to_string())
        }
        Some(412) if op == "put" => StoreError::Exists(key.to_string()),
        _ => StoreError::Backend {
            op,
            key: key.to_string(),
            msg: e.to_string(),
        },
    }
}

impl GcsStore {
    pub async fn new(url: &str) -> Result<GcsStore, StoreError> {
        let bad = |msg: String| StoreError::Backend {
            op: "open",
            key: url.to_string(),
            msg,
        };
        let (bucket, prefix) = super::split_bucket_url(url, SCHEME)
            .ok_or_else(|| bad(format!("expected {SCHEME}BUCKET/PREFIX")))?;
        let http = reqwest13::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let http = reqwest_middleware::ClientBuilder::new(http).build();
        let config = ClientConfig {
            http: Some(http),
            ..Default::default()
        };
        let config = match std::env::var("STORAGE_EMULATOR_HOST") {
            Ok(host) if !host.is_empty() => ClientConfig {
                storage_endpoint: host.trim_end_matches('/').to_string(),
                ..config.anonymous()
            },
            _ => config.with_auth().await.map_err(|e| {
                bad(format!(
                    "no Google credentials ({e}): set GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
                ))
            })?,
        };
        Ok(GcsStore {
            client: Client::new(config),
            bucket,
            prefix,
            url: url.to_string(),
        })
    }

    fn name(&self, key: &str) -> String {
        match self.prefix.is_empty() {
            true => key.to_string(),
            false => format!("{}/{key}", self.prefix),
        }
    }

    /// A key of ours from a name the service listed under our prefix; None for one that is
    /// not (never taken for one of ours).
    fn key_of(&self, name: &str) -> Option<String> {
        match self.prefix.is_empty() {
            true => Some(name.to_string()),
            false => name
                .strip_prefix(&self.prefix)
                .and_then(|k| k.strip_prefix('/'))
                .map(str::to_string),
        }
    }

    async fn upload(
        &self,
        key: &str,
        data: Vec<u8>,
        class: Option<&str>,
        if_absent: bool,
    ) -> Result<(), StoreError> {
        let req = UploadObjectRequest {
            bucket: self.bucket.clone(),
            if_generation_match: if_absent.then_some(0),
            ..Default::default()
        };
        // A multipart upload (metadata and data in one request) carries the class, and is
        // also used for the precondition: GCS honours `ifGenerationMatch` on every upload,
        // but fake-gcs-server, which the tests run, only on this kind.
        let kind = match (class, if_absent) {
            (None, false) => UploadType::Simple(Media::new(self.name(key))),
            _ => UploadType::Multipart(Box::new(Object {
                name: self.name(key),
                storage_class: class.map(str::to_string),
                content_type: Some("application/octet-stream".into()),
                ..Default::default()
            })),
        };
        let data = bytes::Bytes::from(data);
        let mut tries = 0;
        let r = retrying(key, || {
            tries += 1;
            self.client.upload_object(&req, data.clone(), &kind)
        })
        .await;
        match r {
            // The precondition failed on a retry: perhaps only because the try before it
            // landed and its answer was lost. Ours if the stored bytes are ours.
            Err(e) if if_absent && tries > 1 && status(&e) == Some(412) => {
                match self.get(key, None).await {
                    Ok(stored) if stored == data => Ok(()),
                    _ => Err(StoreError::Exists(key.to_string())),
                }
            }
            r => r.map(|_| ()).map_err(|e| err("put", key, e)),
        }
    }

    fn object(&self, key: &str) -> GetObjectRequest {
        GetObjectRequest {
            bucket: self.bucket.clone(),
            object: self.name(key),
            ..Default::default()
        }
    }
}

#[async_trait]
impl Store for GcsStore {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.upload(key, data, None, false).await
    }

    async fn put_class(&self, key: &str, data: Vec<u8>, class: &str) -> Result<(), StoreError> {
        let c = gcs_class(class).ok_or_else(|| StoreError::Backend {
            op: "put",
            key: key.to_string(),
            msg: format!(
                "storage class {class} has no GCS class: use STANDARD, STANDARD_IA (NEARLINE), \
                 GLACIER_IR (COLDLINE), GLACIER or DEEP_ARCHIVE (ARCHIVE), or GCS's own names"
            ),
        })?;
        self.upload(key, data, Some(c), false).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        let req = self.object(key);
        let bytes = match &range {
            // An empty range is answered from the object's size (HTTP cannot ask for it).
            Some(r) if r.start >= r.end => {
                let size = self.head(key).await?;
                if r.start > size {
                    return Err(super::range_error("get", key, r, size));
                }
                return Ok(Vec::new());
            }
            Some(r) => GcsRange(Some(r.start), Some(r.end - 1)),
            None => GcsRange(None, None),
        };
        let got = retrying(key, || self.client.download_object(&req, &bytes))
            .await
            .map_err(|e| match status(&e) {
                // A range that starts past the end.
                Some(416) => StoreError::Backend {
                    op: "get",
                    key: key.to_string(),
                    msg: format!("range {range:?} outside the object"),
                },
                _ => err("get", key, e),
            })?;
        // A range past the end is an error, never a short answer taken for the whole.
        if let Some(r) = range {
            if got.len() as u64 != r.end - r.start {
                return Err(StoreError::Backend {
                    op: "get",
                    key: key.to_string(),
                    msg: format!("asked for bytes {r:?}, got {}", got.len()),
                });
            }
        }
        Ok(got)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        let mut page_token = None;
        loop {
            let req = ListObjectsRequest {
                bucket: self.bucket.clone(),
                prefix: Some(self.name(prefix)),
                // GCS's own default, said aloud: the emulator pages only when asked, and
                // the tests' 1,100-key listing must cross a page.
                max_results: Some(1000),
                page_token,
                ..Default::default()
            };
            let page = retrying(prefix, || self.client.list_objects(&req))
                .await
                .map_err(|e| err("list", prefix, e))?;
            for o in page.items.unwrap_or_default() {
                // Asked for what is under our prefix: anything else means the listing is not
                // what we think, and a wrong listing is never used.
                let key = self
                    .key_of(&o.name)
                    .filter(|k| k.starts_with(prefix))
                    .ok_or_else(|| StoreError::Backend {
                        op: "list",
                        key: prefix.to_string(),
                        msg: format!("listed {} outside {}", o.name, self.name(prefix)),
                    })?;
                out.push(ObjectInfo {
                    key,
                    size: u64::try_from(o.size).map_err(|_| StoreError::Backend {
                        op: "list",
                        key: o.name.clone(),
                        msg: format!("size {}", o.size),
                    })?,
                    modified: o.updated.map(|t| t.unix_timestamp()),
                    class: o.storage_class.filter(|c| c != "STANDARD"),
                });
            }
            match page.next_page_token {
                Some(t) if !t.is_empty() => page_token = Some(t),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let req = DeleteObjectRequest {
            bucket: self.bucket.clone(),
            object: self.name(key),
            ..Default::default()
        };
        match retrying(key, || self.client.delete_object(&req)).await {
            Err(e) if status(&e) != Some(404) => Err(err("delete", key, e)),
            _ => Ok(()),
        }
    }

    async fn head(&self, key: &str) -> Result<u64, StoreError> {
        let req = self.object(key);
        let o = retrying(key, || self.client.get_object(&req))
            .await
            .map_err(|e| err("head", key, e))?;
        u64::try_from(o.size).map_err(|_| StoreError::Backend {
            op: "head",
            key: key.to_string(),
            msg: format!("size {}", o.size),
        })
    }

    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.upload(key, data, None, true).await
    }

    fn location(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_gcs_classes() {
        let table = [
            ("STANDARD", Some("STANDARD")),
            ("STANDARD_IA", Some("NEARLINE")),
            ("NEARLINE", Some("NEARLINE")),
            ("GLACIER_IR", Some("COLDLINE")),
            ("COLDLINE", Some("COLDLINE")),
            ("GLACIER", Some("ARCHIVE")),
            ("DEEP_ARCHIVE", Some("ARCHIVE")),
            ("ARCHIVE", Some("ARCHIVE")),
            ("Cool", None),
        ];
        for (class, want) in table {
            assert_eq!(gcs_class(class), want, "{class}");
        }
    }
}
