//! `cofre repair index`: rebuilds index objects from the self-describing packs, for packs
//! that no readable index object lists (an index object lost, damaged, or never written).
//! It only adds index objects; it deletes nothing, and never lists a pack a prune doomed.

use std::collections::HashSet;

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::file::{pack_key, FileType};
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
    /// Unindexed packs a prune announced it deletes (`repo::doomed`): left to prune.
    pub packs_doomed: usize,
    /// Unindexed packs in an archive class: their header cannot be read until thawed.
    pub archived_packs: Vec<String>,
}

/// Packs per new index object.
const PACKS_PER_INDEX: usize = 1000;

pub fn repair_index(repo: &Repository) -> Result<RepairReport> {
    // Exclusive, so that no prune plans or deletes while we add index objects (a prune's
    // plan would not see them), and two repairs do not index the same packs twice. Repair
    // only adds: indexing a running ingest's pack (its lock lost) is harmless, as that
    // ingest no longer deletes its packs.
    let lock = crate::repo::lock::Lock::acquire(repo, true, "repair", std::time::Duration::ZERO)?;
    let mut report = RepairReport::default();
    // A pack a prune announced it deletes is not listed again: that prune may be paused
    // after its last check and delete it when it wakes (repo::doomed). A damaged list may
    // name any pack.
    let doomed = crate::repo::doomed::load(repo)?;
    if let Some(e) = doomed.reuse_blocked() {
        return Err(e);
    }
    let doomed = doomed.packs();
    let mut indexed: HashSet<BlobId> = HashSet::new();
    let all = repo.load_indexes()?;
    for (_, f) in &all.readable {
        indexed.extend(f.packs.iter().map(|p| p.id));
    }
    for (name, e) in all.damaged {
        tracing::warn!("index/{name}: {e}");
        report.damaged_index_files.push(FileType::Index.key(&name));
    }
    let mut batch = IndexFile::default();
    let mut packs: Vec<_> = repo.pack_listing()?.into_iter().collect();
    packs.sort_by_key(|(id, _)| *id);
    for (id, o) in packs {
        let size = o.size;
        report.packs += 1;
        if indexed.contains(&id) {
            continue;
        }
        if doomed.contains(&id) {
            report.packs_doomed += 1;
            continue;
        }
        let key = pack_key(&id);
        match repo.pack_header(&key, size) {
            Ok(entries) => {
                report.packs_reindexed += 1;
                report.blobs_reindexed += entries.len();
                // The storage class is not in the pack: it is the one the store lists (S3
                // does; a local directory keeps none, and its packs count as instant).
                batch.packs.push(IndexPack {
                    id,
                    size,
                    class: o.class.clone(),
                    entries,
                });
            }
            Err(e @ Error::Corrupt { .. }) => {
                tracing::warn!("{key}: {e}");
                report.damaged_packs.push(key);
            }
            Err(Error::Store(crate::store::StoreError::Archived(_))) => {
                report.archived_packs.push(key);
            }
            Err(e) => return Err(e),
        }
        if batch.packs.len() >= PACKS_PER_INDEX {
            lock.check()?;
            repo.save_index(&std::mem::take(&mut batch))?;
            report.index_files_written += 1;
        }
    }
    if !batch.packs.is_empty() {
        // Still ours: had we stalled past the stale time, a prune may have deleted packs
        // we are about to list (a harmless index naming missing packs, but no reason to).
        lock.check()?;
        repo.save_index(&batch)?;
        report.index_files_written += 1;
    }
    Ok(report)
}
