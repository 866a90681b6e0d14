//! The mount's read-ahead: the pack segments after the one a reader is in, and a sequential
//! reader's next chunks, queued for the prefetch threads while what was fetched ahead and
//! not read yet stays under half the cache. (A restore reads ahead by window instead:
//! `segments`.)

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::{
    decoded_size, runs, total_weight, weight, ChunkCache, Group, Job, OpenFile, Taken, BASE_GAP,
    CLAIM, MAX_FETCH, PACK_SIZE_LIMIT, READ_AHEAD, SEGMENT, SEGMENTS_AHEAD, SPARSE_WASTE,
};
use crate::crypto::BlobId;
use crate::repo::index::Location;

impl ChunkCache {
    /// Of a segment's blobs, the run holding `id`, fetched now; the others are read ahead.
    /// A segment listed whole is one run; blobs far apart would be separate runs.
    pub(super) fn our_run(&self, segment: Group, id: &BlobId) -> Group {
        let mut all = runs(segment, BASE_GAP);
        let ours = all
            .iter()
            .position(|r| r.iter().any(|(gid, _)| gid == id))
            .unwrap_or(0);
        let run = all.swap_remove(ours);
        for other in all {
            if self.room_ahead() {
                self.queue_groups(other);
            }
        }
        run
    }

    /// The blobs of the pack segment holding `loc`, if a lister is available.
    pub(super) fn segment(&self, loc: &Location, seg: u64) -> Option<Group> {
        let lister = self.lister.as_ref()?;
        Some(lister(&loc.pack, seg * SEGMENT, (seg + 1) * SEGMENT))
    }

    /// Queues the segments after the one holding `loc` for prefetch, once each, whole: in
    /// a tree read directory after directory, their blobs are what is read next. One that
    /// a miss cut for another directory (`take_segment`) is queued again, whole; one cut
    /// for `f`'s own directory is left as it is.
    pub(super) fn pack_ahead(&self, loc: &Location, f: &OpenFile) {
        let seg = loc.offset / SEGMENT;
        for s in seg + 1..=seg + SEGMENTS_AHEAD {
            if !self.room_ahead() {
                break;
            }
            let key = (loc.pack, s);
            if s * SEGMENT >= loc.offset + PACK_SIZE_LIMIT {
                continue;
            }
            let taken = self.ahead.lock().get(&key).copied();
            match taken {
                Some(Taken::Whole) => continue,
                Some(Taken::Cut(dir, _)) if Some(dir) == f.dir => continue,
                _ => {}
            }
            match self.segment(loc, s) {
                // Deltas are read ahead in file order (`read_ahead`), not by pack.
                Some(blobs) if !blobs.is_empty() && total_weight(&blobs) <= 2 * SEGMENT => {
                    self.ahead.lock().insert(key, Taken::Whole);
                    self.queue_groups(blobs)
                }
                _ => {
                    self.ahead.lock().insert(key, Taken::Whole);
                    break;
                }
            }
        }
    }

    /// Of the blobs `g` of segment `key`, where a reader of `f` missed `id`, what to read:
    /// all of it, or, where it holds more than SPARSE_WASTE blobs `f`'s directory does not
    /// need and no other directory took it in the last CLAIM, only those it needs (and
    /// `id`). Records which in `ahead`.
    pub(super) fn take_segment(
        &self,
        key: (BlobId, u64),
        g: Group,
        f: &OpenFile,
        id: &BlobId,
    ) -> Group {
        let listing = f
            .dir
            .and_then(|dir| Some((dir, self.listings.lock().get(&dir)?.clone())));
        let part = listing.and_then(|(dir, ids)| Some((dir, needed_part(&g, &ids, id)?)));
        let now = Instant::now();
        let mut ahead = self.ahead.lock();
        match part {
            Some((dir, part)) if may_cut(ahead.get(&key).copied(), dir, now) => {
                ahead.insert(key, Taken::Cut(dir, now));
                part
            }
            _ => {
                ahead.insert(key, Taken::Whole);
                g
            }
        }
    }

