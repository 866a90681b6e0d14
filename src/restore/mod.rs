//! `cofre restore`: recreate a snapshot (or part of it) under a target directory from the
//! store alone — content, holes, hardlinks and all metadata — never writing outside it.
//!
//! Safe on any target: every change goes through directory descriptors (see `at`; one
//! openat2 per directory, shared by its files); a file that replaces one already there is
//! written beside it, checked against the whole-file blake3 recorded at ingest, and renamed
//! into place only then, so a failure leaves the live file untouched; a file in a
//! directory this restore made is created in place with O_EXCL and removed if it fails its
//! check (`write_file`);
//! metadata the target refuses (FAT, CIFS, root-squashed NFS) is reported, and the content
//! kept (exit 3).

mod at;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::Mutex;

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::ingest::content::hash_zeros;
use crate::model::{Kind, Node, Tree};
use crate::repo::index::{Location, MasterIndex};
use crate::repo::Repository;
use crate::vfs::reader::{ChunkCache, Locator, OpenFile, PackLister, ReadMode};
use at::{Beneath, Slot};
use std::os::fd::OwnedFd;

#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Entries that could not be restored.
    pub errors: Vec<String>,
    /// Entries restored with some metadata missing (exit 3).
    pub warnings: Vec<String>,
    /// Of `errors`, the files whose data is in an archive class: `cofre thaw` first.
    pub archived: u64,
    /// The entries in `errors`, for the hard links to them (which must fail too).
    #[serde(skip)]
    failed: HashSet<PathBuf>,
}

/// Writer threads. Each waits on its pack window's fetch in turn, so over S3 more of them
/// keep more requests in flight: on Garage 8 restored bench/run.sh's corpus in 4.0-4.3 s
/// against 4.4-5.0 s with 4; locally the same time, and 12 were slower on disk
/// (docs/benchmarks.md, "Restore writers and glibc's mmap threshold").
const WRITERS: usize = 8;

/// Files the walk may queue ahead of the writers, so that a writer never waits for the walk
/// (directories made, hard links decided). Chunks are read ahead by pack window
/// (`vfs::reader::segments`), for the windows that queued files read from. Each queued
/// file holds its directory's descriptor (`raise_fd_limit`).
const QUEUED_FILES: usize = 2048;

/// Raises the soft limit on open files to `want` (within the hard limit), as Go does for
/// restic at start: every queued file holds its directory open, and a tree of one file per
/// directory would run the usual soft limit of 1024 out. Returns the limit now in force.
pub(crate) fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur >= want {
        return lim.rlim_cur;
    }
    let raised = libc::rlimit {
        rlim_cur: want.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    match unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } {
        0 => raised.rlim_cur,
        _ => lim.rlim_cur,
    }
}

/// A file for the writer threads: where it goes (relative to the target), what it is, its
/// directory (opened once by the walk for all of its files), whether this restore made
/// that directory, and where its chunks are (told to the cache as the file is queued,
/// `ChunkCache::expect`).
type Job = (PathBuf, Node, Arc<OwnedFd>, bool, Vec<Option<Location>>);

struct Restorer<'a> {
    repo: &'a Repository,
    cache: &'a ChunkCache,
    index: Arc<MasterIndex>,
    at: &'a Beneath,
    target: &'a Path,
    is_root: bool,
    /// The first entry of each hard-linked inode (by device and inode number) and its
    /// `Node::link_identity`: a name whose identity differs is restored on its own, since
    /// linking would give it the first's content.
    hardlinks: HashMap<(u64, u64), (PathBuf, Node)>,
    jobs: Sender<Job>,
    report: &'a Mutex<RestoreReport>,
    /// Created once the files they point to are written.
    links: Vec<(PathBuf, PathBuf)>,
    /// Directories get their metadata last, children before parents.
    dirs: Vec<(PathBuf, Node)>,
    /// The target directory did not exist before this restore.
    target_made: bool,
}

