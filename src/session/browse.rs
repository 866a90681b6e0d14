//! Listing and browsing snapshots from the catalog: the snapshot list, a path inside a
//! snapshot (`ls`), and the mount's layout (`<set>/YYYY/MM/DD/HHMM/...`) walked by path,
//! beside the inode-based vfs. Pure walks over [`Dirs`], so they are table-tested without
//! a repository.

use std::os::unix::ffi::OsStrExt;

use serde::Serialize;

use super::Session;
use crate::catalog::{Catalog, NodeRow, SnapshotRow};
use crate::error::{Error, Result};
use crate::ingest::format_time;
use crate::model::{Kind, Node};
use crate::vfs::layout::{Child, Layout};

/// One snapshot, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub short_id: String,
    pub set: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub files: u64,
    pub bytes: u64,
    pub bytes_added: u64,
}

impl From<&SnapshotRow> for SnapshotInfo {
    fn from(r: &SnapshotRow) -> Self {
        let m = &r.manifest;
        SnapshotInfo {
            id: r.id.clone(),
            short_id: r.id[..8.min(r.id.len())].to_string(),
            set: m.set.clone(),
            time: format_time(m.time),
            tags: m.tags.clone(),
            paths: m.paths.clone(),
            hostname: m.hostname.clone(),
            username: m.username.clone(),
            files: m.summary.files,
            bytes: m.summary.bytes,
            bytes_added: m.summary.bytes_added,
        }
    }
}

/// One entry of a snapshot, with its path from the snapshot's root.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The path, `/`-separated; bytes that are not UTF-8 are replaced (see `path_hex`).
    pub path: String,
    /// The exact path in hex, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Permission bits in octal.
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub size: u64,
    pub mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// The stored node: content, times to the nanosecond, xattrs.
    #[serde(skip)]
    pub node: Node,
    /// Whether it has entries below it.
    #[serde(skip)]
    pub is_dir: bool,
}

impl Entry {
    /// The exact path, bytes that are not UTF-8 included.
    pub fn os_path(&self) -> std::path::PathBuf {
        use std::os::unix::ffi::OsStringExt;
        let bytes = match self.path_hex.as_deref().map(hex::decode) {
            Some(Ok(b)) => b,
            _ => self.path.clone().into_bytes(),
        };
        std::ffi::OsString::from_vec(bytes).into()
    }

    pub fn new(path: &[u8], r: &NodeRow) -> Entry {
        let n = &r.node;
        let (shown, path_hex) = show_path(path);
        Entry {
            path_hex,
            path: shown,
            kind: n.kind.as_str(),
            mode: format!("{:o}", n.mode & 0o7777),
            uid: n.uid,
            gid: n.gid,
            user: n.user.clone(),
            group: n.group.clone(),
            size: n.size,
            mtime: format_time(n.mtime),
            target: (n.kind == Kind::Symlink)
                .then(|| String::from_utf8_lossy(&n.target).into_owned()),
            blake3: n.blake3.map(hex::encode),
            node: n.clone(),
            is_dir: r.subtree_rowid.is_some(),
        }
    }
}

/// A path for people (bytes that are not UTF-8 replaced) and, when it is not UTF-8, the
/// exact bytes in hex.
pub(crate) fn show_path(path: &[u8]) -> (String, Option<String>) {
    (
        String::from_utf8_lossy(path).into_owned(),
        std::str::from_utf8(path)
            .is_err()
            .then(|| hex::encode(path)),
    )
}

/// What a path of the mount's layout is.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Browse {
    /// A directory above the snapshots (the root, a set, a year, …): its names, and for a
    /// snapshot's name, the snapshot.
    Layout {
        entries: Vec<(String, Option<SnapshotInfo>)>,
    },
    /// A directory in a snapshot: its path there (`/` for the root) and its entries (not
    /// what is below them).
    Dir {
        snapshot: SnapshotInfo,
        path: String,
        entries: Vec<Entry>,
    },
    /// Anything else in a snapshot: a file, a symlink, a device.
    File {
        snapshot: SnapshotInfo,
        entry: Box<Entry>,
    },
}

/// Directories by catalog row: what the walks read. The catalog is one; tests have another.
pub trait Dirs {
    fn child(&self, dir: i64, name: &[u8]) -> Result<Option<NodeRow>>;
    fn children(&self, dir: i64) -> Result<Vec<NodeRow>>;
}

impl Dirs for Catalog {
    fn child(&self, dir: i64, name: &[u8]) -> Result<Option<NodeRow>> {
        Catalog::child(self, dir, name)
    }
    fn children(&self, dir: i64) -> Result<Vec<NodeRow>> {
        Catalog::children(self, dir)
    }
}

