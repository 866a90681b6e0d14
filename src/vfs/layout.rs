//! The virtual part of the mount: `<set>/YYYY/MM/DD/HHMM`, `<set>/latest`, `ids/<id>`.
//! Rebuilt from the catalog's snapshot list whenever it changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::catalog::SnapshotRow;

#[derive(Debug)]
pub struct SnapRef {
    pub id: String,
    pub root_rowid: i64,
    pub time: (i64, u32),
    /// Path below the mount root, e.g. `db/2026/11/24/1730`.
    pub path: String,
}

#[derive(Debug, Default)]
pub struct Layout {
    /// Virtual directory path (`""` is the root) → its entries.
    pub dirs: BTreeMap<String, BTreeMap<String, Child>>,
    pub newest: i64,
}

#[derive(Debug, Clone)]
pub enum Child {
    Dir,
    Link(String),
    Snapshot(Arc<SnapRef>),
}

/// (year, month, day, hour, minute) of a Unix time, in UTC or local time.
fn civil(t: i64, local: bool) -> (i32, u32, u32, u32, u32) {
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let tt = t as libc::time_t;
    // SAFETY: both pointers are valid for the call.
    unsafe {
        if local {
            libc::localtime_r(&tt, &mut tm);
        } else {
            libc::gmtime_r(&tt, &mut tm);
        }
    }
    (
        tm.tm_year + 1900,
        tm.tm_mon as u32 + 1,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
    )
}

/// A set name usable as one path component.
fn component(set: &str) -> String {
    let s = set.replace('/', "_");
    match s.as_str() {
        "" | "." | ".." | "ids" => format!("set-{s}"),
        _ => s,
    }
}

impl Layout {
    /// Snapshots come oldest first. Several in one minute: the earliest is `HHMM`, the
    /// others `HHMM-<short id>`. A name `prev` already showed keeps naming the same
    /// snapshot, even when an earlier-timed snapshot of that minute arrives later (the
    /// kernel may still cache the old name's children).
    pub fn build(snaps: &[SnapshotRow], local: bool, prev: Option<&Layout>) -> Layout {
        let mut l = Layout::default();
        l.dirs.insert(String::new(), BTreeMap::new());
        l.dir("", "ids");
        let mut used_short: BTreeMap<String, usize> = BTreeMap::new();
        for s in snaps {
            *used_short.entry(s.id[..8].to_string()).or_default() += 1;
        }
        let names = snapshot_names(snaps, local, prev);
        for (s, (day, name)) in snaps.iter().zip(names) {
            let set = component(&s.manifest.set);
            let (y, mo, d, _, _) = civil(s.manifest.time.0, local);
            l.dir("", &set);
            l.dir(&set, &format!("{y:04}"));
            l.dir(&format!("{set}/{y:04}"), &format!("{mo:02}"));
            l.dir(&format!("{set}/{y:04}/{mo:02}"), &format!("{d:02}"));
            let snap = Arc::new(SnapRef {
                id: s.id.clone(),
                root_rowid: s.root_rowid,
                time: s.manifest.time,
                path: format!("{day}/{name}"),
            });
            l.newest = l.newest.max(s.manifest.time.0);
            l.dirs
                .entry(day.clone())
                .or_default()
                .insert(name.clone(), Child::Snapshot(snap.clone()));
            // Oldest first, so the last one written wins: latest is the newest.
            let latest = format!("{y:04}/{mo:02}/{d:02}/{name}");
            l.dirs
                .entry(set.clone())
                .or_default()
                .insert("latest".into(), Child::Link(latest));
            let short = if used_short[&s.id[..8]] > 1 {
                s.id.clone()
            } else {
                s.id[..8].to_string()
            };
            l.dirs
                .entry("ids".into())
                .or_default()
                .insert(short, Child::Link(format!("../{}", snap.path)));
        }
        l
    }

    /// Every snapshot's path, by id.
    fn paths(&self) -> BTreeMap<&str, &str> {
        self.dirs
            .values()
            .flat_map(|d| d.values())
            .filter_map(|c| match c {
                Child::Snapshot(s) => Some((s.id.as_str(), s.path.as_str())),
                _ => None,
            })
            .collect()
    }
}

fn same_child(a: &Child, b: &Child) -> bool {
    match (a, b) {
        (Child::Dir, Child::Dir) => true,
        (Child::Link(x), Child::Link(y)) => x == y,
        (Child::Snapshot(x), Child::Snapshot(y)) => x.id == y.id && x.root_rowid == y.root_rowid,
        _ => false,
    }
}

