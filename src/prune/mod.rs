//! `cofre prune`: frees the data no snapshot references. A plan (what to keep, delete and
//! repack, printable with `--dry-run`) built from fresh store listings only, then an
//! executor (`exec.rs`). The safety argument is docs/prune.md; the rules it relies on:
//! - it runs under the exclusive lock, so no ingest is between its start and its commit;
//! - every listing and read it decides on is fresh from the store, and any failure aborts
//!   before the first deletion (a damaged snapshot too: it might reference anything);
//! - the new index is written before any old index object is deleted, and every old index
//!   object that names a doomed pack is deleted before any pack.

mod blobset;
mod exec;
mod minimum;
pub(crate) mod used;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

pub use exec::{execute, ExecReport};
pub use minimum::{hold_where, Held, Minimums};

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::file::{pack_key, FileType};
use crate::repo::index::{tier, IndexPack, MasterIndex, Reach};
use crate::repo::Repository;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Repack partly used packs until the unused bytes left are at most this share of the
    /// used bytes (restic's `--max-unused`, same default).
    pub max_unused_percent: f64,
    pub dry_run: bool,
    pub retry_lock: std::time::Duration,
    /// Minimum storage durations by class (None: the built-in table of the provider the
    /// repository's URL names; minimum.rs).
    pub minimums: Option<Minimums>,
    /// The time minimum storage durations are judged at (None: the store's clock): what
    /// a later prune would do, with `dry_run`. Nothing else in a prune uses it.
    pub now: Option<i64>,
    /// Plan as if these snapshots were forgotten (`forget --dry-run --prune`: what a
    /// policy frees, and what deleting it early would cost). Only in a dry run: `prune`
    /// refuses it otherwise, since those snapshots are still there to be kept.
    pub assume_forgotten: Vec<String>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused_percent: 5.0,
            dry_run: false,
            retry_lock: std::time::Duration::ZERO,
            minimums: None,
            now: None,
            assume_forgotten: Vec::new(),
        }
    }
}

/// Bytes and packs, per storage class ("STANDARD" for the bucket's default).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Tally {
    pub packs: usize,
    pub bytes: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct PlanSummary {
    pub snapshots: usize,
    pub packs_total: usize,
    pub bytes_total: u64,
    pub bytes_used: u64,
    pub packs_keep: usize,
    pub packs_delete: usize,
    pub bytes_delete: u64,
    pub packs_repack: usize,
    pub bytes_repack: u64,
    /// Bytes the repacked packs hold that are still used (copied into new packs).
    pub bytes_repack_used: u64,
    /// Packs no readable index listed (a crashed ingest's leftovers, or a lost index).
    pub packs_unindexed: usize,
    /// Unindexed packs younger than twice the stale time: left alone (a running ingest's).
    pub packs_unindexed_young: usize,
    /// Packs whose header cannot be read and that no index lists: kept, untouched.
    pub packs_unreadable: Vec<String>,
    pub index_objects_replaced: usize,
    /// Unused packs kept (neither deleted nor repacked) because their class's minimum
    /// storage duration has not passed: deleting them would be billed anyway.
    pub held_min_duration: Held,
    /// Unused packs kept because an S3 Object Lock retention still holds them (a
    /// repository made with `init --object-lock`); a later prune deletes them.
    pub held_object_lock: Held,
    /// Chunks of self-contained snapshots with no copy in their own class (written by an
    /// older version, or a re-indexed pack whose class was lost): kept where they are.
    pub chunks_outside_own_class: usize,
    pub freed_by_class: HashMap<String, Tally>,
}

pub struct Plan {
    /// The snapshots the plan keeps alive: a new one appearing before the deletions aborts.
    pub snapshots: HashSet<String>,
    pub keep: Vec<IndexPack>,
    /// Partly used packs to rewrite, with the blobs to copy out of each.
    pub repack: Vec<(IndexPack, HashSet<BlobId>)>,
    pub delete: Vec<IndexPack>,
    /// Index objects to replace (every one that names a doomed pack, and damaged ones).
    pub old_indexes: Vec<String>,
    /// Kept packs that no surviving index object will list: go into the new index
    /// (positions in `keep`; a copy of their entries was a fifth of a prune's memory).
    pub reindex: Vec<usize>,
    pub summary: PlanSummary,
    /// Every blob's location when the plan was made: the repack reads deltas' bases here.
    pub index: MasterIndex,
    /// Earlier prunes' doomed lists that this plan finishes: nothing they name is left once
    /// it has run (`repo::doomed`).
    pub settled_lists: Vec<String>,
}

