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
            Ok(out) => Ok(out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                == Some(&ObjectLockEnabled::Enabled)),
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => Ok(false),
            Err(e) => Err(backend("object lock configuration", &self.bucket, e)),
        }
    }

    pub(super) async fn until(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let _p = self.permit().await;
        let head = self.head_object(key).await?;
        Ok(head.object_lock_retain_until_date().map(|d| d.secs()))
    }

    pub(super) async fn set_retention(&self, key: &str, keep: Retention) -> Result<(), StoreError> {
        let _p = self.permit().await;
        let retention = ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::from(keep.mode.as_s3()))
            .retain_until_date(DateTime::from_secs(keep.until))
            .build();
        self.client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(self.key(key))
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
        // (key, modified in ns, latest, age rank within the page) → oldest first per key.
        let mut out: Vec<((String, i128, bool, i64), Version)> = Vec::new();
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
            // S3 lists each key's versions newest first: a later one in the page is older.
            let versions = resp.versions().iter().map(|v| {
                (
                    v.key(),
                    v.version_id(),
                    false,
                    v.is_latest(),
                    v.last_modified(),
                    v.size(),
                )
            });
            let markers = resp.delete_markers().iter().map(|m| {
                (
                    m.key(),
                    m.version_id(),
                    true,
                    m.is_latest(),
                    m.last_modified(),
                    None,
                )
            });
            for (rank, (key, id, marker, latest, modified, size)) in
                versions.chain(markers).enumerate()
            {
                let Some(k) = key.and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                let ns = modified.map_or(0, |t| t.as_nanos());
                let order = (k.to_string(), ns, latest == Some(true), -(rank as i64));
                out.push((
                    order,
                    Version {
                        key: k.to_string(),
                        id: id.unwrap_or("null").to_string(),
                        delete_marker: marker,
                        latest: latest == Some(true),
                        size: size.unwrap_or(0).max(0) as u64,
                        modified: modified.map(|t| t.secs()),
                    },
                ));
            }
            match (resp.next_key_marker(), resp.is_truncated()) {
                (Some(k), Some(true)) => {
                    key_marker = Some(k.to_string());
                    version_marker = resp.next_version_id_marker().map(str::to_string);
                }
                _ => break,
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, v)| v).collect())
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
            .copy_source(source);
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
