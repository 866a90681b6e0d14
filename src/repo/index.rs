//! Index objects: which pack holds each blob. Written after the packs they describe are
//! durable and before any manifest that needs them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::pack::{BlobKind, PackEntry};
use crate::crypto::BlobId;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: BlobId,
    pub size: u64,
    /// The S3 storage class the pack was written in (None: the bucket's default).
    pub class: Option<String>,
    pub entries: Vec<PackEntry>,
}

/// How far a storage class is from being readable: 0 at once (STANDARD, *_IA,
/// INTELLIGENT_TIERING, GLACIER_IR), 1 after a restore from the archive tier (GLACIER,
/// minutes to hours), 2 the slowest (DEEP_ARCHIVE, hours). Dedup never makes a snapshot
/// depend on a blob whose only copies are further away than its own class.
pub fn tier(class: Option<&str>) -> u8 {
    match class {
        Some("GLACIER") => 1,
        Some("DEEP_ARCHIVE") => 2,
        _ => 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub pack: BlobId,
    pub kind: BlobKind,
    pub offset: u64,
    pub length: u32,
    pub raw_len: u32,
    /// `tier` of the pack's storage class: readers prefer the copy nearest to readable.
    pub tier: u8,
}

/// All blob locations, in memory (restore and check use it; the catalog holds the same).
#[derive(Default)]
pub struct MasterIndex {
    map: HashMap<BlobId, Location>,
    /// Per pack, its blobs sorted by offset (for pack-order read-ahead).
    by_pack: HashMap<BlobId, Vec<(BlobId, Location)>>,
}

impl MasterIndex {
    pub fn add(&mut self, file: &IndexFile) {
        for p in &file.packs {
            let tier = tier(p.class.as_deref());
            for e in &p.entries {
                let loc = Location {
                    pack: p.id,
                    kind: e.kind,
                    offset: e.offset as u64,
                    length: e.length,
                    raw_len: e.raw_len,
                    tier,
                };
                match self.map.get(&e.id) {
                    Some(old) if old.tier <= tier => {}
                    _ => {
                        self.map.insert(e.id, loc);
                    }
                }
                self.by_pack.entry(p.id).or_default().push((e.id, loc));
            }
        }
    }

    /// Sorts the per-pack lists; call after the last `add`.
    pub fn seal(&mut self) {
        for v in self.by_pack.values_mut() {
            v.sort_by_key(|(_, l)| l.offset);
        }
    }

    /// Blobs of `pack` at offsets `from..to`, in pack order (after `seal`).
    pub fn pack_blobs(&self, pack: &BlobId, from: u64, to: u64) -> Vec<(BlobId, Location)> {
        let Some(v) = self.by_pack.get(pack) else {
            return Vec::new();
        };
        let start = v.partition_point(|(_, l)| l.offset < from);
        v[start..]
            .iter()
            .take_while(|(_, l)| l.offset < to)
            .copied()
            .collect()
    }

    pub fn get(&self, id: &BlobId) -> Option<&Location> {
        self.map.get(id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::tier;

    #[test]
    fn archive_classes_are_further_than_instant_ones() {
        let cases = [
            (None, 0),
            (Some("STANDARD"), 0),
            (Some("STANDARD_IA"), 0),
            (Some("ONEZONE_IA"), 0),
            (Some("INTELLIGENT_TIERING"), 0),
            (Some("GLACIER_IR"), 0),
            (Some("GLACIER"), 1),
            (Some("DEEP_ARCHIVE"), 2),
        ];
        for (class, want) in cases {
            assert_eq!(tier(class), want, "{class:?}");
        }
    }
}