fn safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// Makes sure a directory is at `s`: keeps one that is there, replaces anything else.
/// Returns whether this restore made it (then nothing else was in it).
fn ensure_dir(s: &Slot) -> std::io::Result<bool> {
    match at::lstat_kind(s)? {
        Some(libc::S_IFDIR) => Ok(false),
        Some(_) => {
            at::unlink(s)?;
            at::mkdir(s).map(|()| true)
        }
        None => at::mkdir(s).map(|()| true),
    }
}

/// Creates an entry under a temporary name with `make`, applies its metadata, and renames
/// it over whatever non-directory is at `s`. A directory in the way is an error.
fn place(
    s: &Slot,
    n: &Node,
    is_root: bool,
    make: impl FnOnce(&Slot) -> Result<()>,
) -> Result<Vec<String>> {
    if at::lstat_kind(s).map_err(|e| Error::io("restore", e))? == Some(libc::S_IFDIR) {
        return Err(Error::io(
            "restore",
            std::io::Error::other("a directory is in the way"),
        ));
    }
    let tmp = at::temp_beside(s).map_err(|e| Error::io("restore", e))?;
    let result = make(&tmp).and_then(|()| {
        let failed = at::apply_metadata(&tmp, n, is_root);
        at::rename_over(&tmp, s).map_err(|e| Error::io("rename into place", e))?;
        Ok(failed)
    });
    if result.is_err() {
        let _ = at::unlink(&tmp);
    }
    result
}

/// Writes a file's chunks into `f` (holes stay holes) and checks the whole content against
/// the blake3 recorded at ingest.
fn write_content(
    cache: &ChunkCache,
    f: &std::fs::File,
    rel: &Path,
    n: &Node,
    locs: Vec<Option<Location>>,
) -> Result<u64> {
    let open = OpenFile::new(rel.display().to_string(), n.size, n.chunks.clone(), locs);
    let mut reads = Reads {
        cache,
        locs: &open.locs,
        done: 0,
    };
    let mut hasher = blake3::Hasher::new();
    let (mut pos, mut written) = (0u64, 0u64);
    for c in &n.chunks {
        let data = cache.read(&open, c.offset, c.len)?;
        reads.done_one();
        if n.blake3.is_none() {
            cache.check_id(&c.id, &data)?;
        }
        hash_zeros(&mut hasher, c.offset.saturating_sub(pos));
        hasher.update(&data);
        f.write_all_at(&data, c.offset).map_err(Error::Os)?;
        pos = c.offset + data.len() as u64;
        written += data.len() as u64;
    }
    hash_zeros(&mut hasher, n.size.saturating_sub(pos));
    // The file was created empty: only a hole at its end needs the length set.
    if pos != n.size {
        f.set_len(n.size).map_err(Error::Os)?;
    }
    if let Some(want) = n.blake3 {
        if *hasher.finalize().as_bytes() != want {
            return Err(Error::corrupt(
                rel.display().to_string(),
                "restored content does not match the snapshot's blake3",
            ));
        }
    }
    Ok(written)
}

/// A file's chunk reads the cache was told to expect: released one by one as they are
/// read, and the rest when the file ends early, so that no window is kept for a read that
/// will not come.
struct Reads<'a> {
    cache: &'a ChunkCache,
    locs: &'a [Option<Location>],
    done: usize,
}

impl Reads<'_> {
    fn done_one(&mut self) {
        if let Some(l) = self.locs.get(self.done) {
            self.cache.release(std::slice::from_ref(l));
            self.done += 1;
        }
    }
}

impl Drop for Reads<'_> {
    fn drop(&mut self) {
        self.cache.release(&self.locs[self.done..]);
    }
}

struct Writer<'a> {
    cache: &'a ChunkCache,
    target: &'a Path,
    is_root: bool,
    report: &'a Mutex<RestoreReport>,
}

