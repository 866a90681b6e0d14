//! Reading trees: one request for the trees of a pack that lie close together.

use std::ops::Range;

use super::index::{Location, MasterIndex};
use super::pack::{self, BlobKind};
use super::{decode_tree, Repository};
use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::model::Tree;

/// Trees of one pack closer than this are read with one request (`load_trees`).
const TREE_MERGE_GAP: u64 = 1 << 20;

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
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| (locs[i].pack, locs[i].offset));
        // (pack, byte range, the trees in it)
        let mut spans: Vec<(BlobId, Range<u64>, Vec<usize>)> = Vec::new();
        for i in order {
            let l = &locs[i];
            let r = l.offset..l.offset + u64::from(l.length);
            match spans.last_mut() {
                Some((p, span, members))
                    if *p == l.pack && r.start <= span.end + TREE_MERGE_GAP =>
                {
                    span.end = span.end.max(r.end);
                    members.push(i);
                }
                _ => spans.push((l.pack, r, vec![i])),
            }
        }
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
