//! The read model behind the mount, independent of FUSE: every snapshot by set and date,
//! metadata from the catalog only, file data through the chunk cache.

pub mod ahead;
pub mod chunklru;
pub mod diskcache;
pub mod filecache;
pub mod inodes;
pub mod layout;
mod listing;
pub mod reader;
mod refresh;
mod remap;
mod resolve;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use lru::LruCache;
use parking_lot::{Mutex, RwLock};

use crate::catalog::pool::Pool;
use crate::error::{Error, Result};
use crate::model::{ChunkRef, Kind, Node};
use crate::repo::Repository;
use inodes::{key_child, key_hardlink, key_position, Entry, Inodes, Meta, ROOT};
use layout::{Child, Layout, SnapRef};
use reader::{ChunkCache, OpenFile, ReadMode, LISTING_CHUNKS};
pub(crate) use resolve::resolve;
use resolve::{resolver, Files, Pending};

/// Name of the hidden xattr that carries a file's whole-content blake3.
pub const HASH_XATTR: &[u8] = b"user.cofre.blake3";
/// Hidden xattr of the mount root: how many inodes the mount holds (memory diagnostics).
pub const INODES_XATTR: &[u8] = b"user.cofre.inodes";
/// Snapshot content never changes: the kernel may cache it for a long time.
const IMMUTABLE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Files whose chunk lists stay resolved (a few hundred KiB for the largest).
const OPEN_FILES: NonZeroUsize = NonZeroUsize::new(1024).unwrap();
/// Files of one directory listing resolved ahead of their reads.
const RESOLVE_AHEAD: usize = 256;
/// Directory listings remembered for resolving ahead.
const LISTED_DIRS: NonZeroUsize = NonZeroUsize::new(64).unwrap();
/// Trees whose first entry rowid is kept (`first_rows`): a lookup of a name not listed
/// first costs one more query per directory.
const FIRST_ROWS: NonZeroUsize = NonZeroUsize::new(4096).unwrap();
/// Listings kept between the reads of one directory without a handle (`listing_of`): as
/// many directories as are read at once, with room to spare.
const READING_DIRS: NonZeroUsize = NonZeroUsize::new(64).unwrap();
/// The layout changes as snapshots arrive.
const LAYOUT_TTL: Duration = Duration::from_secs(1);

/// A directory's entries with their attributes, `.` and `..` first.
pub type Listing = Arc<Vec<ListItem>>;

/// Kernel caches to drop after the layout changed: entries (parent inode, name) and the
/// attributes and cached listings of directories.
#[derive(Debug, Default)]
pub struct Invalidations {
    pub entries: Vec<(u64, Vec<u8>)>,
    pub dirs: Vec<u64>,
}

impl Invalidations {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.dirs.is_empty()
    }
}

/// The inode of a virtual directory (`""` is the root), as `register_virtual` numbers it.
fn virtual_ino(path: &str) -> u64 {
    path.split('/')
        .filter(|c| !c.is_empty())
        .fold(ROOT, |parent, name| key_child(parent, name.as_bytes()))
}

/// An open directory: its listing once it was asked for.
struct DirHandle {
    ino: u64,
    listing: Option<Listing>,
}

/// One entry of a listing, and what `remember` needs to count (or put back) its inode
/// when READDIRPLUS hands it to the kernel (`.` and `..` are never counted).
pub struct ListItem {
    pub name: Vec<u8>,
    pub attr: Attr,
    counted: Option<(u64, Entry)>,
}