fn class_name(p: &IndexPack) -> String {
    p.class.clone().unwrap_or_else(|| "STANDARD".into())
}

/// `store_now` is the store's clock (`Lock::store_now`): objects younger than twice the
/// stale time may belong to an ingest that is still running, however its lock looks.
pub fn plan(repo: &Repository, opts: &PruneOptions, store_now: i64) -> Result<Plan> {
    let min_age = 2 * repo.env().lock_timing().stale.as_secs() as i64;
    let young = |t: Option<i64>| t.is_none_or(|t| store_now - t < min_age);
    // 1. Snapshots, every one readable, or nothing is deleted.
    let mut ids = repo.snapshot_ids()?;
    ids.retain(|id| !opts.assume_forgotten.contains(id));
    // The roots of snapshots that share data across classes, and of self-contained ones
    // by their class (their data is kept in that class: used.rs `homes_in_class`).
    let mut roots = Vec::with_capacity(ids.len());
    let mut contained: BTreeMap<String, Vec<BlobId>> = BTreeMap::new();
    for (id, manifest) in ids.iter().zip(repo.load_manifests(&ids)) {
        match manifest {
            Ok(m) => match Reach::of(&m) {
                Reach::Class(c) => contained.entry(c).or_default().push(m.root),
                Reach::Tier(_) => roots.push(m.root),
            },
            Err(e @ Error::Corrupt { .. }) => {
                return Err(Error::PruneRefused(format!(
                    "snapshot {id} cannot be read ({e}); remove it with `cofre forget {id}` if it is beyond repair, then prune again"
                )))
            }
            Err(e) => return Err(e),
        }
    }

    tracing::info!("prune: {} snapshots read", ids.len());
    // What earlier prunes announced they delete: one of them may be paused, about to.
    let earlier = crate::repo::doomed::load(repo)?;
    if let Some(e) = earlier.reuse_blocked() {
        return Err(Error::PruneRefused(e.to_string()));
    }
    let doomed_before = earlier.packs();
    // 2. Index objects and the packs really in the store, with their ages by the store's
    //    clock.
    let mut indexes = repo.load_indexes()?;
    let listing = repo.pack_listing()?;
    let in_store: HashMap<BlobId, u64> = listing.iter().map(|(id, o)| (*id, o.size)).collect();
    tracing::info!(
        "prune: {} index objects, {} packs listed",
        indexes.readable.len(),
        in_store.len()
    );
    // The packs in the store that an index object lists, each once; the index objects
    // keep their names only (their entries would be a second copy of every blob's).
    let mut packs: HashMap<BlobId, IndexPack> = HashMap::new();
    // Which index objects name each pack.
    let mut named_by: HashMap<BlobId, Vec<usize>> = HashMap::new();
    for (i, (_, f)) in indexes.readable.iter_mut().enumerate() {
        for p in std::mem::take(&mut f.packs) {
            named_by.entry(p.id).or_default().push(i);
            if in_store.contains_key(&p.id) {
                packs.entry(p.id).or_insert(p);
            }
        }
    }
    for (name, e) in &indexes.damaged {
        tracing::warn!("index/{name} is damaged ({e}); prune replaces it with what the packs say");
    }
    let mut summary = PlanSummary {
        snapshots: ids.len(),
        packs_total: in_store.len(),
        bytes_total: in_store.values().sum(),
        ..Default::default()
    };
    // 3. Packs no readable index lists: what they hold comes from their own header. Those
    //    younger than twice the stale time may be a running ingest's: neither adopted nor
    //    deleted (kopia's minimum age), whatever the locks say.
    let mut indexed: Vec<IndexPack> = packs.into_values().collect();
    indexed.sort_by_key(|p| p.id);
    let is_indexed: HashSet<BlobId> = indexed.iter().map(|p| p.id).collect();
    let mut adopted: Vec<IndexPack> = Vec::new();
    let mut sorted: Vec<(&BlobId, &crate::store::ObjectInfo)> = listing.iter().collect();
    sorted.sort_by_key(|(id, _)| **id);
    for (id, o) in sorted {
        let (size, modified) = (&o.size, &o.modified);
        if is_indexed.contains(id) {
            continue;
        }
        // A doomed pack is no running ingest's, whatever its age (ingests never write one).
        if young(*modified) && !doomed_before.contains(id) {
            summary.packs_unindexed_young += 1;
            continue;
        }
        summary.packs_unindexed += 1;
        match repo.pack_header(&pack_key(id), *size) {
            Ok(entries) => {
                // The class the store reports: the pack header has none, and a GLACIER
                // pack listed as instant would be reused by a STANDARD snapshot.
                let p = IndexPack {
                    id: *id,
                    size: *size,
                    class: o.class.clone(),
                    entries,
                };
                adopted.push(p);
            }
            // Unreadable: we cannot prove it unused, so it stays.
            Err(
                e @ (Error::Corrupt { .. } | Error::Store(crate::store::StoreError::Archived(_))),
            ) => {
                tracing::warn!("{} kept: its header cannot be read ({e})", pack_key(id));
                summary.packs_unreadable.push(pack_key(id));
            }
            Err(e) => return Err(e),
        }
    }

    // 4. What the snapshots use, and 5. where each used blob (and each delta's base) is
    //    kept: the copy readers use among the safe ones (used.rs).
    //    A self-contained snapshot's chunks are kept in its own class only, unless some
    //    have no copy there: those keep the copy readers use, as any snapshot's.
    let views = used::views(&indexed, &adopted, &doomed_before);
    let all_packs: Vec<&IndexPack> = indexed.iter().chain(&adopted).collect();
    let mut used = used::used_blobs(repo, &views.all, &roots)?;
    let mut in_class = used::Homes::default();
    for (class, (trees, pinned)) in used::pinned_chunks(repo, &views.all, &contained)? {
        used.extend(trees);
        let outside = used::homes_in_class(
            &mut in_class,
            &class,
            pinned.iter(),
            &all_packs,
            &doomed_before,
        );
        if !outside.is_empty() {
            tracing::warn!("{} chunk(s) of self-contained {class} snapshots have no copy in {class}: they stay readable through hotter packs, which are kept; `cofre check` names the snapshots", outside.len());
        }
        summary.chunks_outside_own_class += outside.len();
        used.extend(outside);
    }
    let homes = used::homes_beside(in_class, &used, &views, &all_packs);
    tracing::info!(
        "prune: {} blobs in use ({} more as delta bases)",
        used.len(),
        homes.bases
    );
    // What is used is in `homes` now; the set is the largest thing a plan holds at a
    // million files (docs/benchmarks.md, "Prune's memory at a million files").
    drop(used);
    if homes.missing > 0 {
        return Err(Error::PruneRefused(format!(
            "{} blob(s) that snapshots use are in no pack; run `cofre check` to see which files, and `cofre repair index` if packs lost their index",
            homes.missing
        )));
    }
    let mut used_in = homes.used_in;
    summary.bytes_used = used_in.values().map(|(b, _)| b).sum();

    let mut keep = Vec::new();
    let mut delete = Vec::new();
    let mut partial = Vec::new();
    drop(all_packs);
    let mut ordered: Vec<IndexPack> = indexed.into_iter().chain(adopted).collect();
    ordered.sort_by_key(|p| p.id);
    for p in ordered {
        match used_in.remove(&p.id) {
            None => delete.push(p),
            Some((_, blobs))
                if blobs.len() == p.entries.len() && !doomed_before.contains(&p.id) =>
            {
                keep.push(p)
            }
            Some((bytes, blobs)) => partial.push((p, bytes, blobs)),
        }
    }

    // 6. Repack the emptiest partly used packs until the unused share is within bounds.
    //    Packs in an archive class cannot be read back, so they are never repacked. A pack
    //    an earlier (crashed) prune doomed is repacked whatever the share: ingest reuses
    //    nothing from it, so until it goes its list stays and its data is stored again.
    let mut unused: u64 = partial
        .iter()
        .map(|(p, b, _)| p.size.saturating_sub(*b))
        .sum();
    let limit = (summary.bytes_used as f64 * opts.max_unused_percent / 100.0) as u64;
    partial.sort_by(|a, b| {
        let share = |(p, u, _): &(IndexPack, u64, HashSet<u64>)| *u as f64 / p.size.max(1) as f64;
        share(a).total_cmp(&share(b)).then(a.0.id.cmp(&b.0.id))
    });
    let mut repack = Vec::new();
    for (p, bytes, blobs) in partial {
        let over = unused > limit || doomed_before.contains(&p.id);
        if over && tier(p.class.as_deref()) == 0 {
            unused -= p.size.saturating_sub(bytes);
            summary.bytes_repack_used += bytes;
            let blobs = used::kept_ids(&p, &blobs);
            repack.push((p, blobs));
        } else {
            keep.push(p);
        }
    }

    // 6b. Nothing goes before its class's minimum storage duration (minimum.rs).
    let minimums = opts
        .minimums
        .clone()
        .unwrap_or_else(|| Minimums::for_location(&repo.store().location()));
    summary.held_min_duration = minimum::hold(
        &minimums,
        &listing,
        &doomed_before,
        opts.now.unwrap_or(store_now),
        &mut delete,
        &mut repack,
        &mut keep,
    );
    if summary.held_min_duration.packs > 0 {
        let h = &summary.held_min_duration;
        tracing::info!(
            "prune: {} unused pack(s) kept until their minimum storage duration has passed",
            h.packs
        );
    }
    // 6c. Nothing under an S3 Object Lock retention (objlock::hold).
    summary.held_object_lock = crate::objlock::hold(
        repo,
        &doomed_before,
        opts.now.unwrap_or(store_now),
        &mut delete,
        &mut repack,
        &mut keep,
    )?;

    // 7. Index objects to replace: damaged ones, and every one naming a pack that goes.
    let doomed: HashSet<BlobId> = delete
        .iter()
        .map(|p| p.id)
        .chain(repack.iter().map(|(p, _)| p.id))
        .collect();
    let mut replaced: HashSet<usize> = HashSet::new();
    for (id, idx) in &named_by {
        if doomed.contains(id) || !in_store.contains_key(id) {
            replaced.extend(idx);
        }
    }
    // An earlier prune's doomed index objects too: it may wake and delete them, so what
    // they list and stays must be listed elsewhere.
    let doomed_indexes = earlier.indexes();
    replaced.extend(
        (0..indexes.readable.len()).filter(|i| doomed_indexes.contains(&indexes.readable[*i].0)),
    );
    let mut old_indexes: Vec<String> = indexes.damaged.iter().map(|(n, _)| n.clone()).collect();
    old_indexes.extend(replaced.iter().map(|i| indexes.readable[*i].0.clone()));
    old_indexes.sort();
    // A kept pack is listed again unless an index object that stays lists it.
    let reindex: Vec<usize> = (0..keep.len())
        .filter(|&k| {
            named_by
                .get(&keep[k].id)
                .is_none_or(|idx| idx.iter().all(|i| replaced.contains(i)))
        })
        .collect();

    summary.packs_keep = keep.len();
    summary.packs_delete = delete.len();
    summary.bytes_delete = delete.iter().map(|p| p.size).sum();
    summary.packs_repack = repack.len();
    summary.bytes_repack = repack.iter().map(|(p, _)| p.size).sum();
    summary.index_objects_replaced = old_indexes.len();
    for p in delete.iter().chain(repack.iter().map(|(p, _)| p)) {
        let t = summary.freed_by_class.entry(class_name(p)).or_default();
        t.packs += 1;
        t.bytes += p.size;
    }
    // An earlier list is finished once none of its packs is left after this plan (its
    // index objects are all replaced above, or gone).
    let settled_lists = earlier
        .lists
        .iter()
        .filter(|(_, l)| {
            l.packs
                .iter()
                .all(|p| !in_store.contains_key(p) || doomed.contains(p))
        })
        .map(|(n, _)| n.clone())
        .collect();
    Ok(Plan {
        settled_lists,
        snapshots: ids.into_iter().collect(),
        keep,
        repack,
        delete,
        old_indexes,
        reindex,
        summary,
        index: views.all,
    })
}

