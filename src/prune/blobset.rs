//! The set of blobs a prune finds in use, as one bit per copy in the plan's master index.
//!
//! A `HashSet<BlobId>` of the 1.24M blobs 25 snapshots of a million-file tree use took
//! 69 MB, and 104 MB while it grew: the plan's peak (docs/benchmarks.md, "Prune's memory
//! at a million files"). Every blob the walk finds is in the master index but for the
//! few a damaged repository lost, and the index already gives each blob one position (its
//! reader copy's), so a bit there names it: a bit per copy the index holds, 190 KB for
//! the 1.5M copies of that repository. Blobs the index does
//! not know are kept by id beside the bits (prune refuses to run when one is used).

use std::collections::HashSet;

use crate::crypto::BlobId;
use crate::repo::index::MasterIndex;

/// Blobs, by their position in `index` (`MasterIndex::position`), or by id for the ones
/// it does not hold.
pub struct BlobSet<'a> {
    index: &'a MasterIndex,
    bits: Vec<u64>,
    indexed: usize,
    unindexed: HashSet<BlobId>,
}

impl<'a> BlobSet<'a> {
    /// An empty set over the blobs of `index`, which must be sealed: positions change in
    /// `seal`, and the borrow keeps them from changing after.
    pub fn new(index: &'a MasterIndex) -> BlobSet<'a> {
        debug_assert!(index.is_sealed(), "a BlobSet over an index not sealed yet");
        BlobSet {
            index,
            bits: vec![0; index.positions().div_ceil(64)],
            indexed: 0,
            unindexed: HashSet::new(),
        }
    }

    /// Adds `id`; true if it was not there.
    pub fn insert(&mut self, id: BlobId) -> bool {
        match self.index.position(&id) {
            Some(p) => {
                let (word, bit) = (p as usize / 64, 1u64 << (p % 64));
                let new = self.bits[word] & bit == 0;
                self.bits[word] |= bit;
                self.indexed += usize::from(new);
                new
            }
            None => self.unindexed.insert(id),
        }
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        match self.index.position(id) {
            Some(p) => self.bits[p as usize / 64] & (1u64 << (p % 64)) != 0,
            None => self.unindexed.contains(id),
        }
    }

    pub fn len(&self) -> usize {
        self.indexed + self.unindexed.len()
    }

    /// Every blob, the indexed ones in position order, then the others.
    pub fn iter(&self) -> impl Iterator<Item = BlobId> + '_ {
        let index = self.index;
        let bits = self.bits.iter().enumerate().flat_map(move |(w, &word)| {
            (0..64)
                .filter(move |b| word & (1u64 << b) != 0)
                .map(move |b| index.id_at((w * 64 + b) as u32))
        });
        bits.chain(self.unindexed.iter().copied())
    }
}

impl Extend<BlobId> for BlobSet<'_> {
    fn extend<T: IntoIterator<Item = BlobId>>(&mut self, iter: T) {
        for id in iter {
            self.insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::index::IndexPack;
    use crate::repo::pack::{BlobKind, PackEntry};

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    /// Blobs 1..=70 in two packs, 5..=9 in both (two copies, one position each).
    fn index() -> MasterIndex {
        let pack = |p: u8, blobs: std::ops::RangeInclusive<u8>| IndexPack {
            id: id(200 + p),
            size: 0,
            class: None,
            entries: blobs
                .map(|b| PackEntry {
                    id: id(b),
                    kind: BlobKind::Data,
                    offset: u32::from(b) * 10,
                    length: 10,
                    raw_len: 10,
                    base: None,
                })
                .collect(),
        };
        let mut mi = MasterIndex::default();
        mi.add_packs(&[pack(1, 1..=9), pack(2, 5..=70)], |_| true);
        mi.seal();
        mi
    }

    #[test]
    fn holds_each_blob_once_by_position_or_by_id() {
        let mi = index();
        let mut s = BlobSet::new(&mi);
        // (blob, new?): a copy in both packs is one blob (5); 59 is at position 63, the
        // first word's last bit; 64 and 70 are past it; the index does not hold 99 or 100.
        let steps = [
            (1, true),
            (5, true),
            (5, false),
            (59, true),
            (64, true),
            (70, true),
            (99, true),
            (99, false),
            (100, true),
            (1, false),
        ];
        for (n, new) in steps {
            assert_eq!(s.insert(id(n)), new, "insert {n}");
            assert!(s.contains(&id(n)), "contains {n}");
        }
        for n in [2, 6, 63, 65, 101] {
            assert!(!s.contains(&id(n)), "{n} was never inserted");
        }
        assert_eq!(mi.position(&id(59)), Some(63));
        assert_eq!(s.len(), 7);
        let mut all: Vec<BlobId> = s.iter().collect();
        all.sort();
        assert_eq!(all, [1, 5, 59, 64, 70, 99, 100].map(id));
    }
}