impl ListItem {
    /// An entry of a snapshot's tree, numbered by its place in the directory: the kernel
    /// takes a lookup on it when it comes in a READDIRPLUS reply.
    pub fn is_counted(&self) -> bool {
        self.counted.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub blocks: u64,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub nlink: u32,
    pub rdev: u32,
    pub ttl: Duration,
}

pub struct Vfs {
    pool: Pool,
    inodes: Inodes,
    layout: RwLock<Arc<Layout>>,
    local_time: bool,
    /// Only these sets, when not empty.
    sets: Vec<String>,
    cache: Arc<ChunkCache>,
    /// Files being read, by inode. The kernel sends no open or release (see `fs::open`),
    /// so a file's chunk list is resolved at its first read and kept while it is recent.
    files: Files,
    /// Files of recently listed directories, by directory inode: when the first of them is
    /// read, the others are resolved on another thread before `cp` reaches them.
    listed: Mutex<LruCache<u64, Vec<Pending>>>,
    /// Tree rowid → the rowid of its first entry by name, which `key_position` numbers
    /// from (of the current catalog: cleared when it is replaced).
    first_rows: Mutex<LruCache<i64, i64>>,
    resolve_ahead: Sender<Pending>,
    /// Open directories: each listing made at its handle's first readdir, served by offset.
    dirs: Mutex<HashMap<u64, DirHandle>>,
    /// Listings being read without a handle (`listing_of`), by directory inode and the
    /// listing's number, which its offsets carry.
    by_ino: Mutex<LruCache<(u64, u32), Listing>>,
    next_listing: std::sync::atomic::AtomicU32,
    /// Bumped at every change of the layout: the nanoseconds of the layout directories'
    /// mtime, so the kernel, which keeps their listings, sees each change even when the
    /// newest snapshot (their mtime's seconds) stays the same.
    layout_changes: std::sync::atomic::AtomicU32,
    next_fh: AtomicU64,
    /// The catalog file's generation (see `remap`).
    generation: Mutex<String>,
    /// Held shared by every request that pairs an inode's row ids with a catalog query,
    /// exclusively while switching to a replaced catalog.
    switch: RwLock<()>,
    /// Most inodes held since memory was last handed back (`trim_memory`).
    inode_peak: std::sync::atomic::AtomicUsize,
    /// A request met SQLITE_CORRUPT: the mount's refresher rebuilds the catalog beside the
    /// damaged file and the mount switches to it (`remap.rs`).
    catalog_damaged: Arc<std::sync::atomic::AtomicBool>,
    /// On a mount that told the kernel there are no xattrs: set, and no layout
    /// published, once a snapshot with xattrs is in the catalog (`shown_snapshots`).
    xattr_gate: Option<Arc<std::sync::atomic::AtomicBool>>,
    uid: u32,
    gid: u32,
}

fn virtual_attr(ino: u64, kind: Kind, size: u64, time: i64, uid: u32, gid: u32) -> Attr {
    Attr {
        ino,
        kind,
        perm: if kind == Kind::Dir { 0o555 } else { 0o777 },
        uid,
        gid,
        size,
        blocks: 0,
        atime: (time, 0),
        mtime: (time, 0),
        ctime: (time, 0),
        nlink: if kind == Kind::Dir { 2 } else { 1 },
        rdev: 0,
        ttl: LAYOUT_TTL,
    }
}

fn node_attr(ino: u64, n: &Meta) -> Attr {
    Attr {
        ino,
        kind: n.kind,
        perm: (n.mode & 0o7777) as u16,
        uid: n.uid,
        gid: n.gid,
        size: match n.kind {
            Kind::Symlink => n.target_len as u64,
            // Directories report the size recorded at ingest, as `du --apparent-size` expects.
            Kind::File | Kind::Dir => n.size,
            _ => 0,
        },
        // Holes take no blocks: report what the data needs, in 512-byte units.
        blocks: n.data_bytes.div_ceil(4096) * 8,
        atime: n.atime,
        mtime: n.mtime,
        ctime: n.ctime,
        nlink: n.nlink.min(u32::MAX as u64) as u32,
        rdev: n.rdev as u32,
        ttl: IMMUTABLE_TTL,
    }
}

/// A cache that reads chunks for a reader of snapshots (`ReadMode::Mount`: every chunk
/// checked against its id), finding them through the catalog at `catalog`: the mount's,
/// and the library's `Contents`. `on_damaged` runs when the catalog turns out damaged.
pub fn cache_over_catalog(
    repo: Arc<Repository>,
    catalog: &std::path::Path,
    disk: Option<diskcache::DiskCache>,
    cache_bytes: usize,
    on_damaged: impl Fn() + Send + Sync + 'static,
) -> Arc<ChunkCache> {
    let lister_pool = Pool::reader(catalog.to_path_buf());
    let lister: reader::PackLister = Box::new(move |pack, from, to| {
        lister_pool
            .get()
            .and_then(|c| c.pack_blobs(pack, from, to))
            .unwrap_or_default()
    });
    let locate_pool = Pool::reader(catalog.to_path_buf());
    let locate: reader::Locator = Box::new(move |id| {
        match locate_pool.get().and_then(|c| c.base_location(id)) {
            Ok(loc) => loc,
            Err(e) => {
                // The mount's refresher rebuilds a damaged catalog (`note_damaged_catalog`).
                if crate::catalog::sync::is_damaged(&e) {
                    on_damaged();
                }
                None
            }
        }
    });
    ChunkCache::new(
        repo,
        disk,
        Some(lister),
        locate,
        cache_bytes,
        4,
        ReadMode::Mount,
    )
}

impl Vfs {
    pub fn new(
        repo: Arc<Repository>,
        pool: Pool,
        local_time: bool,
        sets: Vec<String>,
        cache_bytes: usize,
        disk: Option<diskcache::DiskCache>,
        xattr_gate: Option<Arc<std::sync::atomic::AtomicBool>>,
    ) -> Result<Vfs> {
        let catalog_damaged = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let damaged = catalog_damaged.clone();
        let cache = cache_over_catalog(repo, pool.path(), disk, cache_bytes, move || {
            damaged.store(true, std::sync::atomic::Ordering::SeqCst)
        });
        let files: Files = Arc::new(Mutex::new(LruCache::new(OPEN_FILES)));
        let resolve_ahead = resolver(Pool::reader(pool.path().to_path_buf()), files.clone());
        let generation = pool.get()?.generation()?;
        pool.expect_generation(generation.clone());
        let generation = Mutex::new(generation);
        let vfs = Vfs {
            generation,
            switch: RwLock::new(()),
            pool,
            inodes: Inodes::new(),
            layout: RwLock::new(Arc::new(Layout::default())),
            local_time,
            sets,
            cache,
            files,
            listed: Mutex::new(LruCache::new(LISTED_DIRS)),
            first_rows: Mutex::new(LruCache::new(FIRST_ROWS)),
            resolve_ahead,
            dirs: Mutex::new(HashMap::new()),
            by_ino: Mutex::new(LruCache::new(READING_DIRS)),
            next_listing: std::sync::atomic::AtomicU32::new(1),
            layout_changes: std::sync::atomic::AtomicU32::new(0),
            next_fh: AtomicU64::new(1),
            inode_peak: std::sync::atomic::AtomicUsize::new(0),
            catalog_damaged,
            xattr_gate,
            // SAFETY: getuid/getgid cannot fail.
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
        };
        vfs.refresh()?;
        Ok(vfs)
    }

