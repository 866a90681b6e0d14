//! Brings the catalog up to date with the store: new index objects, new snapshots (and
//! their trees), snapshots forgotten elsewhere. `rebuild` is a sync into an empty catalog.

use crate::catalog::{Catalog, CatalogTx};
use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::pack::BlobKind;
use crate::repo::{decode_tree, Repository};

#[derive(Debug, Default, serde::Serialize)]
pub struct SyncReport {
    pub index_files_added: usize,
    pub snapshots_added: usize,
    pub snapshots_removed: usize,
    pub trees_added: usize,
    pub snapshots_skipped: Vec<String>,
}

pub fn sync(cat: &mut Catalog, repo: &Repository) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let known = cat.known_index_files()?;
    for obj in repo.list("index/")? {
        let name = obj.key.trim_start_matches("index/");
        if !known.contains(name) {
            let file = repo.load_index_file(&obj.key)?;
            cat.insert_index(name, &file)?;
            report.index_files_added += 1;
        }
    }

    let known = cat.known_snapshots()?;
    let in_store = repo.snapshot_ids()?;
    for id in &in_store {
        if known.contains(id) {
            continue;
        }
        match import_snapshot(cat, repo, id) {
            Ok(trees) => {
                report.snapshots_added += 1;
                report.trees_added += trees;
            }
            Err(e) => {
                tracing::warn!("snapshot {id} not added to the catalog: {e}");
                report.snapshots_skipped.push(id.clone());
            }
        }
    }
    for id in known {
        if !in_store.contains(&id) {
            cat.remove_snapshot(&id)?;
            report.snapshots_removed += 1;
        }
    }
    Ok(report)
}

fn import_snapshot(cat: &mut Catalog, repo: &Repository, id: &str) -> Result<usize> {
    let manifest = repo.load_manifest(id)?;
    let tx = cat.writer()?;
    let mut added = 0;
    import_tree(&tx, repo, &manifest.root, &mut added)?;
    tx.insert_snapshot(id, &manifest)?;
    tx.commit()?;
    Ok(added)
}

/// Post-order: subtrees first, so every node's subtree rowid exists when it is inserted.
fn import_tree(tx: &CatalogTx, repo: &Repository, hash: &BlobId, added: &mut usize) -> Result<()> {
    if tx.tree_rowid(hash)?.is_some() {
        return Ok(());
    }
    let what = || format!("tree {}", hash.hex());
    let loc = tx
        .blob_location(hash)?
        .ok_or_else(|| Error::corrupt(what(), "not in any index"))?;
    if loc.kind != BlobKind::Tree {
        return Err(Error::corrupt(what(), "is not a tree blob"));
    }
    let tree = decode_tree(&repo.read_blob(hash, &loc)?, hash)?;
    for node in &tree.nodes {
        if let Some(sub) = &node.subtree {
            import_tree(tx, repo, sub, added)?;
        }
    }
    tx.insert_tree(hash, &tree)?;
    *added += 1;
    Ok(())
}

/// Deletes the catalog file (and its WAL) and syncs into a fresh one.
pub fn rebuild(path: &std::path::Path, repo: &Repository) -> Result<(Catalog, SyncReport)> {
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(p, e)),
            _ => {}
        }
    }
    let mut cat = Catalog::open(path)?;
    let report = sync(&mut cat, repo)?;
    Ok((cat, report))
}
