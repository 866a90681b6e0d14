//! File reads for the mount: chunks are fetched as byte ranges of their packs (neighbours
//! coalesced into one request), verified, decrypted and decompressed once into a shared,
//! byte-bounded LRU; sequential readers trigger read-ahead on prefetch threads. Readers of
//! a chunk being fetched wait for that fetch only, never for unrelated ones. A chunk
//! stored as a delta needs its base (a whole chunk) first: bases are fetched, in pack
//! order, together with the deltas that need them, and kept in the same LRU.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{unbounded, Sender};
use lru::LruCache;
use parking_lot::Mutex;

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::index::Location;
use crate::repo::pack::pack_key;
use crate::repo::Repository;

use super::chunklru::{ChunkLru, Decoded};
use super::diskcache::DiskCache;
use segments::Segments;

mod ahead;
mod cached;
mod file;
mod segments;
mod spare;
use cached::span;
pub use file::OpenFile;

/// Chunks contiguous in one pack, fetched with one request.
type Group = Vec<(BlobId, Location)>;
type Outcome<T> = std::result::Result<T, String>;
/// A fetched response and one blob's byte range in it.
type Encoded = (Arc<Vec<u8>>, std::ops::Range<usize>);

/// A chunk being fetched. The fetch fills `raw` (the response and this chunk's range in
/// it); whoever claims the slot first decodes it, so a reader never waits for the decoding
/// of other chunks of the same response, only for the response itself.
#[derive(Default)]
struct Slot {
    raw: OnceLock<Outcome<Encoded>>,
    /// Set when `raw` came from the disk cache: the blob's pack and byte range, so that a
    /// blob failing verification drops its entry and its reader fetches it again.
    cached_at: OnceLock<(BlobId, u64, u64)>,
    claimed: AtomicBool,
    done: OnceLock<Outcome<Decoded>>,
}

/// Work for the prefetch threads.
enum Job {
    Fetch(Group),
    /// A restore's next pack window (`segments`), by the location of its first blob.
    Segment(Location),
    /// Decode what readers have not claimed yet, in pack order.
    Decode(Vec<(BlobId, Arc<Slot>)>),
    /// Write a fetched range of a pack to the disk cache.
    Keep(BlobId, u64, Arc<Vec<u8>>),
}

/// One coalesced request covers at most this many bytes of a pack.
const MAX_FETCH: u64 = 4 * 1024 * 1024;
/// How far ahead of a sequential reader to prefetch.
const READ_AHEAD: u64 = 8 * 1024 * 1024;
/// The mount reads packs in segments of this size: packs are written in file order, so
/// the files a `cp -a` reads next are in the same or the following segments.
const SEGMENT: u64 = 4 * 1024 * 1024;
/// Segments queued ahead of the one being read.
const SEGMENTS_AHEAD: u64 = 3;
/// Of a `ReadMode::Mount` budget (the mount's, `serve`'s), what fetched responses hold
/// while their chunks are decoded: each prefetch thread one (a `MAX_FETCH` at most), and
/// readers that miss a few more. The decoded chunks get the rest, so that `--cache-mib`
/// covers both. A sizing, not a limit enforced: heaptrack measured 21-25 MiB of responses
/// at the peak of a cold `cp -a`, on top of a full cache.
const FETCH_RESERVE: usize = 5 * MAX_FETCH as usize;
/// Delta bases closer than this in one pack are read with one request, gap and all.
const BASE_GAP: u64 = 256 * 1024;
/// No pack is larger than this (packs are cut at 8 MiB plus one chunk).
const PACK_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// What reading a blob costs in work: its stored size, or for a delta (a few hundred bytes
/// standing for a whole chunk) its size once rebuilt, which also means its base. Request
/// sizes and a reader's own read-ahead (`READ_AHEAD`) count this, so a pack segment of
/// deltas (thousands of chunks in 4 MiB) is not fetched, with every base, at once; the
/// room read-ahead has in the cache counts `decoded_size`.
fn weight(l: &Location) -> u64 {
    match l.base {
        Some(_) => l.raw_len as u64,
        None => l.length as u64,
    }
}

fn total_weight(g: &[(BlobId, Location)]) -> u64 {
    g.iter().map(|(_, l)| weight(l)).sum()
}