/// The components of a path in a snapshot: `/`, `.` and empty ones dropped. `..` is an
/// ordinary name there (a snapshot has no parent links), so it matches nothing.
pub fn components(path: &str) -> Vec<&[u8]> {
    std::path::Path::new(path)
        .iter()
        .map(|p| p.as_bytes())
        .filter(|p| *p != b"/" && *p != b".")
        .collect()
}

/// What `path` below the tree `root` lists: a directory's entries (with `recursive`, every
/// entry below it, depth first) after the directory itself (unless it is the root), or a
/// file alone. A component below a file, or missing, is `NoSuchPath`.
pub fn walk_path<D: Dirs>(
    d: &D,
    root: i64,
    path: &str,
    recursive: bool,
) -> Result<Vec<(Vec<u8>, NodeRow)>> {
    let mut out = Vec::new();
    walk_path_each(d, root, path, recursive, &mut |p, r| {
        out.push((p.to_vec(), r));
        Ok(())
    })?;
    Ok(out)
}

/// `walk_path`, handing each entry to `f` as it is found instead of collecting them: only
/// the directories on the way down are held.
pub fn walk_path_each<D: Dirs>(
    d: &D,
    root: i64,
    path: &str,
    recursive: bool,
    f: &mut dyn FnMut(&[u8], NodeRow) -> Result<()>,
) -> Result<()> {
    let missing = || Error::NoSuchPath(path.to_string());
    let mut tree = Some(root);
    let mut prefix = Vec::new();
    let mut found = None;
    for part in components(path) {
        let child = d
            .child(tree.ok_or_else(missing)?, part)?
            .ok_or_else(missing)?;
        prefix.push(b'/');
        prefix.extend_from_slice(part);
        tree = child.subtree_rowid;
        found = Some(child);
    }
    if let Some(row) = found {
        f(&prefix, row)?;
    }
    match tree {
        Some(t) => list_dir(d, t, &prefix, recursive, f),
        None => Ok(()),
    }
}

fn list_dir<D: Dirs>(
    d: &D,
    tree: i64,
    prefix: &[u8],
    recursive: bool,
    f: &mut dyn FnMut(&[u8], NodeRow) -> Result<()>,
) -> Result<()> {
    for child in d.children(tree)? {
        let mut path = prefix.to_vec();
        path.push(b'/');
        path.extend_from_slice(&child.node.name);
        let sub = child.subtree_rowid;
        f(&path, child)?;
        if let (Some(sub), true) = (sub, recursive) {
            list_dir(d, sub, &path, true, f)?;
        }
    }
    Ok(())
}

/// Where a path of the mount's layout leads: a layout directory (its key in
/// `Layout::dirs`), or a snapshot and the path left inside it.
#[derive(Debug, PartialEq)]
pub enum Place {
    Layout(String),
    Snapshot(String, Vec<String>),
}

/// Follows `path` through the layout, as the mount would: `latest` and `ids/<id>` are
/// relative links. Stops at the first snapshot; the rest of the path is inside it.
pub fn place(layout: &Layout, path: &str) -> Result<Place> {
    let parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .map(str::to_string)
        .collect();
    place_parts(layout, parts, 0).map_err(|()| Error::NoSuchPath(path.to_string()))
}

fn place_parts(layout: &Layout, parts: Vec<String>, hops: usize) -> Result<Place, ()> {
    let mut dir: Vec<String> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let child = layout.dirs.get(&dir.join("/")).and_then(|d| d.get(part));
        match child.ok_or(())? {
            Child::Dir => dir.push(part.clone()),
            Child::Snapshot(s) => {
                return Ok(Place::Snapshot(s.id.clone(), parts[i + 1..].to_vec()))
            }
            // A layout is shallow: a chain of more links than this is a loop.
            Child::Link(_) if hops >= 8 => return Err(()),
            Child::Link(target) => {
                for t in target.split('/') {
                    match t {
                        ".." => {
                            dir.pop().ok_or(())?;
                        }
                        "" | "." => {}
                        t => dir.push(t.to_string()),
                    }
                }
                dir.extend_from_slice(&parts[i + 1..]);
                return place_parts(layout, dir, hops + 1);
            }
        }
    }
    Ok(Place::Layout(dir.join("/")))
}

/// `ids/<id or unique prefix>/...` for any snapshot: the layout's `ids/` names a snapshot
/// by its shortest unambiguous prefix, and a link made with the whole id (or an older
/// prefix, before another snapshot made it ambiguous) still leads there.
fn place_by_id(rows: &[SnapshotRow], path: &str) -> Option<Place> {
    let mut parts = path.split('/').filter(|p| !p.is_empty() && *p != ".");
    if parts.next()? != "ids" {
        return None;
    }
    let prefix = parts.next().filter(|p| p.len() >= 8)?;
    let mut matching = rows.iter().filter(|r| r.id.starts_with(prefix));
    let row = matching.next()?;
    if matching.next().is_some() {
        return None;
    }
    Some(Place::Snapshot(
        row.id.clone(),
        parts.map(str::to_string).collect(),
    ))
}

