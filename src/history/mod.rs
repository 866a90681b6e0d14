//! History from the catalog alone, without the store: every version of a path (`log`),
//! names across snapshots (`find`), and what changed between two snapshots (`diff`).
//! Trees are stored once per content (a directory unchanged between snapshots is one row),
//! so `diff` skips every unchanged subtree and `log` looks each directory up once.

mod diff;
mod find;

pub use diff::{diff, Diff, DiffEntry};
pub use find::{find, Found};

use std::collections::HashMap;

use serde::Serialize;

use crate::catalog::{Catalog, NodeRow, SnapshotRow};
use crate::error::Result;
use crate::ingest::format_time;
use crate::model::Kind;
use crate::session::{components, show_path, Entry};

/// How an entry differs from the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Not there before.
    Added,
    /// Gone.
    Removed,
    /// Other bytes (a file), target (a symlink) or entries (a directory).
    Content,
    /// Same content; mode, owner, times or xattrs differ.
    Metadata,
    /// A file became a directory, a symlink, … (or back).
    Type,
}

/// A snapshot, as history names it.
#[derive(Debug, Clone, Serialize)]
pub struct At {
    pub id: String,
    pub short_id: String,
    pub set: String,
    pub time: String,
}

impl From<&SnapshotRow> for At {
    fn from(r: &SnapshotRow) -> At {
        At {
            id: r.id.clone(),
            short_id: r.id[..8.min(r.id.len())].to_string(),
            set: r.manifest.set.clone(),
            time: format_time(r.manifest.time),
        }
    }
}

/// One version of a path: the snapshots that hold it unchanged, one after another.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// Against the version before it (`added` for the first).
    pub change: Change,
    pub first: At,
    pub last: At,
    /// How many snapshots hold it.
    pub snapshots: usize,
    /// The entry; none for a `removed` stretch (snapshots without the path).
    pub entry: Option<Entry>,
}

/// How `b` differs from `a`, or None when it does not.
pub fn change(a: &NodeRow, b: &NodeRow) -> Option<Change> {
    let (x, y) = (&a.node, &b.node);
    if x.kind != y.kind {
        return Some(Change::Type);
    }
    let content = match x.kind {
        Kind::Dir => a.subtree_rowid != b.subtree_rowid,
        // A file without a whole-content hash is compared by its chunk ids.
        _ => {
            x.size != y.size
                || x.blake3 != y.blake3
                || (x.blake3.is_none() && x.chunks != y.chunks)
                || x.target != y.target
                || x.rdev != y.rdev
        }
    };
    if content {
        return Some(Change::Content);
    }
    metadata_differs(a, b).then_some(Change::Metadata)
}

/// Mode, owner, modification time or xattrs differ.
pub fn metadata_differs(a: &NodeRow, b: &NodeRow) -> bool {
    a.node.mtime != b.node.mtime || mode_owner_xattrs_differ(a, b)
}

/// Mode, owner or xattrs differ: a directory's metadata apart from its mtime, which moves
/// with every entry added or removed.
pub fn mode_owner_xattrs_differ(a: &NodeRow, b: &NodeRow) -> bool {
    let (x, y) = (&a.node, &b.node);
    (x.mode, x.uid, x.gid, &x.user, &x.group, &x.xattrs)
        != (y.mode, y.uid, y.gid, &y.user, &y.group, &y.xattrs)
}

/// `f` over each set's snapshots in turn (sets in order of first appearance), results
/// joined. Sets share paths, and a set's snapshots say nothing about another's: `/etc`
/// absent from the `db` set's snapshots is not a removal.
pub fn per_set<T>(
    all: &[SnapshotRow],
    mut f: impl FnMut(&[SnapshotRow]) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut sets: Vec<&str> = Vec::new();
    for s in all {
        if !sets.contains(&s.manifest.set.as_str()) {
            sets.push(&s.manifest.set);
        }
    }
    let mut out = Vec::new();
    for name in sets {
        let snaps: Vec<SnapshotRow> = all
            .iter()
            .filter(|s| s.manifest.set == name)
            .cloned()
            .collect();
        out.extend(f(&snaps)?);
    }
    Ok(out)
}

/// The entry at `parts` below the tree `root`, looking each (tree, depth) up once across
/// calls: snapshots share their unchanged directories.
fn lookup(
    cat: &Catalog,
    root: i64,
    parts: &[&[u8]],
    memo: &mut HashMap<(i64, usize), Option<NodeRow>>,
) -> Result<Option<NodeRow>> {
    let mut tree = root;
    let mut found = None;
    for (depth, part) in parts.iter().enumerate() {
        let row = match memo.get(&(tree, depth)) {
            Some(r) => r.clone(),
            None => {
                let r = cat.child(tree, part)?;
                memo.insert((tree, depth), r.clone());
                r
            }
        };
        let Some(row) = row else { return Ok(None) };
        if depth + 1 < parts.len() {
            match row.subtree_rowid {
                Some(t) => tree = t,
                None => return Ok(None),
            }
        }
        found = Some(row);
    }
    Ok(found)
}