/// What a group takes in the cache once decoded: its chunks' plaintext sizes. Read-ahead's
/// room is counted in these, as the cache is: counted by stored size, text compressed 3:1
/// overfilled the cache threefold and evicted read-ahead before its reader came (seen in a
/// restore over Garage, before restores read by window: 1,042 requests for 476 MB → 682).
fn decoded_size(g: &[(BlobId, Location)]) -> u64 {
    g.iter().map(|(_, l)| l.raw_len as u64).sum()
}

/// Blobs in pack order, split into runs in one pack, with at most `gap` bytes between two
/// blobs (read and dropped), weighing at most about MAX_FETCH: one request each.
fn runs(blobs: Group, gap: u64) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    let mut bytes = 0;
    for (id, loc) in blobs {
        let joins = out.last().and_then(|r| r.last()).is_some_and(|(_, p)| {
            let end = p.offset + p.length as u64;
            p.pack == loc.pack && end <= loc.offset && loc.offset - end <= gap && bytes < MAX_FETCH
        });
        if !joins {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += weight(&loc);
        if let Some(run) = out.last_mut() {
            run.push((id, loc));
        }
    }
    out
}

/// A segment is read whole unless more than this many of its blobs are not in the reading
/// file's directory and no other directory read from it in the last CLAIM: then only the
/// directory's blobs are read. Decoding costs by the blob, and a segment of many small
/// blobs that the directory does not need may hold the changes of many directories: a
/// later ingest of a tree where a few files of every directory changed (mail, a churned
/// `/srv`). Read whole, such a segment decoded 4,000 blobs (with their delta bases) for the
/// 40 a `cp -a` of one directory needed, once for every snapshot since: 469 s for 10,000
/// files after 50 snapshots (docs/benchmarks.md, "A million files", and "Sparse
/// segments"). A second directory reading from the segment soon after (the small
/// directories of `/usr/share/locale`, read one after the other by a `cp -a` of the tree)
/// reads it whole: its other blobs are what is read next.
const SPARSE_WASTE: usize = 1024;
/// How long a segment cut for one directory stays that directory's: another directory
/// reading from it within this time reads it whole.
const CLAIM: std::time::Duration = std::time::Duration::from_secs(60);
/// Directories whose files' chunk ids are kept (`note_listing`): as many as are read at
/// once, with room to spare.
const LISTINGS: NonZeroUsize = NonZeroUsize::new(16).unwrap();
/// A directory with more chunks than this keeps none, and its segments are read whole:
/// 16,384 ids take about 1.1 MB in a `HashSet`, 18 MB for all of LISTINGS.
pub const LISTING_CHUNKS: usize = 16_384;

/// How a segment was taken (`ChunkCache::ahead`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Taken {
    Whole,
    /// Cut to one directory's blobs: its inode, and when.
    Cut(u64, std::time::Instant),
}

/// The blobs stored in `pack` at byte offsets `from..to`, in pack order.
pub type PackLister = Box<dyn Fn(&BlobId, u64, u64) -> Vec<(BlobId, Location)> + Send + Sync>;
/// Where a delta's base is read: its nearest *whole* copy (`MasterIndex::get_whole`,
/// `Catalog::base_location`); a nearer copy of it may be a delta stored later at another
/// class, which cannot serve as a base.
pub type Locator = Box<dyn Fn(&BlobId) -> Option<Location> + Send + Sync>;

/// Who reads through the cache, which decides two trade-offs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// The mount: a reader that misses decodes only its own chunk and leaves the rest of
    /// the response to the prefetch threads (latency); every chunk is hashed against its
    /// id, since nothing downstream checks what a program reads.
    Mount,
    /// A restore: packs are read in whole windows (`segments`), each blob decoded by the
    /// writer that needs it; chunk ids are not hashed, because the caller checks every
    /// file's whole-content blake3 (or, for a file without one, each chunk with
    /// `check_id`).
    Restore,
}

