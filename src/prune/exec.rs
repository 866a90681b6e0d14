//! Carries out a prune plan, in the order docs/prune.md proves safe at every step
//! (SIGKILL anywhere leaves every snapshot readable; a rerun finishes the job):
//! 1. repack: copy the used blobs of partly used packs into new packs (each blob decoded
//!    and verified first; a damaged one aborts before anything is deleted);
//! 2. write the new index objects (kept packs no surviving index lists, and the new packs);
//! 3. check our lock and that no snapshot appeared since the plan;
//! 4. announce what goes in a doomed list, and check that our lock outlived its write;
//! 5. delete the replaced index objects — all of them, or no pack is deleted;
//! 6. check our lock and the others' again; delete the doomed packs;
//! 7. remove our doomed list, and the earlier ones this plan finished.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::Plan;
use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::batches::by_weight;
use crate::repo::doomed::{self, DoomedList};
use crate::repo::file::{pack_key, FileType};
use crate::repo::index::{IndexFile, IndexPack};
use crate::repo::lock::Lock;
use crate::repo::pack::{parse_pack, BlobKind, PackBuilder};
use crate::repo::Repository;

/// Packs per new index object...
const PACKS_PER_INDEX: usize = 256;
/// ...and blobs, unless one pack holds more: each object is cloned, serialized and sealed
/// in memory at once. At a million files one object of 1.1M entries held 240 MB for those
/// three copies (docs/benchmarks.md, "Prune's memory at a million files").
const ENTRIES_PER_INDEX: u64 = 1 << 16;

#[derive(Debug, Default, Serialize)]
pub struct ExecReport {
    pub packs_written: usize,
    pub bytes_written: u64,
    pub index_objects_written: usize,
    pub index_objects_deleted: usize,
    pub packs_deleted: usize,
    pub bytes_deleted: u64,
    /// Deletions that failed: harmless leftovers the next prune removes.
    pub delete_failures: Vec<String>,
}

/// Open packs of the repack, one per (kind, class): trees and data stay apart, and a
/// blob stays in the storage class its pack had.
struct Repacker<'a> {
    repo: &'a Repository,
    open: HashMap<(BlobKind, Option<String>), PackBuilder>,
    written: Vec<IndexPack>,
    bytes: u64,
}

impl Repacker<'_> {
    fn add(
        &mut self,
        class: &Option<String>,
        id: crate::crypto::BlobId,
        kind: BlobKind,
        enc: &[u8],
        raw_len: u32,
        base: Option<crate::repo::compress::Bases>,
    ) -> Result<()> {
        let key = (kind, class.clone());
        let b = self
            .open
            .entry(key.clone())
            .or_insert_with(|| PackBuilder::new(kind));
        b.add(id, enc, raw_len as usize, base);
        if b.len() >= self.repo.config.pack_size as usize {
            if let Some(full) = self.open.remove(&key) {
                self.flush(full, class.clone())?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, b: PackBuilder, class: Option<String>) -> Result<()> {
        let pack = b.finish(self.repo.keys(), self.repo.legacy())?;
        let size = pack.bytes.len() as u64;
        self.repo
            .put_raw_class(&pack_key(&pack.id), pack.bytes, class.as_deref())?;
        self.bytes += size;
        self.written.push(IndexPack {
            id: pack.id,
            size,
            class,
            entries: pack.entries,
        });
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<IndexPack>, u64)> {
        let mut open: Vec<_> = self.open.drain().collect();
        open.sort_by_key(|((k, c), _)| (*k as u8, c.clone()));
        for ((_, class), b) in open {
            if !b.is_empty() {
                self.flush(b, class)?;
            }
        }
        Ok((self.written, self.bytes))
    }
}

fn repack(repo: &Repository, plan: &Plan) -> Result<(Vec<IndexPack>, u64)> {
    let mut r = Repacker {
        repo,
        open: HashMap::new(),
        written: Vec::new(),
        bytes: 0,
    };
    for (p, keep) in &plan.repack {
        let key = pack_key(&p.id);
        let bytes = repo.get_raw(&key, None)?;
        // Blobs to copy that the pack's header has not listed yet: all must be found, or
        // the pack's deletion would take a used blob with it. The header and the index are
        // written together, so only a bug makes them differ; this is where it would cost
        // data, so it stops here, before anything is written or deleted.
        let mut unseen: HashSet<&BlobId> = keep.iter().collect();
        for e in parse_pack(repo.keys(), &bytes, &key)? {
            if !keep.contains(&e.id) {
                continue;
            }
            unseen.remove(&e.id);
            let enc = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            // Never copy a damaged blob over its only good copy's deletion. A delta is
            // copied as it is (it names its base by id, and the plan keeps the base); it is
            // verified by rebuilding it on its base, read where the plan found it.
            let base = |b: &crate::crypto::BlobId| -> Result<std::sync::Arc<Vec<u8>>> {
                let loc = plan.index.get_whole(b).ok_or_else(|| {
                    Error::corrupt(format!("blob {}", b.hex()), "has no whole copy")
                })?;
                Ok(std::sync::Arc::new(repo.read_blob(b, &loc)?))
            };
            repo.decode_blob_with(&e.id, enc, &base).map_err(|err| {
                Error::PruneRefused(format!(
                    "{key} holds a damaged blob that snapshots use ({err}); nothing was deleted: run `cofre check --read-data`"
                ))
            })?;
            r.add(&p.class, e.id, e.kind, enc, e.raw_len, e.bases())?;
        }
        if let Some(id) = unseen.iter().min() {
            return Err(Error::PruneRefused(format!(
                "{key} does not hold {} blob(s) its index lists there and snapshots use (first: {}); nothing was deleted: run `cofre check --read-data`",
                unseen.len(),
                id.hex()
            )));
        }
    }
    r.finish()
}

/// Live locks other than ours. A locker that saw our lock backs off and removes its own
/// within moments, so one seen is looked at again a few times before it counts.
fn others_settled(repo: &Repository, lock: &Lock) -> Result<Vec<String>> {
    let mut others = lock.others_live(repo)?;
    for wait in [100, 400, 1500] {
        if others.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(wait));
        others = lock.others_live(repo)?;
    }
    Ok(others)
}

