//! `cofre check --against REPO2`: the snapshots of two repositories that share keys (a
//! repository and its copy, `cofre copy`), compared without reading data.
//!
//! A snapshot's id is the hash of its sealed manifest, checked on every load, and `copy`
//! stores the manifest's very bytes: the same id on both sides is the same snapshot, with
//! the same root tree. Each side's own `check` (run beside this) proves that its trees and
//! index are whole. What this adds: which snapshots only one side has (a copy that fell
//! behind, or retention that differs, which is allowed), which cannot be read on either
//! side, and snapshots of the same set and time under different ids (taken separately, not
//! copied: the two repositories do not hold the same backups).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::repo::Repository;

/// One side's snapshot, as the comparison names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotRef {
    pub id: String,
    pub set: String,
    pub time: String,
    /// The root tree's id.
    pub root: String,
}

/// Two snapshots that should be one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Differ {
    pub source: SnapshotRef,
    pub target: SnapshotRef,
    pub what: String,
}

#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Comparison {
    /// The other repository's location.
    pub target: String,
    /// Snapshots both hold, the same.
    pub in_both: usize,
    /// Only this repository has them (not copied yet, or pruned on the target), oldest
    /// first.
    pub only_source: Vec<SnapshotRef>,
    /// Only the target has them (kept longer there, or forgotten here).
    pub only_target: Vec<SnapshotRef>,
    pub differ: Vec<Differ>,
    /// Manifests that could not be read, on either side.
    pub errors: Vec<String>,
}

impl Comparison {
    /// No snapshot differs and every manifest was read. Snapshots that only one side holds
    /// do not count: the two may keep different retention.
    pub fn is_clean(&self) -> bool {
        self.differ.is_empty() && self.errors.is_empty()
    }
}

/// Each snapshot id of one repository, with its manifest or why it could not be read.
type Side = BTreeMap<String, std::result::Result<SnapshotRef, String>>;

pub fn compare(src: &Repository, dst: &Repository) -> Result<Comparison> {
    crate::copy::require_shared_keys(src, dst)?;
    Ok(compare_sides(
        &side(src)?,
        &side(dst)?,
        dst.store().location(),
    ))
}

/// A listing that fails is an error, never an empty side.
fn side(repo: &Repository) -> Result<Side> {
    let ids = repo.snapshot_ids()?;
    Ok(ids
        .iter()
        .zip(repo.load_manifests(&ids))
        .map(|(id, m)| {
            let r = m
                .map(|m| SnapshotRef {
                    id: id.clone(),
                    set: m.set,
                    time: crate::ingest::format_time(m.time),
                    root: m.root.hex(),
                })
                .map_err(|e| e.to_string());
            (id.clone(), r)
        })
        .collect())
}

fn compare_sides(a: &Side, b: &Side, target: String) -> Comparison {
    let mut c = Comparison {
        target,
        ..Default::default()
    };
    for (id, ra) in a {
        match (ra, b.get(id)) {
            (Err(e), _) => c.errors.push(format!("snapshot {id} here: {e}")),
            (Ok(_), Some(Err(e))) => c.errors.push(format!("snapshot {id} on {}: {e}", c.target)),
            (Ok(x), Some(Ok(y))) if x == y => c.in_both += 1,
            (Ok(x), Some(Ok(y))) => c.differ.push(Differ {
                source: x.clone(),
                target: y.clone(),
                what: "the same id with different manifests".into(),
            }),
            (Ok(x), None) => c.only_source.push(x.clone()),
        }
    }
    for (id, rb) in b.iter().filter(|(id, _)| !a.contains_key(*id)) {
        match rb {
            Err(e) => c.errors.push(format!("snapshot {id} on {}: {e}", c.target)),
            Ok(y) => c.only_target.push(y.clone()),
        }
    }
    // The same set and time under two ids: backups taken twice, not one copied.
    let key = |s: &SnapshotRef| (s.set.clone(), s.time.clone());
    let theirs: BTreeMap<_, SnapshotRef> =
        c.only_target.iter().map(|s| (key(s), s.clone())).collect();
    let (paired, alone): (Vec<_>, Vec<_>) = std::mem::take(&mut c.only_source)
        .into_iter()
        .partition(|s| theirs.contains_key(&key(s)));
    c.only_source = alone;
    for s in paired {
        let t = theirs[&key(&s)].clone();
        c.only_target.retain(|o| o.id != t.id);
        c.differ.push(Differ {
            source: s,
            target: t,
            what: "the same set and time under different ids: taken separately, not copied".into(),
        });
    }
    let by_time = |x: &SnapshotRef, y: &SnapshotRef| x.time.cmp(&y.time).then(x.id.cmp(&y.id));
    c.only_source.sort_by(by_time);
    c.only_target.sort_by(by_time);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, time: &str, root: &str) -> SnapshotRef {
        SnapshotRef {
            id: id.into(),
            set: "etc".into(),
            time: time.into(),
            root: root.into(),
        }
    }

    fn side(entries: &[(&str, &str, &str)]) -> Side {
        entries
            .iter()
            .map(|&(id, time, root)| {
                let r = match root {
                    "BAD" => Err("damaged".to_string()),
                    _ => Ok(snap(id, time, root)),
                };
                (id.to_string(), r)
            })
            .collect()
    }

    #[test]
    fn sides_compare_by_id_then_by_set_and_time() {
        // (source, target, in_both, only_source ids, only_target ids, differ count, errors)
        type Row<'a> = (
            &'a [(&'a str, &'a str, &'a str)],
            &'a [(&'a str, &'a str, &'a str)],
            usize,
            &'a [&'a str],
            &'a [&'a str],
            usize,
            usize,
        );
        let table: &[Row] = &[
            (&[], &[], 0, &[], &[], 0, 0),
            (&[("a", "1", "r")], &[("a", "1", "r")], 1, &[], &[], 0, 0),
            // Not copied yet; kept longer on the target.
            (
                &[("a", "1", "r"), ("b", "2", "s")],
                &[("a", "1", "r"), ("z", "0", "q")],
                1,
                &["b"],
                &["z"],
                0,
                0,
            ),
            // A manifest damaged on either side is an error, not a snapshot missing.
            (&[("a", "1", "BAD")], &[("a", "1", "r")], 0, &[], &[], 0, 1),
            (&[("a", "1", "r")], &[("a", "1", "BAD")], 0, &[], &[], 0, 1),
            (&[], &[("a", "1", "BAD")], 0, &[], &[], 0, 1),
            // The same id, different manifests (cannot happen with intact keys; reported).
            (
                &[("a", "1", "r")],
                &[("a", "1", "other")],
                0,
                &[],
                &[],
                1,
                0,
            ),
            // The same set and time under other ids: taken twice.
            (
                &[("a", "1", "r"), ("b", "2", "s")],
                &[("c", "1", "t")],
                0,
                &["b"],
                &[],
                1,
                0,
            ),
        ];
        for (i, (a, b, both, only_a, only_b, differ, errors)) in table.iter().enumerate() {
            let c = compare_sides(&side(a), &side(b), "T".into());
            let ids = |v: &[SnapshotRef]| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
            assert_eq!(c.in_both, *both, "row {i}");
            assert_eq!(ids(&c.only_source), *only_a, "row {i}");
            assert_eq!(ids(&c.only_target), *only_b, "row {i}");
            assert_eq!(c.differ.len(), *differ, "row {i}");
            assert_eq!(c.errors.len(), *errors, "row {i}");
            assert_eq!(c.is_clean(), *differ == 0 && *errors == 0, "row {i}");
        }
    }
}