pub struct ChunkCache {
    repo: Arc<Repository>,
    disk: Option<DiskCache>,
    lru: Mutex<ChunkLru>,
    budget: usize,
    /// Bytes (decoded) in prefetch jobs queued or being fetched: with `fresh_bytes`,
    /// how far ahead of its readers the cache already is.
    pending: AtomicU64,
    inflight: Mutex<HashMap<BlobId, Arc<Slot>>>,
    prefetch: Mutex<Option<Sender<Job>>>,
    lister: Option<PackLister>,
    locate: Locator,
    /// (pack, segment) already queued for read-ahead or read on a miss, and how: whole,
    /// or cut to one directory's blobs (`take_segment`). A restore's windows are here
    /// until fetched.
    ahead: Mutex<HashMap<(BlobId, u64), Taken>>,
    /// The chunk ids of recently listed directories' files, by directory inode
    /// (`note_listing`).
    listings: Mutex<LruCache<u64, Arc<HashSet<BlobId>>>>,
    /// Blobs in a queued prefetch job not taken by a prefetch thread yet: a sequential
    /// reader asks for the same read-ahead window at every read, and without this each
    /// ask queued it again (a restore queued 84 MB of job lists).
    queued: Mutex<HashSet<BlobId>>,
    mode: ReadMode,
    /// A restore's pack windows (`ReadMode::Restore`, `segments`).
    segments: Option<Segments>,
    pub fetches: AtomicU64,
}

impl ChunkCache {
    pub fn new(
        repo: Arc<Repository>,
        disk: Option<DiskCache>,
        lister: Option<PackLister>,
        locate: Locator,
        budget: usize,
        prefetch_threads: usize,
        mode: ReadMode,
    ) -> Arc<ChunkCache> {
        let cache = Arc::new(ChunkCache {
            repo,
            disk,
            lister,
            locate,
            mode,
            ahead: Mutex::new(HashMap::new()),
            listings: Mutex::new(LruCache::new(LISTINGS)),
            queued: Mutex::new(HashSet::new()),
            // A restore keeps only delta bases decoded; its windows take the rest.
            lru: Mutex::new(ChunkLru::new(match mode {
                ReadMode::Restore => budget / 4,
                ReadMode::Mount => budget - FETCH_RESERVE.min(budget / 4),
            })),
            pending: AtomicU64::new(0),
            budget,
            inflight: Mutex::new(HashMap::new()),
            prefetch: Mutex::new(None),
            segments: (mode == ReadMode::Restore).then(|| {
                let kept = (budget * 3 / 4 / segments::WINDOW_BYTES).max(segments::MIN_KEPT);
                Segments::new(
                    std::num::NonZeroUsize::new(kept).unwrap_or(std::num::NonZeroUsize::MIN),
                )
            }),
            fetches: AtomicU64::new(0),
        });
        let (tx, rx) = unbounded::<Job>();
        for _ in 0..prefetch_threads {
            let rx = rx.clone();
            let weak = Arc::downgrade(&cache);
            std::thread::spawn(move || {
                for job in rx {
                    let Some(cache) = weak.upgrade() else { break };
                    match job {
                        Job::Fetch(group) => {
                            cache.unqueue(&group);
                            if let Err(e) = cache.fetch(&group, true) {
                                tracing::debug!("prefetch failed: {e}");
                            }
                            // Counted ahead until fetched: then `fresh_bytes` counts it.
                            cache
                                .pending
                                .fetch_sub(decoded_size(&group), Ordering::Relaxed);
                        }
                        Job::Segment(loc) => {
                            if let Some(segs) = &cache.segments {
                                cache.prefetch_window(segs, &loc);
                            }
                        }
                        Job::Decode(slots) => {
                            for (id, slot) in slots {
                                cache.decode(id, &slot);
                            }
                        }
                        Job::Keep(pack, start, bytes) => {
                            if let Some(disk) = &cache.disk {
                                disk.put(&pack, start, &bytes);
                            }
                        }
                    }
                }
            });
        }
        *cache.prefetch.lock() = Some(tx);
        cache
    }

    fn cached(&self, id: &BlobId) -> Option<Decoded> {
        self.lru.lock().get(id)
    }

    fn insert(&self, id: BlobId, data: Decoded) {
        self.lru.lock().insert(id, data);
    }

