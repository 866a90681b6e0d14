//! `cofre repair index`: rebuilds index objects from the self-describing packs, for packs
//! that no readable index object lists (an index object lost, damaged, or never written).
//! It only adds index objects; it deletes nothing.

use std::collections::HashSet;

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::index::{IndexFile, IndexPack};
use crate::repo::Repository;

#[derive(Debug, Default, serde::Serialize)]
pub struct RepairReport {
    pub packs: usize,
    /// Packs that no readable index object listed, now indexed again.
    pub packs_reindexed: usize,
    pub blobs_reindexed: usize,
    pub index_files_written: usize,
    /// Index objects that could not be read (left in place; what they listed is re-indexed).
    pub damaged_index_files: Vec<String>,
    /// Packs whose header could not be read: their data cannot be recovered here.
    pub damaged_packs: Vec<String>,
}

/// Packs per new index object.
const PACKS_PER_INDEX: usize = 1000;

pub fn repair_index(repo: &Repository) -> Result<RepairReport> {
    let mut report = RepairReport::default();
    let mut indexed: HashSet<BlobId> = HashSet::new();
    for obj in repo.list("index/")? {
        match repo.load_index_file(&obj.key) {
            Ok(f) => indexed.extend(f.packs.iter().map(|p| p.id)),
            Err(e @ Error::Corrupt { .. }) => {
                tracing::warn!("{}: {e}", obj.key);
                report.damaged_index_files.push(obj.key);
            }
            Err(e) => return Err(e),
        }
    }
    let mut batch = IndexFile::default();
    for obj in repo.list("data/")? {
        report.packs += 1;
        let Some(id) = obj
            .key
            .rsplit('/')
            .next()
            .and_then(|n| hex::decode(n).ok())
            .and_then(|b| BlobId::from_slice(&b))
        else {
            continue;
        };
        if indexed.contains(&id) {
            continue;
        }
        match repo.pack_header(&obj.key, obj.size) {
            Ok(entries) => {
                report.packs_reindexed += 1;
                report.blobs_reindexed += entries.len();
                // The storage class is not in the pack; a pack re-indexed here counts as
                // instantly readable (see docs/format.md).
                batch.packs.push(IndexPack {
                    id,
                    size: obj.size,
                    class: None,
                    entries,
                });
            }
            Err(e @ Error::Corrupt { .. }) => {
                tracing::warn!("{}: {e}", obj.key);
                report.damaged_packs.push(obj.key);
            }
            Err(e) => return Err(e),
        }
        if batch.packs.len() >= PACKS_PER_INDEX {
            repo.save_index(&std::mem::take(&mut batch))?;
            report.index_files_written += 1;
        }
    }
    if !batch.packs.is_empty() {
        repo.save_index(&batch)?;
        report.index_files_written += 1;
    }
    Ok(report)
}
