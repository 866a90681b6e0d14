//! S3-compatible object storage (AWS, B2, Wasabi, GCS interop, Garage, Ceph).
//! Credentials, region and endpoint come from the AWS SDK's usual chain (and
//! `AWS_ENDPOINT_URL`). Retries with backoff and jitter are the SDK's standard mode
//! (throttling, 5xx, timeouts, connection errors); auth and missing-bucket errors fail at
//! once. Every request has a bounded time, and a semaphore limits concurrency.

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, StorageClass, Tier};
use aws_sdk_s3::Client;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use tokio::sync::Semaphore;

use super::{range_error, ObjectInfo, Retention, Store, StoreError, ThawState, ThawTier, Version};

/// A response's buffer is allocated at its announced length up to this (a pack is at most
/// ~8 MiB; a larger announcement grows the buffer as bytes actually arrive).
const MAX_PREALLOC: u64 = 64 * 1024 * 1024;

pub struct S3Options {
    /// Path-style addressing (`endpoint/bucket/key`): needed by most self-hosted servers.
    /// Default: on when a custom endpoint is set.
    pub path_style: Option<bool>,
    pub max_concurrency: usize,
    pub attempts: u32,
    pub attempt_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            path_style: std::env::var("COFRE_S3_PATH_STYLE")
                .ok()
                .map(|v| v == "1" || v == "true"),
            max_concurrency: 16,
            attempts: std::env::var("COFRE_S3_ATTEMPTS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(5),
            attempt_timeout: Duration::from_secs(
                std::env::var("COFRE_S3_TIMEOUT_SECS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(60),
            ),
        }
    }
}

pub struct S3Store {
    pub(super) client: Client,
    pub(super) bucket: String,
    pub(super) prefix: String,
    limit: Semaphore,
}

/// `s3://bucket/prefix` → (bucket, prefix with a trailing `/` or empty).
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    Some((bucket.to_string(), prefix))
}

/// One readable line for an S3 failure: the HTTP status, the service's code and message;
/// the SDK's full context (often ~2,000 characters of debug output) only in the debug log.
pub(super) fn backend<E, R>(op: &'static str, key: &str, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    tracing::debug!("{op} {key}: {}", DisplayErrorContext(&e));
    let msg = match &e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status_code();
            let code = se.err().code().unwrap_or("error");
            if code == "InvalidObjectState" {
                return StoreError::Archived(key.to_string());
            }
            match se.err().message() {
                Some(m) => format!("HTTP {status} {code}: {m}"),
                None => format!("HTTP {status} {code}"),
            }
        }
        SdkError::TimeoutError(_) => "timed out".to_string(),
        SdkError::DispatchFailure(d) if d.is_io() => {
            "cannot connect (is the endpoint right and the server up?)".to_string()
        }
        other => {
            let full = DisplayErrorContext(other).to_string();
            full.split(": ").take(2).collect::<Vec<_>>().join(": ")
        }
    };
    StoreError::Backend {
        op,
        key: key.to_string(),
        msg,
    }
}