    /// Fetches a run of chunks that are contiguous in one pack with one ranged read, or
    /// reads it from the disk cache. Chunks already cached or being fetched by someone else
    /// are skipped. The chunks are decoded here (`inline`, on a prefetch thread) or handed
    /// to the prefetch threads, while readers decode the ones they need first.
    fn fetch(&self, group: &[(BlobId, Location)], inline: bool) -> Result<()> {
        let mut missing = Vec::new();
        for (id, loc) in group {
            let mut inflight = self.inflight.lock();
            if !inflight.contains_key(id) && !self.lru.lock().contains(id) {
                let slot = Arc::new(Slot::default());
                inflight.insert(*id, slot.clone());
                missing.push((*id, *loc, slot));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        self.fetch_bases(
            missing
                .iter()
                .filter_map(|m| m.1.base)
                .flat_map(|b| b.ids()),
        );
        let from_net = self.read_cached(&missing);
        let mut result = Ok(());
        if let Some(first) = from_net.first() {
            let pack = first.1.pack;
            let (start, end) = span(from_net.iter().map(|m| &m.1));
            self.fetches.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(pack = %&pack.hex()[..8], start, blobs = from_net.len(), bytes = end - start, "fetch");
            let got = self
                .repo
                .get_raw(&pack_key(&pack), Some(start..end))
                .map(Arc::new)
                .map_err(|e| e.to_string());
            for (id, loc, slot) in &from_net {
                let a = (loc.offset - start) as usize;
                let raw = match &got {
                    Ok(bytes) if a + loc.length as usize <= bytes.len() => {
                        Ok((bytes.clone(), a..a + loc.length as usize))
                    }
                    Ok(_) => Err(format!("short read of pack {}", loc.pack.hex())),
                    Err(e) => Err(e.clone()),
                };
                if let Err(e) = &raw {
                    result = Err(Error::ReadFailed {
                        path: format!("chunk {}", id.hex()),
                        why: e.clone(),
                    });
                }
                let _ = slot.raw.set(raw);
            }
            // After the readers have their bytes, and off a reader's thread: no reader
            // waits for the disk.
            if let (Ok(bytes), Some(disk)) = (&got, &self.disk) {
                if bytes.len() as u64 == end - start {
                    match (inline, self.prefetch.lock().clone()) {
                        (false, Some(tx)) => {
                            let _ = tx.send(Job::Keep(pack, start, bytes.clone()));
                        }
                        _ => disk.put(&pack, start, bytes),
                    }
                }
            }
        }
        let slots: Vec<_> = missing.into_iter().map(|(id, _, s)| (id, s)).collect();
        let tx = if inline {
            None
        } else {
            self.prefetch.lock().clone()
        };
        match tx {
            Some(tx) => {
                let _ = tx.send(Job::Decode(slots));
            }
            None => {
                for (id, slot) in slots {
                    // A blob from the disk cache that fails is fetched again by whoever
                    // needs it (`chunk`, `base`): not a failure of this fetch.
                    if slot.cached_at.get().is_some() {
                        self.decode(id, &slot);
                        continue;
                    }
                    if let Some(Err(why)) = self.decode(id, &slot) {
                        result = Err(Error::ReadFailed {
                            path: format!("chunk {}", id.hex()),
                            why,
                        });
                    }
                }
            }
        }
        result
    }

    /// Fetches the delta bases not cached or in flight, in pack order, contiguous ones in
    /// one request each, decoded here: the deltas fetched next need them.
    fn fetch_bases(&self, bases: impl Iterator<Item = BlobId>) {
        let mut todo: Vec<(BlobId, Location)> = bases
            // In-flight before the LRU, as everywhere: both guards live to the end of the
            // expression, and the other order could deadlock with `to_queue`.
            .filter(|b| !self.inflight.lock().contains_key(b) && !self.lru.lock().contains(b))
            .filter_map(|b| Some((b, (self.locate)(&b)?)))
            // A base is whole (the locator finds only whole copies; belt and braces).
            .filter(|(_, l)| l.base.is_none())
            .collect();
        if todo.is_empty() {
            return;
        }
        todo.sort_by_key(|(_, l)| (l.pack, l.offset));
        todo.dedup_by_key(|(b, _)| *b);
        // Bases come from the generations in which each chunk was last stored whole, spread
        // over their packs between other blobs: reading over small gaps saves requests.
        for run in runs(todo, BASE_GAP) {
            let _ = self.fetch(&run, true);
        }
    }

    /// A delta's base, decoded: cached, being fetched, or fetched now (past the cache if
    /// others keep evicting it, as for chunks).
    fn base(&self, id: &BlobId) -> Result<Decoded> {
        let what = || format!("delta base {}", id.hex());
        let loc = (self.locate)(id).ok_or_else(|| Error::corrupt(what(), "in no index"))?;
        if loc.base.is_some() {
            return Err(Error::corrupt(what(), "is itself a delta"));
        }
        // A restore reads bases from their windows too; kept decoded, as many deltas
        // may need one.
        if let Some(segs) = &self.segments {
            if let Some(d) = self.cached(id) {
                return Ok(d);
            }
            let d = self.window_chunk(segs, id, &loc, &what(), true)?;
            self.insert(*id, d.clone());
            return Ok(d);
        }
        for _ in 0..3 {
            if let Some(d) = self.cached(id) {
                return Ok(d);
            }
            let slot = self.inflight.lock().get(id).cloned();
            match slot {
                Some(slot) => {
                    self.decode(*id, &slot);
                    let got = slot.done.wait().clone();
                    if got.is_err() && slot.cached_at.get().is_some() {
                        continue; // a damaged disk-cache entry, now dropped
                    }
                    return got.map_err(|e| Error::corrupt(what(), e));
                }
                None => self.fetch(&[(*id, loc)], true)?,
            }
        }
        self.direct(id, &loc)
    }

    /// Decodes a blob, fetching its base first if it is a delta.
    fn decode_blob(&self, id: &BlobId, enc: &[u8]) -> Result<Vec<u8>> {
        self.decode_noting(id, enc, &std::cell::Cell::new(false))
    }

    /// `decode_blob`, setting `base_failed` when the failure was getting a delta's base
    /// (the server down, say) rather than this blob's own bytes.
    fn decode_noting(
        &self,
        id: &BlobId,
        enc: &[u8],
        base_failed: &std::cell::Cell<bool>,
    ) -> Result<Vec<u8>> {
        let base = |b: &BlobId| {
            let got = self.base(b);
            base_failed.set(base_failed.get() || got.is_err());
            got
        };
        match self.mode {
            ReadMode::Mount => self.repo.decode_blob_with(id, enc, &base),
            ReadMode::Restore => self.repo.open_blob(id, enc, &base),
        }
        .map(|d| d.raw)
    }

    /// For a restore's file without a whole-content blake3: its chunk's bytes against the
    /// chunk's id (`ReadMode::Restore` does not hash them).
    pub fn check_id(&self, id: &BlobId, data: &[u8]) -> Result<()> {
        self.repo.verify_id(id, data)
    }

    /// Decodes a fetched chunk unless someone else already claimed it (None then).
    fn decode(&self, id: BlobId, slot: &Slot) -> Option<Outcome<()>> {
        if slot.claimed.swap(true, Ordering::AcqRel) {
            return None;
        }
        let decoded = match slot.raw.wait() {
            Ok((bytes, range)) => {
                let enc = &bytes[range.clone()];
                let base_failed = std::cell::Cell::new(false);
                let d = self
                    .decode_noting(&id, enc, &base_failed)
                    .map(Arc::new)
                    .map_err(|e| e.to_string());
                // Only the blob's own bytes failing condemns its entry: a base that could
                // not be fetched says nothing about them.
                if let (Err(e), Some((pack, a, b)), Some(disk), false) =
                    (&d, slot.cached_at.get(), &self.disk, base_failed.get())
                {
                    tracing::warn!(
                        "disk cache entry for {} damaged, fetching again: {e}",
                        id.hex()
                    );
                    disk.remove(pack, *a, *b);
                }
                d
            }
            Err(e) => Err(e.clone()),
        };
        let outcome = decoded.as_ref().map(|_| ()).map_err(|e| e.clone());
        self.complete(id, slot, decoded);
        Some(outcome)
    }

    /// Publishes a chunk's outcome: to the LRU, and to everyone waiting on its slot.
    fn complete(&self, id: BlobId, slot: &Slot, decoded: Outcome<Decoded>) {
        if let Ok(d) = &decoded {
            self.insert(id, d.clone());
        }
        let _ = slot.done.set(decoded);
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
            total += weight(&loc);
            out.push((f.chunks[i].id, loc));
            if total >= limit {
                break;
            }
        }
        out
    }

    /// A chunk, decoded. It is cached, being fetched (waited for), or fetched now: with the
    /// rest of its pack segment on the first try, alone after that. Under cache pressure a
    /// chunk can be evicted between being decoded and being looked up, or be claimed by a
    /// fetch that then skips it: after a few tries it is read past the cache, so a reader
    /// never fails because others fill the cache.
    fn chunk(&self, f: &OpenFile, i: usize) -> Result<Decoded> {
        let id = f.chunks[i].id;
        let Some(loc) = f.locs[i] else {
            return Err(Error::corrupt(
                &f.path,
                format!("chunk {} is in no index", id.hex()),
            ));
        };
        if let Some(segs) = &self.segments {
            return self.window_chunk(segs, &id, &loc, &f.path, false);
        }
        self.pack_ahead(&loc, f);
        let failed = |why| Error::ReadFailed {
            path: f.path.clone(),
            why,
        };
        for attempt in 0..3 {
            if let Some(d) = self.cached(&id) {
                return Ok(d);
            }
            let mut slot = self.inflight.lock().get(&id).cloned();
            if slot.is_none() {
                // The whole pack segment in one request (its other blobs are what is read
                // next), or, without a lister or in a segment of deltas, this file's next
                // chunks.
                let group = match self.segment(&loc, loc.offset / SEGMENT) {
                    Some(g)
                        if attempt == 0
                            && g.iter().any(|(gid, _)| *gid == id)
                            && total_weight(&g) <= 2 * SEGMENT =>
                    {
                        let key = (loc.pack, loc.offset / SEGMENT);
                        self.our_run(self.take_segment(key, g, f, &id), &id)
                    }
                    _ if attempt == 0 => self.run_from(f, i, 1024 * 1024),
                    _ => vec![(id, loc)],
                };
                let _ = self.fetch(&group, false);
                slot = self.inflight.lock().get(&id).cloned();
            }
            if let Some(slot) = slot {
                self.decode(id, &slot);
                let got = slot.done.wait().clone().map_err(failed);
                if got.is_err() && slot.cached_at.get().is_some() {
                    continue; // a damaged disk-cache entry, now dropped: fetch it
                }
                // Read now: from here on it may be evicted before what is still unread.
                self.cached(&id);
                return got;
            }
        }
        self.direct(&id, &loc).map_err(|e| failed(e.to_string()))
    }

    /// One blob fetched and decoded past the cache (and its in-flight bookkeeping).
    fn direct(&self, id: &BlobId, loc: &Location) -> Result<Decoded> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let end = loc.offset + loc.length as u64;
        let enc = self
            .repo
            .get_raw(&pack_key(&loc.pack), Some(loc.offset..end))?;
        if enc.len() != loc.length as usize {
            return Err(Error::corrupt(
                format!("pack {}", loc.pack.hex()),
                "short read",
            ));
        }
        self.decode_blob(id, &enc).map(Arc::new)
    }

