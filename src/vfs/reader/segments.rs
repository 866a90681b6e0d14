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
//! The cost: where a snapshot's files lie among many other versions (weeks of churn, no
//! prune), a window also holds blobs the restore does not need; they are read and dropped,
//! never decoded. Windows are small for that reason.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use lru::LruCache;
use parking_lot::Mutex;

use super::{ChunkCache, Decoded, Job};
use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::index::Location;
use crate::repo::pack::pack_key;

/// A restore reads packs in aligned windows of this many bytes (the blobs that start in
/// one, with one request). Over Garage, 2 and 4 MiB restored bench/run.sh's corpus in the
/// same time (4.7-5.5 s over four rounds each, 1 MiB 5.2-5.8 s); the smaller window reads
/// less that is not needed where a snapshot's files lie among many other versions.
const WINDOW: u64 = 2 << 20;
/// Windows kept encoded (24 MiB).
pub(super) const KEPT: usize = 12;
/// Windows of a pack read ahead of a restore's writers.
const AHEAD: u64 = 3;

/// A segment's bytes as fetched, from `start` in its pack.
pub struct Seg {
    pub start: u64,
    pub bytes: Vec<u8>,
}

impl Seg {
    /// The blob at `loc`, if this segment holds all of it.
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

    /// The segment: kept, being fetched by another thread (waited for), or fetched here
    /// with `fetch`. One fetch per segment at a time.
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
        let got = fetch().map(Arc::new);
        let mut inflight = self.inflight.lock();
        if let Ok(s) = &got {
            self.lru.lock().put(key, s.clone());
        }
        let _ = slot.set(got.clone());
        inflight.remove(&key);
        got
    }
}

impl ChunkCache {
    /// A prefetch thread's job: the window holding `loc`.
    pub(super) fn prefetch_window(&self, segs: &Segments, loc: &Location) {
        let _ = segs.get((loc.pack, loc.offset / WINDOW), || self.fetch_segment(loc));
    }

    /// A restore's chunk: from the cache (a chunk several files share, a delta's base), or
    /// decoded here from its segment, which is fetched whole once.
    pub(super) fn segment_chunk(
        &self,
        segs: &Segments,
        id: &BlobId,
        loc: &Location,
        path: &str,
    ) -> Result<Decoded> {
        if let Some(d) = self.cached(id) {
            return Ok(d);
        }
        let key = (loc.pack, loc.offset / WINDOW);
        let seg = segs.get(key, || self.fetch_segment(loc));
        self.segments_ahead(segs, loc);
        let failed = |why| Error::ReadFailed {
            path: path.to_string(),
            why,
        };
        // Not kept decoded: its segment is, and a restore reads most chunks once.
        match seg.map_err(failed)?.blob(loc) {
            Some(enc) => Ok(Arc::new(self.decode_blob(id, enc)?)),
            None => self.direct(id, loc),
        }
    }

    /// The blobs of `loc`'s segment (those that start in it), with one request.
    pub(super) fn fetch_segment(&self, loc: &Location) -> std::result::Result<Seg, String> {
        let seg = loc.offset / WINDOW;
        let listed = self
            .lister
            .as_ref()
            .map_or_else(Vec::new, |l| l(&loc.pack, seg * WINDOW, (seg + 1) * WINDOW));
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
        Ok(Seg { start, bytes })
    }

    /// Queues the next segments of `loc`'s pack, once each.
    fn segments_ahead(&self, segs: &Segments, loc: &Location) {
        let Some(lister) = self.lister.as_ref() else {
            return;
        };
        let seg = loc.offset / WINDOW;
        for s in seg + 1..=seg + AHEAD {
            if segs.has(&(loc.pack, s)) || !self.ahead.lock().insert((loc.pack, s)) {
                continue;
            }
            let Some((_, first)) = lister(&loc.pack, s * WINDOW, (s + 1) * WINDOW)
                .into_iter()
                .next()
            else {
                return;
            };
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
        Location {
            pack: BlobId([1; 32]),
            kind: crate::repo::pack::BlobKind::Data,
            offset,
            length,
            raw_len: length,
            tier: 0,
            base: None,
        }
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
}
