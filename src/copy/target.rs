//! What the target of a copy already holds that a snapshot may reuse, by the rules an
//! ingest follows there (`Chunker::known`, `repo::index::Reach`).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::crypto::BlobId;
use crate::error::Result;
use crate::repo::index::{IndexFile, Location, MasterIndex, Reach};
use crate::repo::Repository;

pub(super) struct Target {
    /// Every copy the target's index objects list.
    index: MasterIndex,
    /// Per class some self-contained snapshot to copy is in: the copies in that class only.
    own: HashMap<String, MasterIndex>,
    /// Packs in the target's listing that no doomed list names.
    packs: HashSet<BlobId>,
}

impl Target {
    /// The target's index and listing; `classes`: the classes of the self-contained
    /// snapshots to copy.
    pub(super) fn load(dst: &Repository, classes: &BTreeSet<String>) -> Result<Target> {
        let files: Vec<IndexFile> = dst
            .load_indexes()?
            .readable
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        Ok(Target::new(
            &files,
            classes,
            crate::ingest::reusable_packs(dst)?,
        ))
    }

    fn new(files: &[IndexFile], classes: &BTreeSet<String>, packs: HashSet<BlobId>) -> Target {
        let mut index = MasterIndex::default();
        for f in files {
            index.add(f);
        }
        index.seal();
        let mut own = HashMap::new();
        for class in classes {
            let reach = Reach::Class(class.clone());
            let mut mi = MasterIndex::default();
            for f in files {
                mi.add_packs(
                    f.packs.iter().filter(|p| reach.admits(p.class.as_deref())),
                    |_| true,
                );
            }
            mi.seal();
            own.insert(class.clone(), mi);
        }
        Target { index, own, packs }
    }

    /// Reused only as an ingest reuses (`Chunker::known`): indexed, in a pack the listing
    /// holds (and no doomed list names), within the snapshot's reach; a delta copy only
    /// with a whole copy of each base there too, since prune may have deleted the base of a
    /// delta nothing kept needs (docs/prune.md "Deltas"). `whole`: a base, which is read
    /// only from a whole copy.
    pub(super) fn has(&self, id: &BlobId, reach: &Reach, whole: bool) -> bool {
        let (index, max_tier) = match reach {
            Reach::Tier(t) => (&self.index, *t),
            Reach::Class(c) => match self.own.get(c) {
                Some(mi) => (mi, u8::MAX),
                None => return false,
            },
        };
        let usable = |l: &Location| l.tier <= max_tier && self.packs.contains(&l.pack);
        let whole_here = || index.get_whole(id).is_some_and(|l| usable(&l));
        if whole {
            return whole_here();
        }
        match index.get(id) {
            Some(l) if usable(&l) => match l.base {
                None => true,
                Some(bases) => {
                    bases
                        .ids()
                        .all(|b| index.get_whole(&b).is_some_and(|l| usable(&l)))
                        || whole_here()
                }
            },
            _ => whole_here(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::pack::BlobKind;

    /// A pack of a test index: id byte, class, entries (blob byte, delta base byte).
    type TestPack<'a> = (u8, Option<&'a str>, &'a [(u8, Option<u8>)]);

    /// A target index of `packs`, of which those in `listed` are in the store's listing.
    fn target(packs: &[TestPack], listed: &[u8]) -> Target {
        use crate::repo::compress::Bases;
        use crate::repo::index::IndexPack;
        use crate::repo::pack::PackEntry;
        let file = IndexFile {
            packs: packs
                .iter()
                .map(|(p, class, entries)| IndexPack {
                    id: BlobId([*p; 32]),
                    size: 1 << 20,
                    class: class.map(str::to_string),
                    entries: entries
                        .iter()
                        .enumerate()
                        .map(|(i, (b, base))| PackEntry {
                            id: BlobId([*b; 32]),
                            kind: BlobKind::Data,
                            offset: i as u32 * 100,
                            length: 100,
                            raw_len: 100,
                            base: base.map(|x| Box::new(Bases::one(BlobId([x; 32])))),
                        })
                        .collect(),
                })
                .collect(),
        };
        let classes = ["GLACIER".to_string()].into_iter().collect();
        Target::new(
            &[file],
            &classes,
            listed.iter().map(|p| BlobId([*p; 32])).collect(),
        )
    }

    #[test]
    fn the_target_reuses_only_what_a_reader_there_can_read() {
        let id = |b: u8| BlobId([b; 32]);
        // Pack 1 (listed): blob 10 whole, blob 11 a delta on 10, blob 12 a delta on 13 (gone).
        // Pack 2 (not listed: deleted since, or doomed): blob 20. Pack 3 GLACIER: blob 30.
        // Pack 4 GLACIER: blob 40 a delta on 30, blob 41 a delta on 10 (whole in STANDARD only).
        let t = target(
            &[
                (1, None, &[(10, None), (11, Some(10)), (12, Some(13))]),
                (2, None, &[(20, None)]),
                (3, Some("GLACIER"), &[(30, None)]),
                (4, Some("GLACIER"), &[(40, Some(30)), (41, Some(10))]),
            ],
            &[1, 3, 4],
        );
        let glacier = || Reach::Class("GLACIER".into());
        // (blob, the snapshot's reach, needed whole) → reusable
        let table = [
            (10, Reach::Tier(0), false, true),
            (10, Reach::Tier(0), true, true),
            (11, Reach::Tier(0), false, true), // its base has a whole copy there
            (11, Reach::Tier(0), true, false), // a base must be whole
            (12, Reach::Tier(0), false, false), // its base is gone: copy it again
            (20, Reach::Tier(0), false, false), // its pack is not in the listing
            (30, Reach::Tier(0), false, false), // colder than a STANDARD snapshot may depend on
            (30, Reach::Tier(1), false, true), // a GLACIER snapshot may
            (99, Reach::Tier(2), false, false),
            // A self-contained GLACIER snapshot: its own class only.
            (30, glacier(), false, true),
            (30, glacier(), true, true),
            (10, glacier(), false, false), // in STANDARD only
            (40, glacier(), false, true),  // a delta whose base is in GLACIER too
            (41, glacier(), false, false), // a delta whose base is in STANDARD only
            (30, Reach::Class("DEEP_ARCHIVE".into()), false, false),
        ];
        for (b, reach, whole, want) in table {
            assert_eq!(
                t.has(&id(b), &reach, whole),
                want,
                "blob {b} {reach:?} whole {whole}"
            );
        }
    }
}
