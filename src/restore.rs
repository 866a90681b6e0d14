//! `cofre restore`: recreate a snapshot (or part of it) under a target directory from the
//! store alone — content, holes, hardlinks and all metadata — never writing outside it.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::Mutex;

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::model::{Kind, Node, Tree};
use crate::repo::index::MasterIndex;
use crate::repo::Repository;
use crate::vfs::reader::{ChunkCache, OpenFile, PackLister};

#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// What workers report back.
#[derive(Default)]
struct Shared {
    report: RestoreReport,
}

struct Restorer<'a> {
    repo: &'a Repository,
    index: Arc<MasterIndex>,
    is_root: bool,
    hardlinks: HashMap<(u64, u64), PathBuf>,
    /// Files go to the writer threads.
    jobs: Sender<(PathBuf, Node)>,
    shared: &'a Mutex<Shared>,
    /// Created once the files they point to are written.
    links: Vec<(PathBuf, PathBuf)>,
    /// Directories get their metadata last, children before parents.
    dirs: Vec<(PathBuf, Node)>,
}

fn safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::UnsafePath(p.display().to_string()))
}

fn check_errno(rc: libc::c_int, p: &Path) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::io(p, std::io::Error::last_os_error()))
    }
}

/// Makes room for a new entry at `p`: removes a non-directory; refuses to replace a
/// directory with something else. Never follows a symlink.
fn clear_slot(p: &Path, want_dir: bool) -> Result<bool> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(p, e)),
        Ok(md) if md.is_dir() && want_dir => Ok(true),
        Ok(md) if md.is_dir() => Err(Error::io(
            p,
            std::io::Error::other("a directory is in the way"),
        )),
        Ok(_) => std::fs::remove_file(p)
            .map(|_| false)
            .map_err(|e| Error::io(p, e)),
    }
}

pub fn apply_metadata(p: &Path, n: &Node, is_root: bool, warnings: &mut Vec<String>) -> Result<()> {
    let c = cpath(p)?;
    // Ownership first: chown clears setuid/setgid, so chmod must come after it.
    // SAFETY: valid C string; plain syscalls.
    let rc = unsafe { libc::lchown(c.as_ptr(), n.uid, n.gid) };
    if rc != 0 && is_root {
        check_errno(rc, p)?;
    }
    for x in &n.xattrs {
        if let Err(e) = xattr::set(p, OsStr::from_bytes(&x.name), &x.value) {
            warnings.push(format!(
                "{}: xattr {}: {e}",
                p.display(),
                String::from_utf8_lossy(&x.name)
            ));
        }
    }
    if n.kind != Kind::Symlink {
        check_errno(unsafe { libc::chmod(c.as_ptr(), n.mode & 0o7777) }, p)?;
    }
    let ts = [
        libc::timespec {
            tv_sec: n.atime.0,
            tv_nsec: n.atime.1 as i64,
        },
        libc::timespec {
            tv_sec: n.mtime.0,
            tv_nsec: n.mtime.1 as i64,
        },
    ];
    check_errno(
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        },
        p,
    )
}

/// Writes one file's chunks through the shared chunk cache (pack-order read-ahead).
fn write_file(cache: &ChunkCache, index: &MasterIndex, p: &Path, n: &Node) -> Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .map_err(|e| Error::io(p, e))?;
    let locs = n.chunks.iter().map(|c| index.get(&c.id).copied()).collect();
    let open = OpenFile::new(p.display().to_string(), n.size, n.chunks.clone(), locs);
    let mut written = 0;
    for c in &n.chunks {
        let data = cache.read(&open, c.offset, c.len)?;
        f.write_all_at(&data, c.offset)
            .map_err(|e| Error::io(p, e))?;
        written += data.len() as u64;
    }
    // Holes at the end (and between chunks) stay holes.
    f.set_len(n.size).map_err(|e| Error::io(p, e))?;
    f.flush().map_err(|e| Error::io(p, e))?;
    Ok(written)
}