/// The status code of a raw HTTP response, for messages.
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl<B> HttpStatus for aws_smithy_runtime_api::http::Response<B> {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

pub(super) fn is_404<E, R>(e: &SdkError<E, aws_smithy_runtime_api::http::Response<R>>) -> bool {
    e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
}

impl S3Store {
    pub async fn new(url: &str, opts: S3Options) -> Result<S3Store, StoreError> {
        let (bucket, prefix) = parse_url(url).ok_or_else(|| StoreError::Backend {
            op: "open",
            key: url.to_string(),
            msg: "expected s3://bucket/prefix".into(),
        })?;
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let custom_endpoint = sdk.endpoint_url().is_some();
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(opts.path_style.unwrap_or(custom_endpoint))
            // S3-compatible servers reject the SDK's default checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(opts.attempts)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(opts.attempt_timeout)
                    .build(),
            )
            .build();
        Ok(S3Store {
            client: Client::from_conf(conf),
            bucket,
            prefix,
            limit: Semaphore::new(opts.max_concurrency),
        })
    }

    pub(super) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub(super) async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        // The semaphore is never closed.
        self.limit.acquire().await.expect("semaphore open")
    }

    pub async fn put_with_class(
        &self,
        key: &str,
        data: Vec<u8>,
        class: Option<&str>,
        if_absent: bool,
        keep: Option<super::Retention>,
    ) -> Result<(), StoreError> {
        let _p = self.permit().await;
        if if_absent {
            // Servers without conditional writes ignore `If-None-Match`; then a HEAD just
            // before is the best that can be done (see `put_if_absent`).
            match self.head_inner(key).await {
                Ok(_) => return Err(StoreError::Exists(key.to_string())),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(ByteStream::from(data));
        if let Some(c) = class {
            req = req.storage_class(StorageClass::from(c));
        }
        if let Some(k) = keep {
            // S3 wants a checksum on every PUT that sets a retention.
            req = req
                .object_lock_mode(k.mode.as_s3().into())
                .object_lock_retain_until_date(aws_smithy_types::DateTime::from_secs(k.until))
                .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32);
        }
        if if_absent {
            req = req.if_none_match("*");
        }
        req.send().await.map_err(|e| {
            // 412: someone else's object is there (AWS and servers with conditional writes).
            if if_absent && e.raw_response().is_some_and(|r| r.status().as_u16() == 412) {
                StoreError::Exists(key.to_string())
            } else {
                backend("put", key, e)
            }
        })?;
        Ok(())
    }
}

#[async_trait]
impl Store for S3Store {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.put_with_class(key, data, None, false, None).await
    }

    async fn put_class(&self, key: &str, data: Vec<u8>, class: &str) -> Result<(), StoreError> {
        self.put_with_class(key, data, Some(class), false, None)
            .await
    }

    /// `If-None-Match: *`. Servers without conditional writes ignore the header; then a
    /// HEAD just before is the best that can be done, and `open` copes with the rest
    /// (it tries every key file against the config).
    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.put_with_class(key, data, None, true, None).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.get_at(key, range, None).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let _p = self.permit().await;
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let resp = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.key(prefix))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| backend("list", prefix, e))?;
            for o in resp.contents() {
                if let Some(k) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    out.push(ObjectInfo {
                        key: k.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        modified: o.last_modified().map(|t| t.secs()),
                        class: o
                            .storage_class()
                            .map(|c| c.as_str().to_string())
                            .filter(|c| c != "STANDARD"),
                    });
                }
            }
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let _p = self.permit().await;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| backend("delete", key, e))?;
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<u64, StoreError> {
        let _p = self.permit().await;
        self.head_inner(key).await
    }

    async fn thaw(&self, key: &str, days: u32, tier: ThawTier) -> Result<ThawState, StoreError> {
        let params = GlacierJobParameters::builder()
            .tier(Tier::from(tier.to_string().as_str()))
            .build()
            .map_err(|e| StoreError::Backend {
                op: "thaw",
                key: key.to_string(),
                msg: e.to_string(),
            })?;
        let request = RestoreRequest::builder()
            .days(days.min(i32::MAX as u32) as i32)
            .glacier_job_parameters(params)
            .build();
        let sent = {
            let _p = self.permit().await;
            self.client
                .restore_object()
                .bucket(&self.bucket)
                .key(self.key(key))
                .restore_request(request)
                .send()
                .await
        };
        match sent {
            // 202: accepted; 200: a restored copy is there already. HEAD says which.
            Ok(_) => self.thaw_state(key).await,
            Err(e) => match e.as_service_error().and_then(|se| se.code()) {
                Some("RestoreAlreadyInProgress") => Ok(ThawState::Thawing),
                // Not in an archive class (S3 refuses to restore those).
                Some("InvalidObjectState") => self.thaw_state(key).await,
                _ if is_404(&e) => Err(StoreError::NotFound(key.to_string())),
                _ => Err(backend("thaw", key, e)),
            },
        }
    }

    async fn thaw_state(&self, key: &str) -> Result<ThawState, StoreError> {
        let _p = self.permit().await;
        let head = self.head_object(key).await?;
        let class = head.storage_class().map(|c| c.as_str().to_string());
        let archived = crate::repo::index::tier(class.as_deref()) > 0;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Ok(super::thaw_state_of(archived, head.restore(), now))
    }

    async fn object_lock_enabled(&self) -> Result<bool, StoreError> {
        self.lock_enabled().await
    }

    async fn put_retained(
        &self,
        key: &str,
        data: Vec<u8>,
        class: Option<&str>,
        keep: Retention,
        if_absent: bool,
    ) -> Result<(), StoreError> {
        self.put_with_class(key, data, class, if_absent, Some(keep))
            .await
    }

    async fn retained_until(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        self.until(key, version).await
    }

    async fn retain(
        &self,
        key: &str,
        version: Option<&str>,
        keep: Retention,
    ) -> Result<(), StoreError> {
        self.set_retention(key, version, keep).await
    }

    async fn versions(&self, prefix: &str) -> Result<Vec<Version>, StoreError> {
        self.list_versions(prefix).await
    }

    async fn delete_version(&self, key: &str, version: &str) -> Result<(), StoreError> {
        self.remove_version(key, version).await
    }

    async fn get_version(&self, key: &str, version: &str) -> Result<Vec<u8>, StoreError> {
        self.get_at(key, None, Some(version)).await
    }

    async fn restore_version(
        &self,
        key: &str,
        version: &str,
        class: Option<&str>,
        keep: Option<Retention>,
    ) -> Result<(), StoreError> {
        self.copy_version(key, version, class, keep).await
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
    }
}

