//! On-disk cache of fetched blobs (still encrypted: the cache reveals no more than the
//! bucket), so reading the same data twice, even across mounts, does not go to the network.
//! Bounded in size: the least recently written entries go first.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::crypto::BlobId;

pub struct DiskCache {
    dir: PathBuf,
    limit: u64,
    used: AtomicU64,
}

impl DiskCache {
    pub fn open(dir: PathBuf, limit: u64) -> std::io::Result<DiskCache> {
        crate::catalog::private_dir(&dir)?;
        let used = entries(&dir).iter().map(|(_, s, _)| s).sum();
        Ok(DiskCache {
            dir,
            limit,
            used: AtomicU64::new(used),
        })
    }

    fn path(&self, id: &BlobId) -> PathBuf {
        let h = id.hex();
        self.dir.join(&h[..2]).join(h)
    }

    pub fn get(&self, id: &BlobId) -> Option<Vec<u8>> {
        std::fs::read(self.path(id)).ok()
    }

    /// Drops an entry that failed verification.
    pub fn remove(&self, id: &BlobId) {
        if let Ok(md) = std::fs::metadata(self.path(id)) {
            if std::fs::remove_file(self.path(id)).is_ok() {
                self.used.fetch_sub(
                    md.len().min(self.used.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Best effort: a cache that cannot be written only costs speed.
    pub fn put(&self, id: &BlobId, encoded: &[u8]) {
        let path = self.path(id);
        if path.exists() {
            return;
        }
        let Some(parent) = path.parent() else { return };
        let tmp = parent.join(format!(".tmp-{}", rand::random::<u64>()));
        let ok = crate::catalog::private_dir(parent)
            .and_then(|_| crate::catalog::private_file(&tmp))
            .and_then(|mut f| f.write_all(encoded))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if ok.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        if self.used.fetch_add(encoded.len() as u64, Ordering::Relaxed) + encoded.len() as u64
            > self.limit
        {
            self.evict();
        }
    }

    /// Deletes the oldest entries until the cache is at 80% of its limit.
    fn evict(&self) {
        let mut all = entries(&self.dir);
        all.sort_by_key(|(_, _, t)| *t);
        let mut used: u64 = all.iter().map(|(_, s, _)| s).sum();
        for (p, s, _) in all {
            if used <= self.limit / 5 * 4 {
                break;
            }
            if std::fs::remove_file(&p).is_ok() {
                used -= s;
            }
        }
        self.used.store(used, Ordering::Relaxed);
    }
}

fn entries(dir: &std::path::Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(md) = f.metadata() {
                out.push((
                    f.path(),
                    md.len(),
                    md.modified().unwrap_or(std::time::UNIX_EPOCH),
                ));
            }
        }
    }
    out
}
