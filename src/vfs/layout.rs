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
    /// others `HHMM-<short id>`.
    pub fn build(snaps: &[SnapshotRow], local: bool) -> Layout {
        let mut l = Layout::default();
        l.dirs.insert(String::new(), BTreeMap::new());
        l.dir("", "ids");
        let mut used_short: BTreeMap<String, usize> = BTreeMap::new();
        for s in snaps {
            *used_short.entry(s.id[..8].to_string()).or_default() += 1;
        }
        for s in snaps {
            let set = component(&s.manifest.set);
            let (y, mo, d, h, mi) = civil(s.manifest.time.0, local);
            let day = format!("{set}/{y:04}/{mo:02}/{d:02}");
            l.dir("", &set);
            l.dir(&set, &format!("{y:04}"));
            l.dir(&format!("{set}/{y:04}"), &format!("{mo:02}"));
            l.dir(&format!("{set}/{y:04}/{mo:02}"), &format!("{d:02}"));
            let mut name = format!("{h:02}{mi:02}");
            if l.dirs.get(&day).is_some_and(|e| e.contains_key(&name)) {
                name = format!("{name}-{}", &s.id[..8]);
            }
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