fn writer(w: Writer, jobs: Receiver<Job>) {
    let Writer {
        cache,
        target,
        is_root,
        report,
    } = w;
    for (rel, n, dir, made, locs) in jobs {
        let mut bytes = 0;
        let name = rel.file_name().map_or(&[][..], |n| n.as_bytes());
        let mut locs = Some(locs);
        let result = Slot::new(dir, name).map_err(Error::Os).and_then(|s| {
            write_file(&s, &n, is_root, made, |f| {
                let locs = locs.take().unwrap_or_default();
                bytes = write_content(cache, f, &rel, &n, locs)?;
                Ok(())
            })
        });
        // Never written (its slot or its creation failed): none of its reads will come.
        if let Some(locs) = locs {
            cache.release(&locs);
        }
        record(report, &target.join(&rel), result.map(|w| (w, bytes)));
    }
}

/// Writes a regular file at `s`. In a directory this restore made (the common case: a
/// restore into an empty directory), where nothing is: created in place (O_EXCL, so
/// nothing that appears meanwhile is overwritten), removed again if anything fails, and its
/// metadata applied through the open descriptor — there is nothing to protect, so no
/// temporary name and no rename. A restore killed meanwhile leaves a partial file there,
/// in a directory still mode 0700 (its mode is set last). Anywhere else, or when something
/// is there: written beside it and renamed over it only once complete and verified
/// (`place`), so a failure leaves the live file as it was and nothing half-written ever
/// has a name a running program may read.
fn write_file(
    s: &Slot,
    n: &Node,
    is_root: bool,
    in_new_dir: bool,
    write: impl FnOnce(&std::fs::File) -> Result<()>,
) -> Result<Vec<String>> {
    let created = match in_new_dir {
        true => at::create_file(s),
        false => Err(std::io::Error::from_raw_os_error(libc::EEXIST)),
    };
    match created {
        Ok(f) => {
            let r = write(&f).map(|()| at::apply_metadata_fd(&f, n, is_root));
            if r.is_err() {
                let _ = at::unlink_if_same(s, &f);
            }
            r
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => place(s, n, is_root, |tmp| {
            let f = at::create_file(tmp).map_err(Error::Os)?;
            write(&f)
        }),
        Err(e) => Err(Error::Os(e)),
    }
}

/// Adds one entry's outcome (at `path`, as the user knows it) to the report.
fn record(report: &Mutex<RestoreReport>, path: &Path, r: Result<(Vec<String>, u64)>) {
    let mut rep = report.lock();
    match r {
        Ok((failed, bytes)) => {
            rep.bytes += bytes;
            for f in failed {
                rep.warnings
                    .push(format!("{}: could not apply {f}", path.display()));
            }
        }
        Err(e) => {
            if e.is_archived() {
                rep.archived += 1;
            }
            rep.errors.push(format!("{}: {e}", path.display()));
            rep.failed.insert(path.to_path_buf());
        }
    }
}

impl Restorer<'_> {
    fn tree(&self, id: &BlobId) -> Result<Tree> {
        self.repo.load_tree(&self.index, id)
    }

    /// Restores one node at `rel`. Files go to the writers; directories get their metadata
    /// at the end; everything else is made here.
    /// `dir` is the descriptor of `rel`'s directory, opened for its first file, and whether
    /// this restore made that directory.
    fn node(&mut self, rel: &Path, n: &Node, dir: &mut (Option<Arc<OwnedFd>>, bool)) -> Result<()> {
        if !safe_name(&n.name) {
            return Err(Error::UnsafePath(format!(
                "{}/{}",
                rel.display(),
                String::from_utf8_lossy(&n.name)
            )));
        }
        match n.kind {
            Kind::Dir => {
                // Not held across the subtree: deep trees would pile up descriptors.
                dir.0 = None;
                let s = self.at.slot(rel).map_err(Error::Os)?;
                let made = ensure_dir(&s).map_err(Error::Os)?;
                let id = n.subtree.ok_or_else(|| {
                    Error::corrupt(rel.display().to_string(), "directory without tree")
                })?;
                let tree = self.tree(&id)?;
                self.children(rel, &tree, made);
                self.report.lock().dirs += 1;
                self.dirs.push((rel.to_path_buf(), n.clone()));
                Ok(())
            }
            Kind::File => {
                self.report.lock().files += 1;
                let key = (n.dev, n.inode);
                if n.nlink > 1 {
                    if let Some((first, identity)) = self.hardlinks.get(&key) {
                        if *identity == n.link_identity() {
                            self.links.push((first.clone(), rel.to_path_buf()));
                            return Ok(());
                        }
                    }
                }
                let fd = match &dir.0 {
                    Some(d) => d.clone(),
                    None => {
                        let parent = rel.parent().unwrap_or(Path::new(""));
                        let d = Arc::new(self.at.dir(parent).map_err(Error::Os)?);
                        dir.0 = Some(d.clone());
                        d
                    }
                };
                let locs: Vec<_> = n.chunks.iter().map(|c| self.index.get(&c.id)).collect();
                self.cache.expect(&locs);
                self.jobs
                    .send((rel.to_path_buf(), n.clone(), fd, dir.1, locs))
                    .map_err(|e| {
                        self.cache.release(&e.0 .4);
                        Error::corrupt("restore", "writer threads stopped")
                    })?;
                // Only a name handed to the writers is linked to (a failure there is
                // recorded, and its links are then refused); until one is, the next
                // name of the file is written itself.
                if n.nlink > 1 && !self.hardlinks.contains_key(&key) {
                    self.hardlinks
                        .insert(key, (rel.to_path_buf(), n.link_identity()));
                }
                Ok(())
            }
            _ => {
                let s = self.at.slot(rel).map_err(Error::Os)?;
                let failed = place(&s, n, self.is_root, |tmp| {
                    match n.kind {
                        Kind::Symlink => at::symlink(&n.target, tmp),
                        _ => at::mknod(tmp, n.mode, n.rdev),
                    }
                    .map_err(Error::Os)
                })?;
                record(self.report, &self.target.join(rel), Ok((failed, 0)));
                Ok(())
            }
        }
    }

    /// Restores every entry of a tree; a failed entry is recorded and the rest go on.
    fn children(&mut self, dir: &Path, tree: &Tree, made: bool) {
        let mut fd = (None, made);
        for n in &tree.nodes {
            let rel = dir.join(OsStr::from_bytes(&n.name));
            if let Err(e) = self.node(&rel, n, &mut fd) {
                // Through `record`, so a hard link to this entry is not made either.
                record(self.report, &self.target.join(&rel), Err(e));
            }
        }
    }
}

