//! A restore's pack reads: aligned windows of a pack, each fetched once with one request
//! for exactly its bytes and kept encoded in a small LRU, each blob decoded by the writer
//! that needs it (a blob across a window's end from both), the next windows of the pack read
//! ahead on the prefetch threads. The restore tells the cache which chunks its queued files
//! will read (`Segments::expect`): a window none of them needs any more is the next evicted,
//! and only windows one of them needs are read ahead.
//!
//! Why: a restore that fetched only the blobs of the files it had queued made one request
//! per newly queued file once its read-ahead had passed: over Garage 519-682 ranged GETs
//! for a 361-381 MB snapshot, most under 256 KiB, and Garage reads whole 1 MiB blocks for
//! each (1.4-1.8 s of its CPU against restic's 0.9 s on the same data). Packs hold files in
//! the order a restore writes them, so whole windows are what it needs next
//! (docs/benchmarks.md, "Restore by pack window", "Restore windows on block boundaries").
//!
//! Memory: the windows kept (three quarters of `--cache-mib`), plus one being fetched per
//! prefetch thread and per writer, each up to `WINDOW`; a writer reading a blob across
//! windows also holds each window it lies in (kept or not) and the blob joined, until it is
//! decoded.
//!
//! The cost: where a snapshot's files lie among many other versions (weeks of churn, no
//! prune), a window also holds blobs the restore does not need; they are read and dropped,
//! never decoded. Windows are small for that reason.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use lru::LruCache;
use parking_lot::Mutex;

use super::{ChunkCache, Decoded, Job, Taken};
use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::index::Location;
use crate::repo::pack::pack_key;

/// A restore reads packs in aligned windows of this many bytes, each with one request.
/// Over Garage, 2 and 4 MiB restored bench/run.sh's corpus in the same time (4.7-5.5 s
/// over four rounds each, 1 MiB 5.2-5.8 s); the smaller window reads less that is not
/// needed where a snapshot's files lie among many other versions.
const WINDOW: u64 = 2 << 20;
/// Windows kept encoded: three quarters of the restore's cache (`--cache-mib`), at least
/// this many; the rest holds delta bases, decoded.
pub(super) const MIN_KEPT: usize = 4;
pub(super) const WINDOW_BYTES: usize = WINDOW as usize;
/// Windows of a pack read ahead of a restore's writers.
const AHEAD: u64 = 3;

/// A window's bytes as fetched, from `start` in its pack.
pub struct Seg {
    pub start: u64,
    pub bytes: Vec<u8>,
}

impl Seg {
    /// The blob at `loc`, if this window holds all of it.
    pub fn blob(&self, loc: &Location) -> Option<&[u8]> {
        let a = usize::try_from(loc.offset.checked_sub(self.start)?).ok()?;
        self.bytes.get(a..a.checked_add(loc.length as usize)?)
    }

    /// The part of the blob at `loc` that lies in this window: all of it from the
    /// window's start on, or none when the window ends short of where it should.
    fn part(&self, loc: &Location) -> Option<&[u8]> {
        let from = loc.offset.max(self.start);
        let to = (loc.offset + loc.length as u64).min(self.start + WINDOW);
        let a = usize::try_from(from.checked_sub(self.start)?).ok()?;
        let b = usize::try_from(to.checked_sub(self.start)?).ok()?;
        self.bytes.get(a..b)
    }
}

/// The windows the blob at `loc` lies in.
fn windows_of(loc: &Location) -> std::ops::RangeInclusive<u64> {
    let end = loc.offset + (loc.length as u64).max(1);
    loc.offset / WINDOW..=(end - 1) / WINDOW
}

type Key = (BlobId, u64);
type Fetched = Result<Arc<Seg>, String>;

pub struct Segments {
    lru: Mutex<LruCache<Key, Arc<Seg>>>,
    inflight: Mutex<HashMap<Key, Arc<OnceLock<Fetched>>>>,
    /// Reads still to come from each window, by the files queued for the writers
    /// (`expect`, `release`): a window no queued file needs is the next evicted, and only
    /// windows some file needs are read ahead.
    demand: Mutex<HashMap<Key, u32>>,
}

impl Segments {
    pub fn new(kept: NonZeroUsize) -> Self {
        Segments {
            lru: Mutex::new(LruCache::new(kept)),
            inflight: Mutex::new(HashMap::new()),
            demand: Mutex::new(HashMap::new()),
        }
    }

