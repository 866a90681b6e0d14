//! `cofre lock extend`: keeps every version of every object a kept snapshot needs under
//! Object Lock until that snapshot's policy horizon (kopia's `--extend-object-locks`, per
//! snapshot); the config and the key in use, `--lock-days` ahead. Retention is only ever
//! raised. Keys whose current version is not cofre's are reported (`lock recover`).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::DAY;
use crate::error::Result;
use crate::model::Manifest;
use crate::repo::file::FileType;
use crate::repo::{block, retain, Repository};
use crate::store::{Retention, Version};

pub struct ExtendOptions<'a> {
    /// Days a snapshot's policy can keep it (`objlock::horizon_days` of its set and class;
    /// None: unknown, then the repository's lock days).
    pub horizon: &'a dyn Fn(&Manifest) -> Option<i64>,
    /// Only these snapshots (ids), the config and the key in use: what `ingest` just wrote
    /// and reused. None: every snapshot.
    pub only: Option<Vec<String>>,
    pub dry_run: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct ExtendReport {
    pub snapshots: usize,
    /// Objects looked at: config, key in use, manifests, packs.
    pub objects: usize,
    /// Object versions whose retention was raised (or would be, in a dry run).
    pub extended: usize,
    /// The earliest retain-until among the versions looked at, after the run.
    pub earliest_until: Option<i64>,
    /// Objects a snapshot needs that are not in the store (`cofre check` says more).
    pub missing: Vec<String>,
    /// Blobs a snapshot uses that no index object names (`repair index`).
    pub unindexed_blobs: usize,
    /// Objects whose current version is a delete marker, or with a version whose bytes are
    /// not cofre's: deleted or overwritten since cofre wrote them. Every version of cofre's
    /// was locked, the foreign ones not; `lock recover`.
    pub tampered: Vec<String>,
    /// Snapshots that could not be read (a tampered manifest or tree pack), with why:
    /// their packs were not all looked at. `lock recover`, then `lock extend` again.
    pub unread: Vec<String>,
    /// Versions whose retention could not be read or raised, with why.
    pub failed: Vec<String>,
    pub dry_run: bool,
}

impl ExtendReport {
    /// What a person should act on, one line each (empty: all is well).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.tampered.is_empty() {
            out.push(format!(
                "{} object(s) were deleted or overwritten since cofre wrote them (first: {}): run `cofre lock recover`",
                self.tampered.len(),
                self.tampered[0]
            ));
        }
        if !self.unread.is_empty() {
            out.push(format!(
                "{} snapshot(s) could not be read, so not all of their data could be locked (first: {}): run `cofre lock recover` if objects were tampered with, else `cofre check`",
                self.unread.len(),
                self.unread[0]
            ));
        }
        if !self.failed.is_empty() {
            out.push(format!(
                "{} retention(s) could not be read or raised (first: {}): run `cofre lock extend` again",
                self.failed.len(),
                self.failed[0]
            ));
        }
        if !self.missing.is_empty() {
            out.push(format!(
                "{} object(s) a snapshot needs are missing (first: {}): run `cofre check`",
                self.missing.len(),
                self.missing[0]
            ));
        }
        if self.unindexed_blobs > 0 {
            out.push(format!(
                "{} blob(s) snapshots use are in no index object, so their packs could not be locked: run `cofre repair index`, then `cofre lock extend`",
                self.unindexed_blobs
            ));
        }
        out
    }
}

