//! `cofre forget`: applies a retention policy per set and deletes the manifests of the
//! snapshots it does not keep (only manifests: `prune` frees their data).

pub mod policy;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Manifest;
use crate::repo::file::FileType;
use crate::repo::lock::Lock;
use crate::repo::Repository;
use policy::{Item, Policy};

#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    pub policy: Policy,
    /// Only these sets (each on its own); empty: every set.
    pub sets: Vec<String>,
    /// Forget exactly these snapshots (unique id prefixes) instead of applying a policy.
    pub ids: Vec<String>,
    /// Judge only snapshots with this tag (a set's class in `cofre run`); others stay.
    pub tag: Option<String>,
    pub dry_run: bool,
    pub retry_lock: std::time::Duration,
}

#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: String,
    pub set: String,
    pub time: String,
    pub tags: Vec<String>,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct ForgetReport {
    pub dry_run: bool,
    /// Per set, every snapshot, newest first.
    pub sets: BTreeMap<String, Vec<Entry>>,
    pub removed: usize,
    pub failures: Vec<String>,
    /// Snapshots the policy removes whose manifest is still under S3 Object Lock: left
    /// for a later forget (id, retained until).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locked: Vec<(String, i64)>,
}

impl ForgetReport {
    /// The snapshots the policy removes (or, in a dry run, would remove).
    pub fn removed_ids(&self) -> Vec<String> {
        let all = self.sets.values().flatten();
        all.filter(|e| !e.keep).map(|e| e.id.clone()).collect()
    }
}

fn to_time(t: (i64, u32)) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.0)
        .map(|d| d.replace_nanosecond(t.1).unwrap_or(d))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Every readable manifest in the store, read fresh (a damaged one is never forgotten
/// by a policy: it is reported and kept).
fn manifests(repo: &Repository) -> Result<Vec<(String, Manifest)>> {
    let mut out = Vec::new();
    let ids = repo.snapshot_ids()?;
    for (id, manifest) in ids.iter().cloned().zip(repo.load_manifests(&ids)) {
        match manifest {
            Ok(m) => out.push((id, m)),
            Err(e @ Error::Corrupt { .. }) => {
                tracing::warn!("snapshot {id} cannot be read ({e}); kept")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn resolve(all: &[(String, Manifest)], prefix: &str) -> Result<String> {
    let mut hits = all.iter().filter(|(id, _)| id.starts_with(prefix));
    let first = hits
        .next()
        .ok_or_else(|| Error::NoSnapshot(prefix.into()))?;
    if hits.next().is_some() {
        return Err(Error::AmbiguousSnapshot(prefix.into()));
    }
    Ok(first.0.clone())
}

pub fn forget(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    let lock = Lock::acquire(repo, false, "forget", opts.retry_lock)?;
    let all = manifests(repo)?;
    let mut report = ForgetReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let chosen: Vec<String> = opts
        .ids
        .iter()
        .map(|p| resolve(&all, p))
        .collect::<Result<_>>()?;
    let mut by_set: BTreeMap<&str, Vec<&(String, Manifest)>> = BTreeMap::new();
    for s in &all {
        let tagged = opts.tag.as_ref().is_none_or(|t| s.1.tags.contains(t));
        if tagged && (opts.sets.is_empty() || opts.sets.contains(&s.1.set)) {
            by_set.entry(&s.1.set).or_default().push(s);
        }
    }
    let now = time::OffsetDateTime::now_utc();
    for (set, snaps) in by_set {
        let decisions = if opts.ids.is_empty() {
            let items: Vec<Item> = snaps
                .iter()
                .map(|(_, m)| Item {
                    time: to_time(m.time),
                    tags: m.tags.clone(),
                })
                .collect();
            policy::apply(&items, &opts.policy, now)
        } else {
            snaps
                .iter()
                .map(|(id, _)| {
                    let gone = chosen.contains(id);
                    policy::Decision {
                        keep: !gone,
                        reasons: if gone {
                            vec![]
                        } else {
                            vec!["not named".into()]
                        },
                    }
                })
                .collect()
        };
        let mut decided: Vec<_> = snaps.iter().zip(decisions).collect();
        decided.sort_by(|a, b| b.0 .1.time.cmp(&a.0 .1.time).then(a.0 .0.cmp(&b.0 .0)));
        let entries: Vec<Entry> = decided
            .into_iter()
            .map(|((id, m), d)| Entry {
                id: id.clone(),
                set: set.to_string(),
                time: crate::ingest::format_time(m.time),
                tags: m.tags.clone(),
                keep: d.keep,
                reasons: d.reasons,
            })
            .collect();
        report.sets.insert(set.to_string(), entries);
    }
    if opts.dry_run {
        return Ok(report);
    }
    // Only manifests: their data stays until prune proves it unreferenced.
    let mut doomed = report.removed_ids();
    if repo.config.object_lock.is_some() {
        // S3 refuses to delete a locked version: say when it can go instead.
        let keys = doomed.iter().map(|id| FileType::Snapshot.key(id)).collect();
        let until = crate::objlock::retained_until(repo, keys)?;
        let now = repo.env().now().0;
        let mut free = Vec::new();
        for (id, until) in doomed.into_iter().zip(until) {
            match until.filter(|u| *u > now) {
                Some(u) => report.locked.push((id, u)),
                None => free.push(id),
            }
        }
        doomed = free;
    }
    for (id, r) in doomed
        .iter()
        .zip(repo.delete_many(FileType::Snapshot, &doomed))
    {
        match r {
            Ok(()) => report.removed += 1,
            Err(err) => report.failures.push(format!("snapshot {id}: {err}")),
        }
    }
    drop(lock);
    Ok(report)
}