    /// A queued file will read the blob at `loc`.
    pub fn expect(&self, loc: &Location) {
        let mut demand = self.demand.lock();
        for w in windows_of(loc) {
            *demand.entry((loc.pack, w)).or_default() += 1;
        }
    }

    /// A read `expect`ed is done (or will never come: its file failed). A window with no
    /// reads left is the next evicted: kept in recency order, it evicted windows still
    /// needed, and a restore over Garage fetched 39 of its 169 windows two to five times
    /// (docs/benchmarks.md, "Restore windows on block boundaries"). Not dropped at once:
    /// the walk may queue the next files from it a moment later.
    pub fn release(&self, loc: &Location) {
        let mut demand = self.demand.lock();
        for w in windows_of(loc) {
            let key = (loc.pack, w);
            if let Some(n) = demand.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    demand.remove(&key);
                    self.lru.lock().demote(&key);
                }
            }
        }
    }

    /// Makes a window no queued file reads from the next evicted (one read for a delta's
    /// base only: the base is kept decoded).
    fn demote_unwanted(&self, key: &Key) {
        if !self.wanted(key) {
            self.lru.lock().demote(key);
        }
    }

    /// Some queued file reads from this window.
    fn wanted(&self, key: &Key) -> bool {
        self.demand.lock().contains_key(key)
    }

    /// Kept or being fetched.
    pub fn has(&self, key: &Key) -> bool {
        self.inflight.lock().contains_key(key) || self.lru.lock().contains(key)
    }

    /// The window: kept, being fetched by another thread (waited for), or fetched here
    /// with `fetch`. One fetch per window at a time. One LRU for windows read ahead and
    /// windows in use: protecting read-ahead not used yet from eviction (as `ChunkLru`
    /// does for chunks) evicted windows still in use by other writers instead, and a
    /// restore over Garage read 1.55 GB for a 381 MB repository.
    pub fn get(&self, key: Key, fetch: impl FnOnce() -> Result<Seg, String>) -> Fetched {
        let (slot, mine) = {
            let mut inflight = self.inflight.lock();
            if let Some(s) = self.lru.lock().get(&key) {
                return Ok(s.clone());
            }
            match inflight.get(&key) {
                Some(s) => (s.clone(), false),
                None => {
                    let s = Arc::new(OnceLock::new());
                    inflight.insert(key, s.clone());
                    (s, true)
                }
            }
        };
        if !mine {
            return slot.wait().clone();
        }
        // Whatever happens in `fetch`, a panic included, the slot is settled and released,
        // so nobody waiting on it waits forever.
        let mut settle = Settle {
            segs: self,
            key,
            slot,
            got: Err("fetching the pack window failed".into()),
        };
        settle.got = fetch().map(Arc::new);
        settle.got.clone()
    }
}

/// Publishes a fetch's outcome when dropped: to the LRU, to whoever waits on the slot, and
/// out of `inflight`.
struct Settle<'a> {
    segs: &'a Segments,
    key: Key,
    slot: Arc<OnceLock<Fetched>>,
    got: Fetched,
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        let mut inflight = self.segs.inflight.lock();
        if let Ok(s) = &self.got {
            self.segs.lru.lock().put(self.key, s.clone());
        }
        let _ = self.slot.set(self.got.clone());
        inflight.remove(&self.key);
    }
}

impl ChunkCache {
    /// A restore's file is queued: these of its chunks will be read (`Segments::expect`).
    pub fn expect(&self, locs: &[Option<Location>]) {
        if let Some(segs) = &self.segments {
            locs.iter().flatten().for_each(|l| segs.expect(l));
        }
    }

    /// These of a restore's file's chunks have been read, or never will be.
    pub fn release(&self, locs: &[Option<Location>]) {
        if let Some(segs) = &self.segments {
            locs.iter().flatten().for_each(|l| segs.release(l));
        }
    }

    /// A prefetch thread's job: the window `first` (a blob) starts in, unless a writer
    /// got there first (then it may be used and gone already: fetching it again would only
    /// evict another) or no queued file needs it any more (its file failed).
    pub(super) fn prefetch_window(&self, segs: &Segments, first: &Location) {
        let key = (first.pack, first.offset / WINDOW);
        if self.ahead.lock().remove(&key).is_some() && segs.wanted(&key) {
            let _ = segs.get(key, || self.fetch_window(key.1, first));
        }
    }