    /// Reads `size` bytes at `offset`; holes read as zeros. A read within one chunk (most
    /// FUSE reads, every restore read) is a slice of one decoded chunk: no copy.
    pub fn read(&self, f: &OpenFile, offset: u64, size: u32) -> Result<ReadBuf> {
        let end = (offset + size as u64).min(f.size);
        if offset >= end {
            return Ok(ReadBuf::Owned(Vec::new()));
        }
        let mut i = f.first_chunk(offset);
        let first = i;
        let mut out: Option<Vec<u8>> = None;
        let mut single = None;
        while i < f.chunks.len() && f.chunks[i].offset < end {
            let c = f.chunks[i];
            let data = self.chunk(f, i)?;
            if data.len() != c.len as usize {
                return Err(Error::corrupt(
                    &f.path,
                    format!("chunk {} is not {} bytes long", c.id.hex(), c.len),
                ));
            }
            let (a, b) = (c.offset.max(offset), (c.offset + c.len as u64).min(end));
            let within = (a - c.offset) as usize..(b - c.offset) as usize;
            if a == offset && b == end {
                single = Some(ReadBuf::Chunk(data, within));
            } else {
                // Built in order, zeros only where a hole is: zero-filling the whole buffer
                // first wrote every byte twice (each file pushed ahead of a reader is such
                // a read). Chunks come in offset order and never overlap.
                let v = out.get_or_insert_with(|| spare::take((end - offset) as usize));
                let at = (a - offset) as usize;
                if at < v.len() {
                    return Err(Error::corrupt(
                        &f.path,
                        format!("chunk {} overlaps the one before it", c.id.hex()),
                    ));
                }
                v.resize(at, 0);
                v.extend_from_slice(&data[within]);
            }
            i += 1;
        }
        let sequential = f.next_offset.swap(end, Ordering::Relaxed) == offset;
        if (sequential || offset == 0) && self.segments.is_none() {
            self.read_ahead(f, i.max(first + 1));
        }
        Ok(match (single, out) {
            (Some(one), _) => one,
            (None, Some(mut v)) => {
                // A hole after the last chunk.
                v.resize((end - offset) as usize, 0);
                ReadBuf::Owned(v)
            }
            // All hole.
            (None, None) => ReadBuf::Owned(vec![0u8; (end - offset) as usize]),
        })
    }
}

