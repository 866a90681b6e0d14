//! The mount's read-ahead: the pack segments after the one a reader is in, and a sequential
//! reader's next chunks, queued for the prefetch threads while what was fetched ahead and
//! not read yet stays under half the cache. (A restore reads ahead by window instead:
//! `segments`.)

use std::sync::atomic::Ordering;

use super::{
    decoded_size, runs, total_weight, ChunkCache, Group, Job, OpenFile, BASE_GAP, MAX_FETCH,
    PACK_SIZE_LIMIT, READ_AHEAD, SEGMENT, SEGMENTS_AHEAD,
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

    /// Queues the segments after the one holding `loc` for prefetch, once each.
    pub(super) fn pack_ahead(&self, loc: &Location) {
        let seg = loc.offset / SEGMENT;
        for s in seg + 1..=seg + SEGMENTS_AHEAD {
            if !self.room_ahead() {
                break;
            }
            if s * SEGMENT >= loc.offset + PACK_SIZE_LIMIT
                || !self.ahead.lock().insert((loc.pack, s))
            {
                continue;
            }
            match self.segment(loc, s) {
                // Deltas are read ahead in file order (`read_ahead`), not by pack.
                Some(blobs) if !blobs.is_empty() && total_weight(&blobs) <= 2 * SEGMENT => {
                    self.queue_groups(blobs)
                }
                _ => break,
            }
        }
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

    pub(super) fn read_ahead(&self, f: &OpenFile, from: usize) {
        let mut i = from;
        let mut queued = 0;
        let tx = self.prefetch.lock().clone();
        let Some(tx) = tx else { return };
        while i < f.chunks.len() && queued < READ_AHEAD && self.room_ahead() {
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
