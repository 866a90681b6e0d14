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
        write_new(&tmp, data)?.sync_all()?;
        std::fs::rename(&tmp, &dest)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Objects from this size up (packs: ~8 MiB) are written with `O_DIRECT`.
const DIRECT_MIN: usize = 1 << 20;
/// Offset, length and memory alignment of direct writes: enough for any device with
/// sectors up to 4 KiB (this VM's disk asks for 512).
const DIRECT_ALIGN: usize = 4096;
/// The aligned bounce buffer a direct write copies through.
const DIRECT_BUF: usize = 1 << 20;

/// Creates `path` (mode 0600: objects are encrypted, but their sizes and the key files are
/// nobody else's business) holding `data`, not yet synced.
///
/// Large objects skip the page cache: copying a pack into freshly allocated page-cache
/// pages cost 8.5% of an initial ingest's CPU on this VM (`copy_folio_from_iter_atomic`),
/// 1.8 ns a byte, and the pages were only written back and dropped, since the pack is
/// not read again by the ingest. A filesystem that refuses `O_DIRECT` gets the buffered
/// write, as does any object under [`DIRECT_MIN`].
fn write_new(path: &Path, data: &[u8]) -> std::io::Result<std::fs::File> {
    write_new_via(path, data, write_direct).map(|(f, _direct)| f)
}

/// `write_new` with `direct` writing objects from DIRECT_MIN up; says whether it did.
fn write_new_via(
    path: &Path,
    data: &[u8],
    direct: impl Fn(&std::fs::File, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<(std::fs::File, bool)> {
    let open = |flags| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(flags)
            .open(path)
    };
    if data.len() >= DIRECT_MIN {
        match open(libc::O_DIRECT).and_then(|f| direct(&f, data).map(|()| f)) {
            Ok(f) => return Ok((f, true)),
            // No O_DIRECT here (the file may have been created all the same), or an
            // alignment this device does not take: start over, buffered, in a new file.
            Err(e) if refused(&e) => {
                if let Err(r) = std::fs::remove_file(path) {
                    if r.kind() != std::io::ErrorKind::NotFound {
                        return Err(std::io::Error::new(
                            r.kind(),
                            format!("{e}; removing the partly written temp file: {r}"),
                        ));
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    let mut f = open(0)?;
    f.write_all(data)?;
    Ok((f, false))
}

/// A direct write refused as such (EINVAL: not supported or misaligned; EOPNOTSUPP from
/// some FUSE and network filesystems), not a failure of the disk or of space.
fn refused(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
    )
}

/// Writes `data` into the empty file `f`, opened with `O_DIRECT`: whole blocks through an
/// aligned bounce buffer, then `O_DIRECT` is cleared and the tail, shorter than a block
/// (a direct write takes whole blocks only), is written buffered through the same
/// descriptor, so the fsync on it reports an error of either part.
fn write_direct(f: &std::fs::File, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    let mut bounce = vec![0u8; DIRECT_BUF + DIRECT_ALIGN];
    let skip = bounce.as_ptr().align_offset(DIRECT_ALIGN);
    let bounce = &mut bounce[skip..skip + DIRECT_BUF];
    let whole = data.len() / DIRECT_ALIGN * DIRECT_ALIGN;
    let mut at = 0;
    while at < whole {
        let n = (whole - at).min(DIRECT_BUF);
        bounce[..n].copy_from_slice(&data[at..at + n]);
        // A short write would leave the rest unaligned: write_all_at then fails with
        // EINVAL and the caller starts over buffered.
        f.write_all_at(&bounce[..n], at as u64)?;
        at += n;
    }
    if whole < data.len() {
        let fd = f.as_raw_fd();
        // SAFETY: fcntl on a descriptor `f` owns, reading and setting its status flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        f.write_all_at(&data[whole..], whole as u64)?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Objects come back byte for byte, mode 0600, whichever way they were written: small
    /// (buffered), whole blocks, a tail after the blocks, several bounce buffers, and a
    /// direct write refused after it wrote part of the file (written again, buffered,
    /// under the same name). Where the test's directory takes `O_DIRECT` (ext4 here), the
    /// large objects must have gone that way.
    #[test]
    fn objects_read_back_exactly_direct_or_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = dir.path().join("probe");
        let takes_direct = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT)
            .open(&probe)
            .is_ok();
        let mut x: u32 = 7;
        let data: Vec<u8> = (0..3 * DIRECT_BUF + 5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let refuse_halfway = |f: &std::fs::File, d: &[u8]| {
            std::io::Write::write_all(&mut &*f, &d[..d.len() / 2])?;
            Err(std::io::Error::from_raw_os_error(libc::EINVAL))
        };
        let sizes = [
            DIRECT_MIN - 1,
            DIRECT_MIN,
            DIRECT_MIN + 1,
            3 * DIRECT_BUF + 5000,
        ];
        for (i, len) in sizes.into_iter().enumerate() {
            for refuse in [false, true] {
                let path = dir.path().join(format!("o{i}-{refuse}"));
                let (f, direct) = if refuse {
                    write_new_via(&path, &data[..len], refuse_halfway)
                } else {
                    write_new_via(&path, &data[..len], write_direct)
                }
                .expect("write");
                f.sync_all().expect("sync");
                drop(f);
                let case = format!("{len} bytes, refused {refuse}");
                assert_eq!(std::fs::read(&path).expect("read"), &data[..len], "{case}");
                let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{case}");
                let want_direct = takes_direct && !refuse && len >= DIRECT_MIN;
                assert_eq!(direct, want_direct, "{case}");
            }
        }
    }
}
