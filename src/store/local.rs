//! The embedded default: a directory. Durable writes are temp file + fsync + rename +
//! fsync of the directory, so a crash leaves either the whole object or nothing visible.

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{range_error, ObjectInfo, Store, StoreError};

pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

fn put_sync(root: &Path, key: &str, data: &[u8]) -> Result<(), StoreError> {
    let io = |e| StoreError::io("put", key, e);
    let dest = root.join(key);
    let dir = dest.parent().unwrap_or(root).to_path_buf();
    create_dirs_durably(root, &dir).map_err(io)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        // Objects are encrypted, but their sizes and the key files are nobody else's business.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Creates `dir` and its missing parents up to `root` (mode 0700), fsyncing each parent
/// that gained an entry, so a new directory survives a crash as well as the object in it.
fn create_dirs_durably(root: &Path, dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.is_dir() {
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) if cur != root => cur = p,
            _ => break,
        }
    }
    for d in missing.iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        // A relative `d` with one component has the empty path as parent: that is `.`.
        let parent = d.parent().filter(|p| !p.as_os_str().is_empty());
        std::fs::File::open(parent.unwrap_or(Path::new(".")))?.sync_all()?;
    }
    Ok(())
}

/// Writes a temp file durably, then links it at `key` (link fails if the name exists, so
/// exactly one writer wins), then drops the temp name.
fn put_if_absent_sync(root: &Path, key: &str, data: &[u8]) -> Result<(), StoreError> {
    let tmp_key = format!("{key}.new-{}", rand::random::<u64>());
    put_sync(root, &tmp_key, data)?;
    let (tmp, dest) = (root.join(&tmp_key), root.join(key));
    let linked = std::fs::hard_link(&tmp, &dest);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => std::fs::File::open(dest.parent().unwrap_or(root))
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io("put", key, e)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(StoreError::Exists(key.to_string()))
        }
        Err(e) => Err(StoreError::io("put", key, e)),
    }
}

fn get_sync(path: &Path, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
    let map = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound(key.to_string())
        } else {
            StoreError::io("get", key, e)
        }
    };
    let mut f = std::fs::File::open(path).map_err(map)?;
    let len = f.metadata().map_err(map)?.len();
    let Some(r) = range else {
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf).map_err(map)?;
        return Ok(buf);
    };
    if r.start > r.end || r.end > len {
        return Err(range_error("get", key, &r, len));
    }
    f.seek(SeekFrom::Start(r.start)).map_err(map)?;
    let mut buf = vec![0u8; (r.end - r.start) as usize];
    f.read_exact(&mut buf).map_err(map)?;
    Ok(buf)
}

fn list_sync(root: &Path, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
    // Walk only the directory the prefix points into, so listing `snapshots/` is cheap.
    let start = match prefix.rfind('/') {
        Some(i) => root.join(&prefix[..i]),
        None => root.to_path_buf(),
    };
    // A missing root is an unmounted disk or a wrong path, never an empty repository:
    // callers would otherwise take every object for gone.
    if let Err(e) = std::fs::metadata(root) {
        return Err(StoreError::io(
            "list",
            prefix,
            std::io::Error::new(
                e.kind(),
                format!(
                    "repository directory {} is not there ({e}); is its disk mounted?",
                    root.display()
                ),
            ),
        ));
    }
    let mut out = Vec::new();
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("list", prefix, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", prefix, e))?;
            let ft = entry
                .file_type()
                .map_err(|e| StoreError::io("list", prefix, e))?;
            let path = entry.path();
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let key = rel.to_string_lossy().into_owned();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(".tmp-") || !key.starts_with(prefix) {
                continue;
            }
            let md = entry
                .metadata()
                .map_err(|e| StoreError::io("list", prefix, e))?;
            let modified = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64);
            out.push(ObjectInfo {
                key,
                size: md.len(),
                modified,
                // A directory keeps no storage class (the index does).
                class: None,
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend {
            op: "local",
            key: String::new(),
            msg: e.to_string(),
        })?
}

#[async_trait]
impl Store for LocalStore {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let (root, key) = (self.root.clone(), key.to_string());
        blocking(move || put_sync(&root, &key, &data)).await
    }

    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let (root, key) = (self.root.clone(), key.to_string());
        blocking(move || put_if_absent_sync(&root, &key, &data)).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        let (path, key) = (self.path(key), key.to_string());
        blocking(move || get_sync(&path, &key, range)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        blocking(move || list_sync(&root, &prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let (path, key) = (self.path(key), key.to_string());
        blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r.map_err(|e| StoreError::io("delete", &key, e)),
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<u64, StoreError> {
        let (path, key) = (self.path(key), key.to_string());
        blocking(move || match std::fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound(key)),
            Err(e) => Err(StoreError::io("head", &key, e)),
        })
        .await
    }

    /// A local directory has no archive tier: everything in it is readable.
    async fn thaw(
        &self,
        key: &str,
        _days: u32,
        _tier: super::ThawTier,
    ) -> Result<super::ThawState, StoreError> {
        self.thaw_state(key).await
    }

    async fn thaw_state(&self, key: &str) -> Result<super::ThawState, StoreError> {
        self.head(key).await.map(|_| super::ThawState::Readable)
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}