impl Session {
    /// Snapshots, oldest first, optionally of one set.
    pub fn snapshots(&self, set: Option<&str>) -> Result<Vec<SnapshotInfo>> {
        self.healing(true, || {
            let cat = self.reading_catalog()?;
            Ok(cat.snapshots(set)?.iter().map(SnapshotInfo::from).collect())
        })
    }

    /// `ls`: everything at and below `path` in `snapshot` (an id prefix or `latest`, of
    /// `set` if given), depth first.
    pub fn list(&self, snapshot: &str, path: &str, set: Option<&str>) -> Result<Vec<Entry>> {
        self.healing(true, || {
            let cat = self.reading_catalog()?;
            let row = cat.resolve(snapshot, set)?;
            let found = walk_path(&cat, row.root_rowid, path, true)?;
            Ok(found.iter().map(|(p, r)| Entry::new(p, r)).collect())
        })
    }

    /// `list` one entry at a time: each is handed to `f` as the walk finds it, so a walk over
    /// a whole snapshot holds only the directories on its way (a web server's folder
    /// download). An error from `f` stops the walk and is returned.
    pub fn walk(
        &self,
        snapshot: &str,
        path: &str,
        set: Option<&str>,
        f: &mut dyn FnMut(Entry) -> Result<()>,
    ) -> Result<()> {
        let cat = self.reading_catalog()?;
        let row = cat.resolve(snapshot, set)?;
        walk_path_each(&cat, row.root_rowid, path, true, &mut |p, r| {
            f(Entry::new(p, &r))
        })
    }