    /// Keeps the chunk ids of directory `dir`'s files (its listing), for `take_segment`.
    pub fn note_listing(&self, dir: u64, ids: HashSet<BlobId>) {
        self.listings.lock().put(dir, Arc::new(ids));
    }

    /// The blobs of `group` not cached, in flight or queued yet, now marked queued.
    fn to_queue(&self, group: Group) -> Group {
        let inflight = self.inflight.lock();
        let lru = self.lru.lock();
        let mut queued = self.queued.lock();
        let todo: Group = group
            .into_iter()
            .filter(|(id, _)| !inflight.contains_key(id) && !lru.contains(id) && queued.insert(*id))
            .collect();
        self.pending
            .fetch_add(decoded_size(&todo), Ordering::Relaxed);
        todo
    }

    /// Whether read-ahead may queue more: what is fetched ahead and not read yet, with what
    /// is queued, stays under half the cache, so read-ahead never evicts itself.
    fn room_ahead(&self) -> bool {
        let fresh = self.lru.lock().fresh_bytes() as u64;
        fresh + self.pending.load(Ordering::Relaxed) < self.budget as u64 / 2
    }

    /// A prefetch thread took these blobs' job: readers and read-ahead may ask again.
    pub(super) fn unqueue(&self, group: &[(BlobId, Location)]) {
        let mut queued = self.queued.lock();
        for (id, _) in group {
            queued.remove(id);
        }
    }

    /// Queues the blobs (in pack order) not cached, in flight or queued, in runs one
    /// request each (small gaps between them are read over).
    fn queue_groups(&self, blobs: Vec<(BlobId, Location)>) {
        let Some(tx) = self.prefetch.lock().clone() else {
            return;
        };
        for run in runs(self.to_queue(blobs), BASE_GAP) {
            let _ = tx.send(Job::Fetch(run));
        }
    }

    /// Queues `f`'s next chunks after `from` (up to READ_AHEAD bytes) for a sequential
    /// reader: the pack segments they are in (whole, or cut to the directory's blobs as
    /// `take_segment` decides), where the lister knows them and they hold no deltas, else
    /// the chunks in runs. Chunks cached, in flight or queued already are skipped. Queuing
    /// a file's next chunks apart from their segment made one small request each (its
    /// own, and the holes it left in the segment queued later): 974 of 1,059 requests in a
    /// cold `cp -a` of the bench corpus over S3 were under 1 MiB, 754 under 64 KiB, ~33 ms
    /// each on Garage.
    pub(super) fn read_ahead(&self, f: &OpenFile, from: usize) {
        let mut i = from;
        let mut queued = 0;
        let tx = self.prefetch.lock().clone();
        let Some(tx) = tx else { return };
        while i < f.chunks.len() && queued < READ_AHEAD && self.room_ahead() {
            if let Some(loc) = f.locs[i] {
                let id = f.chunks[i].id;
                // In-flight before the LRU, as everywhere (see `fetch_bases`).
                let have = self.inflight.lock().contains_key(&id)
                    || self.lru.lock().contains(&id)
                    || self.queued.lock().contains(&id);
                if have {
                    queued += weight(&loc);
                    i += 1;
                    continue;
                }
                // Its segment, whole or cut to the directory's blobs, as a miss would take
                // it; a segment taken before (its chunks since evicted, or never queued:
                // deltas, no room) is left to the file's own runs below.
                let key = (loc.pack, loc.offset / SEGMENT);
                let untaken = !self.ahead.lock().contains_key(&key);
                if let Some(blobs) = untaken.then(|| self.segment(&loc, key.1)).flatten() {
                    if blobs.iter().any(|(b, _)| *b == id) && total_weight(&blobs) <= 2 * SEGMENT {
                        let g = self.take_segment(key, blobs, f, &id);
                        queued += total_weight(&g);
                        self.queue_groups(g);
                        i += 1;
                        continue;
                    }
                }
            }
            let group = self.run_from(f, i, MAX_FETCH);
            if group.is_empty() {
                i += 1;
                continue;
            }
            i += group.len();
            queued += total_weight(&group);
            let todo = self.to_queue(group);
            if !todo.is_empty() {
                let _ = tx.send(Job::Fetch(todo));
            }
        }
    }
}