/// Raises retention where it falls short. A snapshot needs its objects locked until its
/// time plus its horizon (at least the lock days): measured from the snapshot, not from
/// now, so a lock ends about when the policy forgets the snapshot, and prune can then free
/// it. Every version of each object is locked, so an overwrite cannot leave cofre's own
/// version to expire. A retention is raised only when it ends before what is needed, and
/// then by `ObjectLock::slack` more.
pub fn extend(repo: &Repository, opts: &ExtendOptions) -> Result<ExtendReport> {
    let lock = super::lock_of(repo)?;
    let now = repo.env().now().0;
    let days = i64::from(lock.days);
    let floor = now + days * DAY;
    let mut report = ExtendReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let versions = block(repo.runtime(), repo.store().versions(""))?;
    let mut by_key: HashMap<&str, Vec<&Version>> = HashMap::new();
    for v in versions.iter().filter(|v| retain::is_locked(&v.key)) {
        by_key.entry(v.key.as_str()).or_default().push(v);
    }
    // Deleted or overwritten since cofre wrote them: cofre never makes a delete marker in
    // a locked repository, nor a version with other bytes. Every version of cofre's of
    // such a key stays locked at least `days` ahead, whatever else fails to read, until
    // `lock recover`. Several versions of one key are also what a retried PUT of the same
    // bytes leaves, so they are read: a version is foreign when its bytes are not cofre's.
    // For the config, whose foreign versions `lock recover` keeps (they may be another
    // repository's), only the current version counts.
    let mut needed: BTreeMap<String, i64> = BTreeMap::new();
    let config = FileType::Config.key("");
    let mut foreign_versions: HashSet<(String, String)> = HashSet::new();
    for (key, vs) in &by_key {
        let real: Vec<&&Version> = vs.iter().filter(|v| !v.delete_marker).collect();
        let mut tampered = vs.iter().any(|v| v.delete_marker && v.latest);
        // Equal ETags (the MD5 of a single-part PUT) are equal bytes: nothing to read.
        let same = real
            .windows(2)
            .all(|w| w[0].etag.is_some() && w[0].etag == w[1].etag);
        if real.len() > 1 && !same {
            for v in &real {
                if foreign(repo, key, &v.id) {
                    foreign_versions.insert((key.to_string(), v.id.clone()));
                    tampered |= *key != config || v.latest;
                }
            }
        }
        if tampered {
            report.tampered.push(key.to_string());
            needed.insert(key.to_string(), floor);
        }
    }
    report.tampered.sort();
    // The config is needed for ever, the key in use while it is used: other key files'
    // locks end, so `key remove` can remove them.
    needed.insert(config.clone(), floor);
    needed.insert(FileType::Key.key(&repo.key_name), floor);
    for (key, date) in super::needs::snapshot_dates(repo, opts, days, &mut report)? {
        let e = needed.entry(key).or_insert(date);
        *e = (*e).max(date);
    }
    report.objects = needed.len();

    let mut look = Vec::new();
    for (key, want) in &needed {
        let vs = by_key.get(key.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let real: Vec<&&Version> = vs.iter().filter(|v| !v.delete_marker).collect();
        if real.is_empty() {
            report.missing.push(key.clone());
        }
        for v in real {
            // A foreign version is not locked: `lock recover` must be able to delete it.
            if !foreign_versions.contains(&(key.clone(), v.id.clone())) {
                look.push((key.clone(), v.id.clone(), *want));
            }
        }
    }
    let have = repo.run_many(look.iter().map(|(key, id, _)| {
        let (store, key, id) = (repo.store().clone(), key.clone(), id.clone());
        async move { store.retained_until(&key, Some(&id)).await }
    }));
    let mut raise = Vec::new();
    for ((key, id, want), have) in look.into_iter().zip(have) {
        let have = match have {
            Ok(h) => h.unwrap_or(0),
            // Gone since the listing (a prune elsewhere): not ours to lock any more.
            Err(crate::error::Error::Store(crate::store::StoreError::NotFound(_))) => continue,
            Err(e) => {
                report.failed.push(format!("{key} version {id}: {e}"));
                continue;
            }
        };
        let until = if have < want {
            let until = (want + lock.slack()).max(have);
            raise.push((key, id, until));
            until
        } else {
            have
        };
        report.earliest_until = Some(report.earliest_until.map_or(until, |e| e.min(until)));
    }
    report.extended = raise.len();
    if opts.dry_run {
        return Ok(report);
    }
    let results = repo.run_many(raise.iter().map(|(key, id, until)| {
        let (store, key, id) = (repo.store().clone(), key.clone(), id.clone());
        let keep = Retention {
            mode: lock.mode,
            until: *until,
        };
        async move { store.retain(&key, Some(&id), keep).await }
    }));
    for ((key, id, _), r) in raise.iter().zip(results) {
        if let Err(e) = r {
            report.failed.push(format!("{key} version {id}: {e}"));
        }
    }
    Ok(report)
}

/// Whether a version of a tampered key holds bytes cofre did not write (its name's hash,
/// or the config sealed with our keys). One that cannot be read counts as ours: locking a
/// foreign version costs only its storage, leaving one of ours unlocked could lose it.
fn foreign(repo: &Repository, key: &str, version: &str) -> bool {
    let Ok(bytes) = block(repo.runtime(), repo.store().get_version(key, version)) else {
        return false;
    };
    if key == FileType::Config.key("") {
        return !repo.is_own_config(&bytes);
    }
    let name = key.rsplit('/').next().unwrap_or(key);
    blake3::hash(&bytes).to_hex().as_str() != name
}
