//! The commit of a snapshot (invariant 3), shared by `ingest` and `copy`: after every pack
//! is stored, one index object; after the index, the manifest; and around both, the checks
//! that our lock is still ours, so that a prune that took us for dead never leaves a
//! snapshot naming data it deleted (docs/prune.md, "Why a snapshot committed during prune
//! never references a deleted blob").

use crate::error::{Error, Result};
use crate::repo::file::FileType;
use crate::repo::index::IndexFile;
use crate::repo::lock::Lock;
use crate::repo::Repository;

/// What a commit stored: the index object (none when nothing new was written) and the
/// snapshot id.
pub struct Committed {
    pub index: Option<String>,
    pub snapshot: String,
}

/// Stores `index` (when it lists any pack), then the manifest with `save_manifest`, which
/// returns the snapshot id and whether this call stored it (a copy finds it stored by
/// another copy of the same snapshot: that one is never withdrawn here). The packs `index`
/// lists must all be stored already.
pub fn commit(
    repo: &Repository,
    lock: &Lock,
    index: &IndexFile,
    save_manifest: impl FnOnce() -> Result<(String, bool)>,
) -> Result<Committed> {
    // Our lock judged stale and removed means a prune may be deleting what we reuse. Our
    // packs stay: that prune may have listed them in its new index already, and a later
    // prune deletes them once they are old enough and still unused.
    lock.check()?;
    let index_name = match index.packs.is_empty() {
        true => None,
        false => Some(repo.save_index(index)?),
    };
    // Checked again right before the commit point: had we stalled before or during the
    // index PUT, a prune may have taken our packs for a dead writer's, indexed or deleted
    // them; our index object would then name packs that are gone, so it is settled
    // (`withdraw`).
    if let Err(e) = lock.check() {
        let ours = index_name.as_deref().map(|n| (n, index));
        if let Err(w) = withdraw(repo, ours, None) {
            tracing::warn!(
                "index/{} not settled ({w}); the next prune replaces it",
                index_name.as_deref().unwrap_or("")
            );
        }
        return Err(e);
    }
    let (id, ours) = save_manifest()?;
    // Had we stalled between the check above and this PUT for longer than the stale time,
    // a prune may have removed our lock, not seen this manifest, and deleted data it
    // needs. A prune must remove our lock object before it plans, so if the object is
    // still there, none did; if it is gone, the snapshot is withdrawn (docs/prune.md).
    // Only a lock confirmed gone withdraws the snapshot; a store error while asking
    // (a 5xx, a timeout) proves nothing, and the snapshot stays, as before this check.
    match lock.still_held() {
        Ok(()) => {}
        Err(e @ Error::LockLost(_)) => {
            let our_index = index_name.as_deref().map(|n| (n, index));
            let our_snapshot = ours.then_some(id.as_str());
            return Err(match withdraw(repo, our_index, our_snapshot) {
                Ok(()) => e,
                Err(d) => Error::LockLost(format!(
                    "{e}; snapshot {id} may be incomplete and could not be withdrawn ({d}): `cofre forget {id}`"
                )),
            });
        }
        Err(e) => tracing::warn!("snapshot {id} kept: our lock could not be confirmed ({e})"),
    }
    Ok(Committed {
        index: index_name,
        snapshot: id,
    })
}

/// Takes back what a writer that lost its lock wrote. Its manifest goes (no snapshot may
/// name data a prune may have deleted meanwhile). Its index object stays — another ingest
/// may already dedup against it — unless it names a pack that is gone (a prune took it for
/// a dead ingest's leftover): then the packs still there are listed in a new index object
/// first, and the old one is deleted, so no reader is sent to a missing pack. Packs stay
/// for prune.
fn withdraw(
    repo: &Repository,
    index: Option<(&str, &IndexFile)>,
    snapshot: Option<&str>,
) -> Result<()> {
    if let Some(id) = snapshot {
        repo.delete(FileType::Snapshot, id)?;
    }
    let Some((name, file)) = index else {
        return Ok(());
    };
    let listed = repo.pack_ids()?;
    let (present, missing): (Vec<_>, Vec<_>) = file
        .packs
        .iter()
        .cloned()
        .partition(|p| listed.contains(&p.id));
    if missing.is_empty() {
        return Ok(());
    }
    if !present.is_empty() {
        repo.save_index(&IndexFile { packs: present })?;
    }
    repo.delete(FileType::Index, name)
}

/// Removes the packs of a writer that does not commit, if its lock is still its own: once
/// it was lost, a prune may have indexed them (docs/prune.md).
pub fn discard_if_ours(repo: &Repository, lock: &Lock, packs: &[crate::repo::index::IndexPack]) {
    match lock.check() {
        Ok(()) => crate::repo::packer::discard(repo, packs),
        Err(e) => tracing::warn!(
            "{} pack(s) of this run left for prune to collect: {e}",
            packs.len()
        ),
    }
}