    pub fn chunk_fetches(&self) -> u64 {
        self.cache.fetches.load(Ordering::Relaxed)
    }

    fn entry(&self, ino: u64) -> Result<(u64, Entry)> {
        self.inodes
            .get(ino)
            .ok_or_else(|| Error::NoSuchPath(format!("inode {ino}")))
    }

    /// `lookup`: the reply hands the kernel a lookup on the inode (see `Inodes::insert`).
    fn register_virtual(
        &self,
        parent: u64,
        name: &[u8],
        child: &Child,
        dir_path: &str,
        lookup: bool,
    ) -> (u64, Entry) {
        let entry = match child {
            Child::Dir => Entry::Virtual {
                path: if dir_path.is_empty() {
                    String::from_utf8_lossy(name).into_owned()
                } else {
                    format!("{dir_path}/{}", String::from_utf8_lossy(name))
                },
            },
            Child::Link(t) => Entry::Link { target: t.clone() },
            Child::Snapshot(s) => Entry::SnapRoot { snap: s.clone() },
        };
        // A name taken over by another snapshot (the old one forgotten, `HHMM` given to a
        // different one) gets a new inode: the kernel keeps a snapshot directory's listing
        // and its entries per inode, for as long as it holds the inode.
        let same = |e: &Entry| match (e, child) {
            (Entry::SnapRoot { snap: a }, Child::Snapshot(b)) => a.id == b.id,
            _ => matches!(
                (e, child),
                (Entry::Virtual { .. }, Child::Dir) | (Entry::Link { .. }, Child::Link(_))
            ),
        };
        // A link's inode changes with its target: the kernel caches symlink targets per inode.
        let key = match child {
            Child::Link(t) => key_child(parent, &[name, b"\0", t.as_bytes()].concat()),
            _ => key_child(parent, name),
        };
        (
            self.inodes.insert(key, parent, entry.clone(), same, lookup),
            entry,
        )
    }

