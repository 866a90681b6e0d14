//! File reads for the mount: chunks are fetched as byte ranges of their packs (neighbours
//! coalesced into one request), verified, decrypted and decompressed once into a shared,
//! byte-bounded LRU; sequential readers trigger read-ahead on prefetch threads. Readers of
//! a chunk being fetched wait for that fetch only, never for unrelated ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{unbounded, Sender};
use lru::LruCache;
use parking_lot::Mutex;

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::model::ChunkRef;
use crate::repo::index::Location;
use crate::repo::pack::pack_key;
use crate::repo::Repository;

use super::diskcache::DiskCache;

type Decoded = Arc<Vec<u8>>;
/// Chunks contiguous in one pack, fetched with one request.
type Group = Vec<(BlobId, Location)>;
type Slot = Arc<OnceLock<std::result::Result<Decoded, String>>>;

/// One coalesced request covers at most this many bytes of a pack.
const MAX_FETCH: u64 = 4 * 1024 * 1024;
/// How far ahead of a sequential reader to prefetch.
const READ_AHEAD: u64 = 8 * 1024 * 1024;
/// Packs are read in segments of this size: packs are written in file order, so the
/// files a `cp -a` or a restore reads next are in the same or the following segments.
const SEGMENT: u64 = 4 * 1024 * 1024;
/// Segments queued ahead of the one being read.
const SEGMENTS_AHEAD: u64 = 3;
/// No pack is larger than this (packs are cut at 8 MiB plus one chunk).
const PACK_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// The blobs stored in `pack` at byte offsets `from..to`, in pack order.
pub type PackLister = Box<dyn Fn(&BlobId, u64, u64) -> Vec<(BlobId, Location)> + Send + Sync>;

pub struct OpenFile {
    pub path: String,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
    pub locs: Vec<Option<Location>>,
    next_offset: AtomicU64,
}

impl OpenFile {
    pub fn new(
        path: String,
        size: u64,
        chunks: Vec<ChunkRef>,
        locs: Vec<Option<Location>>,
    ) -> Self {
        OpenFile {
            path,
            size,
            chunks,
            locs,
            next_offset: AtomicU64::new(0),
        }
    }

    /// Index of the first chunk ending after `offset`.
    fn first_chunk(&self, offset: u64) -> usize {
        self.chunks
            .partition_point(|c| c.offset + c.len as u64 <= offset)
    }

    /// SEEK_DATA / SEEK_HOLE over the chunk list (gaps are holes).
    pub fn seek(&self, offset: u64, data: bool) -> Option<u64> {
        if offset >= self.size {
            return None;
        }
        let i = self.first_chunk(offset);
        if data {
            return self.chunks.get(i).map(|c| c.offset.max(offset));
        }
        let mut end = offset;
        for c in &self.chunks[i..] {
            if c.offset > end {
                break;
            }
            end = c.offset + c.len as u64;
        }
        Some(end.min(self.size))
    }
}

pub struct ChunkCache {
    repo: Arc<Repository>,
    disk: Option<DiskCache>,
    lru: Mutex<(LruCache<BlobId, Decoded>, usize)>,
    budget: usize,
    inflight: Mutex<HashMap<BlobId, Slot>>,
    prefetch: Mutex<Option<Sender<Group>>>,
    lister: Option<PackLister>,
    /// (pack, segment) already queued for read-ahead.
    ahead: Mutex<std::collections::HashSet<(BlobId, u64)>>,
    pub fetches: AtomicU64,
}

impl ChunkCache {
    pub fn new(
        repo: Arc<Repository>,
        disk: Option<DiskCache>,
        lister: Option<PackLister>,
        budget: usize,
        prefetch_threads: usize,
    ) -> Arc<ChunkCache> {
        let cache = Arc::new(ChunkCache {
            repo,
            disk,
            lister,
            ahead: Mutex::new(std::collections::HashSet::new()),
            lru: Mutex::new((LruCache::unbounded(), 0)),
            budget,
            inflight: Mutex::new(HashMap::new()),
            prefetch: Mutex::new(None),
            fetches: AtomicU64::new(0),
        });
        let (tx, rx) = unbounded::<Vec<(BlobId, Location)>>();
        for _ in 0..prefetch_threads {
            let rx = rx.clone();
            let weak = Arc::downgrade(&cache);
            std::thread::spawn(move || {
                for group in rx {
                    if group.is_empty() {
                        continue;
                    }
                    let Some(cache) = weak.upgrade() else { break };
                    if let Err(e) = cache.fetch(&group) {
                        tracing::debug!("prefetch failed: {e}");
                    }
                }
            });
        }
        *cache.prefetch.lock() = Some(tx);
        cache
    }

    fn cached(&self, id: &BlobId) -> Option<Decoded> {
        self.lru.lock().0.get(id).cloned()
    }