/// Runs the plan. `lock` is the exclusive lock the plan was made under.
pub fn execute(repo: &Repository, plan: &Plan, lock: &Lock) -> Result<ExecReport> {
    let mut report = ExecReport::default();
    let (new_packs, bytes) = repack(repo, plan)?;
    report.packs_written = new_packs.len();
    report.bytes_written = bytes;

    let listed: Vec<&IndexPack> = (plan.reindex.iter().map(|&k| &plan.keep[k]))
        .chain(&new_packs)
        .collect();
    let entries = |p: &&IndexPack| p.entries.len() as u64;
    for chunk in by_weight(&listed, PACKS_PER_INDEX, ENTRIES_PER_INDEX, entries) {
        repo.save_index(&IndexFile {
            packs: chunk.iter().map(|p| (*p).clone()).collect(),
        })?;
        report.index_objects_written += 1;
    }

    tracing::info!(
        "prune: {} index objects written",
        report.index_objects_written
    );
    lock.check()?;
    let now: std::collections::HashSet<String> = repo.snapshot_ids()?.into_iter().collect();
    if let Some(new) = now.difference(&plan.snapshots).next() {
        return Err(Error::PruneRefused(format!(
            "snapshot {new} appeared while prune ran (written without a lock?); nothing was deleted: run prune again"
        )));
    }

    let mine = announce(repo, plan, lock)?;

    tracing::info!("prune: deleting {} index objects", plan.old_indexes.len());
    // Every replaced index object goes before any pack does (a barrier between the two).
    let results = repo.delete_many(FileType::Index, &plan.old_indexes);
    report.index_objects_deleted = results.iter().filter(|r| r.is_ok()).count();
    if let Some((name, Err(e))) = plan
        .old_indexes
        .iter()
        .zip(&results)
        .find(|(_, r)| r.is_err())
    {
        return Err(Error::PruneRefused(format!(
            "deleting {} failed ({e}); no pack was deleted: run prune again",
            super::index_key(name)
        )));
    }

    // Between the index objects and the packs, again: our lock is still ours and nobody
    // else holds one. A locker that removed ours as stale may have synced before our index
    // deletions and may dedup against what we are about to delete; it shows here, or our
    // lock is gone (docs/prune.md "A shared lock never passes an exclusive one").
    lock.check()?;
    let others = others_settled(repo, lock)?;
    if let Some(first) = others.first() {
        return Err(Error::PruneRefused(format!(
            "another process took a lock while prune ran ({first}); no pack was deleted: run prune again"
        )));
    }

    let doomed: Vec<&IndexPack> = plan
        .delete
        .iter()
        .chain(plan.repack.iter().map(|(p, _)| p))
        .collect();
    let names: Vec<String> = doomed.iter().map(|p| p.id.hex()).collect();
    for (p, r) in doomed.iter().zip(repo.delete_many(FileType::Pack, &names)) {
        match r {
            Ok(()) => {
                report.packs_deleted += 1;
                report.bytes_deleted += p.size;
            }
            Err(e) => report
                .delete_failures
                .push(format!("{}: {e}", pack_key(&p.id))),
        }
    }
    // A list goes only once everything it names is gone; until then the next prune
    // finishes it.
    if report.delete_failures.is_empty() {
        let lists: Vec<String> = mine.into_iter().chain(plan.settled_lists.clone()).collect();
        for (name, r) in lists.iter().zip(repo.delete_many(FileType::Doomed, &lists)) {
            if let Err(e) = r {
                let key = FileType::Doomed.key(name);
                report.delete_failures.push(format!("{key}: {e}"));
            }
        }
    }
    Ok(report)
}