impl S3Store {
    /// GET of the current version, or of `version` (recovery after an overwrite).
    pub(super) async fn get_at(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        version: Option<&str>,
    ) -> Result<Vec<u8>, StoreError> {
        let _p = self.permit().await;
        if let Some(r) = &range {
            if r.start == r.end {
                // An empty range cannot be expressed in HTTP; check the object and return nothing.
                let size = self.head_inner(key).await?;
                return if r.end <= size {
                    Ok(Vec::new())
                } else {
                    Err(range_error("get", key, r, size))
                };
            }
        }
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .set_version_id(version.map(str::to_string));
        if let Some(r) = &range {
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = req.send().await.map_err(|e| {
            if is_404(&e) {
                StoreError::NotFound(key.to_string())
            } else if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) {
                StoreError::Backend {
                    op: "get",
                    key: key.to_string(),
                    msg: "range not satisfiable".into(),
                }
            } else {
                backend("get", key, e)
            }
        })?;
        // Appended part by part into one buffer of the announced size: `collect()` then
        // `into_bytes().to_vec()` copied every byte twice more (6% of a restore's CPU).
        let announced = range
            .as_ref()
            .map(|r| r.end - r.start)
            .or(out.content_length.and_then(|l| u64::try_from(l).ok()))
            .unwrap_or(0);
        let mut body = Vec::with_capacity(announced.min(MAX_PREALLOC) as usize);
        let mut stream = out.body;
        while let Some(part) = stream.next().await {
            let part = part.map_err(|e| StoreError::Backend {
                op: "get",
                key: key.to_string(),
                msg: format!("reading body: {e}"),
            })?;
            // A server that ignores the range must not fill memory before the check below.
            if range.is_some() && (body.len() + part.len()) as u64 > announced {
                return Err(StoreError::Backend {
                    op: "get",
                    key: key.to_string(),
                    msg: format!("more than the {announced} bytes asked for"),
                });
            }
            body.extend_from_slice(&part);
        }
        if let Some(r) = range {
            // A server that ignores or clips the range must not hand us short data.
            if body.len() as u64 != r.end - r.start {
                return Err(StoreError::Backend {
                    op: "get",
                    key: key.to_string(),
                    msg: format!("range {}..{} returned {} bytes", r.start, r.end, body.len()),
                });
            }
        }
        Ok(body)
    }

    async fn head_inner(&self, key: &str) -> Result<u64, StoreError> {
        let o = self.head_object(key).await?;
        Ok(o.content_length().unwrap_or(0).max(0) as u64)
    }

    /// HEAD: size, storage class and `x-amz-restore` (callers hold a permit).
    pub(super) async fn head_object(
        &self,
        key: &str,
    ) -> Result<aws_sdk_s3::operation::head_object::HeadObjectOutput, StoreError> {
        self.client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| match is_404(&e) {
                true => StoreError::NotFound(key.to_string()),
                false => backend("head", key, e),
            })
    }
}
