//! One file being written into the cache by its reader (`FileCache::begin`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{content_hash, footprint, Entry, FileCache, Hash};

/// Dropped before it is complete, its temporary file and reservation go; dropped after, it
/// unpins its entry (pinned while the fill's own descriptor is open).
pub struct Fill {
    pub(super) cache: Arc<FileCache>,
    pub(super) hash: Hash,
    pub(super) size: u64,
    pub(super) file: File,
    pub(super) tmp: PathBuf,
    pub(super) state: Mutex<FillState>,
    /// Completing, complete or given up: no more writes wanted. Read without the lock,
    /// since the thread completing the file hashes it without holding the lock.
    pub(super) ended: AtomicBool,
    /// The entry is in place (and pinned by this fill).
    pub(super) done: AtomicBool,
}

pub(super) struct FillState {
    /// Byte ranges written (or holes), sorted and merged.
    have: Vec<(u64, u64)>,
    /// The file's holes: zeros in the content hash.
    holes: Vec<(u64, u64)>,
    /// The content hashed so far, bytes `0..hashed`, as writes arrive in order. A write
    /// that arrives early is not hashed; the file is then hashed whole at the end.
    hasher: blake3::Hasher,
    hashed: u64,
}

impl FillState {
    pub(super) fn new(holes: &[(u64, u64)], size: u64) -> FillState {
        let holes: Vec<(u64, u64)> = holes
            .iter()
            .map(|&(s, e)| (s, e.min(size)))
            .filter(|(s, e)| s < e)
            .collect();
        let mut have = Vec::new();
        for &(s, e) in &holes {
            add_range(&mut have, s, e);
        }
        let mut st = FillState {
            have,
            holes,
            hasher: blake3::Hasher::new(),
            hashed: 0,
        };
        st.hash_holes();
        st
    }

    /// Hashes `bytes`, found at `offset`, if they continue what is hashed so far.
    fn hash(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset + bytes.len() as u64;
        if offset <= self.hashed && self.hashed < end {
            self.hasher
                .update(&bytes[(self.hashed - offset) as usize..]);
            self.hashed = end;
            self.hash_holes();
        }
    }

    /// Hashes the zeros of a hole that starts where the hashing stands.
    fn hash_holes(&mut self) {
        static ZEROS: [u8; 65536] = [0; 65536];
        while let Some(&(_, e)) = self
            .holes
            .iter()
            .find(|(s, e)| *s <= self.hashed && self.hashed < *e)
        {
            while self.hashed < e {
                let n = (e - self.hashed).min(ZEROS.len() as u64);
                self.hasher.update(&ZEROS[..n as usize]);
                self.hashed += n;
            }
        }
    }
}

impl Fill {
    /// Whether the entry is in place, or the fill gave up: no more writes are wanted.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Keeps `data`, which the file holds at `offset` (checked chunks, as served to a
    /// reader). Once every byte is here and the whole matches the content hash, the entry
    /// is renamed into place: true from then on.
    pub fn write(&self, offset: u64, data: &[u8]) -> bool {
        let end = (offset + data.len() as u64).min(self.size);
        if offset >= end || self.ended() {
            return self.done.load(Ordering::Acquire);
        }
        let bytes = &data[..(end - offset) as usize];
        // Written outside the lock: the thread that completes the ranges has seen every
        // other writer's bytes land, since each adds its range only after writing.
        let wrote = write_data(&self.file, offset, bytes).is_ok();
        let streamed = {
            let mut st = self.state.lock();
            if !wrote {
                // Disk full, say: the cache only costs speed, so give this file up.
                self.ended.store(true, Ordering::Release);
                return false;
            }
            st.hash(offset, bytes);
            add_range(&mut st.have, offset, end);
            if st.have != [(0, self.size)] || self.ended.swap(true, Ordering::AcqRel) {
                return self.done.load(Ordering::Acquire);
            }
            // This thread completes the file; the others see it ended from here on.
            (st.hashed >= self.size).then(|| *st.hasher.finalize().as_bytes())
        };
        // The chunks were checked against their ids; this checks that they make the
        // content the catalog names (a node whose blake3 does not match its chunks must
        // not file its bytes under another file's name). Without the lock: a whole-file
        // hash takes a while, and opens ask `ended` meanwhile.
        let whole = match streamed {
            Some(h) => Ok(h),
            None => content_hash(&self.file),
        };
        if !whole.is_ok_and(|h| h == self.hash) {
            tracing::error!(
                "file cache: content of {} does not match the blake3 recorded at ingest; not \
                 kept",
                hex::encode(self.hash)
            );
            return false;
        }
        // Renamed and indexed under the cache's lock: an eviction of the same name cannot
        // fall between the two.
        let mut cs = self.cache.state.lock();
        if std::fs::rename(&self.tmp, self.cache.path(&self.hash)).is_err() {
            return false;
        }
        self.done.store(true, Ordering::Release);
        cs.filling.remove(&self.hash);
        cs.tick += 1;
        let last = cs.tick;
        // Pinned by this fill until it is dropped: its descriptor keeps the blocks.
        let size = self.size;
        match cs.entries.entry(self.hash) {
            // Another process's fill of the same content won (same name, same bytes):
            // its entry stays, our reservation goes.
            std::collections::hash_map::Entry::Occupied(mut o) => {
                o.get_mut().pins += 1;
                cs.used -= footprint(size).min(cs.used);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Entry {
                    size,
                    last,
                    checked: true,
                    pins: 1,
                });
            }
        }
        true
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        if self.done.load(Ordering::Acquire) {
            self.cache.unpin(&self.hash);
            return;
        }
        let _ = std::fs::remove_file(&self.tmp);
        let mut cs = self.cache.state.lock();
        cs.used -= footprint(self.size).min(cs.used);
        cs.filling.remove(&self.hash);
    }
}

/// Writes `bytes` at `offset`, skipping the 4 KiB blocks (at file offsets) that are all
/// zeros: the file was created at its full length, so they read as zeros already, and a
/// sparse file's holes stay holes.
fn write_data(file: &File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    const BLOCK: u64 = 4096;
    let end = offset + bytes.len() as u64;
    let slice = |s: u64, e: u64| &bytes[(s - offset) as usize..(e - offset) as usize];
    // A run of blocks with data, written at once: (start, end).
    let mut run: Option<(u64, u64)> = None;
    let mut at = offset;
    while at < end {
        let next = ((at / BLOCK + 1) * BLOCK).min(end);
        if slice(at, next).iter().all(|b| *b == 0) {
            if let Some((s, e)) = run.take() {
                file.write_all_at(slice(s, e), s)?;
            }
        } else {
            run = Some((run.map_or(at, |r| r.0), next));
        }
        at = next;
    }
    if let Some((s, e)) = run {
        file.write_all_at(slice(s, e), s)?;
    }
    Ok(())
}

/// Adds `start..end` to sorted, merged `ranges`.
pub(super) fn add_range(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    let (mut s, mut e) = (start, end);
    let mut out = Vec::with_capacity(ranges.len() + 1);
    let mut placed = false;
    for &(a, b) in ranges.iter() {
        if b < s {
            out.push((a, b));
        } else if e < a {
            if !placed {
                out.push((s, e));
                placed = true;
            }
            out.push((a, b));
        } else {
            s = s.min(a);
            e = e.max(b);
        }
    }
    if !placed {
        out.push((s, e));
    }
    *ranges = out;
}