    /// A restore's chunk (`base`: a delta's base), decoded here from its window (or the
    /// windows it straddles), each fetched whole once.
    pub(super) fn window_chunk(
        &self,
        segs: &Segments,
        id: &BlobId,
        loc: &Location,
        path: &str,
        base: bool,
    ) -> Result<Decoded> {
        let failed = |why| Error::ReadFailed {
            path: path.to_string(),
            why,
        };
        let mut windows = Vec::new();
        for w in windows_of(loc) {
            let key = (loc.pack, w);
            // Read now, by a writer: a prefetch job still queued for it has nothing to do.
            self.ahead.lock().remove(&key);
            windows.push(
                segs.get(key, || self.fetch_window(w, loc))
                    .map_err(failed)?,
            );
        }
        if base {
            windows_of(loc).for_each(|w| segs.demote_unwanted(&(loc.pack, w)));
        } else {
            self.windows_ahead(segs, loc);
        }
        let got = match windows.as_slice() {
            [one] => one.blob(loc).map(|enc| self.decode_blob(id, enc)),
            // A blob across a window's end: its parts joined (a copy of one blob).
            many => {
                let parts: Option<Vec<&[u8]>> = many.iter().map(|s| s.part(loc)).collect();
                parts
                    .map(|p| p.concat())
                    .filter(|enc| enc.len() == loc.length as usize)
                    .map(|enc| self.decode_blob(id, &enc))
            }
        };
        // A blob the windows do not hold whole (a delta's base is found by `locate`, and
        // may not be listed where the window was cut): read on its own.
        let got = match got {
            Some(d) => d.map(Arc::new),
            None => self.direct(id, loc),
        };
        got.map_err(|e| failed(e.to_string()))
    }

