//! A set of blob ids for what an ingest has stored so far (`ingest::content::Chunker`).
//!
//! An initial ingest of a million files stores a million blobs, and a `HashSet<BlobId>` of
//! them was the ingest's peak: 69 MB, and 104 MB while it moved to its next size
//! (docs/benchmarks.md, "The initial ingest's memory at a million files"). Here each id is
//! stored once, in blocks that never move, and found through a table of its position
//! (`Positions`, as the master index finds its copies): 32 bytes an id and ~5 bytes a
//! table slot, of which only the slots are copied when the table grows.

use super::positions::{IdList, Positions};
use crate::crypto::BlobId;

/// Ids per block: 128 KiB, so the last block's unused room stays small.
const BLOCK: usize = 4096;

#[derive(Default)]
struct Blocks(Vec<Vec<BlobId>>);

impl IdList for Blocks {
    fn id(&self, at: u32) -> &BlobId {
        let at = at as usize;
        &self.0[at / BLOCK][at % BLOCK]
    }
}

#[derive(Default)]
pub struct IdSet {
    ids: Blocks,
    len: usize,
    positions: Positions,
}

impl IdSet {
    pub fn contains(&self, id: &BlobId) -> bool {
        self.positions.get(&self.ids, id).is_some()
    }

    /// Adds `id`; true if it was not there.
    pub fn insert(&mut self, id: BlobId) -> bool {
        if self.contains(&id) {
            return false;
        }
        if self.len.is_multiple_of(BLOCK) {
            self.ids.0.push(Vec::with_capacity(BLOCK));
        }
        if let Some(block) = self.ids.0.last_mut() {
            block.push(id);
        }
        let at = super::pos(self.len);
        self.len += 1;
        self.positions.set(&self.ids, at);
        true
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_each_id_once_across_blocks() {
        let id = |n: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&n.to_le_bytes());
            BlobId(b)
        };
        let mut s = IdSet::default();
        assert!(s.is_empty() && !s.contains(&id(0)));
        // Three blocks and a bit; every id once, then every id again.
        let n = 3 * BLOCK as u32 + 5;
        for i in 0..n {
            assert!(s.insert(id(i)), "first insert of {i}");
        }
        for i in 0..n {
            assert!(!s.insert(id(i)), "second insert of {i}");
            assert!(s.contains(&id(i)), "{i}");
        }
        assert!(!s.contains(&id(n)) && !s.contains(&id(u32::MAX)));
        assert_eq!(s.len(), n as usize);
        assert_eq!(s.ids.0.len(), 4);
        assert!(
            s.ids.0.iter().all(|b| b.capacity() == BLOCK),
            "a block moved"
        );
    }
}