/// Appends `row` (None: the path is absent) in snapshot `at` to the versions so far.
fn push(
    versions: &mut Vec<Version>,
    last: &mut Option<NodeRow>,
    at: At,
    path: &[u8],
    row: Option<NodeRow>,
) {
    let open = versions.last_mut();
    match (row, open) {
        // Before its first appearance: nothing to say.
        (None, None) => {}
        (None, Some(v)) if v.change == Change::Removed => {
            v.last = at;
            v.snapshots += 1;
        }
        (None, Some(_)) => versions.push(Version {
            change: Change::Removed,
            first: at.clone(),
            last: at,
            snapshots: 1,
            entry: None,
        }),
        (Some(r), open) => {
            let gap = open.as_ref().is_some_and(|v| v.change == Change::Removed);
            let diff = match (&*last, gap) {
                (None, _) | (_, true) => Some(Change::Added),
                (Some(prev), false) => change(prev, &r),
            };
            match (diff, open) {
                (None, Some(v)) => {
                    v.last = at;
                    v.snapshots += 1;
                }
                (d, _) => versions.push(Version {
                    change: d.unwrap_or(Change::Added),
                    first: at.clone(),
                    last: at,
                    snapshots: 1,
                    entry: Some(Entry::new(path, &r)),
                }),
            }
            *last = Some(r);
        }
    }
}

/// Every version of `path` in `snaps` (oldest first): when it appeared, changed (content
/// or metadata only) or went away, and which snapshots hold each version.
pub fn log(cat: &Catalog, snaps: &[SnapshotRow], path: &str) -> Result<Vec<Version>> {
    let parts = components(path);
    if parts.is_empty() {
        // The root has no entry of its own: its versions are the snapshots.
        return Err(crate::error::Error::InvalidArgument(
            "give a path below / (the versions of / are `cofre snapshots`)".into(),
        ));
    }
    let shown: Vec<u8> = parts.iter().flat_map(|p| [&b"/"[..], p].concat()).collect();
    let mut memo = HashMap::new();
    let mut versions = Vec::new();
    let mut last = None;
    for s in snaps {
        let row = lookup(cat, s.root_rowid, &parts, &mut memo)?;
        push(&mut versions, &mut last, At::from(s), &shown, row);
    }
    Ok(versions)
}

/// What `find` searches: which snapshots, and under which path.
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    pub set: Option<String>,
    /// Snapshots taken at or after / at or before these Unix times.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub path_prefix: Option<String>,
}

impl crate::session::Session {
    /// Every version of `path` across the snapshots of `set`, oldest first; without a
    /// set, each set's versions in turn (`per_set`).
    pub fn log(&self, path: &str, set: Option<&str>) -> Result<Vec<Version>> {
        self.healing(true, || {
            let cat = self.reading_catalog()?;
            per_set(&cat.snapshots(set)?, |snaps| log(&cat, snaps, path))
        })
    }

    /// Entries named like `pattern` across the snapshots `opts` selects, by path.
    pub fn find(&self, pattern: &str, opts: &FindOptions) -> Result<Vec<Found>> {
        self.healing(true, || {
            let cat = self.reading_catalog()?;
            let all: Vec<SnapshotRow> = cat
                .snapshots(opts.set.as_deref())?
                .into_iter()
                .filter(|s| opts.since.is_none_or(|t| s.manifest.time.0 >= t))
                .filter(|s| opts.until.is_none_or(|t| s.manifest.time.0 <= t))
                .collect();
            per_set(&all, |snaps| {
                find(&cat, snaps, pattern, opts.path_prefix.as_deref())
            })
        })
    }

    /// What changed from snapshot `a` to `b` (ids, prefixes or `latest`, of `set` if
    /// given), below `path`.
    pub fn diff(&self, a: &str, b: &str, path: &str, set: Option<&str>) -> Result<Diff> {
        self.healing(true, || {
            let cat = self.reading_catalog()?;
            // `latest` for B means A's set's latest unless a set is given (an id may name
            // a snapshot of any set).
            let x = cat.resolve(a, set)?;
            let b_set = match b {
                "latest" => Some(set.unwrap_or(&x.manifest.set)),
                _ => set,
            };
            let y = cat.resolve(b, b_set)?;
            diff(&cat, &x, &y, path)
        })
    }
}

#[cfg(test)]
mod tests;