    /// A path of the mount's layout (`/`, `/db`, `/db/latest/var/lib`, `/ids/1a2b3c4d/etc`),
    /// one level at a time, as a web page or a file picker shows it. Times are UTC.
    pub fn browse(&self, path: &str) -> Result<Browse> {
        self.healing(true, || {
            let cat = self.reading_catalog()?;
            let rows = cat.snapshots(None)?;
            let layout = Layout::build(&rows, false, None);
            let found = match place(&layout, path) {
                Err(Error::NoSuchPath(p)) => place_by_id(&rows, path).ok_or(Error::NoSuchPath(p)),
                other => other,
            };
            match found? {
                Place::Layout(key) => {
                    let dir = layout
                        .dirs
                        .get(&key)
                        .ok_or_else(|| Error::NoSuchPath(path.to_string()))?;
                    let entries = dir
                        .iter()
                        .map(|(name, c)| {
                            let snap = match c {
                                Child::Snapshot(s) => {
                                    rows.iter().find(|r| r.id == s.id).map(SnapshotInfo::from)
                                }
                                _ => None,
                            };
                            (name.clone(), snap)
                        })
                        .collect();
                    Ok(Browse::Layout { entries })
                }
                Place::Snapshot(id, rest) => {
                    let row = rows
                        .iter()
                        .find(|r| r.id == id)
                        .ok_or_else(|| Error::NoSnapshot(id.clone()))?;
                    let snapshot = SnapshotInfo::from(row);
                    let inner = format!("/{}", rest.join("/"));
                    let mut found = walk_path(&cat, row.root_rowid, &inner, false)?;
                    let is_file =
                        !rest.is_empty() && found.len() == 1 && found[0].1.subtree_rowid.is_none();
                    if is_file {
                        let (p, r) = found.remove(0);
                        return Ok(Browse::File {
                            snapshot,
                            entry: Box::new(Entry::new(&p, &r)),
                        });
                    }
                    // The directory itself comes first unless it is the root.
                    let skip = usize::from(!rest.is_empty());
                    let entries = found[skip..]
                        .iter()
                        .map(|(p, r)| Entry::new(p, r))
                        .collect();
                    Ok(Browse::Dir {
                        snapshot,
                        path: inner,
                        entries,
                    })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn node(name: &str, kind: Kind) -> Node {
        Node::sample(name.as_bytes(), kind)
    }

    /// Tree 1 is the root: /etc (tree 2) with passwd and ssh/ (tree 3, sshd_config),
    /// and /readme.
    struct Fake(BTreeMap<i64, Vec<NodeRow>>);

    fn fake() -> Fake {
        let row = |rowid, name, sub: Option<i64>| NodeRow {
            rowid,
            node: node(name, if sub.is_some() { Kind::Dir } else { Kind::File }),
            subtree_rowid: sub,
        };
        let mut m = BTreeMap::new();
        m.insert(1, vec![row(10, "etc", Some(2)), row(11, "readme", None)]);
        m.insert(2, vec![row(20, "passwd", None), row(21, "ssh", Some(3))]);
        m.insert(3, vec![row(30, "sshd_config", None)]);
        Fake(m)
    }

    impl Dirs for Fake {
        fn child(&self, dir: i64, name: &[u8]) -> Result<Option<NodeRow>> {
            Ok(self
                .children(dir)?
                .into_iter()
                .find(|r| r.node.name == name))
        }
        fn children(&self, dir: i64) -> Result<Vec<NodeRow>> {
            Ok(self.0.get(&dir).cloned().unwrap_or_default())
        }
    }

    #[test]
    fn paths_in_a_snapshot_list_what_the_table_says() {
        let all = "/etc /etc/passwd /etc/ssh /etc/ssh/sshd_config /readme";
        let table: &[(&str, bool, Option<&str>)] = &[
            ("/", true, Some(all)),
            ("", true, Some(all)),
            ("/", false, Some("/etc /readme")),
            ("/etc", false, Some("/etc /etc/passwd /etc/ssh")),
            ("etc/", false, Some("/etc /etc/passwd /etc/ssh")),
            ("/./etc", false, Some("/etc /etc/passwd /etc/ssh")),
            (
                "/etc",
                true,
                Some("/etc /etc/passwd /etc/ssh /etc/ssh/sshd_config"),
            ),
            ("/etc/passwd", true, Some("/etc/passwd")),
            ("/etc/ssh/sshd_config", false, Some("/etc/ssh/sshd_config")),
            ("/etc/passwd/x", true, None),
            ("/nope", true, None),
            ("/etc/../readme", true, None),
        ];
        let d = fake();
        for (path, recursive, want) in table {
            let got = walk_path(&d, 1, path, *recursive).map(|v| {
                v.iter()
                    .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            match want {
                Some(w) => assert_eq!(got.as_deref().ok(), Some(*w), "{path} {recursive}"),
                None => assert!(matches!(got, Err(Error::NoSuchPath(_))), "{path}: {got:?}"),
            }
        }
    }

    fn snap(id: &str, set: &str, t: i64) -> SnapshotRow {
        SnapshotRow {
            id: id.to_string(),
            root_rowid: 1,
            manifest: crate::model::Manifest {
                data_class: None,
                self_contained: false,
                version: 1,
                set: set.into(),
                time: (t, 0),
                tags: vec![],
                paths: vec![],
                hostname: String::new(),
                username: String::new(),
                root: crate::crypto::BlobId([0; 32]),
                summary: Default::default(),
                program: String::new(),
            },
        }
    }

    #[test]
    fn layout_paths_lead_where_the_mount_shows_them() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        // 2026-12-04 10:00 and 14:00 UTC.
        let rows = vec![snap(&a, "db", 1_796_378_400), snap(&b, "db", 1_796_392_800)];
        let layout = Layout::build(&rows, false, None);
        let s = |id: &str, rest: &[&str]| {
            Ok(Place::Snapshot(
                id.into(),
                rest.iter().map(|r| r.to_string()).collect(),
            ))
        };
        let l = |k: &str| Ok(Place::Layout(k.into()));
        let full = format!("/ids/{b}/etc");
        let table: Vec<(&str, Result<Place>)> = vec![
            ("/", l("")),
            ("", l("")),
            ("/db", l("db")),
            ("/db/2026/12", l("db/2026/12")),
            ("/db/2026/12/04/1000", s(&a, &[])),
            ("/db/2026/12/04/1400/var/lib", s(&b, &["var", "lib"])),
            ("/db/latest", s(&b, &[])),
            ("/db/latest/etc", s(&b, &["etc"])),
            ("/ids/aaaaaaaa/etc", s(&a, &["etc"])),
            // A whole id, or a longer prefix, leads to the same snapshot.
            (&full, s(&b, &["etc"])),
            ("/ids/bbbbbbbbbb", s(&b, &[])),
            ("/ids/bbbb", Err(Error::NoSuchPath(String::new()))),
            ("/ids", l("ids")),
            ("/web", Err(Error::NoSuchPath(String::new()))),
            ("/db/2027", Err(Error::NoSuchPath(String::new()))),
        ];
        for (path, want) in table {
            let got = place(&layout, path).or_else(|e| place_by_id(&rows, path).ok_or(e));
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{path}"),
                (Err(Error::NoSuchPath(_)), Err(_)) => {}
                (g, w) => panic!("{path}: got {g:?}, want {w:?}"),
            }
        }
    }
}
