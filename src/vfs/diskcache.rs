//! On-disk cache of fetched pack bytes (still encrypted: the cache reveals no more than the
//! bucket), so reading the same data twice, even across mounts, does not go to the network.
//! Bounded in size: the least recently written entries go first.
//!
//! An entry is one fetched byte range of one pack, in one file named
//! `<pack>-<start>-<len>`, and a blob is found by its location in the index (pack and
//! offset). One file per blob, as before, cost a file creation per chunk: on a `cp -a` of
//! /usr/share over S3 that was 4.6 s of the mount's 9.9 s of CPU (docs/benchmarks.md).
//! Entries are written as fetched, before their blobs are verified; a reader decodes and
//! verifies every blob, and an entry that fails is removed (`remove`) and fetched again.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::Mutex;

use crate::crypto::BlobId;

pub struct DiskCache {
    dir: PathBuf,
    limit: u64,
    state: Mutex<State>,
    /// One process at a time: each keeps its own count of what the directory holds, so two
    /// would hold twice the bound, and one's sweep at open would delete the other's files
    /// being written.
    _lock: std::fs::File,
}

#[derive(Default)]
struct State {
    used: u64,
    /// Each pack's cached ranges.
    packs: HashMap<BlobId, Vec<Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    start: u64,
    len: u64,
    written: SystemTime,
}

impl Entry {
    fn covers(&self, start: u64, end: u64) -> bool {
        self.start <= start && end <= self.start + self.len
    }
}

impl DiskCache {
    /// Opens (creating it 0700) the cache in `dir`. Files that are not entries, such as the
    /// one-file-per-blob entries of earlier versions or a temporary file left by a crash,
    /// are removed: the directory is this cache's alone.
    /// Fails with WouldBlock while another process has the cache open.
    pub fn open(dir: PathBuf, limit: u64) -> std::io::Result<DiskCache> {
        crate::catalog::private_dir(&dir)?;
        let lock = lock_dir(&dir)?;
        let mut state = State::default();
        for (path, md) in files(&dir) {
            let (size, written) = (md.len(), md.modified().unwrap_or(std::time::UNIX_EPOCH));
            match parse_name(&path) {
                Some((pack, start, len)) if len == size => {
                    state.used += len;
                    state.packs.entry(pack).or_default().push(Entry {
                        start,
                        len,
                        written,
                    });
                }
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(DiskCache {
            dir,
            limit,
            state: Mutex::new(state),
            _lock: lock,
        })
    }

    fn path(&self, pack: &BlobId, start: u64, len: u64) -> PathBuf {
        let h = pack.hex();
        self.dir.join(&h[..2]).join(format!("{h}-{start}-{len}"))
    }

    /// Bytes `start..end` of `pack`, if one entry holds them all.
    pub fn get(&self, pack: &BlobId, start: u64, end: u64) -> Option<Vec<u8>> {
        let e = {
            let state = self.state.lock();
            *state
                .packs
                .get(pack)?
                .iter()
                .find(|e| e.covers(start, end))?
        };
        let path = self.path(pack, e.start, e.len);
        let mut buf = vec![0u8; (end - start) as usize];
        let read =
            std::fs::File::open(&path).and_then(|f| f.read_exact_at(&mut buf, start - e.start));
        match read {
            Ok(()) => Some(buf),
            Err(_) => {
                // Deleted or truncated behind our back: forget it, fetch again.
                self.forget(pack, |x| x.start == e.start && x.len == e.len);
                None
            }
        }
    }

    /// Whether one entry holds bytes `start..end` of `pack`.
    pub fn holds(&self, pack: &BlobId, start: u64, end: u64) -> bool {
        let state = self.state.lock();
        state
            .packs
            .get(pack)
            .is_some_and(|es| es.iter().any(|e| e.covers(start, end)))
    }

    /// Keeps `bytes`, fetched from `pack` at `start`. Best effort: a cache that cannot be
    /// written only costs speed.
    pub fn put(&self, pack: &BlobId, start: u64, bytes: &[u8]) {
        let len = bytes.len() as u64;
        if len == 0 || self.holds(pack, start, start + len) {
            return;
        }
        let path = self.path(pack, start, len);
        let Some(parent) = path.parent() else { return };
        let tmp = parent.join(format!(".tmp-{}", rand::random::<u64>()));
        let ok = crate::catalog::private_dir(parent)
            .and_then(|_| crate::catalog::private_file(&tmp))
            .and_then(|mut f| f.write_all(bytes))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if ok.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        let over = {
            let mut state = self.state.lock();
            let es = state.packs.entry(*pack).or_default();
            if es.iter().any(|e| e.start == start && e.len == len) {
                // Another thread wrote the same range meanwhile (same name, same bytes).
                false
            } else {
                es.push(Entry {
                    start,
                    len,
                    written: SystemTime::now(),
                });
                state.used += len;
                state.used > self.limit
            }
        };
        if over {
            self.evict();
        }
    }

    /// Drops every entry holding any of bytes `start..end` of `pack`: a blob there failed
    /// verification.
    pub fn remove(&self, pack: &BlobId, start: u64, end: u64) {
        self.forget(pack, |e| e.start < end && start < e.start + e.len);
    }

    /// Removes the entries of `pack` that `which` selects, files and all. The files go
    /// under the lock: a thread writing the same range meanwhile would otherwise have its
    /// new file deleted while the index kept it.
    fn forget(&self, pack: &BlobId, which: impl Fn(&Entry) -> bool) {
        let mut state = self.state.lock();
        let Some(es) = state.packs.get_mut(pack) else {
            return;
        };
        let gone: Vec<Entry> = es.iter().filter(|e| which(e)).copied().collect();
        es.retain(|e| !which(e));
        if es.is_empty() {
            state.packs.remove(pack);
        }
        state.used -= gone.iter().map(|e| e.len).sum::<u64>().min(state.used);
        for e in gone {
            let _ = std::fs::remove_file(self.path(pack, e.start, e.len));
        }
    }

    /// Deletes the oldest entries until the cache is at 80% of its limit.
    fn evict(&self) {
        let mut state = self.state.lock();
        let mut all: Vec<(BlobId, Entry)> = state
            .packs
            .iter()
            .flat_map(|(p, es)| es.iter().map(|e| (*p, *e)))
            .collect();
        all.sort_by_key(|(_, e)| e.written);
        for (pack, e) in all {
            if state.used <= self.limit / 5 * 4 {
                break;
            }
            // A file already gone still leaves the count.
            let _ = std::fs::remove_file(self.path(&pack, e.start, e.len));
            state.used -= e.len.min(state.used);
            if let Some(es) = state.packs.get_mut(&pack) {
                es.retain(|x| !(x.start == e.start && x.len == e.len));
                if es.is_empty() {
                    state.packs.remove(&pack);
                }
            }
        }
    }

    /// Bytes the cache holds by its own count.
    pub fn used(&self) -> u64 {
        self.state.lock().used
    }
}

/// Takes the lock of a cache directory (the file `lock` in it, beside the entries), or
/// fails with WouldBlock when another process holds it. Released when the file closes.
pub(super) fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    crate::fsutil::lock_file(&dir.join("lock"), false)?
        .ok_or_else(|| std::io::ErrorKind::WouldBlock.into())
}

/// `<pack hex>-<start>-<len>` → its parts.
fn parse_name(path: &Path) -> Option<(BlobId, u64, u64)> {
    let name = path.file_name()?.to_str()?;
    let mut parts = name.split('-');
    let pack = BlobId::from_slice(&hex::decode(parts.next()?).ok()?)?;
    let start = parts.next()?.parse().ok()?;
    let len = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((pack, start, len))
}

/// Every file two levels down, with its metadata (not following symlinks).
pub(super) fn files(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(md) = f.metadata() {
                out.push((f.path(), md));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_disk(dir: &Path) -> u64 {
        files(dir).iter().map(|(_, m)| m.len()).sum()
    }

    #[test]
    fn ranges_are_found_inside_entries_and_survive_a_reopen() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("c");
        let pack = BlobId([7; 32]);
        let bytes: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let c = DiskCache::open(dir.clone(), 1 << 20).expect("open");
        c.put(&pack, 5000, &bytes);
        // (start, end, expected) — inside, at both edges, across an edge, another pack
        let cases: Vec<(u64, u64, Option<std::ops::Range<usize>>)> = vec![
            (5000, 6000, Some(0..1000)),
            (5100, 5200, Some(100..200)),
            (5999, 6000, Some(999..1000)),
            (4999, 5100, None),
            (5900, 6001, None),
        ];
        for (start, end, want) in &cases {
            assert_eq!(
                c.get(&pack, *start, *end),
                want.clone().map(|r| bytes[r].to_vec()),
                "{start}..{end}"
            );
        }
        assert_eq!(c.get(&BlobId([8; 32]), 5000, 5010), None);
        drop(c);
        // An old one-file-per-blob entry and a crash's temporary file are cleared at open.
        let sub = dir.join("ab");
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join("ab".repeat(32)), b"old").expect("old");
        std::fs::write(sub.join(".tmp-1"), b"tmp").expect("tmp");
        let c = DiskCache::open(dir.clone(), 1 << 20).expect("reopen");
        assert_eq!(c.get(&pack, 5100, 5200), Some(bytes[100..200].to_vec()));
        assert_eq!(c.used(), 1000);
        assert_eq!(on_disk(&dir), 1000, "old entries removed");
    }

