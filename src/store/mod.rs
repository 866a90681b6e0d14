//! The store layer: one small async trait over object storage. Wrappers (fault injection,
//! later retry/cache) stack on it; `conformance` is the one suite every store must pass.

pub mod azure;
pub mod conformance;
pub mod fault;
pub mod gcs;
pub mod local;
pub mod memory;
pub mod retention;
pub mod s3;
mod s3lock;

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
pub use retention::{LockMode, Retention, Version};

/// What an archived object's error says: readers that keep only an error's text (the
/// restore's pack windows) are told apart by it (`Error::is_archived`).
pub const ARCHIVED: &str = "is in an archive storage class";

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
    #[error("{0} {archived}: thaw it first (`cofre thaw SNAPSHOT[:PATH] --wait` on S3; on Azure set its access tier to Hot or Cool), then retry", archived = ARCHIVED)]
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

/// How an object of an archive class stands, for `cofre thaw` (docs/s3.md "Thawing").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ThawState {
    /// Not in an archive class: readable as it is.
    Readable,
    /// Archived, and no thaw asked for (or the last one expired).
    Frozen,
    /// A thaw is under way.
    Thawing,
    /// A thawed copy is readable, until `expiry` (Unix seconds) when the store says.
    Thawed { expiry: Option<i64> },
    /// No longer in the store (a prune deleted it since the thaw was asked for).
    Gone,
}

/// How fast (and dear) a thaw is: S3's retrieval tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ThawTier {
    Expedited,
    Standard,
    Bulk,
}

impl std::fmt::Display for ThawTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ThawTier::Expedited => "Expedited",
            ThawTier::Standard => "Standard",
            ThawTier::Bulk => "Bulk",
        })
    }
}

impl std::str::FromStr for ThawTier {
    type Err = String;
    fn from_str(s: &str) -> Result<ThawTier, String> {
        match s.to_ascii_lowercase().as_str() {
            "expedited" => Ok(ThawTier::Expedited),
            "standard" => Ok(ThawTier::Standard),
            "bulk" => Ok(ThawTier::Bulk),
            _ => Err(format!("{s}: one of expedited, standard, bulk")),
        }
    }
}

/// An archived object's state from S3's `x-amz-restore` header (absent: no thaw asked for):
/// `ongoing-request="true"`, or `ongoing-request="false", expiry-date="Fri, 21 Dec 2012
/// 00:00:00 GMT"`; a copy whose expiry is past at `now` is frozen again.
pub fn thaw_state_of(archived: bool, restore: Option<&str>, now: i64) -> ThawState {
    if !archived {
        return ThawState::Readable;
    }
    let Some(h) = restore else {
        return ThawState::Frozen;
    };
    if h.contains("ongoing-request=\"true\"") {
        return ThawState::Thawing;
    }
    let expiry = h
        .split_once("expiry-date=\"")
        .and_then(|(_, rest)| rest.split('"').next())
        .and_then(|d| {
            let fmt = time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            );
            time::PrimitiveDateTime::parse(d, &fmt).ok()
        })
        .map(|t| t.assume_utc().unix_timestamp());
    match expiry {
        Some(e) if e <= now => ThawState::Frozen,
        _ => ThawState::Thawed { expiry },
    }
}

#[cfg(test)]
mod thaw_tests {
    use super::*;