    /// Window `w` of `loc`'s pack, `loc` being a blob that lies in it, with one request
    /// for exactly its bytes: from the window's start to its end or to the end of the
    /// last blob in it, whichever comes first. Requests on window boundaries, not blob
    /// boundaries: Garage stores an object in 1 MiB blocks and reads every block a range
    /// touches whole, so ranges cut at blobs read the block at each cut twice (bytes
    /// read: 1.5x the window's; docs/benchmarks.md, "Restore windows on block
    /// boundaries").
    fn fetch_window(&self, w: u64, loc: &Location) -> std::result::Result<Seg, String> {
        let start = w * WINDOW;
        let listed = self
            .lister
            .as_ref()
            .map_or_else(Vec::new, |l| l(&loc.pack, start, start + WINDOW));
        let end = listed
            .iter()
            .map(|(_, l)| l.offset + l.length as u64)
            .chain([loc.offset + loc.length as u64])
            .max()
            .unwrap_or(start)
            .min(start + WINDOW);
        if end <= start {
            return Err(format!("pack {}: window {w} holds no blob", loc.pack.hex()));
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(pack = %&loc.pack.hex()[..8], start, blobs = listed.len(), bytes = end - start, "fetch");
        let bytes = self
            .repo
            .get_raw(&pack_key(&loc.pack), Some(start..end))
            .map_err(|e| e.to_string())?;
        // A short pack, or a store that ignored the range: never kept as this window.
        if bytes.len() as u64 != end - start {
            return Err(format!(
                "pack {}: asked for bytes {start}..{end}, got {}",
                loc.pack.hex(),
                bytes.len()
            ));
        }
        Ok(Seg { start, bytes })
    }

    /// Queues the windows of `loc`'s pack after the last one it lies in for the prefetch
    /// threads, once each.
    fn windows_ahead(&self, segs: &Segments, loc: &Location) {
        let Some(lister) = self.lister.as_ref() else {
            return;
        };
        let w = *windows_of(loc).end();
        for n in w + 1..=w + AHEAD {
            let key = (loc.pack, n);
            if !segs.wanted(&key) || segs.has(&key) || self.ahead.lock().contains_key(&key) {
                continue;
            }
            // A window where no blob starts (one large blob covers it, or the pack ended):
            // read with that blob, on demand.
            let Some((_, first)) = lister(&loc.pack, n * WINDOW, (n + 1) * WINDOW)
                .into_iter()
                .next()
            else {
                continue;
            };
            self.ahead.lock().insert(key, Taken::Whole);
            if let Some(tx) = self.prefetch.lock().clone() {
                let _ = tx.send(Job::Segment(first));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn loc(offset: u64, length: u32) -> Location {
        Location::test(1, offset, length)
    }

    #[test]
    fn a_blob_is_served_only_when_the_segment_holds_all_of_it() {
        let seg = Seg {
            start: 100,
            bytes: (0..50).collect(),
        };
        let cases: &[(u64, u32, Option<std::ops::Range<u8>>)] = &[
            (100, 10, Some(0..10)),
            (140, 10, Some(40..50)),
            (145, 10, None), // runs past what was fetched (a short read)
            (90, 5, None),   // before it
            (150, 1, None),
        ];
        for (offset, length, want) in cases {
            let got = seg.blob(&loc(*offset, *length)).map(<[u8]>::to_vec);
            assert_eq!(
                got,
                want.clone().map(|r| r.collect::<Vec<u8>>()),
                "{offset}+{length}"
            );
        }
    }

    #[test]
    fn a_blob_s_windows_and_its_part_in_each() {
        let w = WINDOW;
        // (blob offset, length, windows it lies in, its part in window `w` (start 2W) as a
        // range of the window's bytes)
        type Case = (
            u64,
            u32,
            std::ops::RangeInclusive<u64>,
            Option<(usize, usize)>,
        );
        let cases: &[Case] = &[
            (0, 10, 0..=0, None),
            (w - 10, 10, 0..=0, None), // ends right at the boundary
            (w - 10, 11, 0..=1, None), // one byte past it
            (2 * w - 5, 10, 1..=2, Some((0, 5))),
            (2 * w + 100, 50, 2..=2, Some((100, 150))),
            (3 * w - 5, 10, 2..=3, Some((w as usize - 5, w as usize))),
            (w, 3 * w as u32, 1..=3, Some((0, w as usize))), // covers it
        ];
        let seg = Seg {
            start: 2 * w,
            bytes: vec![0; w as usize],
        };
        for (offset, length, windows, part) in cases {
            let l = loc(*offset, *length);
            assert_eq!(windows_of(&l), windows.clone(), "{offset}+{length}");
            let got = seg.part(&l).map(|p| {
                let a = p.as_ptr() as usize - seg.bytes.as_ptr() as usize;
                (a, a + p.len())
            });
            assert_eq!(got, *part, "{offset}+{length}");
        }
    }

    #[test]
    fn a_window_no_queued_file_reads_from_is_dropped_before_one_still_needed() {
        let segs = Segments::new(NonZeroUsize::new(2).expect("2"));
        let at = |w: u64| Location::test(1, w * WINDOW, 10);
        let fetch = |w: u64| {
            move || {
                Ok(Seg {
                    start: w * WINDOW,
                    bytes: vec![1; 10],
                })
            }
        };
        let key = |w: u64| (at(w).pack, w);
        for w in [0, 1] {
            segs.expect(&at(w));
        }
        assert!(segs.wanted(&key(0)) && !segs.wanted(&key(2)));
        for w in [0, 1, 0] {
            assert!(segs.get(key(w), fetch(w)).is_ok());
        }
        // Window 0 was read last, but nothing needs it any more; window 1 is still needed.
        segs.release(&at(0));
        assert!(segs.has(&key(0)), "kept while there is room");
        assert!(segs.get(key(2), fetch(2)).is_ok());
        assert!(!segs.has(&key(0)), "the first evicted once room is needed");
        assert!(
            segs.has(&key(1)),
            "still needed, so not evicted for window 2"
        );
        // Two reads expected: one release leaves it wanted, the second makes it the next
        // evicted although window 2 is older.
        segs.expect(&at(1));
        segs.release(&at(1));
        assert!(segs.wanted(&key(1)));
        segs.release(&at(1));
        assert!(!segs.wanted(&key(1)));
        assert!(segs.get(key(3), fetch(3)).is_ok());
        assert!(segs.has(&key(2)) && !segs.has(&key(1)));
    }

    #[test]
    fn blobs_across_window_boundaries_come_from_aligned_windows_each_fetched_once() {
        use crate::repo::index::MasterIndex;
        use crate::repo::pack::BlobKind;
        use crate::repo::packer::Packer;
        use crate::repo::Repository;
        use crate::store::memory::MemoryStore;

        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let repo = Repository::init(Arc::new(MemoryStore::new()), rt.handle().clone(), b"pw")
            .expect("init");
        let repo = Arc::new(repo);
        // Nine blobs of 700 kB in one pack: two of them lie across a window's end.
        let data: Vec<Vec<u8>> = (0..9)
            .map(|n| crate::repo::compress::noise(700_000, 0x9e37_79b9 * (n + 1)))
            .collect();
        let ids: Vec<BlobId> = data.iter().map(|d| repo.keys().blob_id(d)).collect();
        let written = std::thread::scope(|scope| {
            let packer = Packer::start(scope, &repo, None, repo.compression());
            for (id, d) in ids.iter().zip(&data) {
                packer.add(*id, d.clone(), BlobKind::Data).expect("add");
            }
            packer.finish().map_err(|(e, _)| e).expect("finish")
        });
        assert_eq!(written.packs.len(), 1, "one pack");
        let mut index = MasterIndex::default();
        index.add_packs(&written.packs, |_| true);
        index.seal();
        let index = Arc::new(index);
        let locs: Vec<Location> = ids
            .iter()
            .map(|id| index.get(id).expect("indexed"))
            .collect();
        let end = locs
            .iter()
            .map(|l| l.offset + l.length as u64)
            .max()
            .unwrap_or(0);
        let straddling = locs.iter().filter(|l| windows_of(l).count() > 1).count();
        assert!(
            straddling >= 2,
            "the test needs blobs across a window's end"
        );

        let (i1, i2) = (index.clone(), index.clone());
        let cache = ChunkCache::new(
            repo.clone(),
            None,
            Some(Box::new(move |p, a, b| i1.pack_blobs(p, a, b))),
            Box::new(move |id| i2.get_whole(id)),
            32 << 20,
            0, // no prefetch threads: every window is fetched by the reader, in order
            super::super::ReadMode::Restore,
        );
        let segs = cache.segments.as_ref().expect("a restore's cache");
        let queued: Vec<Option<Location>> = locs.iter().copied().map(Some).collect();
        cache.expect(&queued);
        // Out of pack order, last blob first: each window once all the same.
        let n = locs.len();
        let order = (0..n)
            .rev()
            .step_by(2)
            .chain((0..n).rev().skip(1).step_by(2));
        for i in order {
            let (id, l, want) = (&ids[i], &locs[i], &data[i]);
            let got = cache
                .window_chunk(segs, id, l, "f", false)
                .expect("decoded");
            assert!(got.as_slice() == want.as_slice(), "blob at {}", l.offset);
            for w in windows_of(l) {
                let kept = segs.lru.lock().peek(&(l.pack, w)).cloned();
                if let Some(seg) = kept {
                    assert_eq!(seg.start, w * WINDOW, "a window starts on its boundary");
                    assert!(seg.bytes.len() as u64 <= WINDOW);
                }
            }
            cache.release(std::slice::from_ref(&Some(*l)));
        }
        // Each window once, none again for the blobs that lie across two.
        assert_eq!(cache.fetches.load(Ordering::Relaxed), end.div_ceil(WINDOW));
        assert!(segs.demand.lock().is_empty(), "no read left");
    }

    #[test]
    fn a_segment_is_fetched_once_however_many_ask_and_again_after_a_failure() {
        let segs = Segments::new(NonZeroUsize::MIN);
        let fetched = AtomicUsize::new(0);
        let key = (BlobId([2; 32]), 0);
        let fetch = || {
            fetched.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(Seg {
                start: 0,
                bytes: vec![7; 4],
            })
        };
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert!(segs.get(key, fetch).is_ok()));
            }
        });
        assert_eq!(
            fetched.load(Ordering::SeqCst),
            1,
            "one fetch for four readers"
        );
        assert!(segs.get(key, fetch).is_ok());
        assert_eq!(fetched.load(Ordering::SeqCst), 1, "then kept");
        // A failure is not kept: the next reader asks the store again.
        let other = (BlobId([3; 32]), 0);
        assert!(segs.get(other, || Err("gone".into())).is_err());
        assert!(segs.get(other, fetch).is_ok());
        // The LRU keeps one: the first was evicted and is fetched again.
        assert!(segs.get(key, fetch).is_ok());
        assert_eq!(fetched.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_fetch_that_panics_leaves_nobody_waiting_and_the_next_reader_fetches() {
        let segs = Segments::new(NonZeroUsize::MIN);
        let key = (BlobId([4; 32]), 0);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            segs.get(key, || panic!("a bug in fetch"))
        }));
        assert!(panicked.is_err());
        assert!(!segs.has(&key), "not left in flight");
        let got = segs.get(key, || {
            Ok(Seg {
                start: 0,
                bytes: vec![1],
            })
        });
        assert!(got.is_ok());
    }
}
