//! Brings the catalog up to date with the store: new index objects, new snapshots (and
//! their trees), snapshots forgotten elsewhere. `rebuild` is a sync into an empty catalog.

use crate::catalog::{Catalog, CatalogTx};
use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::file::FileType;
use crate::repo::pack::BlobKind;
use crate::repo::{decode_tree, Repository};

#[derive(Debug, Default, serde::Serialize)]
pub struct SyncReport {
    pub index_files_added: usize,
    /// Index objects gone from the store: their blobs are no longer reused.
    pub index_files_removed: usize,
    /// Index objects that could not be read (damaged): reported, skipped.
    pub index_files_skipped: Vec<String>,
    pub snapshots_added: usize,
    pub snapshots_removed: usize,
    pub trees_added: usize,
    pub snapshots_skipped: Vec<String>,
}

impl SyncReport {
    /// The objects that could not be read and were skipped, by their keys in the store.
    pub fn unreadable(&self) -> Vec<String> {
        let snaps = self
            .snapshots_skipped
            .iter()
            .map(|s| FileType::Snapshot.key(s));
        let index = self
            .index_files_skipped
            .iter()
            .map(|s| FileType::Index.key(s));
        snaps.chain(index).collect()
    }
}

pub fn sync(cat: &mut Catalog, repo: &Repository) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let known = cat.known_index_files()?;
    // A failed listing is an error, never an empty store (it would forget every blob).
    let listed = repo.list_type(FileType::Index)?;
    let names: std::collections::HashSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    for (name, _) in &listed {
        if known.contains(name) {
            continue;
        }
        match repo.load_index_file(name) {
            Ok(file) => {
                cat.insert_index(name, &file)?;
                report.index_files_added += 1;
            }
            Err(e @ Error::Corrupt { .. }) => {
                tracing::warn!("index {name} skipped: {e}; `cofre repair index` rebuilds what it listed from the packs");
                report.index_files_skipped.push(name.to_string());
                // Known from now on, vouching for nothing: objects are write-once, so it
                // stays damaged, and a mount syncing every 2 s need not fetch it again.
                cat.insert_index(name, &crate::repo::index::IndexFile::default())?;
            }
            Err(e) => return Err(e),
        }
    }
    // New index objects first: those a prune writes list again the packs it kept, which
    // then keep their rows when the old ones go (removed first, the rows went and came
    // back: `a_sync_after_a_re_listing_deletes_no_row_of_a_kept_pack`).
    for name in known.iter().filter(|n| !names.contains(n.as_str())) {
        cat.remove_index(name)?;
        report.index_files_removed += 1;
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
            // A damaged snapshot is skipped and reported; a store failure is an error.
            Err(e @ Error::Corrupt { .. }) => {
                tracing::warn!("snapshot {id} not added to the catalog: {e}");
                report.snapshots_skipped.push(id.clone());
            }
            Err(e) => return Err(e),
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

/// Builds a fresh catalog from the store *beside* `path`, then puts it in its place. A
/// mount reading the old file goes on answering from it meanwhile, and switches when it
/// sees the new file's generation (`vfs/remap.rs`); a rebuild that fails half-way leaves
/// the old file as it was. One rebuild at a time per catalog (a lock file): a second one
/// that waited finds the file replaced and only syncs it.
pub fn rebuild(path: &std::path::Path, repo: &Repository) -> Result<(Catalog, SyncReport)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sibling = |suffix: &str| path.with_file_name(format!("{name}{suffix}"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        super::private_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    let before = file_id(path);
    let _one = RebuildLock::take(&sibling(".rebuild.lock"))?;
    if before.is_some() && file_id(path) != before {
        let mut cat = Catalog::open(path)?;
        let report = sync(&mut cat, repo)?;
        return Ok((cat, report));
    }
    let beside = sibling(".rebuild");
    super::schema::remove(&beside)?;
    let report = {
        let mut cat = Catalog::open(&beside)?;
        let report = sync(&mut cat, repo)?;
        // Everything into the file itself, and out of WAL mode: the file is renamed
        // alone, and the next opener turns WAL on again.
        cat.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")?;
        report
    };
    for suffix in [".rebuild-wal", ".rebuild-shm"] {
        let _ = std::fs::remove_file(sibling(suffix));
    }
    // The old file's WAL and shared memory describe the old file only; left beside the new
    // one, SQLite would replay them into it. Open connections keep theirs (unlinked).
    for suffix in ["-wal", "-shm"] {
        let p = sibling(suffix);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(p, e)),
            _ => {}
        }
    }
    std::fs::rename(&beside, path).map_err(|e| Error::io(path, e))?;
    let cat = Catalog::open(path)?;
    Ok((cat, report))
}

/// (device, inode) of a file: tells a replaced catalog from the one we saw.
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// An exclusive `flock` on a file beside the catalog, held while rebuilding (released when
/// the descriptor closes, on drop).
struct RebuildLock {
    _held: std::fs::File,
}

impl RebuildLock {
    fn take(path: &std::path::Path) -> Result<RebuildLock> {
        // Waits until the other rebuild is done.
        match crate::fsutil::lock_file(path, true) {
            Ok(Some(f)) => Ok(RebuildLock { _held: f }),
            Ok(None) => Err(Error::io(path, std::io::ErrorKind::WouldBlock.into())),
            Err(e) => Err(Error::io(path, e)),
        }
    }
}

/// Whether an error says the catalog file itself is damaged (not a store problem).
pub fn is_damaged(e: &Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    matches!(e, Error::Catalog(rusqlite::Error::SqliteFailure(f, _))
        if f.code == DatabaseCorrupt || f.code == NotADatabase)
}

/// Opens and syncs the catalog; a damaged catalog is derived data, so it is rebuilt from
/// the store with a warning instead of failing every command.
pub fn open_synced(path: &std::path::Path, repo: &Repository) -> Result<Catalog> {
    let attempt = Catalog::open(path).and_then(|mut cat| {
        cat.snapshot_count()?;
        sync(&mut cat, repo).map(|_| cat)
    });
    match attempt {
        Err(e) if is_damaged(&e) => {
            tracing::warn!(
                "the catalog {} is damaged ({e}); rebuilding it from the repository",
                path.display()
            );
            rebuild(path, repo).map(|(cat, _)| cat)
        }
        r => r,
    }
}
