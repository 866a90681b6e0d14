//! WAL retention: the archive keeps what the oldest base backup of the set still needs.
//!
//! Why deleting the rest is safe (docs/pitr.md, "Retention"): replay from a base backup
//! starts at the backup's START WAL LOCATION (the checkpoint's redo point, in its
//! `backup_label`) and only ever reads forward from there, on that timeline or later ones.
//! So a segment, `.partial` or `.backup` file whose position is before the start of every
//! kept base backup is read by no replay. A base backup being taken meanwhile starts
//! after every archived segment; a snapshot forgotten meanwhile only raises the minimum.
//! History files are kept (a few bytes; replay reads every one of them). An object is
//! deleted only when each of its files is deletable, and nothing at all is deleted when
//! the set has no base backup, or when a snapshot of the set cannot be read.

use serde::Serialize;

use super::index::WalIndex;
use super::names::{Kind, WalName};
use crate::error::Result;
use crate::repo::file::FileType;
use crate::session::Session;

#[derive(Debug, Default, Serialize)]
pub struct WalPruneReport {
    pub set: String,
    /// The WAL file the oldest kept base backup starts in.
    pub oldest_start: Option<String>,
    pub objects_deleted: Vec<String>,
    pub files_deleted: usize,
    pub bytes_freed: u64,
    pub dry_run: bool,
}

/// The WAL file the oldest base backup of `set` starts in. `strict`: a snapshot that
/// cannot be read is an error (retention), not skipped (check).
pub fn oldest_start(session: &Session, set: &str, strict: bool) -> Result<Option<String>> {
    let mut starts: Vec<WalName> = Vec::new();
    for (snap, label) in super::pitr::labels(session, set, None, strict)? {
        let Some(label) = label else { continue };
        match WalName::parse(&label.start_wal) {
            Some(n) => starts.push(n),
            None if strict => {
                return Err(crate::error::Error::corrupt(
                    format!("backup_label of snapshot {}", snap.short_id),
                    format!("{:?} is not a WAL file name", label.start_wal),
                ))
            }
            None => {}
        }
    }
    // By log and segment, whatever the timeline and the segment size.
    Ok(starts
        .iter()
        .min_by_key(|n| &n.as_str()[8..24])
        .map(|n| n.as_str().to_string()))
}

/// Deletes the WAL objects of `set` that no kept base backup can replay.
pub fn prune(
    session: &Session,
    index: &mut WalIndex,
    set: &str,
    dry_run: bool,
) -> Result<WalPruneReport> {
    let repo = session.repository();
    let mut report = WalPruneReport {
        set: set.to_string(),
        dry_run,
        ..WalPruneReport::default()
    };
    index.sync(repo)?;
    let files = index.all(set)?;
    // Every snapshot of the set, from a catalog that just saw the store: a stale one could
    // miss a base backup older than those it knows.
    session.synced_catalog()?;
    let Some(oldest) = oldest_start(session, set, true)? else {
        return Ok(report);
    };
    report.oldest_start = Some(oldest.clone());
    // By log and segment number, as written in the names: whatever the segment size and
    // the timeline (replay never reads a position before its backup's start).
    let deletable = |name: &str| {
        WalName::parse(name)
            .is_some_and(|n| n.kind() != Kind::History && n.as_str()[8..24] < oldest[8..24])
    };
    let mut per_object: std::collections::BTreeMap<&str, (bool, usize, u64)> = Default::default();
    for l in &files {
        let e = per_object
            .entry(&l.object)
            .or_insert((true, 0, l.object_size));
        e.0 &= deletable(&l.entry.name);
        e.1 += 1;
    }
    let doomed: Vec<(String, usize, u64)> = per_object
        .into_iter()
        .filter(|(_, (all, _, _))| *all)
        .map(|(o, (_, n, size))| (o.to_string(), n, size))
        .collect();
    if dry_run || doomed.is_empty() {
        report.files_deleted = doomed.iter().map(|d| d.1).sum();
        report.bytes_freed = doomed.iter().map(|d| d.2).sum();
        report.objects_deleted = doomed.into_iter().map(|d| d.0).collect();
        return Ok(report);
    }
    // The exclusive lock: no check or copy reads these objects while they go.
    let _lock =
        crate::repo::lock::Lock::acquire(repo, true, "wal prune", session.options().retry_lock)?;
    for (object, n, size) in doomed {
        repo.delete(FileType::Wal, &object)?;
        report.files_deleted += n;
        report.bytes_freed += size;
        report.objects_deleted.push(object);
    }
    index.sync(repo)?;
    Ok(report)
}