    fn register_node(
        &self,
        parent: u64,
        snap: &Arc<SnapRef>,
        row: crate::catalog::NodeRow,
        first: i64,
        lookup: bool,
    ) -> (Attr, Vec<ChunkRef>, Entry) {
        // The inode table keeps attributes only; chunk lists go to whoever reads the file.
        let meta = Arc::new(Meta::of(&row.node));
        let key = if meta.kind == Kind::File && meta.nlink > 1 {
            key_hardlink(&snap.id, &row.node)
        } else {
            // Its place in the directory: rows after the first one by name (`first`).
            let pos = row.rowid.saturating_sub(first) as u64;
            key_position(parent, pos, &meta.name)
        };
        let chunks = row.node.chunks;
        let entry = Entry::Node {
            snap: snap.clone(),
            rowid: row.rowid,
            meta: meta.clone(),
            subtree: row.subtree_rowid,
        };
        let same = |e: &Entry| e.identifies(&entry);
        let ino = self.inodes.insert(key, parent, entry.clone(), same, lookup);
        (node_attr(ino, &meta), chunks, entry)
    }

    fn snap_and_tree(e: &Entry) -> Option<(Arc<SnapRef>, i64)> {
        match e {
            Entry::SnapRoot { snap } => Some((snap.clone(), snap.root_rowid)),
            Entry::Node {
                snap,
                subtree: Some(t),
                ..
            } => Some((snap.clone(), *t)),
            _ => None,
        }
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        self.on_current_catalog(|| self.lookup_once(parent, name))
    }

    fn lookup_once(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        let _switch = self.switch.read();
        let (_, pe) = self.entry(parent)?;
        let missing = || Error::NoSuchPath(String::from_utf8_lossy(name).into_owned());
        if let Entry::Virtual { path } = &pe {
            let layout = self.layout.read().clone();
            let name_s = std::str::from_utf8(name).map_err(|_| missing())?;
            let child = layout
                .dirs
                .get(path)
                .and_then(|d| d.get(name_s))
                .ok_or_else(missing)?;
            let (ino, _) = self.register_virtual(parent, name, child, path, true);
            return self.getattr(ino);
        }
        let (snap, tree) = Self::snap_and_tree(&pe).ok_or_else(missing)?;
        let cat = self.pool.get()?;
        let row = cat.child(tree, name)?.ok_or_else(missing)?;
        let first = self.first_rows.lock().get(&tree).copied();
        let first = match first {
            Some(f) => f,
            None => {
                let f = cat.first_child_rowid(tree)?.unwrap_or(row.rowid);
                self.first_rows.lock().put(tree, f);
                f
            }
        };
        Ok(self.register_node(parent, &snap, row, first, true).0)
    }

    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let (_, e) = self.entry(ino)?;
        let newest = self.layout.read().newest;
        Ok(match e {
            Entry::Virtual { .. } => {
                let mut a = virtual_attr(ino, Kind::Dir, 0, newest, self.uid, self.gid);
                let changes = self.layout_changes.load(Ordering::Relaxed) % 1_000_000_000;
                a.mtime.1 = changes;
                a
            }
            Entry::Link { target } => virtual_attr(
                ino,
                Kind::Symlink,
                target.len() as u64,
                newest,
                self.uid,
                self.gid,
            ),
            Entry::SnapRoot { snap } => {
                let mut a = virtual_attr(ino, Kind::Dir, 0, snap.time.0, self.uid, self.gid);
                a.ttl = IMMUTABLE_TTL;
                a.perm = 0o755;
                a
            }
            Entry::Node { meta, .. } => node_attr(ino, &meta),
        })
    }