/// Writes the doomed list (`repo::doomed`), then checks our lock: a locker that removes it
/// from now on lists `doomed/` after the list landed and reuses nothing it names; one that
/// removed it before may not have seen the list, and then we delete nothing.
fn announce(repo: &Repository, plan: &Plan, lock: &Lock) -> Result<Option<String>> {
    let mut packs: Vec<_> = plan
        .delete
        .iter()
        .chain(plan.repack.iter().map(|(p, _)| p))
        .map(|p| p.id)
        .collect();
    packs.sort();
    if packs.is_empty() && plan.old_indexes.is_empty() {
        return Ok(None);
    }
    let list = DoomedList {
        packs,
        indexes: plan.old_indexes.clone(),
    };
    let name = doomed::save(repo, &list)?;
    if let Err(e) = lock.check() {
        // Nothing of it was deleted; the list would only stop reuse of what stays.
        if let Err(d) = repo.delete(FileType::Doomed, &name) {
            tracing::warn!(
                "{} left for the next prune: {d}",
                FileType::Doomed.key(&name)
            );
        }
        return Err(e);
    }
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::repo::packer::Packer;
    use crate::store::memory::MemoryStore;

    /// A used blob the pack's header does not list (an index that disagrees with its pack)
    /// stops the repack, so the pack is never deleted with the blob in it.
    #[test]
    fn a_repack_that_does_not_find_a_used_blob_refuses() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let store = Arc::new(MemoryStore::new());
        let repo = Repository::init(store, rt.handle().clone(), b"pw").expect("init");
        let data: Vec<Vec<u8>> = (0..3u8).map(|n| vec![n; 1000]).collect();
        let ids: Vec<BlobId> = data.iter().map(|d| repo.keys().blob_id(d)).collect();
        let written = std::thread::scope(|scope| {
            let packer = Packer::start(scope, &repo, None, repo.compression());
            for d in &data[..2] {
                packer
                    .add(repo.keys().blob_id(d), d.clone(), BlobKind::Data)
                    .expect("add");
            }
            packer.finish().map_err(|(e, _)| e).expect("finish")
        });
        let pack = written.packs.into_iter().next().expect("one pack");
        let plan = |keep: &[BlobId]| super::super::Plan {
            snapshots: HashSet::new(),
            keep: Vec::new(),
            repack: vec![(pack.clone(), keep.iter().copied().collect())],
            delete: Vec::new(),
            old_indexes: Vec::new(),
            reindex: Vec::new(),
            summary: Default::default(),
            index: Default::default(),
            settled_lists: Vec::new(),
        };
        // The blobs the pack holds: copied into one new pack.
        let (new, _) = repack(&repo, &plan(&ids[..2])).expect("repack");
        assert_eq!(new.iter().map(|p| p.entries.len()).sum::<usize>(), 2);
        // One more that it does not hold: refused, naming it.
        match repack(&repo, &plan(&ids)) {
            Err(Error::PruneRefused(m)) => assert!(m.contains(&ids[2].hex()), "{m}"),
            other => panic!("expected a refusal, got {:?}", other.map(|(p, _)| p.len())),
        }
    }
}
