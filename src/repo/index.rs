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
    pub entries: Vec<PackEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub pack: BlobId,
    pub kind: BlobKind,
    pub offset: u64,
    pub length: u32,
    pub raw_len: u32,
}

/// All blob locations, in memory (restore and check use it; the catalog holds the same).
#[derive(Default)]
pub struct MasterIndex {
    map: HashMap<BlobId, Location>,
}

impl MasterIndex {
    pub fn add(&mut self, file: &IndexFile) {
        for p in &file.packs {
            for e in &p.entries {
                self.map.insert(
                    e.id,
                    Location {
                        pack: p.id,
                        kind: e.kind,
                        offset: e.offset as u64,
                        length: e.length,
                        raw_len: e.raw_len,
                    },
                );
            }
        }
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