#[derive(Debug, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub plan: PlanSummary,
    /// None for a dry run, or when there was nothing to do.
    pub done: Option<ExecReport>,
    pub duration_secs: f64,
}

/// Takes the exclusive lock, plans, and (unless a dry run) executes.
pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let started = std::time::Instant::now();
    if !opts.dry_run && !opts.assume_forgotten.is_empty() {
        return Err(Error::InvalidArgument(
            "a prune that assumes snapshots forgotten can only be a dry run".into(),
        ));
    }
    let lock = crate::repo::lock::Lock::acquire(repo, true, "prune", opts.retry_lock)?;
    let plan = plan(repo, opts, lock.store_now())?;
    let done = if opts.dry_run || plan.is_empty() {
        None
    } else {
        Some(execute(repo, &plan, &lock)?)
    };
    Ok(PruneReport {
        dry_run: opts.dry_run,
        plan: plan.summary,
        done,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        // `reindex` alone: packs whose index was lost and that snapshots use get one.
        self.delete.is_empty()
            && self.repack.is_empty()
            && self.old_indexes.is_empty()
            && self.reindex.is_empty()
            && self.settled_lists.is_empty()
    }
}

/// The store key of an index object, for messages.
pub fn index_key(name: &str) -> String {
    FileType::Index.key(name)
}
