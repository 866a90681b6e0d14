//! Reading a fetch's blobs from the disk cache (`DiskCache`) instead of the store.

use std::sync::Arc;

use super::{ChunkCache, Slot};
use crate::crypto::BlobId;
use crate::repo::index::Location;

/// The bytes of a pack that `locs` (blobs of one pack) span.
pub(super) fn span<'a>(locs: impl Iterator<Item = &'a Location>) -> (u64, u64) {
    locs.fold((u64::MAX, 0), |(a, b), l| {
        (a.min(l.offset), b.max(l.offset + l.length as u64))
    })
}

impl ChunkCache {
    /// Fills the slots of `missing` whose bytes the disk cache holds (all of them with one
    /// read when one entry holds the whole span, as after an earlier fetch of the same
    /// segment); the others are returned, to be fetched.
    pub(super) fn read_cached<'a>(
        &self,
        missing: &'a [(BlobId, Location, Arc<Slot>)],
    ) -> Vec<&'a (BlobId, Location, Arc<Slot>)> {
        let Some(disk) = &self.disk else {
            return missing.iter().collect();
        };
        let (start, end) = span(missing.iter().map(|m| &m.1));
        let pack = missing[0].1.pack;
        if let Some(bytes) = disk.get(&pack, start, end) {
            let bytes = Arc::new(bytes);
            for (_, loc, slot) in missing {
                let a = (loc.offset - start) as usize;
                let _ = slot
                    .cached_at
                    .set((pack, loc.offset, loc.offset + loc.length as u64));
                let _ = slot
                    .raw
                    .set(Ok((bytes.clone(), a..a + loc.length as usize)));
            }
            return Vec::new();
        }
        let mut rest = Vec::new();
        for m in missing {
            let (a, b) = (m.1.offset, m.1.offset + m.1.length as u64);
            match disk.get(&pack, a, b) {
                Some(bytes) => {
                    let _ = m.2.cached_at.set((pack, a, b));
                    let _ = m.2.raw.set(Ok((Arc::new(bytes), 0..(b - a) as usize)));
                }
                None => rest.push(m),
            }
        }
        rest
    }
}