    #[test]
    fn the_restore_header_says_where_a_thaw_stands() {
        let now = 1_356_000_000; // 2012-12-20T10:40:00Z
        let cases = [
            (false, None, ThawState::Readable),
            (false, Some("ongoing-request=\"true\""), ThawState::Readable),
            (true, None, ThawState::Frozen),
            (true, Some("ongoing-request=\"true\""), ThawState::Thawing),
            (
                true,
                Some("ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\""),
                ThawState::Thawed {
                    expiry: Some(1_356_048_000),
                },
            ),
            // Expired: frozen again.
            (
                true,
                Some("ongoing-request=\"false\", expiry-date=\"Wed, 19 Dec 2012 00:00:00 GMT\""),
                ThawState::Frozen,
            ),
            // A date it cannot read: readable, expiry unknown.
            (
                true,
                Some("ongoing-request=\"false\", expiry-date=\"soon\""),
                ThawState::Thawed { expiry: None },
            ),
        ];
        for (archived, header, want) in cases {
            assert_eq!(thaw_state_of(archived, header, now), want, "{header:?}");
        }
    }
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
    /// Asks for an archived object to be readable for `days` (S3 RestoreObject at `tier`);
    /// returns where it stands after the request. Stores without one say so.
    async fn thaw(&self, key: &str, days: u32, tier: ThawTier) -> Result<ThawState, StoreError> {
        let _ = (days, tier);
        Err(no_thaw(key, &self.location()))
    }
    /// Where `key` stands: not archived, frozen, thawing, thawed (S3: HEAD).
    async fn thaw_state(&self, key: &str) -> Result<ThawState, StoreError> {
        Err(no_thaw(key, &self.location()))
    }
    /// Whether the bucket has S3 Object Lock enabled; stores without it say no.
    async fn object_lock_enabled(&self) -> Result<bool, StoreError> {
        Ok(false)
    }
    /// `put_class` (or `put_if_absent`) with an Object Lock retention on the new version.
    async fn put_retained(
        &self,
        key: &str,
        data: Vec<u8>,
        class: Option<&str>,
        keep: Retention,
        if_absent: bool,
    ) -> Result<(), StoreError> {
        let _ = (data, class, keep, if_absent);
        Err(no_lock(key, &self.location()))
    }
    /// The retain-until date of `version` of `key` (None: the current one); None: not
    /// locked.
    async fn retained_until(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let _ = version;
        Err(no_lock(key, &self.location()))
    }
    /// Sets the retention of `version` of `key` (None: the current one; S3
    /// PutObjectRetention). Callers only ever raise it: `objlock::extend` reads it first.
    async fn retain(
        &self,
        key: &str,
        version: Option<&str>,
        keep: Retention,
    ) -> Result<(), StoreError> {
        let _ = (version, keep);
        Err(no_lock(key, &self.location()))
    }
    /// Every version and delete marker under `prefix`, sorted by key, oldest first.
    async fn versions(&self, prefix: &str) -> Result<Vec<Version>, StoreError> {
        Err(no_lock(prefix, &self.location()))
    }
    /// Deletes one version for good (S3 DeleteObject with a version id).
    async fn delete_version(&self, key: &str, version: &str) -> Result<(), StoreError> {
        let _ = version;
        Err(no_lock(key, &self.location()))
    }
    /// Reads one version (S3 GetObject with a version id).
    async fn get_version(&self, key: &str, version: &str) -> Result<Vec<u8>, StoreError> {
        let _ = version;
        Err(no_lock(key, &self.location()))
    }
    /// Makes a copy of `version` the current version of `key`, retained as `keep`.
    async fn restore_version(
        &self,
        key: &str,
        version: &str,
        class: Option<&str>,
        keep: Option<Retention>,
    ) -> Result<(), StoreError> {
        let _ = (version, class, keep);
        Err(no_lock(key, &self.location()))
    }
    /// Human-readable location, for messages.
    fn location(&self) -> String;
}

fn no_lock(key: &str, location: &str) -> StoreError {
    StoreError::Backend {
        op: "object lock",
        key: key.to_string(),
        msg: format!("object lock is built for S3 only; {location} has none"),
    }
}

fn no_thaw(key: &str, location: &str) -> StoreError {
    StoreError::Backend {
        op: "thaw",
        key: key.to_string(),
        msg: format!("thawing is built for S3 only; {location} cannot be asked to"),
    }
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
    let store: DynStore = match Location::parse(url, std::env::var_os("HOME"))? {
        Location::S3(url) => Arc::new(rt.block_on(s3::S3Store::new(&url, s3opts))?),
        Location::Azure(url) => {
            // The client starts its connection pool on the runtime it is built in.
            let _in = rt.enter();
            Arc::new(azure::AzureStore::new(&url)?)
        }
        Location::Gcs(url) => Arc::new(rt.block_on(gcs::GcsStore::new(&url))?),
        Location::Local(path) => Arc::new(local::LocalStore::new(path)),
    };
    Ok(with_test_hooks(store))
}

/// Where a repository is, from what a user wrote (`--repo`, `COFRE_REPO`, the config).
#[derive(Debug, PartialEq, Eq)]
pub enum Location {
    S3(String),
    /// `az://container/prefix`.
    Azure(String),
    /// `gs://bucket/prefix`.
    Gcs(String),
    /// Always absolute: a bare relative name (`backups`) once failed in `init` ("put keys/…:
    /// No such file or directory") because its parent directory was the empty path.
    Local(std::path::PathBuf),
}

