//! `cofre lock extend`: keeps every version of every object a kept snapshot needs under
//! Object Lock until that snapshot's policy horizon (kopia's `--extend-object-locks`, per
//! snapshot); the config and the key in use, `--lock-days` ahead. Retention is only ever
//! raised. Keys whose current version is not cofre's are reported (`lock recover`).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::DAY;
use crate::crypto::BlobId;
use crate::error::Result;
use crate::model::Manifest;
use crate::repo::file::{pack_key, FileType};
use crate::repo::index::DEFAULT_CLASS;
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
    /// Why the snapshots could not all be read (a tampered manifest or tree pack): their
    /// packs were not all looked at. `lock recover`, then `lock extend` again.
    pub unread: Option<String>,
    pub dry_run: bool,
}

impl ExtendReport {
    /// What a person should act on, one line each (empty: all is well).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.tampered.is_empty() {
            let unread = match &self.unread {
                Some(e) => format!("; the snapshots could not all be read ({e})"),
                None => String::new(),
            };
            out.push(format!(
                "{} object(s) were deleted or overwritten since cofre wrote them (first: {}){unread}: run `cofre lock recover`",
                self.tampered.len(),
                self.tampered[0]
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

/// None for the default class, whatever it is called.
fn class_key(c: Option<&str>) -> Option<String> {
    c.filter(|c| *c != DEFAULT_CLASS).map(str::to_string)
}

/// Raises retention where it falls short. A snapshot needs its objects locked until its
/// time plus its horizon (at least the lock days): measured from the snapshot, not from
/// now, so a lock ends about when the policy forgets the snapshot, and prune can then free
/// it. Every version of each object is locked, so an overwrite cannot leave cofre's own
/// version to expire. A retention is raised only when it ends before what is needed, and
/// then by `ObjectLock::slack` more.
pub fn extend(repo: &Repository, opts: &ExtendOptions) -> Result<ExtendReport> {
    let lock = super::lock_of(repo)?;
    let now = retain::now();
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
    // Deleted or overwritten since cofre wrote them: cofre never makes a delete marker or
    // a second version in a locked repository. Every version of such a key stays locked
    // at least `days` ahead, whatever else fails to read, until `lock recover`.
    let mut needed: BTreeMap<String, i64> = BTreeMap::new();
    // Several versions of one key are also what a retried PUT of the same bytes leaves, so
    // they are read: a version is foreign when its bytes are not cofre's. For the config,
    // whose foreign versions `lock recover` keeps (they may be another repository's), only
    // the current version counts.
    let config = FileType::Config.key("");
    let mut foreign_versions: HashSet<(String, String)> = HashSet::new();
    for (key, vs) in &by_key {
        let real: Vec<&&Version> = vs.iter().filter(|v| !v.delete_marker).collect();
        let mut tampered = vs.iter().any(|v| v.delete_marker && v.latest);
        if real.len() > 1 {
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
    match snapshot_dates(repo, opts, days, &mut report) {
        Ok(dates) => {
            for (key, date) in dates {
                let e = needed.entry(key).or_insert(date);
                *e = (*e).max(date);
            }
        }
        // A tampered manifest or tree pack cannot be read: lock what can be, say why.
        Err(e) if !report.tampered.is_empty() => report.unread = Some(e.to_string()),
        Err(e) => return Err(e),
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
        let have = have?.unwrap_or(0);
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
    let results = repo.run_many(raise.into_iter().map(|(key, id, until)| {
        let store = repo.store().clone();
        let keep = Retention {
            mode: lock.mode,
            until,
        };
        async move { store.retain(&key, Some(&id), keep).await }
    }));
    for r in results {
        r?;
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

/// The snapshots' (or `opts.only`'s) manifests and packs, with the date each is needed to.
fn snapshot_dates(
    repo: &Repository,
    opts: &ExtendOptions,
    days: i64,
    report: &mut ExtendReport,
) -> Result<Vec<(String, i64)>> {
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
    pack_dates(repo, &manifests, opts, days, report)
}

/// Each manifest's and pack's needed date. A self-contained snapshot locks its chunks'
/// copies in its own class only (its hot copies are not its to keep), and its trees
/// anywhere; an ordinary one every copy of every blob it uses (prune may keep any of them),
/// and the whole copies of its deltas' bases. Packs a prune announced it deletes are left
/// alone: locking one would only make that prune's delete fail.
fn pack_dates(
    repo: &Repository,
    manifests: &[(String, Manifest)],
    opts: &ExtendOptions,
    days: i64,
    report: &mut ExtendReport,
) -> Result<Vec<(String, i64)>> {
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
    for (date, _, m) in &by_date {
        // As `Reach`: self-contained in the default class is ordinary.
        let reach = match m.self_contained {
            true => class_key(m.data_class.as_deref()),
            false => None,
        };
        let trees = seen.entry(reach.clone()).or_default();
        let (walked, chunks) = crate::prune::used::walk_past(repo, &index, &[m.root], trees)?;
        let any = dates.entry(None).or_default();
        for t in walked {
            any.entry(t).or_insert(*date);
        }
        let own = dates.entry(reach).or_default();
        for c in chunks {
            own.entry(c).or_insert(*date);
        }
    }
    report.unindexed_blobs = dates
        .values()
        .flat_map(|m| m.keys())
        .filter(|b| index.get(b).is_none())
        .count();

    let admits = |reach: &Option<String>, pack: &BlobId| {
        reach.is_none() || class_of.get(pack).is_some_and(|p| p == reach)
    };
    let mut pack_date: HashMap<BlobId, i64> = HashMap::new();
    let mut base_dates: HashMap<Option<String>, HashMap<BlobId, i64>> = HashMap::new();
    for (blob, loc) in index.copies() {
        for (reach, map) in &dates {
            let Some(&d) = map.get(&blob).filter(|_| admits(reach, &loc.pack)) else {
                continue;
            };
            let e = pack_date.entry(loc.pack).or_insert(d);
            *e = (*e).max(d);
            for b in loc.base.iter().flat_map(|b| b.ids()) {
                let e = base_dates
                    .entry(reach.clone())
                    .or_default()
                    .entry(b)
                    .or_insert(d);
                *e = (*e).max(d);
            }
        }
    }
    for (blob, loc) in index.copies().filter(|(_, l)| l.base.is_none()) {
        for (reach, map) in &base_dates {
            if let Some(&d) = map.get(&blob).filter(|_| admits(reach, &loc.pack)) {
                let e = pack_date.entry(loc.pack).or_insert(d);
                *e = (*e).max(d);
            }
        }
    }
    let doomed = crate::repo::doomed::load(repo)?.packs();
    out.extend(
        pack_date
            .into_iter()
            .filter(|(p, _)| !doomed.contains(p))
            .map(|(p, d)| (pack_key(&p), d)),
    );
    Ok(out)
}