    /// Entries of a directory (without `.` and `..`), with their attributes.
    fn readdir(&self, ino: u64) -> Result<Vec<ListItem>> {
        self.on_current_catalog(|| self.readdir_once(ino))
    }

    fn readdir_once(&self, ino: u64) -> Result<Vec<ListItem>> {
        let _switch = self.switch.read();
        let (_, e) = self.entry(ino)?;
        if let Entry::Virtual { path } = &e {
            let layout = self.layout.read().clone();
            let mut out = Vec::new();
            for (name, child) in layout.dirs.get(path).into_iter().flatten() {
                let (cino, entry) = self.register_virtual(ino, name.as_bytes(), child, path, false);
                out.push(ListItem {
                    name: name.as_bytes().to_vec(),
                    attr: self.getattr(cino)?,
                    counted: Some((ino, entry)),
                });
            }
            return Ok(out);
        }
        let (snap, tree) = Self::snap_and_tree(&e).ok_or_else(|| {
            Error::io("readdir", std::io::Error::from_raw_os_error(libc::ENOTDIR))
        })?;
        let rows = self.pool.get()?.children(tree)?;
        // The first by name, as `first_child_rowid` finds it for a lookup.
        let first = rows.first().map_or(0, |r| r.rowid);
        self.first_rows.lock().put(tree, first);
        let dir_path = self.node_path(ino);
        let mut ahead = Vec::new();
        // The files' chunk ids, for the cache's reads of this directory (`note_listing`).
        let mut ids = Some(std::collections::HashSet::new());
        let out = rows
            .into_iter()
            .map(|r| {
                let name = r.node.name.clone();
                let blake3 = r.node.blake3;
                let rowid = r.rowid;
                let (attr, chunks, entry) = self.register_node(ino, &snap, r, first, false);
                if let Some(set) = &mut ids {
                    set.extend(chunks.iter().map(|c| c.id));
                    if set.len() > LISTING_CHUNKS {
                        ids = None;
                    }
                }
                if attr.kind == Kind::File && !chunks.is_empty() && ahead.len() < RESOLVE_AHEAD {
                    ahead.push(Pending {
                        ino: attr.ino,
                        rowid,
                        path: format!("{dir_path}/{}", String::from_utf8_lossy(&name)),
                        size: attr.size,
                        chunks,
                        blake3,
                        dir: ino,
                    });
                }
                ListItem {
                    name,
                    attr,
                    counted: Some((ino, entry)),
                }
            })
            .collect();
        if let Some(ids) = ids {
            self.cache.note_listing(ino, ids);
        }
        self.listed.lock().put(ino, ahead);
        Ok(out)
    }

    /// READDIRPLUS is about to hand `item` to the kernel, which will hold a lookup on it:
    /// counts it, and returns the inode number to send (`Inodes::add_lookup`).
    pub fn remember(&self, item: &ListItem) -> u64 {
        match &item.counted {
            Some((parent, entry)) => self.inodes.add_lookup(item.attr.ino, *parent, entry),
            None => item.attr.ino,
        }
    }

    /// `remember`'s count taken back: the reply had no room for `item` (sent as `ino`).
    pub fn unremember(&self, item: &ListItem, ino: u64) {
        if item.counted.is_some() {
            self.inodes.forget(ino, 1);
        }
    }

