//! Compares a copied directory with the snapshot tree it came from, entry by entry: kind,
//! permission bits, owner (when run as root, as `cp -a` keeps owners only then), size,
//! mtime, symlink target, device number, extended attributes, and every file's content
//! against the whole-file blake3 the snapshot recorded at ingest.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::model::Kind;

#[derive(Debug, Default, serde::Serialize)]
pub struct Verified {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    /// One line per entry that differs: path and what.
    pub mismatches: Vec<String>,
}

fn file_blake3(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(*h.finalize().as_bytes());
        }
        h.update(&buf[..n]);
    }
}

fn xattrs_of(path: &Path) -> BTreeSet<(Vec<u8>, Vec<u8>)> {
    let Ok(names) = xattr::list(path) else {
        return BTreeSet::new();
    };
    names
        .filter_map(|n| {
            let v = xattr::get(path, &n).ok().flatten()?;
            Some((n.as_bytes().to_vec(), v))
        })
        .collect()
}

/// Walks the snapshot tree at `tree_rowid` beside `dir`.
pub fn verify(cat: &Catalog, tree_rowid: i64, dir: &Path, check_owner: bool) -> Result<Verified> {
    let mut v = Verified::default();
    let mut stack = vec![(tree_rowid, dir.to_path_buf(), String::new())];
    while let Some((tree, here, shown)) = stack.pop() {
        let children = cat.children(tree)?;
        let expected: BTreeSet<Vec<u8>> = children.iter().map(|c| c.node.name.clone()).collect();
        if let Ok(rd) = std::fs::read_dir(&here) {
            for e in rd.flatten() {
                if !expected.contains(e.file_name().as_bytes()) {
                    v.mismatches.push(format!(
                        "{shown}/{}: not in the snapshot",
                        e.file_name().to_string_lossy()
                    ));
                }
            }
        }
        for row in children {
            let n = &row.node;
            let name = std::ffi::OsStr::from_bytes(&n.name);
            let path = here.join(name);
            let show = format!("{shown}/{}", name.to_string_lossy());
            let mut bad = |what: String| v.mismatches.push(format!("{show}: {what}"));
            let md = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    bad(format!("missing from the copy ({e})"));
                    continue;
                }
            };
            let kind = crate::ingest::fsmeta::kind_of(&md);
            if kind != n.kind {
                bad(format!(
                    "is a {}, the snapshot has a {}",
                    kind.as_str(),
                    n.kind.as_str()
                ));
                continue;
            }
            if kind != Kind::Symlink && md.mode() & 0o7777 != n.mode & 0o7777 {
                bad(format!(
                    "mode {:o}, snapshot {:o}",
                    md.mode() & 0o7777,
                    n.mode & 0o7777
                ));
            }
            if check_owner && (md.uid(), md.gid()) != (n.uid, n.gid) {
                bad(format!(
                    "owner {}:{}, snapshot {}:{}",
                    md.uid(),
                    md.gid(),
                    n.uid,
                    n.gid
                ));
            }
            if kind != Kind::Dir && (md.mtime(), md.mtime_nsec() as u32) != n.mtime {
                bad(format!(
                    "mtime {}.{:09}, snapshot {}.{:09}",
                    md.mtime(),
                    md.mtime_nsec(),
                    n.mtime.0,
                    n.mtime.1
                ));
            }
            if kind != Kind::Symlink {
                let want: BTreeSet<(Vec<u8>, Vec<u8>)> = n
                    .xattrs
                    .iter()
                    .map(|x| (x.name.clone(), x.value.clone()))
                    .collect();
                if xattrs_of(&path) != want {
                    bad("extended attributes differ".into());
                }
            }
            match kind {
                Kind::Dir => {
                    v.dirs += 1;
                    if let Some(sub) = row.subtree_rowid {
                        stack.push((sub, path, show));
                    }
                }
                Kind::File => {
                    v.files += 1;
                    v.bytes += md.len();
                    if md.len() != n.size {
                        bad(format!("{} bytes, snapshot {}", md.len(), n.size));
                    } else {
                        match (file_blake3(&path), n.blake3) {
                            (Ok(got), Some(want)) if got != want => {
                                bad("content differs from the snapshot's".into())
                            }
                            (Err(e), _) => bad(format!("unreadable: {e}")),
                            _ => {}
                        }
                    }
                }
                Kind::Symlink => {
                    v.other += 1;
                    match std::fs::read_link(&path) {
                        Ok(t) if t.as_os_str().as_bytes() == n.target.as_slice() => {}
                        Ok(t) => bad(format!("points to {}", t.display())),
                        Err(e) => bad(format!("unreadable link: {e}")),
                    }
                }
                Kind::CharDev | Kind::BlockDev => {
                    v.other += 1;
                    if md.rdev() != n.rdev {
                        bad(format!("device {:x}, snapshot {:x}", md.rdev(), n.rdev));
                    }
                }
                Kind::Fifo | Kind::Socket => v.other += 1,
            }
        }
    }
    Ok(v)
}