/// The bytes of a read: a range of one cached chunk, or assembled from several (and holes).
pub enum ReadBuf {
    Chunk(Decoded, std::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        if let ReadBuf::Owned(v) = self {
            spare::give_back(std::mem::take(v));
        }
    }
}

impl std::ops::Deref for ReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ReadBuf::Chunk(d, r) => &d[r.clone()],
            ReadBuf::Owned(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::compress::Bases;
    use crate::repo::pack::BlobKind;

    fn blob(pack: u8, offset: u64, length: u32, delta: bool) -> (BlobId, Location) {
        let loc = Location {
            pack: BlobId([pack; 32]),
            kind: BlobKind::Data,
            offset,
            length,
            raw_len: 64 * 1024,
            tier: 0,
            base: delta.then(|| Bases::one(BlobId([9; 32]))),
        };
        (BlobId([offset as u8; 32]), loc)
    }

    #[test]
    fn a_span_covers_its_blobs_in_any_order() {
        // (blobs as (offset, length), expected span)
        type Case = (Vec<(u64, u32)>, (u64, u64));
        let cases: Vec<Case> = vec![
            (vec![(100, 50)], (100, 150)),
            (vec![(300, 10), (100, 50)], (100, 310)),
            (vec![(0, 4096), (4096, 10), (5000, 1)], (0, 5001)),
        ];
        for (blobs, want) in cases {
            let locs: Vec<Location> = blobs
                .iter()
                .map(|(o, l)| blob(1, *o, *l, false).1)
                .collect();
            assert_eq!(span(locs.iter()), want);
        }
    }

    #[test]
    fn runs_are_contiguous_in_one_pack_and_bounded_by_weight() {
        let mb = 1024 * 1024;
        // (blobs, expected run lengths)
        let cases: Vec<(Group, Vec<usize>)> = vec![
            (vec![], vec![]),
            (
                vec![blob(1, 0, 100, false), blob(1, 100, 50, false)],
                vec![2],
            ),
            // a gap splits
            (
                vec![blob(1, 0, 100, false), blob(1, 150, 50, false)],
                vec![1, 1],
            ),
            // another pack splits
            (
                vec![blob(1, 0, 100, false), blob(2, 100, 50, false)],
                vec![1, 1],
            ),
            // whole blobs: 3 MiB + 2 MiB, the third starts a run once 4 MiB is passed
            (
                vec![
                    blob(1, 0, 3 * mb, false),
                    blob(1, 3 * mb as u64, 2 * mb, false),
                    blob(1, 5 * mb as u64, 10, false),
                ],
                vec![2, 1],
            ),
            // deltas of 1 KiB weigh 64 KiB each: 64 of them make one run
            (
                (0..100).map(|i| blob(1, i * 1024, 1024, true)).collect(),
                vec![64, 36],
            ),
        ];
        for (blobs, want) in cases {
            let got: Vec<usize> = runs(blobs, 0).iter().map(Vec::len).collect();
            assert_eq!(got, want);
        }
    }
}
