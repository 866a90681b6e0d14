//! What the kept snapshots need locked, and until when (`objlock::extend`): each manifest,
//! and each pack that holds a copy of a blob a snapshot uses, dated by the latest snapshot
//! that uses it. A snapshot that cannot be read is reported, never a reason to lock less of
//! the others.

use std::collections::{HashMap, HashSet};

use super::extend::{ExtendOptions, ExtendReport};
use super::DAY;
use crate::crypto::BlobId;
use crate::error::Result;
use crate::model::Manifest;
use crate::repo::file::{pack_key, FileType};
use crate::repo::index::DEFAULT_CLASS;
use crate::repo::Repository;

/// None for the default class, whatever it is called.
fn class_key(c: Option<&str>) -> Option<String> {
    c.filter(|c| *c != DEFAULT_CLASS).map(str::to_string)
}

/// The store keys of the snapshots' (or `opts.only`'s) manifests and packs, each with the
/// date it is needed to: the snapshot's time plus its horizon, at least `days`.
pub fn snapshot_dates(
    repo: &Repository,
    opts: &ExtendOptions,
    days: i64,
    report: &mut ExtendReport,
) -> Result<Vec<(String, i64)>> {
    let mut ids = repo.snapshot_ids()?;
    if let Some(only) = &opts.only {
        ids.retain(|id| only.contains(id));
    }
    let mut manifests = Vec::new();
    for (id, m) in ids.iter().zip(repo.load_manifests(&ids)) {
        match m {
            Ok(m) => manifests.push((id.clone(), m)),
            Err(e) => report.unread.push(format!("snapshot {id}: {e}")),
        }
    }
    report.snapshots = manifests.len();
    let date_of = |m: &Manifest| m.time.0 + (opts.horizon)(m).unwrap_or(days).max(days) * DAY;
    let mut by_date: Vec<(i64, &String, &Manifest)> = manifests
        .iter()
        .map(|(id, m)| (date_of(m), id, m))
        .collect();
    // Latest first: a blob reached under a later date needs no earlier one.
    by_date.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let mut out: Vec<(String, i64)> = by_date
        .iter()
        .map(|(d, id, _)| (FileType::Snapshot.key(id), *d))
        .collect();
    out.extend(pack_dates(repo, &by_date, report)?);
    Ok(out)
}

/// Each pack's date. An ordinary snapshot locks every copy of every blob it uses (prune
/// may keep any of them), a self-contained one its chunks' copies in its own class (its
/// hot copies are not its to keep), except where prune would keep a hotter copy for it
/// (`prune::used::homes_in_class`): a chunk with no whole copy in the class is locked
/// wherever it is. Trees and deltas' bases: every copy, whatever the snapshot.
fn pack_dates(
    repo: &Repository,
    by_date: &[(i64, &String, &Manifest)],
    report: &mut ExtendReport,
) -> Result<Vec<(String, i64)>> {
    let indexes = repo.load_indexes()?;
    let class_of: HashMap<BlobId, Option<String>> = indexes
        .readable
        .iter()
        .flat_map(|(_, f)| {
            f.packs
                .iter()
                .map(|p| (p.id, class_key(p.class.as_deref())))
        })
        .collect();
    let index = indexes.into_master();
    // Per reach (None: any class; Some(c): class c only), the trees walked and each
    // blob's date.
    let mut seen: HashMap<Option<String>, HashSet<BlobId>> = HashMap::new();
    let mut dates: HashMap<Option<String>, HashMap<BlobId, i64>> = HashMap::new();
    for (date, id, m) in by_date {
        // As `Reach`: self-contained in the default class is ordinary.
        let reach = match m.self_contained {
            true => class_key(m.data_class.as_deref()),
            false => None,
        };
        let trees = seen.entry(reach.clone()).or_default();
        let mut chunks = HashSet::new();
        let walk = crate::prune::used::walk_past(repo, &index, &[m.root], trees, |c| {
            chunks.insert(c);
        });
        let walked = match walk {
            Ok(w) => w,
            Err(e) => {
                report.unread.push(format!("snapshot {id}: {e}"));
                // The failed walk marked trees it did not finish: walk them again later.
                trees.clear();
                continue;
            }
        };
        let any = dates.entry(None).or_default();
        for t in walked {
            any.entry(t).or_insert(*date);
        }
        let own = dates.entry(reach).or_default();
        for c in chunks {
            own.entry(c).or_insert(*date);
        }
    }
    let admits = |reach: &Option<String>, pack: &BlobId| {
        reach.is_none() || class_of.get(pack).is_some_and(|p| p == reach)
    };
    // A self-contained snapshot's chunk without a whole copy in its class is homed by
    // prune where readers read it: lock it as an ordinary snapshot's.
    let mut whole_in_class: HashSet<(Option<String>, BlobId)> = HashSet::new();
    for (blob, loc) in index.copies().filter(|(_, l)| l.base.is_none()) {
        for (reach, map) in dates.iter().filter(|(r, _)| r.is_some()) {
            if map.contains_key(&blob) && admits(reach, &loc.pack) {
                whole_in_class.insert((reach.clone(), blob));
            }
        }
    }
    let mut homeless: Vec<(BlobId, i64)> = Vec::new();
    for (reach, map) in dates.iter().filter(|(r, _)| r.is_some()) {
        for (blob, d) in map {
            if !whole_in_class.contains(&(reach.clone(), *blob)) {
                homeless.push((*blob, *d));
            }
        }
    }
    let any = dates.entry(None).or_default();
    for (blob, d) in homeless {
        let e = any.entry(blob).or_insert(d);
        *e = (*e).max(d);
    }
    report.unindexed_blobs = dates
        .values()
        .flat_map(|m| m.keys())
        .filter(|b| index.get(b).is_none())
        .count();

    let mut pack_date: HashMap<BlobId, i64> = HashMap::new();
    let mut base_date: HashMap<BlobId, i64> = HashMap::new();
    let mut date_pack = |pack: BlobId, d: i64| {
        let e = pack_date.entry(pack).or_insert(d);
        *e = (*e).max(d);
    };
    for (blob, loc) in index.copies() {
        for (reach, map) in &dates {
            let Some(&d) = map.get(&blob).filter(|_| admits(reach, &loc.pack)) else {
                continue;
            };
            date_pack(loc.pack, d);
            for b in loc.base.iter().flat_map(|b| b.ids()) {
                let e = base_date.entry(b).or_insert(d);
                *e = (*e).max(d);
            }
        }
    }
    for (blob, loc) in index.copies().filter(|(_, l)| l.base.is_none()) {
        if let Some(&d) = base_date.get(&blob) {
            date_pack(loc.pack, d);
        }
    }
    Ok(pack_date
        .into_iter()
        .map(|(p, d)| (pack_key(&p), d))
        .collect())
}