/// What changed from `old` to `new`: per virtual directory path, the names that were
/// added, removed or now mean something else.
pub fn changes(old: &Layout, new: &Layout) -> Vec<(String, Vec<String>)> {
    let empty = BTreeMap::new();
    let paths: std::collections::BTreeSet<&String> =
        old.dirs.keys().chain(new.dirs.keys()).collect();
    let mut out = Vec::new();
    for path in paths {
        let (o, n) = (
            old.dirs.get(path).unwrap_or(&empty),
            new.dirs.get(path).unwrap_or(&empty),
        );
        let names: Vec<String> = o
            .keys()
            .chain(n.keys())
            .filter(|k| match (o.get(*k), n.get(*k)) {
                (Some(a), Some(b)) => !same_child(a, b),
                _ => true,
            })
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !names.is_empty() {
            out.push((path.clone(), names));
        }
    }
    out
}

/// (day directory, name) of each snapshot: names `prev` gave are kept; new snapshots take
/// `HHMM` when it is free, else `HHMM-<short id>`.
fn snapshot_names(
    snaps: &[SnapshotRow],
    local: bool,
    prev: Option<&Layout>,
) -> Vec<(String, String)> {
    let old = prev.map(Layout::paths).unwrap_or_default();
    let mut taken: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut out: Vec<Option<(String, String)>> = vec![None; snaps.len()];
    let day_and_minute = |s: &SnapshotRow| {
        let (y, mo, d, h, mi) = civil(s.manifest.time.0, local);
        let day = format!("{}/{y:04}/{mo:02}/{d:02}", component(&s.manifest.set));
        (day, format!("{h:02}{mi:02}"))
    };
    // First the names already shown, so no newcomer can take one over.
    for (i, s) in snaps.iter().enumerate() {
        let (day, _) = day_and_minute(s);
        if let Some(name) = old
            .get(s.id.as_str())
            .and_then(|p| p.strip_prefix(&format!("{day}/")))
        {
            taken.insert(format!("{day}/{name}"));
            out[i] = Some((day, name.to_string()));
        }
    }
    for (i, s) in snaps.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let (day, mut name) = day_and_minute(s);
        if taken.contains(&format!("{day}/{name}")) {
            name = format!("{name}-{}", &s.id[..8]);
        }
        taken.insert(format!("{day}/{name}"));
        out[i] = Some((day, name));
    }
    out.into_iter().flatten().collect()
}

impl Layout {
    fn dir(&mut self, parent: &str, name: &str) {
        let path = if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}/{name}")
        };
        self.dirs
            .entry(parent.to_string())
            .or_default()
            .insert(name.to_string(), Child::Dir);
        self.dirs.entry(path).or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlobId;
    use crate::model::{Manifest, Summary};

    fn snap(id: &str, time: i64) -> SnapshotRow {
        SnapshotRow {
            id: format!("{id:0<64}"),
            root_rowid: 1,
            manifest: Manifest {
                data_class: None,
                self_contained: false,
                version: 1,
                set: "db".into(),
                time: (time, 0),
                tags: vec![],
                paths: vec![],
                hostname: String::new(),
                username: String::new(),
                root: BlobId([0; 32]),
                summary: Summary::default(),
                program: String::new(),
            },
        }
    }

    fn names(l: &Layout) -> Vec<(String, String)> {
        let mut v: Vec<_> = l
            .paths()
            .into_iter()
            .map(|(id, p)| (id[..4].to_string(), p.to_string()))
            .collect();
        v.sort();
        v
    }

    /// (snapshots known before, snapshots after, expected (id, path) after)
    type Case = (
        Vec<SnapshotRow>,
        Vec<SnapshotRow>,
        Vec<(&'static str, &'static str)>,
    );

    const T: i64 = 1_764_000_000; // 2025-11-24 16:00:00 UTC

    #[test]
    fn shown_names_keep_naming_the_same_snapshot() {
        // (snapshots known before, snapshots after, expected names after)
        let cases: Vec<Case> = vec![
            // Nothing shown before: the earliest of the minute is HHMM.
            (
                vec![],
                vec![snap("aaaa", T + 10), snap("bbbb", T + 30)],
                vec![
                    ("aaaa", "db/2025/11/24/1600"),
                    ("bbbb", "db/2025/11/24/1600-bbbb0000"),
                ],
            ),
            // An earlier-timed snapshot arrives later in the same minute: 1600 stays bbbb's.
            (
                vec![snap("bbbb", T + 30)],
                vec![snap("aaaa", T + 10), snap("bbbb", T + 30)],
                vec![
                    ("aaaa", "db/2025/11/24/1600-aaaa0000"),
                    ("bbbb", "db/2025/11/24/1600"),
                ],
            ),
            // Another minute is untouched by it.
            (
                vec![snap("bbbb", T + 30)],
                vec![snap("bbbb", T + 30), snap("cccc", T + 90)],
                vec![
                    ("bbbb", "db/2025/11/24/1600"),
                    ("cccc", "db/2025/11/24/1601"),
                ],
            ),
        ];
        for (i, (before, after, want)) in cases.into_iter().enumerate() {
            let prev = Layout::build(&before, false, None);
            let l = Layout::build(&after, false, Some(&prev));
            let want: Vec<(String, String)> = want
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(names(&l), want, "case {i}");
        }
    }
}
