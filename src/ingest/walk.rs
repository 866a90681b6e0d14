//! Walking the source tree: one tree blob per directory, unchanged files taken from the
//! previous snapshot without reading them, unreadable entries turned into warnings.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use globset::GlobSet;

use super::content::{Chunker, Content, ReadError};
use super::fsmeta::{changed, node_from_metadata, read_xattrs, Names};
use super::readahead::{Planned, ReadAhead};
use super::spool::TreeSpool;
use crate::catalog::Catalog;
use crate::crypto::BlobId;
use crate::error::Result;
use crate::model::{ChunkRef, Kind, Node, Summary, Tree};
use crate::repo::encode_tree;
use crate::repo::pack::BlobKind;

pub struct Excludes {
    /// Patterns with a `/` match the whole path; others match the name anywhere.
    pub full: GlobSet,
    pub name: GlobSet,
}

impl Excludes {
    pub fn matches(&self, path: &Path) -> bool {
        self.full.is_match(path) || path.file_name().is_some_and(|n| self.name.is_match(n))
    }
}

/// A file already read in this run, for its other hardlinks: what identifies it beyond
/// (dev, inode), and its content.
struct Linked {
    identity: Identity,
    chunks: Vec<ChunkRef>,
    blake3: Option<[u8; 32]>,
}

/// (size, mtime, ctime, nlink): an inode freed and reused during a long walk has the
/// same (dev, inode) as the file seen before, but not the same identity.
type Identity = (u64, (i64, u32), (i64, u32), u64);

fn identity(n: &Node) -> Identity {
    (n.size, n.mtime, n.ctime, n.nlink)
}

pub struct Walker<'a, 'p> {
    pub chunker: Chunker<'a, 'p>,
    pub catalog: &'a Catalog,
    pub excludes: Excludes,
    pub names: Names,
    pub summary: Summary,
    pub warnings: Vec<String>,
    /// Unreadable sources (exit code 3), as opposed to mere warnings.
    pub unreadable: u64,
    hardlinks: HashMap<(u64, u64), Linked>,
    /// Record access times.
    pub atime: bool,
    /// The previous snapshot's chunks may be reused without asking the catalog about each:
    /// its class is no colder than ours and every pack the catalog knows is in the store
    /// listing (`ingest::trust_previous`). Otherwise each chunk is checked as dedup would.
    pub trust_prev: bool,
    /// Paths given on the command line that were found.
    pub targets_found: u64,
    /// Every tree of the snapshot, children before parents (for the catalog).
    pub trees: TreeSpool,
    /// The tree stored last (the root, once the walk is over).
    pub last_tree: Option<Tree>,
    /// Told of every entry stat'ed, for the thread stat'ing ahead (`metaahead`).
    pub lead: Option<&'a super::metaahead::Lead>,
}

fn unchanged(prev: &Node, now: &Node) -> bool {
    prev.kind == Kind::File
        && prev.blake3.is_some()
        && prev.size == now.size
        && prev.mtime == now.mtime
        && prev.ctime == now.ctime
        && prev.inode == now.inode
        && prev.dev == now.dev
}

impl<'a, 'p> Walker<'a, 'p> {
    pub fn new(chunker: Chunker<'a, 'p>, catalog: &'a Catalog, excludes: Excludes) -> Self {
        Walker {
            chunker,
            catalog,
            excludes,
            names: Names::default(),
            summary: Summary::default(),
            warnings: Vec::new(),
            unreadable: 0,
            hardlinks: HashMap::new(),
            atime: false,
            trust_prev: false,
            targets_found: 0,
            trees: TreeSpool::new(
                &catalog
                    .path()
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(std::env::temp_dir, Path::to_path_buf),
            ),
            last_tree: None,
            lead: None,
        }
    }

    pub fn warn(&mut self, path: &Path, msg: impl std::fmt::Display, unreadable: bool) {
        let text = format!("{}: {msg}", path.display());
        // Said here, once, as it happens: also when the ingest then fails (the report,
        // which lists it again for JSON, is lost then) and under `cofre run`, which prints
        // no report. The CLI does not repeat it.
        tracing::warn!("{text}");
        self.warnings.push(text);
        self.summary.warnings += 1;
        if unreadable {
            self.unreadable += 1;
        }
    }

    pub fn store_tree(&mut self, tree: Tree) -> Result<BlobId> {
        let raw = encode_tree(&tree)?;
        let id = self.chunker.repo.keys().blob_id(&raw);
        self.trees.push(&id, &raw);
        if !self.chunker.known(&id, BlobKind::Tree)? {
            self.chunker.seen.insert(id);
            self.chunker.packer.add(id, raw, BlobKind::Tree)?;
        }
        self.last_tree = Some(tree);
        Ok(id)
    }

    /// The previous snapshot's tree for a directory node, from the catalog.
    pub fn prev_tree(&self, node: Option<&Node>) -> Result<Option<Tree>> {
        match node.filter(|n| n.kind == Kind::Dir).and_then(|n| n.subtree) {
            Some(h) => self.catalog.load_tree(&h),
            None => Ok(None),
        }
    }

