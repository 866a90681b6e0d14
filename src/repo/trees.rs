//! Reading trees: one request for the trees of a pack that lie close together.

use super::index::{Location, MasterIndex};
use super::pack::{self, BlobKind};
use super::{decode_tree, Repository};
use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::model::Tree;

/// Trees of one pack closer than this are read with one request (`load_trees`).
const TREE_MERGE_GAP: u64 = 1 << 20;
/// A walk's batch of trees read at once (`tree_batches`): at most this many, since over S3
/// each read is a round trip worth overlapping...
const BATCH_TREES: usize = 32;
/// ...and at most this many bytes of them decoded (one tree at least). A directory of
/// 10,000 files is a tree of ~1.5 MB that decodes to ~4 MB: 32 of them were 156 MB of a
/// prune's 379 MB peak at a million files (docs/benchmarks.md, "Prune's memory at a
/// million files").
const BATCH_BYTES: u64 = 4 << 20;

/// `ids` cut into the batches a walk hands to `load_trees`, in order. A tree not in the
/// index weighs nothing here; `load_trees` reports it.
pub fn tree_batches<'a>(index: &MasterIndex, ids: &'a [BlobId]) -> Vec<&'a [BlobId]> {
    super::batches::by_weight(ids, BATCH_TREES, BATCH_BYTES, |id| {
        index.get(id).map_or(0, |l| u64::from(l.raw_len))
    })
}

impl Repository {
    /// Many trees at once, concurrently, in the order of `ids` (prune, check and `lock
    /// extend` walk every snapshot's trees this way). Trees of one pack that lie within
    /// `TREE_MERGE_GAP` of each other are read with one request: a walk reads many trees
    /// of each tree pack, and one GET per tree cost ~1,000 requests per snapshot walked
    /// (bench/object_lock.sh).
    pub fn load_trees(&self, index: &MasterIndex, ids: &[BlobId]) -> Result<Vec<Tree>> {
        let locs: Vec<Location> = ids
            .iter()
            .map(|id| tree_location(index, id))
            .collect::<Result<_>>()?;
        let places: Vec<_> = locs
            .iter()
            .map(|l| (l.pack, l.offset..l.offset + u64::from(l.length)))
            .collect();
        let spans = super::batches::spans(&places, TREE_MERGE_GAP, super::batches::Waste::Gaps);
        let reqs: Vec<_> = spans
            .iter()
            .map(|(p, r, _)| (pack::pack_key(p), Some(r.clone())))
            .collect();
        let mut out: Vec<Option<Tree>> = (0..ids.len()).map(|_| None).collect();
        for ((_, span, members), got) in spans.iter().zip(self.get_ranges(&reqs)) {
            let bytes = got?;
            for &i in members {
                let (l, id) = (&locs[i], &ids[i]);
                let from = (l.offset - span.start) as usize;
                let encoded = bytes
                    .get(from..from + l.length as usize)
                    .ok_or_else(|| Error::corrupt(format!("tree {}", id.hex()), "short read"))?;
                out[i] = Some(decode_tree(&self.decode_blob(id, encoded)?, id)?);
            }
        }
        out.into_iter()
            .zip(ids)
            .map(|(t, id)| {
                t.ok_or_else(|| Error::corrupt(format!("tree {}", id.hex()), "not read"))
            })
            .collect()
    }

    pub fn load_tree(&self, index: &MasterIndex, id: &BlobId) -> Result<Tree> {
        decode_tree(&self.read_blob(id, &tree_location(index, id)?)?, id)
    }
}

/// Where a tree blob is, or why it cannot be read as one.
fn tree_location(index: &MasterIndex, id: &BlobId) -> Result<Location> {
    let what = || format!("tree {}", id.hex());
    let loc = index
        .get(id)
        .ok_or_else(|| Error::corrupt(what(), "not in any index"))?;
    if loc.kind != BlobKind::Tree {
        return Err(Error::corrupt(what(), "is not a tree blob"));
    }
    Ok(loc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::index::{IndexFile, IndexPack};
    use crate::repo::pack::PackEntry;

    #[test]
    fn batches_hold_at_most_32_trees_and_4_mib_unless_one_tree_is_more() {
        // (decoded sizes of the trees in KiB, the batch lengths wanted)
        let cases: [(&[u32], &[usize]); 6] = [
            (&[], &[]),
            (&[1; 70], &[32, 32, 6]),
            (&[1024; 9], &[4, 4, 1]),
            (&[5000, 1, 1], &[1, 2]),
            (&[1, 5000, 1], &[1, 1, 1]),
            (&[2048, 2048, 1], &[2, 1]),
        ];
        for (sizes, want) in cases {
            let entries = sizes
                .iter()
                .enumerate()
                .map(|(i, kib)| PackEntry {
                    id: BlobId([i as u8; 32]),
                    kind: BlobKind::Tree,
                    offset: i as u32,
                    length: 1,
                    raw_len: kib * 1024,
                    base: None,
                })
                .collect();
            let mut index = MasterIndex::default();
            index.add(&IndexFile {
                packs: vec![IndexPack {
                    id: BlobId([0xff; 32]),
                    size: 1,
                    class: None,
                    entries,
                }],
            });
            index.seal();
            let ids: Vec<BlobId> = (0..sizes.len()).map(|i| BlobId([i as u8; 32])).collect();
            let got: Vec<usize> = tree_batches(&index, &ids).iter().map(|b| b.len()).collect();
            assert_eq!(got, want, "{sizes:?}");
        }
    }
}