/// Memory for decoded chunks by default: each chunk is written once, so the cache only holds
/// the read-ahead window. Measured on the bench corpus (docs/benchmarks.md): 24 MiB keeps the
/// process under 100 MB but fetches 1.5x as often (3.8-4.4 s); 32 MiB, 103-110 MB and
/// 3.0-3.5 s; 48 MiB, ~130 MB and 2.7-3.1 s.
pub const DEFAULT_CACHE_MIB: usize = 32;

/// Restores `subpath` (absolute inside the snapshot; `/` for everything) under `target`.
/// Entries that fail are listed in the report's `errors`; the rest is restored.
pub fn restore_report(
    repo: &Arc<Repository>,
    snapshot: &str,
    subpath: &str,
    target: &Path,
) -> Result<RestoreReport> {
    restore_with_cache(repo, snapshot, subpath, target, DEFAULT_CACHE_MIB << 20)
}

/// `restore_report` with `cache_bytes` of decoded chunks in memory.
pub fn restore_with_cache(
    repo: &Arc<Repository>,
    snapshot: &str,
    subpath: &str,
    target: &Path,
    cache_bytes: usize,
) -> Result<RestoreReport> {
    let manifest = repo.load_manifest(snapshot)?;
    let index = Arc::new(repo.load_master_index()?);
    let lister_index = index.clone();
    let lister: PackLister =
        Box::new(move |pack, from, to| lister_index.pack_blobs(pack, from, to));
    let locate_index = index.clone();
    let locate: Locator = Box::new(move |id| locate_index.get_whole(id));
    let cache = ChunkCache::new(
        repo.clone(),
        None,
        Some(lister),
        locate,
        cache_bytes,
        4,
        ReadMode::Restore,
    );
    let target_made = std::fs::symlink_metadata(target).is_err();
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let at = Beneath::open(target).map_err(|e| Error::io(target, e))?;
    // SAFETY: geteuid cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let report = Mutex::new(RestoreReport::default());
    // Room for the queued files' directories and 256 other descriptors (the store's, the
    // writers', the walk's) even where the limit cannot be raised that far.
    let fds = raise_fd_limit(QUEUED_FILES as u64 + 256);
    let queued = (fds.saturating_sub(256) as usize).clamp(16, QUEUED_FILES);
    let (tx, rx) = bounded::<Job>(queued);
    let (walked, links, dirs) = std::thread::scope(|scope| {
        for _ in 0..WRITERS {
            let w = Writer {
                cache: &cache,
                target,
                is_root,
                report: &report,
            };
            let rx = rx.clone();
            scope.spawn(move || writer(w, rx));
        }
        drop(rx);
        let mut r = Restorer {
            repo,
            cache: &cache,
            index: index.clone(),
            at: &at,
            target,
            is_root,
            hardlinks: HashMap::new(),
            jobs: tx,
            report: &report,
            links: Vec::new(),
            dirs: Vec::new(),
            target_made,
        };
        let walked = walk_subpath(&mut r, &manifest.root, subpath);
        // Dropping the restorer closes the job queue; the scope waits for the writers.
        (
            walked,
            std::mem::take(&mut r.links),
            std::mem::take(&mut r.dirs),
        )
    });
    walked?;
    for (first, rel) in links {
        // Over an existing tree, whatever is at `first` after its restore failed is not the
        // snapshot's file (the live one was kept): a link to it would be wrong and reported
        // as restored.
        if report.lock().failed.contains(&target.join(&first)) {
            let why = format!(
                "not linked to {}, which could not be restored",
                target.join(&first).display()
            );
            record(
                &report,
                &target.join(&rel),
                Err(Error::Os(std::io::Error::other(why))),
            );
            continue;
        }
        let r = at.slot(&first).and_then(|from| {
            let to = at.slot(&rel)?;
            let tmp = at::temp_beside(&to)?;
            at::link(&from, &tmp)?;
            at::rename_over(&tmp, &to).inspect_err(|_| {
                let _ = at::unlink(&tmp);
            })
        });
        let r = r.map(|()| (Vec::new(), 0)).map_err(Error::Os);
        record(&report, &target.join(&rel), r);
    }
    for (rel, n) in &dirs {
        let r = at
            .slot(rel)
            .map(|s| (at::apply_metadata(&s, n, is_root), 0))
            .map_err(Error::Os);
        record(&report, &target.join(rel), r);
    }
    Ok(report.into_inner())
}