    /// A node for `path`, or None when it is skipped (vanished or unreadable).
    pub fn entry(&mut self, path: &Path, name: &[u8], prev: Option<&Node>) -> Result<Option<Node>> {
        match self.stat(path, name) {
            Some(node) => self.fill(path, node, prev, None),
            None => Ok(None),
        }
    }

    /// An entry's metadata and xattrs; None (and a warning) when it cannot be stat'ed.
    fn stat(&mut self, path: &Path, name: &[u8]) -> Option<Node> {
        if let Some(lead) = self.lead {
            lead.step();
        }
        let md = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.warn(path, format!("cannot stat: {e}"), true);
                return None;
            }
        };
        let mut node = node_from_metadata(name, &md, &mut self.names, self.atime);
        match read_xattrs(path) {
            Ok(x) => node.xattrs = x,
            Err(e) => self.warn(path, format!("cannot read extended attributes: {e}"), true),
        }
        Some(node)
    }

    /// What a stat'ed entry holds: a directory's subtree, a link's target, a file's content
    /// (read through `opened` when the read-ahead opened it already).
    fn fill(
        &mut self,
        path: &Path,
        mut node: Node,
        prev: Option<&Node>,
        opened: Option<std::fs::File>,
    ) -> Result<Option<Node>> {
        let kind = node.kind;
        match kind {
            Kind::Dir => {
                let prev_tree = self.prev_tree(prev)?;
                match self.dir(path, prev_tree.as_ref())? {
                    Some(id) => node.subtree = Some(id),
                    None => return Ok(None),
                }
                self.summary.dirs += 1;
            }
            Kind::Symlink => match std::fs::read_link(path) {
                Ok(t) => node.target = t.as_os_str().as_bytes().to_vec(),
                Err(e) => {
                    self.warn(path, format!("cannot read link: {e}"), true);
                    return Ok(None);
                }
            },
            Kind::File if !self.file(path, &mut node, prev, opened)? => return Ok(None),
            _ => {}
        }
        Ok(Some(node))
    }

    pub fn dir(&mut self, path: &Path, prev: Option<&Tree>) -> Result<Option<BlobId>> {
        let rd = match std::fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                self.warn(path, format!("cannot read directory: {e}"), true);
                return Ok(None);
            }
        };
        let mut names: Vec<OsString> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => names.push(e.file_name()),
                Err(e) => self.warn(path, format!("cannot read directory entry: {e}"), true),
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        // Every entry is stat'ed first, so that the files to read are known ahead and the
        // read-ahead can ask the kernel for them while earlier ones are chunked.
        let mut plan = Vec::with_capacity(names.len());
        let mut stated = Vec::with_capacity(names.len());
        for name in names {
            let path = path.join(&name);
            if self.excludes.matches(&path) {
                continue;
            }
            if let Some(node) = self.stat(&path, name.as_bytes()) {
                let prev_node = prev.and_then(|t| t.find(name.as_bytes()));
                plan.push(Planned {
                    read: self.will_read(&node, prev_node),
                    size: node.size,
                    dir: node.kind == Kind::Dir,
                    path,
                });
                stated.push((node, prev_node));
            }
        }
        let mut ahead = ReadAhead::default();
        let mut nodes = Vec::with_capacity(stated.len());
        for (i, (node, prev_node)) in stated.into_iter().enumerate() {
            ahead.fill(i, &plan);
            let opened = ahead.take(i);
            if let Some(n) = self.fill(&plan[i].path, node, prev_node, opened)? {
                nodes.push(n);
            }
        }
        Ok(Some(self.store_tree(Tree { nodes })?))
    }

    /// Whether `file` will read this entry's content, as far as metadata tells: a regular
    /// file with data that is not unchanged since `prev` nor a hardlink read already.
    fn will_read(&self, node: &Node, prev: Option<&Node>) -> bool {
        node.kind == Kind::File
            && node.size > 0
            && !prev.is_some_and(|p| unchanged(p, node))
            && !(node.nlink > 1 && self.hardlinks.contains_key(&(node.dev, node.inode)))
    }

    /// Fills a file node's content; false when the file could not be read.
    fn file(
        &mut self,
        path: &Path,
        node: &mut Node,
        prev: Option<&Node>,
        opened: Option<std::fs::File>,
    ) -> Result<bool> {
        self.chunker.progress.add_file();
        // The previous version's chunks are reused without reading the file only where this
        // snapshot may depend on them: each in a pack that is in the store listing, at a
        // class no colder than ours (`Chunker::known`, as for any dedup). Otherwise the
        // file is read again, as restic does when a file's blobs are missing from its index:
        // a lost pack or a colder class is not carried into every later snapshot.
        let reusable = match prev.filter(|p| unchanged(p, node)) {
            Some(p) if self.trust_prev || self.all_known(&p.chunks)? => Some(p),
            _ => None,
        };
        if let Some(p) = reusable {
            node.chunks = p.chunks.clone();
            node.blake3 = p.blake3;
            self.summary.unchanged_files += 1;
            self.count_file(node);
            return Ok(true);
        }
        let key = (node.dev, node.inode);
        if node.nlink > 1 {
            if let Some(l) = self
                .hardlinks
                .get(&key)
                .filter(|l| l.identity == identity(node))
            {
                node.chunks = l.chunks.clone();
                node.blake3 = l.blake3;
                self.count_file(node);
                return Ok(true);
            }
        }
        let prev_chunks = prev.filter(|p| p.kind == Kind::File).map(|p| &p.chunks[..]);
        self.chunker.set_previous(prev_chunks, node.size)?;
        let read = self.read_file(path, opened);
        self.chunker.similar = None;
        let (content, md) = match read {
            Ok(r) => r,
            Err(ReadError::Source(e)) => {
                self.warn(path, format!("cannot read: {e}"), true);
                return Ok(false);
            }
            Err(ReadError::Fatal(e)) => return Err(e),
        };
        // Metadata from the stat the content was read under, so both agree.
        let fresh = node_from_metadata(&node.name, &md, &mut self.names, self.atime);
        // The lstat was taken before the directory's earlier entries (subtrees included)
        // were read. A file replaced or changed since (new inode, or a new ctime: chown,
        // chmod, setxattr) gets its owner and xattrs again, so content and metadata agree.
        if fresh.inode != node.inode || fresh.ctime != node.ctime {
            (node.uid, node.gid) = (fresh.uid, fresh.gid);
            (node.user, node.group) = (fresh.user, fresh.group);
            match read_xattrs(path) {
                Ok(x) => node.xattrs = x,
                Err(e) => self.warn(path, format!("cannot read extended attributes: {e}"), true),
            }
        }
        node.size = fresh.size;
        node.mtime = fresh.mtime;
        node.ctime = fresh.ctime;
        node.mode = fresh.mode;
        // A file replaced (renamed over) since the lstat is a different inode: say which.
        (node.inode, node.dev, node.nlink) = (fresh.inode, fresh.dev, fresh.nlink);
        node.chunks = content.chunks;
        node.blake3 = Some(content.blake3);
        self.summary.bytes_read += content.bytes;
        if prev.is_some() {
            self.summary.changed_files += 1;
        } else {
            self.summary.new_files += 1;
        }
        if node.nlink > 1 {
            let linked = Linked {
                identity: identity(node),
                chunks: node.chunks.clone(),
                blake3: node.blake3,
            };
            self.hardlinks.insert((node.dev, node.inode), linked);
        }
        self.count_file(node);
        Ok(true)
    }

    fn all_known(&self, chunks: &[crate::model::ChunkRef]) -> Result<bool> {
        for c in chunks {
            if !self
                .chunker
                .known(&c.id, crate::repo::pack::BlobKind::Data)?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn count_file(&mut self, node: &Node) {
        self.summary.files += 1;
        self.summary.bytes += node.size;
    }

    /// Reads a file, re-reading up to twice when it changes underneath us.
    fn read_file(
        &mut self,
        path: &Path,
        mut opened: Option<std::fs::File>,
    ) -> Result<(Content, Metadata), ReadError> {
        let mut attempt = 0;
        loop {
            let mut f = match opened.take() {
                Some(f) => f,
                None => open_source(path).map_err(ReadError::Source)?,
            };
            let before = f.metadata().map_err(ReadError::Source)?;
            if !before.is_file() {
                return Err(ReadError::Source(std::io::Error::other(
                    "replaced by something that is not a regular file while being backed up",
                )));
            }
            let content = self.chunker.chunk_file(&mut f, &before)?;
            let after = f.metadata().map_err(ReadError::Source)?;
            if !changed(&before, &after) {
                return Ok((content, before));
            }
            attempt += 1;
            if attempt == 3 {
                self.warn(
                    path,
                    "changed while being read (3 attempts); stored as last read",
                    false,
                );
                return Ok((content, before));
            }
        }
    }
}

/// Opens a source file for reading. O_NONBLOCK: a FIFO or device swapped in after the
/// lstat must not hang the ingest; `read_file`'s fstat then refuses anything but a regular
/// file.
pub(super) fn open_source(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, mtime: i64, ctime: i64, nlink: u64) -> Node {
        let md = std::fs::symlink_metadata("/").expect("stat /");
        let mut n = node_from_metadata(b"f", &md, &mut Names::default(), false);
        (n.size, n.mtime, n.ctime, n.nlink) = (size, (mtime, 0), (ctime, 0), nlink);
        n
    }

    #[test]
    fn a_reused_inode_is_not_the_same_hardlinked_file() {
        let seen = file(10, 100, 100, 2);
        let cases = [
            (file(10, 100, 100, 2), true),
            (file(11, 100, 100, 2), false), // other size
            (file(10, 101, 100, 2), false), // other mtime
            (file(10, 100, 101, 2), false), // other ctime: a new inode at the same number
            (file(10, 100, 100, 3), false), // other link count
        ];
        for (i, (other, same)) in cases.iter().enumerate() {
            assert_eq!(identity(&seen) == identity(other), *same, "case {i}");
        }
    }
}
