//! The master index's map from a blob to the copy readers use: a hash table of positions in
//! `MasterIndex::copies` alone, each hashed and compared by the id stored at its position.
//! A `HashMap<BlobId, u32>` kept every 32-byte id a second time: 36 bytes a slot, ~75 MB
//! at a million blobs once the table's spare slots are counted, and a prune holds two
//! master indexes (docs/benchmarks.md, "Prune's memory at a million files").

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::crypto::BlobId;

/// A list of ids by position: what `Positions` hashes and compares through.
pub(super) trait IdList {
    fn id(&self, at: u32) -> &BlobId;
}

impl<S> IdList for Vec<(BlobId, S)> {
    fn id(&self, at: u32) -> &BlobId {
        &self[at as usize].0
    }
}

/// Positions in a list of ids, at most one per id. Every call passes the same list, which
/// only ever grows (positions already in the table keep their id).
#[derive(Default)]
pub(super) struct Positions {
    table: HashTable<u32>,
    // Ids are keyed hashes, but a seeded hasher costs nothing here and keeps the table's
    // shape independent of what is stored.
    hasher: RandomState,
}

impl Positions {
    /// The position held for `id`.
    pub fn get(&self, list: &impl IdList, id: &BlobId) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.table.find(hash, |&i| list.id(i) == id).copied()
    }

    /// Holds `at` for the id at `list[at]`, in place of any position held for it.
    pub fn set(&mut self, list: &impl IdList, at: u32) {
        let id = list.id(at);
        let hasher = &self.hasher;
        let hash = hasher.hash_one(id);
        match self.table.entry(
            hash,
            |&i| list.id(i) == id,
            |&i| hasher.hash_one(list.id(i)),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => *o.get_mut() = at,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(at);
            }
        }
    }

    /// Every position held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_position_per_id_the_last_set_wins() {
        let id = |n: u8| BlobId([n; 32]);
        // Ids 1, 2, 1, 3, 2: positions 0..5.
        let list: Vec<(BlobId, ())> = [1, 2, 1, 3, 2].iter().map(|&n| (id(n), ())).collect();
        let mut p = Positions::default();
        for at in 0..list.len() as u32 {
            p.set(&list, at);
        }
        assert_eq!(p.len(), 3);
        assert_eq!(p.get(&list, &id(1)), Some(2));
        assert_eq!(p.get(&list, &id(2)), Some(4));
        assert_eq!(p.get(&list, &id(3)), Some(3));
        assert_eq!(p.get(&list, &id(4)), None);
        // An earlier copy set again replaces the later one.
        p.set(&list, 0);
        assert_eq!(p.get(&list, &id(1)), Some(0));
        let mut all: Vec<u32> = p.iter().collect();
        all.sort();
        assert_eq!(all, vec![0, 3, 4]);
        assert!(!p.is_empty() && Positions::default().is_empty());
    }
}