fn writer(
    cache: &ChunkCache,
    index: &MasterIndex,
    is_root: bool,
    jobs: Receiver<(PathBuf, Node)>,
    shared: &Mutex<Shared>,
) {
    for (p, n) in jobs {
        let mut warnings = Vec::new();
        let result = write_file(cache, index, &p, &n).and_then(|b| {
            apply_metadata(&p, &n, is_root, &mut warnings)?;
            Ok(b)
        });
        let mut sh = shared.lock();
        sh.report.warnings.extend(warnings);
        match result {
            Ok(b) => {
                sh.report.bytes += b;
                sh.report.files += 1;
            }
            Err(e) => {
                let _ = std::fs::remove_file(&p);
                sh.report.errors.push(format!("{}: {e}", p.display()));
            }
        }
    }
}

impl Restorer<'_> {
    fn tree(&self, id: &BlobId) -> Result<Tree> {
        self.repo.load_tree(&self.index, id)
    }

    fn special(&self, p: &Path, n: &Node) -> Result<()> {
        let c = cpath(p)?;
        let rc = match n.kind {
            Kind::Symlink => {
                let t = CString::new(n.target.clone())
                    .map_err(|_| Error::UnsafePath(p.display().to_string()))?;
                unsafe { libc::symlink(t.as_ptr(), c.as_ptr()) }
            }
            _ => unsafe { libc::mknod(c.as_ptr(), n.mode, n.rdev as libc::dev_t) },
        };
        check_errno(rc, p)
    }

    /// Restores one node at `p` (the parent exists and is a real directory). Files are
    /// handed to the writers; directories get their metadata at the end.
    fn node(&mut self, p: &Path, n: &Node) -> Result<()> {
        if !safe_name(&n.name) {
            return Err(Error::UnsafePath(format!(
                "{}/{}",
                p.display(),
                String::from_utf8_lossy(&n.name)
            )));
        }
        let exists_as_dir = clear_slot(p, n.kind == Kind::Dir)?;
        match n.kind {
            Kind::Dir => {
                if !exists_as_dir {
                    std::fs::create_dir(p).map_err(|e| Error::io(p, e))?;
                }
                let id = n.subtree.ok_or_else(|| {
                    Error::corrupt(p.display().to_string(), "directory without tree")
                })?;
                let tree = self.tree(&id)?;
                self.children(p, &tree);
                self.shared.lock().report.dirs += 1;
                self.dirs.push((p.to_path_buf(), n.clone()));
                Ok(())
            }
            Kind::File => {
                let key = (n.dev, n.inode);
                if n.nlink > 1 {
                    if let Some(first) = self.hardlinks.get(&key) {
                        self.links.push((first.clone(), p.to_path_buf()));
                        return Ok(());
                    }
                    self.hardlinks.insert(key, p.to_path_buf());
                }
                self.jobs
                    .send((p.to_path_buf(), n.clone()))
                    .map_err(|_| Error::corrupt("restore", "writer threads stopped"))
            }
            _ => {
                self.special(p, n)?;
                let mut w = Vec::new();
                let r = apply_metadata(p, n, self.is_root, &mut w);
                self.shared.lock().report.warnings.extend(w);
                r
            }
        }
    }

    /// Restores every entry of a tree; a failed entry is recorded and the rest go on.
    fn children(&mut self, dir: &Path, tree: &Tree) {
        for n in &tree.nodes {
            let p = dir.join(OsStr::from_bytes(&n.name));
            if let Err(e) = self.node(&p, n) {
                self.shared
                    .lock()
                    .report
                    .errors
                    .push(format!("{}: {e}", p.display()));
            }
        }
    }
}