/// Whether a segment taken before as `prev` may be cut for directory `dir` now: not if it
/// was read whole, nor if another directory took it within CLAIM (a `cp -a` of the tree,
/// reading one directory after the other, needs the rest next).
fn may_cut(prev: Option<Taken>, dir: u64, now: Instant) -> bool {
    match prev {
        None => true,
        Some(Taken::Whole) => false,
        Some(Taken::Cut(d, when)) => d == dir || now.saturating_duration_since(when) > CLAIM,
    }
}

/// The blobs of `g` that `siblings` holds (and `id`), if more than SPARSE_WASTE others are
/// in `g`.
fn needed_part(g: &[(BlobId, Location)], siblings: &HashSet<BlobId>, id: &BlobId) -> Option<Group> {
    let part: Group = g
        .iter()
        .filter(|(b, _)| b == id || siblings.contains(b))
        .cloned()
        .collect();
    (g.len() - part.len() > SPARSE_WASTE).then_some(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(n: usize) -> Group {
        (0..n)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(i as u64).to_le_bytes());
                (BlobId(id), Location::test(1, i as u64 * 100, 100))
            })
            .collect()
    }

    #[test]
    fn a_segment_cut_for_one_directory_is_read_whole_by_the_next_within_a_minute() {
        // Times are after `then` (an Instant cannot go before the machine's boot).
        let then = Instant::now();
        let after = |s: u64| then + std::time::Duration::from_secs(s);
        // (how the segment was taken before, directory asking, seconds since, may it be cut)
        let cases = [
            (None, 7, 0, true),
            (Some(Taken::Whole), 7, 0, false),
            (Some(Taken::Cut(7, then)), 7, 1, true),
            (Some(Taken::Cut(7, then)), 7, 3600, true),
            (Some(Taken::Cut(5, then)), 7, 1, false),
            (Some(Taken::Cut(5, then)), 7, 59, false),
            (Some(Taken::Cut(5, then)), 7, 61, true),
        ];
        for (prev, dir, secs, want) in cases {
            assert_eq!(
                may_cut(prev, dir, after(secs)),
                want,
                "{prev:?} for {dir} after {secs} s"
            );
        }
    }

    #[test]
    fn a_segment_is_cut_to_what_the_directory_needs_only_when_the_rest_is_many_blobs() {
        // (blobs in the segment, of them the directory's, the blob missed, blobs to read or
        // None for the whole segment)
        type Case = (usize, std::ops::Range<usize>, usize, Option<usize>);
        let cases: &[Case] = &[
            (500, 0..10, 3, None),                   // a few hundred: whole
            (SPARSE_WASTE + 10, 0..10, 3, None),     // exactly the limit left: whole
            (SPARSE_WASTE + 11, 0..10, 3, Some(10)), // one more: the directory's
            (4000, 100..140, 120, Some(40)),         // a churned pack: its 40
            (4000, 100..140, 3000, Some(41)),        // and the blob missed
            (4000, 0..0, 5, Some(1)),                // the blob missed alone
            (4000, 0..3000, 5, None),                // mostly needed: whole
        ];
        for (n, mine, missed, want) in cases {
            let g = seg(*n);
            let siblings: HashSet<BlobId> = g[mine.clone()].iter().map(|(b, _)| *b).collect();
            let id = g[*missed].0;
            let got = needed_part(&g, &siblings, &id);
            assert_eq!(
                got.as_ref().map(Vec::len),
                *want,
                "{n} blobs, {mine:?} needed"
            );
            if let Some(part) = got {
                assert!(
                    part.windows(2).all(|w| w[0].1.offset < w[1].1.offset),
                    "pack order"
                );
                assert!(part.iter().any(|(b, _)| *b == id), "the blob missed");
            }
        }
    }
}