    /// A second mount of the repository runs without the cache while the first has it:
    /// two counts of one directory would hold twice the bound.
    #[test]
    fn one_process_at_a_time_has_the_cache() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("c");
        let c = DiskCache::open(dir.clone(), 1 << 20).expect("open");
        let second = DiskCache::open(dir.clone(), 1 << 20).map(|_| ());
        assert_eq!(
            second.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock)
        );
        drop(c);
        DiskCache::open(dir, 1 << 20).expect("open once the first is closed");
    }

    #[test]
    fn the_cache_stays_within_its_limit_and_drops_damaged_entries() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("c");
        let c = DiskCache::open(dir.clone(), 10_000).expect("open");
        for i in 0..30u8 {
            c.put(&BlobId([i; 32]), 0, &[i; 1000]);
            assert!(on_disk(&dir) <= 10_000, "{} bytes on disk", on_disk(&dir));
            assert_eq!(c.used(), on_disk(&dir));
        }
        // The newest entry is kept, the oldest gone.
        assert_eq!(c.get(&BlobId([29; 32]), 0, 10), Some(vec![29; 10]));
        assert_eq!(c.get(&BlobId([0; 32]), 0, 10), None);
        // A blob in the middle of an entry failed verification: the entry goes.
        c.remove(&BlobId([29; 32]), 500, 600);
        assert_eq!(c.get(&BlobId([29; 32]), 0, 10), None);
        assert_eq!(c.used(), on_disk(&dir));
        // An entry deleted behind the cache's back is a miss, and leaves the count.
        let before = c.used();
        let (path, _) = files(&dir).remove(0);
        std::fs::remove_file(path).expect("rm");
        let gone = (0..30u8)
            .filter(|i| c.holds(&BlobId([*i; 32]), 0, 10))
            .filter(|i| c.get(&BlobId([*i; 32]), 0, 10).is_none())
            .count();
        assert_eq!(gone, 1);
        assert_eq!(c.used(), before - 1000);
    }
}
