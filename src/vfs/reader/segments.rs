//! A restore's pack reads: aligned windows of a pack, each fetched once with one request and
//! kept encoded in a small LRU, each blob decoded by the writer that needs it, the next
//! windows of the pack read ahead on the prefetch threads.
//!
//! Why: a restore that fetched only the blobs of the files it had queued made one request
//! per newly queued file once its read-ahead had passed: over Garage 519-682 ranged GETs
//! for a 361-381 MB snapshot, most under 256 KiB, and Garage reads whole 1 MiB blocks for
//! each (1.4-1.8 s of its CPU against restic's 0.9 s on the same data). Packs hold files in
//! the order a restore writes them, so whole windows are what it needs next
//! (docs/benchmarks.md, "Restore by pack window").
//!
//! Memory: the windows kept (three quarters of `--cache-mib`), plus one being fetched per
//! prefetch thread and per writer, each up to `WINDOW` plus the repository's largest chunk.
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

/// A restore reads packs in aligned windows of this many bytes (the blobs that start in
/// one, with one request). Over Garage, 2 and 4 MiB restored bench/run.sh's corpus in the
/// same time (4.7-5.5 s over four rounds each, 1 MiB 5.2-5.8 s); the smaller window reads
/// less that is not needed where a snapshot's files lie among many other versions.
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
}

type Key = (BlobId, u64);
type Fetched = Result<Arc<Seg>, String>;

pub struct Segments {
    lru: Mutex<LruCache<Key, Arc<Seg>>>,
    inflight: Mutex<HashMap<Key, Arc<OnceLock<Fetched>>>>,
}

impl Segments {
    pub fn new(kept: NonZeroUsize) -> Self {
        Segments {
            lru: Mutex::new(LruCache::new(kept)),
            inflight: Mutex::new(HashMap::new()),
        }
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
    /// A prefetch thread's job: the window holding `loc`, unless a writer got there first
    /// (then it may be used and gone already: fetching it again would only evict another).
    pub(super) fn prefetch_window(&self, segs: &Segments, loc: &Location) {
        let key = (loc.pack, loc.offset / WINDOW);
        if self.ahead.lock().remove(&key).is_some() {
            let _ = segs.get(key, || self.fetch_window(loc));
        }
    }

    /// A restore's chunk (`base`: a delta's base), decoded here from its window, which is
    /// fetched whole once.
    pub(super) fn window_chunk(
        &self,
        segs: &Segments,
        id: &BlobId,
        loc: &Location,
        path: &str,
        base: bool,
    ) -> Result<Decoded> {
        let key = (loc.pack, loc.offset / WINDOW);
        // Read now, by a writer: a prefetch job still queued for it has nothing to do.
        self.ahead.lock().remove(&key);
        let window = segs.get(key, || self.fetch_window(loc));
        if !base {
            self.windows_ahead(segs, loc);
        }
        let failed = |why| Error::ReadFailed {
            path: path.to_string(),
            why,
        };
        let got = match window.map_err(failed)?.blob(loc) {
            Some(enc) => self.decode_blob(id, enc).map(Arc::new),
            // A blob that does not start in this window's listing (a delta's base is found
            // by `locate`, not listed): read on its own.
            None => self.direct(id, loc),
        };
        got.map_err(|e| failed(e.to_string()))
    }

    /// The blobs that start in `loc`'s window, with one request.
    fn fetch_window(&self, loc: &Location) -> std::result::Result<Seg, String> {
        let w = loc.offset / WINDOW;
        let listed = self
            .lister
            .as_ref()
            .map_or_else(Vec::new, |l| l(&loc.pack, w * WINDOW, (w + 1) * WINDOW));
        let start = listed
            .iter()
            .map(|(_, l)| l.offset)
            .chain([loc.offset])
            .min()
            .unwrap_or(loc.offset);
        let end = listed
            .iter()
            .map(|(_, l)| l.offset + l.length as u64)
            .chain([loc.offset + loc.length as u64])
            .max()
            .unwrap_or(start);
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

    /// Queues the next windows of `loc`'s pack for the prefetch threads, once each.
    fn windows_ahead(&self, segs: &Segments, loc: &Location) {
        let Some(lister) = self.lister.as_ref() else {
            return;
        };
        let w = loc.offset / WINDOW;
        for n in w + 1..=w + AHEAD {
            if segs.has(&(loc.pack, n)) || self.ahead.lock().contains_key(&(loc.pack, n)) {
                continue;
            }
            // A window where no blob starts (one large blob covers it, or the pack ended).
            let Some((_, first)) = lister(&loc.pack, n * WINDOW, (n + 1) * WINDOW)
                .into_iter()
                .next()
            else {
                continue;
            };
            self.ahead.lock().insert((loc.pack, n), Taken::Whole);
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