    fn insert(&self, id: BlobId, data: Decoded) {
        let mut guard = self.lru.lock();
        let (lru, bytes) = &mut *guard;
        *bytes += data.len();
        if let Some(old) = lru.put(id, data) {
            *bytes -= old.len();
        }
        while *bytes > self.budget && lru.len() > 1 {
            match lru.pop_lru() {
                Some((_, v)) => *bytes -= v.len(),
                None => break,
            }
        }
    }

    /// Fetches a run of chunks that are contiguous in one pack with one ranged read.
    /// Chunks already cached or being fetched by someone else are skipped.
    fn fetch(&self, group: &[(BlobId, Location)]) -> Result<()> {
        let mut mine = Vec::new();
        {
            let mut inflight = self.inflight.lock();
            for (id, loc) in group {
                if !inflight.contains_key(id) && self.lru.lock().0.peek(id).is_none() {
                    let slot: Slot = Arc::new(OnceLock::new());
                    inflight.insert(*id, slot.clone());
                    mine.push((*id, *loc, slot));
                }
            }
        }
        // Blobs in the disk cache need no request; a damaged entry is dropped and fetched.
        let mut result = Ok(());
        let mut missing = Vec::new();
        for (id, loc, slot) in mine {
            let cached = self.disk.as_ref().and_then(|d| d.get(&id));
            match cached.map(|enc| self.repo.decode_blob(&id, &enc)) {
                Some(Ok(d)) => self.finish(id, &slot, Ok(Arc::new(d))),
                Some(Err(_)) => {
                    if let Some(d) = &self.disk {
                        d.remove(&id);
                    }
                    missing.push((id, loc, slot));
                }
                None => missing.push((id, loc, slot)),
            }
        }
        let Some(first) = missing.first() else {
            return Ok(());
        };
        let start = missing
            .iter()
            .map(|m| m.1.offset)
            .min()
            .unwrap_or(first.1.offset);
        let end = missing
            .iter()
            .map(|m| m.1.offset + m.1.length as u64)
            .max()
            .unwrap_or(start);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(pack = %&first.1.pack.hex()[..8], start, blobs = missing.len(), bytes = end - start, "fetch");
        let got = self
            .repo
            .get_raw(&pack_key(&first.1.pack), Some(start..end));
        for (id, loc, slot) in missing {
            let decoded = match &got {
                Ok(bytes) => {
                    let a = (loc.offset - start) as usize;
                    let b = a + loc.length as usize;
                    match bytes.get(a..b) {
                        Some(enc) => {
                            let d = self
                                .repo
                                .decode_blob(&id, enc)
                                .map(Arc::new)
                                .map_err(|e| e.to_string());
                            if let (Ok(_), Some(disk)) = (&d, &self.disk) {
                                disk.put(&id, enc);
                            }
                            d
                        }
                        None => Err(format!("short read of pack {}", loc.pack.hex())),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = &decoded {
                result = Err(Error::ReadFailed {
                    path: format!("chunk {}", id.hex()),
                    why: e.clone(),
                });
            }
            self.finish(id, &slot, decoded);
        }
        result
    }

    fn finish(&self, id: BlobId, slot: &Slot, decoded: std::result::Result<Decoded, String>) {
        if let Ok(d) = &decoded {
            self.insert(id, d.clone());
        }
        let _ = slot.set(decoded);
        self.inflight.lock().remove(&id);
    }

    /// Chunks `from..` of `f` that share a pack and are contiguous, up to MAX_FETCH bytes.
    fn run_from(&self, f: &OpenFile, from: usize, limit: u64) -> Vec<(BlobId, Location)> {
        let mut out: Vec<(BlobId, Location)> = Vec::new();
        let mut total = 0;
        for i in from..f.chunks.len() {
            let Some(loc) = f.locs[i] else { break };
            if let Some((_, prev)) = out.last() {
                if prev.pack != loc.pack || prev.offset + prev.length as u64 != loc.offset {
                    break;
                }
            }
            total += loc.length as u64;
            out.push((f.chunks[i].id, loc));
            if total >= limit {
                break;
            }
        }
        out
    }

    fn chunk(&self, f: &OpenFile, i: usize) -> Result<Decoded> {
        let id = f.chunks[i].id;
        if let Some(loc) = &f.locs[i] {
            self.pack_ahead(loc);
        }
        if let Some(d) = self.cached(&id) {
            return Ok(d);
        }
        if f.locs[i].is_none() {
            return Err(Error::corrupt(
                &f.path,
                format!("chunk {} is in no index", id.hex()),
            ));
        }
        let waiting = self.inflight.lock().get(&id).cloned();
        if waiting.is_none() {
            // The whole pack segment in one request (its other blobs are what is read next),
            // or, without a lister, this file's next chunks.
            let group = match f.locs[i].and_then(|l| self.segment(&l, l.offset / SEGMENT)) {
                Some(g) if g.iter().any(|(gid, _)| *gid == id) => g,
                _ => self.run_from(f, i, 1024 * 1024),
            };
            let _ = self.fetch(&group);
        }
        if let Some(d) = self.cached(&id) {
            return Ok(d);
        }
        let slot = self.inflight.lock().get(&id).cloned().or(waiting);
        match slot.map(|s| s.wait().clone()) {
            Some(Ok(d)) => Ok(d),
            Some(Err(e)) => Err(Error::ReadFailed {
                path: f.path.clone(),
                why: e,
            }),
            // Fetched and already evicted, or failed before: fetch it alone.
            None => {
                let loc = f.locs[i].ok_or_else(|| Error::corrupt(&f.path, "chunk missing"))?;
                self.fetch(&[(id, loc)]).map_err(|e| Error::ReadFailed {
                    path: f.path.clone(),
                    why: e.to_string(),
                })?;
                self.cached(&id)
                    .ok_or_else(|| Error::corrupt(&f.path, "chunk vanished from the cache"))
            }
        }
    }

    /// The blobs of the pack segment holding `loc`, if a lister is available.
    fn segment(&self, loc: &Location, seg: u64) -> Option<Group> {
        let lister = self.lister.as_ref()?;
        Some(lister(&loc.pack, seg * SEGMENT, (seg + 1) * SEGMENT))
    }

    /// Queues the segments after the one holding `loc` for prefetch, once each.
    fn pack_ahead(&self, loc: &Location) {
        let seg = loc.offset / SEGMENT;
        for s in seg + 1..=seg + SEGMENTS_AHEAD {
            if s * SEGMENT >= loc.offset + PACK_SIZE_LIMIT
                || !self.ahead.lock().insert((loc.pack, s))
            {
                continue;
            }
            match self.segment(loc, s) {
                Some(blobs) if !blobs.is_empty() => self.queue_groups(blobs),
                _ => break,
            }
        }
    }

    /// Splits blobs (in pack order) into contiguous runs of at most MAX_FETCH and queues
    /// the ones not cached or in flight.
    fn queue_groups(&self, blobs: Vec<(BlobId, Location)>) {
        let Some(tx) = self.prefetch.lock().clone() else {
            return;
        };
        let mut group: Group = Vec::new();
        let mut bytes = 0;
        for (id, loc) in blobs {
            let contiguous = group.last().is_none_or(|(_, p)| {
                p.pack == loc.pack && p.offset + p.length as u64 == loc.offset
            });
            if !contiguous || bytes >= MAX_FETCH {
                let _ = tx.send(std::mem::take(&mut group));
                bytes = 0;
            }
            let skip =
                self.inflight.lock().contains_key(&id) || self.lru.lock().0.peek(&id).is_some();
            if !skip {
                bytes += loc.length as u64;
                group.push((id, loc));
            }
        }
        if !group.is_empty() {
            let _ = tx.send(group);
        }
    }

    fn read_ahead(&self, f: &OpenFile, from: usize) {
        let mut i = from;
        let mut queued = 0;
        let tx = self.prefetch.lock().clone();
        let Some(tx) = tx else { return };
        while i < f.chunks.len() && queued < READ_AHEAD {
            let group = self.run_from(f, i, MAX_FETCH);
            if group.is_empty() {
                i += 1;
                continue;
            }
            i += group.len();
            queued += group.iter().map(|g| g.1.length as u64).sum::<u64>();
            let todo: Vec<_> = {
                let inflight = self.inflight.lock();
                let lru = self.lru.lock();
                group
                    .into_iter()
                    .filter(|(id, _)| !inflight.contains_key(id) && lru.0.peek(id).is_none())
                    .collect()
            };
            if !todo.is_empty() {
                let _ = tx.send(todo);
            }
        }
    }

    /// Reads `size` bytes at `offset`; holes read as zeros.
    pub fn read(&self, f: &OpenFile, offset: u64, size: u32) -> Result<Vec<u8>> {
        let end = (offset + size as u64).min(f.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; (end - offset) as usize];
        let mut i = f.first_chunk(offset);
        let first = i;
        while i < f.chunks.len() && f.chunks[i].offset < end {
            let c = f.chunks[i];
            let data = self.chunk(f, i)?;
            let (a, b) = (c.offset.max(offset), (c.offset + c.len as u64).min(end));
            out[(a - offset) as usize..(b - offset) as usize]
                .copy_from_slice(&data[(a - c.offset) as usize..(b - c.offset) as usize]);
            i += 1;
        }
        let sequential = f.next_offset.swap(end, Ordering::Relaxed) == offset;
        if sequential || offset == 0 {
            self.read_ahead(f, i.max(first + 1));
        }
        Ok(out)
    }
}