impl Location {
    /// `s3://bucket/prefix`; `file:///absolute/path`; `~` or `~/path` (a config file or a
    /// quoted argument gets no shell expansion), from `home`; any other path, made absolute
    /// against the working directory (symlinks are kept, as a shell user expects). What
    /// looks like a mistyped URL (`s3:bucket`, `s3:/b`, `gs:/b`) or another user's home
    /// (`~backup/x`) is refused rather than taken as a new local directory: `init` would
    /// otherwise make a repository on the local disk of someone who meant S3. A local
    /// name with a colon in its first component is written `./name:x`.
    pub fn parse(url: &str, home: Option<std::ffi::OsString>) -> crate::error::Result<Location> {
        use crate::error::Error::UnsupportedUrl;
        let unsupported = || UnsupportedUrl(url.to_string());
        if url.starts_with("s3://") {
            return Ok(Location::S3(url.to_string()));
        }
        for (scheme, location) in [
            (azure::SCHEME, Location::Azure as fn(String) -> Location),
            (gcs::SCHEME, Location::Gcs),
        ] {
            if url.starts_with(scheme) {
                return match split_bucket_url(url, scheme) {
                    Some(_) => Ok(location(url.to_string())),
                    None => Err(unsupported()),
                };
            }
        }
        let path = match url.strip_prefix("file://") {
            Some(p) if p.starts_with('/') => std::path::PathBuf::from(p),
            Some(_) => return Err(unsupported()),
            None if url.is_empty() || looks_like_a_scheme(url) => return Err(unsupported()),
            None => match url.strip_prefix('~') {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                    let home = home.filter(|h| !h.is_empty()).ok_or_else(unsupported)?;
                    std::path::PathBuf::from(home).join(rest.trim_start_matches('/'))
                }
                Some(_) => return Err(unsupported()),
                None => std::path::PathBuf::from(url),
            },
        };
        std::path::absolute(&path)
            .map(Location::Local)
            .map_err(|_| unsupported())
    }
}

/// `scheme://bucket/prefix` → (bucket, prefix). A prefix a client would encode or normalize
/// (`%`, `*`, `..`, `a//b`, …) is refused: its listings would not match it.
pub fn split_bucket_url(url: &str, scheme: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix(scheme)?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_matches('/');
    let kept = object_store::path::Path::from(prefix).as_ref() == prefix;
    (!bucket.is_empty() && kept).then(|| (bucket.to_string(), prefix.to_string()))
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
    let refuse_deletes = var("COFRE_TEST_REFUSE_DELETES").is_some();
    if delay.is_none()
        && kill_at_call.is_none()
        && call_log.is_none()
        && stop_at_delete.is_none()
        && !refuse_deletes
    {
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
            refuse_deletes,
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

/// `scheme:` at the start (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`).
fn looks_like_a_scheme(url: &str) -> bool {
    let head = url.split(['/', ':']).next().unwrap_or("");
    url[head.len()..].starts_with(':')
        && head.starts_with(|c: char| c.is_ascii_alphabetic())
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::Location;
    use std::path::PathBuf;

    #[test]
    fn repository_locations_parse_to_s3_or_an_absolute_path() {
        let cwd = std::env::current_dir().expect("cwd");
        let home = Some("/home/ops".into());
        let local = |p: &str| Some(Location::Local(PathBuf::from(p)));
        let cases: [(&str, Option<Location>); 24] = [
            ("backups", Some(Location::Local(cwd.join("backups")))),
            ("./backups", Some(Location::Local(cwd.join("backups")))),
            ("a/b", Some(Location::Local(cwd.join("a/b")))),
            ("../up", Some(Location::Local(cwd.join("../up")))),
            ("/srv/backup", local("/srv/backup")),
            ("~", local("/home/ops")),
            ("~/backup", local("/home/ops/backup")),
            ("~other/backup", None),
            ("./~other", Some(Location::Local(cwd.join("~other")))),
            ("s3:bucket", None),
            ("s3:/bucket/x", None),
            (
                "./backup:2024",
                Some(Location::Local(cwd.join("backup:2024"))),
            ),
            ("dir/a:b", Some(Location::Local(cwd.join("dir/a:b")))),
            ("file:///srv/backup", local("/srv/backup")),
            ("file://srv/backup", None),
            (
                "s3://bucket/prefix",
                Some(Location::S3("s3://bucket/prefix".into())),
            ),
            ("gs://bucket", Some(Location::Gcs("gs://bucket".into()))),
            (
                "gs://bucket/h/1",
                Some(Location::Gcs("gs://bucket/h/1".into())),
            ),
            ("gs://", None),
            (
                "az://container/host1",
                Some(Location::Azure("az://container/host1".into())),
            ),
            ("az://", None),
            ("az:/container", None),
            ("http://host/x", None),
            ("", None),
        ];
        for (url, want) in cases {
            assert_eq!(Location::parse(url, home.clone()).ok(), want, "{url:?}");
        }
        assert!(Location::parse("~/x", None).is_err(), "~ without HOME");
    }
}