/// `restore_report`, failing when any entry could not be restored.
pub fn restore(
    repo: &Arc<Repository>,
    snapshot: &str,
    subpath: &str,
    target: &Path,
) -> Result<RestoreReport> {
    let report = restore_report(repo, snapshot, subpath, target)?;
    match report.errors.first() {
        Some(first) => Err(Error::RestoreIncomplete {
            count: report.errors.len(),
            first: first.clone(),
        }),
        None => Ok(report),
    }
}

fn walk_subpath(r: &mut Restorer, root: &BlobId, subpath: &str) -> Result<()> {
    let mut tree = r.tree(root)?;
    let mut dir = PathBuf::new();
    let mut made = r.target_made;
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
        let rel = dir.join(OsStr::from_bytes(part));
        if i + 1 == parts.len() {
            if let Err(e) = r.node(&rel, &node, &mut (None, made)) {
                record(r.report, &r.target.join(&rel), Err(e));
            }
            return Ok(());
        }
        if node.kind != Kind::Dir || !safe_name(part) {
            return Err(Error::NoSuchPath(subpath.to_string()));
        }
        let s = r.at.slot(&rel).map_err(Error::Os)?;
        made = ensure_dir(&s).map_err(Error::Os)?;
        let sub = node
            .subtree
            .ok_or_else(|| Error::NoSuchPath(subpath.to_string()))?;
        tree = r.tree(&sub)?;
        dir = rel;
    }
    r.children(&dir, &tree, made);
    Ok(())
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