    /// FUSE forget: the kernel gives back `n` lookups of `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
    }

    /// Inodes the mount holds (for tests and the log).
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    /// After the kernel forgot many inodes (a `find` over a year of snapshots, then memory
    /// pressure), hands the freed memory back to the system: the allocator keeps it
    /// otherwise, and the mount's RSS would stay at its peak.
    pub fn trim_memory(&self) {
        let now = self.inode_count();
        let peak = self.inode_peak.fetch_max(now, Ordering::Relaxed).max(now);
        if peak - now > 50_000 {
            self.inode_peak.store(now, Ordering::Relaxed);
            // SAFETY: malloc_trim only returns free memory to the system.
            unsafe { libc::malloc_trim(0) };
        }
    }

    pub fn parent(&self, ino: u64) -> u64 {
        self.inodes.get(ino).map_or(ROOT, |(p, _)| p)
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        match self.entry(ino)?.1 {
            Entry::Link { target } => Ok(target.into_bytes()),
            Entry::Node { meta, .. } if meta.kind == Kind::Symlink => {
                Ok(self.stored_node(ino)?.target)
            }
            _ => Err(Error::io(
                "readlink",
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )),
        }
    }

    /// The whole node behind `ino`, from the catalog (what `Meta` leaves out).
    fn stored_node(&self, ino: u64) -> Result<Node> {
        self.on_current_catalog(|| self.stored_node_once(ino))
    }

    fn stored_node_once(&self, ino: u64) -> Result<Node> {
        let _switch = self.switch.read();
        let Entry::Node { rowid, .. } = self.entry(ino)?.1 else {
            return Err(Error::NoSuchPath(format!("inode {ino}")));
        };
        let row = self.pool.get()?.node(rowid)?;
        Ok(row
            .ok_or_else(|| Error::NoSuchPath(self.node_path(ino)))?
            .node)
    }

    /// `SNAPSHOT:PATH` of a node, as `cofre thaw` and `restore` take it.
    fn snapshot_spec(&self, ino: u64) -> Option<String> {
        let mut parts = Vec::new();
        let mut cur = ino;
        loop {
            let (parent, e) = self.inodes.get(cur)?;
            match e {
                Entry::Node { meta, .. } => {
                    parts.push(String::from_utf8_lossy(&meta.name).into_owned())
                }
                Entry::SnapRoot { snap } => {
                    parts.reverse();
                    return Some(format!(
                        "{}:/{}",
                        &snap.id[..8.min(snap.id.len())],
                        parts.join("/")
                    ));
                }
                _ => return None,
            }
            cur = parent;
        }
    }

    fn node_path(&self, ino: u64) -> String {
        let mut parts = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            let Some((parent, e)) = self.inodes.get(cur) else {
                break;
            };
            match e {
                Entry::Node { meta, .. } => {
                    parts.push(String::from_utf8_lossy(&meta.name).into_owned())
                }
                Entry::SnapRoot { snap } => {
                    parts.push(snap.path.clone());
                    break;
                }
                _ => {}
            }
            cur = parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// The file behind `ino` with its chunk locations, resolved once while it is being read.
    fn file(&self, ino: u64) -> Result<Arc<OpenFile>> {
        self.file_kept(ino, true)
    }

    /// `file`; `keep`: cache it, and resolve its listed siblings ahead (a file read once
    /// whole, as a push, is not read again).
    fn file_kept(&self, ino: u64, keep: bool) -> Result<Arc<OpenFile>> {
        let row = match self.inodes.get(ino) {
            Some((_, Entry::Node { rowid, .. })) => Some(rowid),
            _ => None,
        };
        if let Some((r, f)) = self.files.lock().get(&ino) {
            if Some(*r) == row {
                return Ok(f.clone());
            }
        }
        self.on_current_catalog(|| self.resolve_file(ino, keep))
    }

    fn resolve_file(&self, ino: u64, keep: bool) -> Result<Arc<OpenFile>> {
        let _switch = self.switch.read();
        let (parent, e) = self.entry(ino)?;
        // Someone reads this directory's files: resolve its other files meanwhile.
        let siblings = if keep {
            self.listed.lock().pop(&parent)
        } else {
            None
        };
        if let Some(siblings) = siblings {
            for p in siblings.into_iter().filter(|p| p.ino != ino) {
                let _ = self.resolve_ahead.send(p);
            }
        }
        let Entry::Node { rowid, meta, .. } = e else {
            return Err(Error::io(
                "read",
                std::io::Error::from_raw_os_error(libc::EISDIR),
            ));
        };
        let cat = self.pool.get()?;
        let row = cat
            .node(rowid)?
            .ok_or_else(|| Error::NoSuchPath(self.node_path(ino)))?;
        let f = Arc::new(
            resolve(&cat, self.node_path(ino), meta.size, row.node.chunks)?
                .with_blake3(row.node.blake3)
                .with_dir(parent),
        );
        if keep {
            self.files.lock().put(ino, (rowid, f.clone()));
        }
        Ok(f)
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<crate::vfs::reader::ReadBuf> {
        let f = self.file(ino)?;
        self.cache
            .read(&f, offset, size)
            // Named here, logged once where it becomes an errno (mount/fs.rs); archived
            // data with the thaw command for this very file.
            .map_err(|e| {
                let thaw = match (e.is_archived(), self.snapshot_spec(ino)) {
                    (true, Some(spec)) => format!(" (`cofre thaw {spec} --wait`)"),
                    _ => String::new(),
                };
                Error::ReadFailed {
                    path: f.path.clone(),
                    why: format!("{e}{thaw}"),
                }
            })
    }

    /// A file's size, chunks and content hash, for the file cache (`mount/opens.rs`).
    pub fn content(&self, ino: u64) -> Result<Arc<OpenFile>> {
        self.file(ino)
    }

    /// A file's size from the inode table, with no catalog query (0 for anything else).
    pub fn size(&self, ino: u64) -> Result<u64> {
        Ok(match self.entry(ino)?.1 {
            Entry::Node { meta, .. } if meta.kind == Kind::File => meta.size,
            _ => 0,
        })
    }

    /// SEEK_DATA (`data`) or SEEK_HOLE from `offset`; None past the end (ENXIO).
    pub fn seek(&self, ino: u64, offset: u64, data: bool) -> Result<Option<u64>> {
        Ok(self.file(ino)?.seek(offset, data))
    }

    /// Most nodes have no xattrs: answered without a catalog query (`cp -a` asks each file).
    pub fn listxattr(&self, ino: u64) -> Result<Vec<Vec<u8>>> {
        Ok(match self.entry(ino)?.1 {
            Entry::Node { meta, .. } if meta.has_xattrs => {
                let n = self.stored_node(ino)?;
                n.xattrs.into_iter().map(|x| x.name).collect()
            }
            _ => Vec::new(),
        })
    }

    /// An xattr's value; the hidden blake3 answers here but is never listed.
    pub fn getxattr(&self, ino: u64, name: &std::ffi::OsStr) -> Result<Option<Vec<u8>>> {
        if ino == ROOT && name.as_bytes() == INODES_XATTR {
            return Ok(Some(self.inode_count().to_string().into_bytes()));
        }
        let Entry::Node { meta, .. } = self.entry(ino)?.1 else {
            return Ok(None);
        };
        let hash = name.as_bytes() == HASH_XATTR && meta.kind == Kind::File;
        if !hash && !meta.has_xattrs {
            return Ok(None);
        }
        let node = self.stored_node(ino)?;
        if hash {
            return Ok(node.blake3.map(|h| hex::encode(h).into_bytes()));
        }
        Ok(node
            .xattrs
            .into_iter()
            .find(|x| x.name == name.as_bytes())
            .map(|x| x.value))
    }
}
