//! `find PATTERN`: entries whose name matches, across snapshots, grouped by path and
//! version. The catalog holds each distinct entry once, so the match is one query; the
//! paths (and snapshots) holding a match are found by climbing from its directory to the
//! snapshot roots, each directory climbed once.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde::Serialize;

use super::{push, show_path, At, Version};
use crate::catalog::{Catalog, SnapshotRow};
use crate::error::Result;

/// A path that matched, with its versions in the snapshots searched.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub path: String,
    /// The exact path in hex, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub versions: Vec<Version>,
}

/// (snapshot index, path of the directory) pairs that hold a tree.
type Places = Rc<Vec<(usize, Vec<u8>)>>;

struct Climb<'a> {
    cat: &'a Catalog,
    /// Root tree → the indexes of the searched snapshots with that root.
    roots: HashMap<i64, Vec<usize>>,
    memo: HashMap<i64, Places>,
}

impl Climb<'_> {
    fn places(&mut self, tree: i64) -> Result<Places> {
        if let Some(p) = self.memo.get(&tree) {
            return Ok(p.clone());
        }
        let mut out: Vec<(usize, Vec<u8>)> = self
            .roots
            .get(&tree)
            .map(|v| v.iter().map(|&i| (i, Vec::new())).collect())
            .unwrap_or_default();
        for (parent, name) in self.cat.parents(tree)? {
            for (i, p) in self.places(parent)?.iter() {
                let mut path = p.clone();
                path.push(b'/');
                path.extend_from_slice(&name);
                out.push((*i, path));
            }
        }
        let out = Rc::new(out);
        self.memo.insert(tree, out.clone());
        Ok(out)
    }
}

/// Entries named like `pattern` (a glob: `*`, `?`, `[...]`; case-sensitive) in `snaps`
/// (oldest first), under `path_prefix` when given, by path; each path's versions as `log`
/// shows them (absent stretches included).
pub fn find(
    cat: &Catalog,
    snaps: &[SnapshotRow],
    pattern: &str,
    path_prefix: Option<&str>,
) -> Result<Vec<Found>> {
    let mut roots: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, s) in snaps.iter().enumerate() {
        roots.entry(s.root_rowid).or_default().push(i);
    }
    let mut climb = Climb {
        cat,
        roots,
        memo: HashMap::new(),
    };
    let prefix = path_prefix.map(|p| {
        let parts = crate::session::components(p);
        parts
            .iter()
            .flat_map(|c| [&b"/"[..], c].concat())
            .collect::<Vec<u8>>()
    });
    if snaps.is_empty() {
        return Ok(Vec::new());
    }
    // Path → (snapshot index → the matching entry there, by its index in `rows`).
    let rows = cat.nodes_named(pattern)?;
    let mut hits: BTreeMap<Vec<u8>, BTreeMap<usize, usize>> = BTreeMap::new();
    for (r, (tree, row)) in rows.iter().enumerate() {
        for (i, dir) in climb.places(*tree)?.iter() {
            let mut path = dir.clone();
            path.push(b'/');
            path.extend_from_slice(&row.node.name);
            let under = prefix.as_ref().is_none_or(|p| {
                path.starts_with(p) && matches!(path.get(p.len()), None | Some(b'/'))
            });
            if under {
                hits.entry(path).or_default().insert(*i, r);
            }
        }
    }
    let ats: Vec<At> = snaps.iter().map(At::from).collect();
    let mut out = Vec::new();
    for (path, by_snap) in hits {
        let mut versions = Vec::new();
        let mut last = None;
        let first = by_snap.keys().next().copied().unwrap_or(0);
        for (i, at) in ats.iter().enumerate().skip(first) {
            let row = by_snap.get(&i).map(|&r| rows[r].1.clone());
            push(&mut versions, &mut last, at.clone(), &path, row);
        }
        // A path absent after its last version: the trailing `removed` stretch stays (it
        // says the file is gone now).
        let (shown, path_hex) = show_path(&path);
        out.push(Found {
            path: shown,
            path_hex,
            versions,
        });
    }
    Ok(out)
}
