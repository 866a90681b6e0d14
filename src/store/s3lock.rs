//! S3 Object Lock and bucket versions (docs/object-lock.md): the S3 side of the store
//! trait's retention and version calls.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockRetention, ObjectLockRetentionMode};
use aws_smithy_types::DateTime;

use super::s3::{backend, is_404, S3Store};
use super::{Retention, StoreError, Version};

impl S3Store {
    pub(super) async fn lock_enabled(&self) -> Result<bool, StoreError> {
        let _p = self.permit().await;
        match self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => {
                let conf = out.object_lock_configuration();
                // A default retention would lock every new object, locks and index
                // objects included: stale locks could not be removed, nor index objects
                // replaced. cofre sets each object's own retention instead.
                if conf
                    .and_then(|c| c.rule())
                    .and_then(|r| r.default_retention())
                    .is_some()
                {
                    return Err(StoreError::Backend {
                        op: "object lock configuration",
                        key: self.bucket.clone(),
                        msg: format!("the bucket has a default retention, which would lock cofre's lock files and index objects too: remove it (`aws s3api put-object-lock-configuration --bucket {} --object-lock-configuration ObjectLockEnabled=Enabled`); cofre locks each object itself", self.bucket),
                    });
                }
                Ok(conf.and_then(|c| c.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled))
            }
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => Ok(false),
            Err(e) => Err(backend("object lock configuration", &self.bucket, e)),
        }
    }

    pub(super) async fn until(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let _p = self.permit().await;
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .set_version_id(version.map(str::to_string))
            .send()
            .await
            .map_err(|e| match is_404(&e) {
                true => StoreError::NotFound(key.to_string()),
                false => backend("head", key, e),
            })?;
        Ok(head.object_lock_retain_until_date().map(|d| d.secs()))
    }

    pub(super) async fn set_retention(
        &self,
        key: &str,
        version: Option<&str>,
        keep: Retention,
    ) -> Result<(), StoreError> {
        let _p = self.permit().await;
        let retention = ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::from(keep.mode.as_s3()))
            .retain_until_date(DateTime::from_secs(keep.until))
            .build();
        self.client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(self.key(key))
            .set_version_id(version.map(str::to_string))
            .retention(retention)
            .send()
            .await
            .map_err(|e| match is_404(&e) {
                true => StoreError::NotFound(key.to_string()),
                false => backend("retain", key, e),
            })?;
        Ok(())
    }

    pub(super) async fn list_versions(&self, prefix: &str) -> Result<Vec<Version>, StoreError> {
        let _p = self.permit().await;
        let mut out: Vec<Version> = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let resp = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(self.key(prefix))
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| backend("list versions", prefix, e))?;
            let versions = resp.versions().iter().map(|v| {
                let class = v.storage_class().map(|c| c.as_str().to_string());
                let meta = (v.size(), class, v.e_tag().map(str::to_string));
                (
                    v.key(),
                    v.version_id(),
                    false,
                    v.is_latest(),
                    v.last_modified(),
                    meta,
                )
            });
            let markers = resp.delete_markers().iter().map(|m| {
                let meta = (None, None, None);
                (
                    m.key(),
                    m.version_id(),
                    true,
                    m.is_latest(),
                    m.last_modified(),
                    meta,
                )
            });
            for (key, id, marker, latest, modified, meta) in versions.chain(markers) {
                let (size, class, etag) = meta;
                let Some(k) = key.and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                out.push(Version {
                    key: k.to_string(),
                    id: id.unwrap_or("null").to_string(),
                    delete_marker: marker,
                    latest: latest == Some(true),
                    size: size.unwrap_or(0).max(0) as u64,
                    modified: modified.map(|t| t.secs()),
                    class: class.filter(|c| c != "STANDARD"),
                    etag,
                });
            }
            match (resp.is_truncated(), resp.next_key_marker()) {
                (Some(true), Some(k)) => {
                    key_marker = Some(k.to_string());
                    version_marker = resp.next_version_id_marker().map(str::to_string);
                }
                // A cut listing taken for a whole one would hide versions.
                (Some(true), None) => {
                    return Err(StoreError::Backend {
                        op: "list versions",
                        key: prefix.to_string(),
                        msg: "truncated listing without a next marker".into(),
                    })
                }
                _ => break,
            }
        }
        // Grouped by key (a stable sort: S3's order within a key is kept).
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub(super) async fn remove_version(&self, key: &str, version: &str) -> Result<(), StoreError> {
        let _p = self.permit().await;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .version_id(version)
            .send()
            .await
            .map_err(|e| backend("delete version", key, e))?;
        Ok(())
    }

    pub(super) async fn copy_version(
        &self,
        key: &str,
        version: &str,
        class: Option<&str>,
        keep: Option<Retention>,
    ) -> Result<(), StoreError> {
        let _p = self.permit().await;
        // Keys are hex names under a plain prefix: nothing in them needs URL-encoding
        // but what a prefix might hold, which `urlencoding` would not know to leave alone.
        let source = format!("{}/{}?versionId={version}", self.bucket, self.key(key));
        let mut req = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .copy_source(source)
            // Else the copy of a STANDARD_IA or GLACIER_IR pack would land in STANDARD.
            .set_storage_class(class.map(aws_sdk_s3::types::StorageClass::from));
        if let Some(k) = keep {
            req = req
                .object_lock_mode(k.mode.as_s3().into())
                .object_lock_retain_until_date(DateTime::from_secs(k.until));
        }
        req.send()
            .await
            .map_err(|e| backend("restore version", key, e))?;
        Ok(())
    }
}
