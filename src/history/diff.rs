//! `diff A B [PATH]`: what changed between two snapshots. Identical subtrees are one
//! catalog row, so only the directories that changed are read.

use serde::Serialize;

use super::{change, lookup, mode_owner_xattrs_differ, show_path, At, Change};
use crate::catalog::{Catalog, NodeRow, SnapshotRow};
use crate::error::{Error, Result};
use crate::model::Kind;
use crate::session::components;

/// One changed path.
#[derive(Debug, Clone, Serialize)]
pub struct DiffEntry {
    pub path: String,
    /// The exact path in hex, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub change: Change,
    /// The entry's type after the change (before it, for `removed`).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Sizes of the regular file before and after (none where there was none: absent, or
    /// a directory, symlink, …).
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
}

/// Two snapshots compared.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub from: At,
    pub to: At,
    pub entries: Vec<DiffEntry>,
    pub added: usize,
    pub removed: usize,
    /// Content or type changed.
    pub changed: usize,
    pub metadata_only: usize,
    /// Bytes of the files added and removed (whole files; a changed file counts its
    /// growth or shrinkage).
    pub bytes_added: u64,
    pub bytes_removed: u64,
}

struct Walk<'a> {
    cat: &'a Catalog,
    out: Vec<DiffEntry>,
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

impl Walk<'_> {
    fn record(&mut self, path: &[u8], change: Change, a: Option<&NodeRow>, b: Option<&NodeRow>) {
        let kind = b.or(a).map_or("", |r| r.node.kind.as_str());
        let file_size =
            |r: Option<&NodeRow>| r.filter(|r| r.node.kind == Kind::File).map(|r| r.node.size);
        let (path, path_hex) = show_path(path);
        self.out.push(DiffEntry {
            path,
            path_hex,
            change,
            kind,
            size_before: file_size(a),
            size_after: file_size(b),
        });
    }

    /// Everything below `tree`, as added (`a` side absent) or removed.
    fn all_below(&mut self, tree: i64, prefix: &[u8], added: bool) -> Result<()> {
        for c in self.cat.children(tree)? {
            let path = join(prefix, &c.node.name);
            match added {
                true => self.record(&path, Change::Added, None, Some(&c)),
                false => self.record(&path, Change::Removed, Some(&c), None),
            }
            if let Some(sub) = c.subtree_rowid {
                self.all_below(sub, &path, added)?;
            }
        }
        Ok(())
    }

    fn trees(&mut self, a: i64, b: i64, prefix: &[u8]) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let (xs, ys) = (self.cat.children(a)?, self.cat.children(b)?);
        let (mut i, mut j) = (0, 0);
        // Both lists are sorted by name: a merge.
        while i < xs.len() || j < ys.len() {
            let order = match (xs.get(i), ys.get(j)) {
                (Some(x), Some(y)) => x.node.name.cmp(&y.node.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    self.side(&xs[i], prefix, false)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    self.side(&ys[j], prefix, true)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    self.pair(&xs[i], &ys[j], prefix)?;
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    /// An entry on one side only, with everything below it.
    fn side(&mut self, r: &NodeRow, prefix: &[u8], added: bool) -> Result<()> {
        let path = join(prefix, &r.node.name);
        match added {
            true => self.record(&path, Change::Added, None, Some(r)),
            false => self.record(&path, Change::Removed, Some(r), None),
        }
        match r.subtree_rowid {
            Some(sub) => self.all_below(sub, &path, added),
            None => Ok(()),
        }
    }

    fn pair(&mut self, x: &NodeRow, y: &NodeRow, prefix: &[u8]) -> Result<()> {
        let path = join(prefix, &y.node.name);
        let c = change(x, y);
        // A directory's content is its entries: those are listed, not the directory. It is
        // listed when its mode, owner or xattrs changed too (not for its mtime alone).
        match c {
            Some(Change::Content)
                if y.subtree_rowid.is_some() && mode_owner_xattrs_differ(x, y) =>
            {
                self.record(&path, Change::Metadata, Some(x), Some(y))
            }
            Some(Change::Content) if y.subtree_rowid.is_some() => {}
            Some(c) => self.record(&path, c, Some(x), Some(y)),
            None => {}
        }
        match (x.subtree_rowid, y.subtree_rowid) {
            (Some(a), Some(b)) => self.trees(a, b, &path),
            (Some(a), None) => self.all_below(a, &path, false),
            (None, Some(b)) => self.all_below(b, &path, true),
            (None, None) => Ok(()),
        }
    }
}

/// What changed from snapshot `a` to snapshot `b`, below `path` (`/`: everything).
pub fn diff(cat: &Catalog, a: &SnapshotRow, b: &SnapshotRow, path: &str) -> Result<Diff> {
    let parts = components(path);
    let mut memo = std::collections::HashMap::new();
    let mut w = Walk {
        cat,
        out: Vec::new(),
    };
    let prefix: Vec<u8> = parts.iter().flat_map(|p| [&b"/"[..], p].concat()).collect();
    match parts.is_empty() {
        true => w.trees(a.root_rowid, b.root_rowid, &[])?,
        false => {
            let x = lookup(cat, a.root_rowid, &parts, &mut memo)?;
            let y = lookup(cat, b.root_rowid, &parts, &mut memo)?;
            let parent = &prefix[..prefix.len() - parts[parts.len() - 1].len() - 1];
            match (x, y) {
                (None, None) => return Err(Error::NoSuchPath(path.to_string())),
                (Some(x), None) => w.side(&x, parent, false)?,
                (None, Some(y)) => w.side(&y, parent, true)?,
                (Some(x), Some(y)) => w.pair(&x, &y, parent)?,
            }
        }
    }
    let count = |c: Change| w.out.iter().filter(|e| e.change == c).count();
    let d = Diff {
        from: At::from(a),
        to: At::from(b),
        added: count(Change::Added),
        removed: count(Change::Removed),
        changed: count(Change::Content) + count(Change::Type),
        metadata_only: count(Change::Metadata),
        bytes_added: w
            .out
            .iter()
            .map(|e| {
                e.size_after
                    .unwrap_or(0)
                    .saturating_sub(e.size_before.unwrap_or(0))
            })
            .sum(),
        bytes_removed: w
            .out
            .iter()
            .map(|e| {
                e.size_before
                    .unwrap_or(0)
                    .saturating_sub(e.size_after.unwrap_or(0))
            })
            .sum(),
        entries: Vec::new(),
    };
    Ok(Diff {
        entries: w.out,
        ..d
    })
}
