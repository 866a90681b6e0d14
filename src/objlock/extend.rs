//! `cofre lock extend`: keeps every object a kept snapshot needs under Object Lock for as
//! long as that snapshot's policy can keep it, and at least `--lock-days` ahead (kopia's
//! `--extend-object-locks`, per snapshot). Retention is only ever raised.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::{lock_of, retained_until, DAY};
use crate::crypto::BlobId;
use crate::error::Result;
use crate::model::Manifest;
use crate::repo::file::{pack_key, FileType};
use crate::repo::retain;
use crate::repo::Repository;
use crate::store::Retention;

pub struct ExtendOptions<'a> {
    /// Days a snapshot's policy can keep it (`objlock::horizon_days` of its set and class;
    /// None: unknown, then only the repository's lock days count).
    pub horizon: &'a dyn Fn(&Manifest) -> Option<i64>,
    /// Only these snapshots (ids) and the config and key files: what `ingest` just wrote
    /// and reused. None: every snapshot.
    pub only: Option<Vec<String>>,
    pub dry_run: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct ExtendReport {
    pub snapshots: usize,
    /// Objects looked at: config, key files, manifests, packs.
    pub objects: usize,
    /// Objects whose retention was raised (or would be, in a dry run).
    pub extended: usize,
    /// The earliest retain-until among the objects looked at, after the run.
    pub earliest_until: Option<i64>,
    /// Objects a snapshot needs that are not in the store (`cofre check` says more).
    pub missing: Vec<String>,
    pub dry_run: bool,
}

/// Raises retention where it falls short of what the kept snapshots need. An object's
/// retention is raised only when it ends before `now + days` or before its snapshots'
/// policy horizon, and then to `ObjectLock::slack` beyond that, so a run every 4 hours
/// does not rewrite every object's retention every time.
pub fn extend(repo: &Repository, opts: &ExtendOptions) -> Result<ExtendReport> {
    let lock = lock_of(repo)?;
    let now = retain::now();
    let floor = now + i64::from(lock.days) * DAY;
    let slack = lock.slack();
    let mut report = ExtendReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };

    let mut ids = repo.snapshot_ids()?;
    if let Some(only) = &opts.only {
        ids.retain(|id| only.contains(id));
    }
    let manifests: Vec<(String, Manifest)> = ids
        .iter()
        .cloned()
        .zip(repo.load_manifests(&ids))
        .map(|(id, m)| m.map(|m| (id, m)))
        .collect::<Result<_>>()?;
    report.snapshots = manifests.len();

    // Each object's needed date: the latest of its snapshots' horizons, and `floor`.
    let mut needed: BTreeMap<String, i64> = BTreeMap::new();
    for key in std::iter::once(FileType::Config.key("")).chain(
        repo.list(FileType::Key.prefix())?
            .into_iter()
            .map(|o| o.key),
    ) {
        needed.insert(key, floor);
    }
    let horizon = |m: &Manifest| {
        let by_policy = (opts.horizon)(m).map(|d| m.time.0 + d * DAY);
        by_policy.unwrap_or(floor).max(floor)
    };
    let mut by_date: Vec<(i64, &String, &Manifest)> = manifests
        .iter()
        .map(|(id, m)| (horizon(m), id, m))
        .collect();
    // Latest first, walking trees once: a tree reached under a later date needs no
    // second look under an earlier one.
    by_date.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let index = repo.load_indexes()?.into_master();
    let mut trees = HashSet::new();
    let mut blob_date: HashMap<BlobId, i64> = HashMap::new();
    for (date, id, m) in &by_date {
        needed.insert(FileType::Snapshot.key(id), *date);
        let (walked, chunks) = crate::prune::used::walk_past(repo, &index, &[m.root], &mut trees)?;
        for b in walked.into_iter().chain(chunks) {
            blob_date.entry(b).or_insert(*date);
        }
    }
    // Every copy of every needed blob (prune may keep any of them), and the whole copies
    // of each delta's bases.
    let mut pack_date: HashMap<BlobId, i64> = HashMap::new();
    let mut base_date: HashMap<BlobId, i64> = HashMap::new();
    for (blob, loc) in index.copies() {
        if let Some(&d) = blob_date.get(&blob) {
            let e = pack_date.entry(loc.pack).or_insert(d);
            *e = (*e).max(d);
            for b in loc.base.iter().flat_map(|b| b.ids()) {
                let e = base_date.entry(b).or_insert(d);
                *e = (*e).max(d);
            }
        }
    }
    for (blob, loc) in index.copies() {
        if let (Some(&d), None) = (base_date.get(&blob), &loc.base) {
            let e = pack_date.entry(loc.pack).or_insert(d);
            *e = (*e).max(d);
        }
    }
    for (pack, d) in pack_date {
        needed.insert(pack_key(&pack), d);
    }

    let keys: Vec<String> = needed.keys().cloned().collect();
    let current = retained_until(repo, keys.clone())?;
    report.objects = keys.len();
    let mut raise = Vec::new();
    let mut earliest: Option<i64> = None;
    for ((key, want), have) in needed.iter().zip(current) {
        let Some(have) = have.or_else(|| exists(repo, key).then_some(0)) else {
            report.missing.push(key.clone());
            continue;
        };
        if have < *want {
            let until = (*want + slack).max(have);
            raise.push((key.clone(), until));
            earliest = Some(earliest.map_or(until, |e| e.min(until)));
        } else {
            earliest = Some(earliest.map_or(have, |e| e.min(have)));
        }
    }
    report.extended = raise.len();
    report.earliest_until = earliest;
    if opts.dry_run {
        return Ok(report);
    }
    let results = repo.run_many(raise.into_iter().map(|(key, until)| {
        let store = repo.store().clone();
        let keep = Retention {
            mode: lock.mode,
            until,
        };
        async move { store.retain(&key, keep).await }
    }));
    for r in results {
        r?;
    }
    Ok(report)
}

/// Whether an object with no retention is there at all (a HEAD; an error counts as there:
/// the retention call that follows then reports it).
fn exists(repo: &Repository, key: &str) -> bool {
    !matches!(
        crate::repo::block(repo.runtime(), repo.store().head(key)),
        Err(crate::store::StoreError::NotFound(_))
    )
}