/// Restores `subpath` (absolute inside the snapshot; `/` for everything) under `target`.
pub fn restore(
    repo: &Arc<Repository>,
    snapshot: &str,
    subpath: &str,
    target: &Path,
) -> Result<RestoreReport> {
    let manifest = repo.load_manifest(snapshot)?;
    let index = Arc::new(repo.load_master_index()?);
    let lister_index = index.clone();
    let lister: PackLister =
        Box::new(move |pack, from, to| lister_index.pack_blobs(pack, from, to));
    // Each chunk is written once: the cache only has to hold the read-ahead window.
    let cache = ChunkCache::new(repo.clone(), None, Some(lister), 48 * 1024 * 1024, 4, false);
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    // SAFETY: geteuid cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let shared = Mutex::new(Shared::default());
    let (tx, rx) = bounded::<(PathBuf, Node)>(256);
    let walked = std::thread::scope(|scope| {
        for _ in 0..WRITERS {
            let (rx, cache, index, shared) = (rx.clone(), &cache, &index, &shared);
            scope.spawn(move || writer(cache, index, is_root, rx, shared));
        }
        drop(rx);
        let mut r = Restorer {
            repo,
            index: index.clone(),
            is_root,
            hardlinks: HashMap::new(),
            jobs: tx,
            shared: &shared,
            links: Vec::new(),
            dirs: Vec::new(),
        };
        let walked = walk_subpath(&mut r, &manifest.root, subpath, target);
        // Dropping the restorer closes the job queue; the scope waits for the writers.
        (
            walked,
            std::mem::take(&mut r.links),
            std::mem::take(&mut r.dirs),
        )
    });
    let (walked, links, dirs) = walked;
    walked?;
    let mut sh = shared.into_inner();
    for (first, p) in links {
        match std::fs::hard_link(&first, &p) {
            Ok(()) => sh.report.files += 1,
            Err(e) => sh
                .report
                .errors
                .push(format!("{}: {}", p.display(), Error::io(&p, e))),
        }
    }
    for (p, n) in dirs {
        if let Err(e) = apply_metadata(&p, &n, is_root, &mut sh.report.warnings) {
            sh.report.errors.push(format!("{}: {e}", p.display()));
        }
    }
    finish(sh.report)
}

const WRITERS: usize = 4;

fn walk_subpath(r: &mut Restorer, root: &BlobId, subpath: &str, target: &Path) -> Result<()> {
    let mut tree = r.tree(root)?;
    let mut dir = target.to_path_buf();
    let parts: Vec<&[u8]> = subpath
        .as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let node = tree
            .find(part)
            .cloned()
            .ok_or_else(|| Error::NoSuchPath(subpath.to_string()))?;
        let p = dir.join(OsStr::from_bytes(part));
        if i + 1 == parts.len() {
            return r.node(&p, &node).map_err(|e| Error::RestoreIncomplete {
                count: 1,
                first: e.to_string(),
            });
        }
        if node.kind != Kind::Dir || !safe_name(part) {
            return Err(Error::NoSuchPath(subpath.to_string()));
        }
        if !clear_slot(&p, true)? {
            std::fs::create_dir(&p).map_err(|e| Error::io(&p, e))?;
        }
        let sub = node
            .subtree
            .ok_or_else(|| Error::NoSuchPath(subpath.to_string()))?;
        tree = r.tree(&sub)?;
        dir = p;
    }
    r.children(&dir, &tree);
    Ok(())
}

fn finish(report: RestoreReport) -> Result<RestoreReport> {
    match report.errors.first() {
        Some(first) => {
            for e in &report.errors {
                eprintln!("error: {e}");
            }
            Err(Error::RestoreIncomplete {
                count: report.errors.len(),
                first: first.clone(),
            })
        }
        None => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"../x", b"/etc", b"a\0b"] {
            assert!(!safe_name(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        for good in [&b"a"[..], b"..a", b"a..", b"\xff\xfe", b"new\nline", b" "] {
            assert!(safe_name(good), "{:?}", String::from_utf8_lossy(good));
        }
    }
}
