//! The mount's cache of decoded files (`cofre mount --file-cache MIB`), so that the kernel
//! can read a file it has seen before straight from the local disk (FUSE passthrough,
//! `mount/opens.rs`), with no round trip to the mount and no decoding.
//!
//! - **Content-addressed.** A file is kept under the blake3 of its whole content, recorded
//!   at ingest (`Node::blake3`): the same file in fifty snapshots is one entry, and a file
//!   without that hash (older snapshots) is never kept.
//! - **Plaintext on the local disk.** This is why it is off unless asked for, in a 0700
//!   directory of 0600 files (docs/mount.md "The file cache").
//! - **Filled by readers.** While a program reads a file through the mount, what it is
//!   served is also written into a temporary file (`Fill`). The entry appears when every
//!   byte has been written, and those bytes came from chunks checked against their ids.
//! - **Durable at a clean unmount, checked after a crash.** Entries are renamed into place
//!   without fsync (one per file would cost more than the cache saves), so after a crash
//!   an entry can hold zeros. A clean unmount makes them durable with one `syncfs` and
//!   leaves a seal saying when (`seal`), and naming the entries it never checked; the next
//!   process trusts the other entries older than the seal, and removes the seal before it
//!   writes anything. Any other entry (after a crash: all of them) is hashed before its
//!   first use and must match its name; one that does not is deleted and read the slow
//!   way. That costs a read and a hash of each entry (docs/benchmarks.md, "FUSE
//!   passthrough").
//! - **Bounded by its file sizes**, least recently used first. A fill reserves its file's
//!   size before it writes anything, and an entry open for reading (pinned) is not evicted,
//!   so the directory never holds more than the limit, counted in 4 KiB blocks.
//! - **One mount at a time.** The directory is locked (`flock`); a second mount of the
//!   same repository on this host runs without the file cache, and says so.

mod fill;

pub use fill::Fill;
use fill::FillState;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::Mutex;

/// The blake3 of a file's content.
pub type Hash = [u8; 32];

pub struct FileCache {
    dir: PathBuf,
    limit: u64,
    state: Mutex<State>,
    /// The directory's `flock`, held while this cache is open.
    _lock: File,
}

#[derive(Default)]
struct State {
    /// Bytes of the entries plus the sizes reserved by fills in progress.
    used: u64,
    /// Advances at every use: an entry's `last` orders eviction.
    tick: u64,
    entries: HashMap<Hash, Entry>,
    /// Contents being filled: one fill per content, however many files hold it.
    filling: HashSet<Hash>,
}

#[derive(Clone, Copy)]
struct Entry {
    size: u64,
    last: u64,
    /// Sealed by a clean unmount, hashed by this process, or written by it: trusted.
    checked: bool,
    /// Open for reading (`Pinned`): not evicted, since its blocks would stay on disk
    /// uncounted until it is closed.
    pins: u32,
}

impl FileCache {
    /// Opens (creating it 0700) the cache in `dir`. Files whose names are not entries,
    /// such as a fill left by a crash, are removed: the directory is this cache's alone.
    /// Entries over `limit` go, oldest first.
    pub fn open(dir: PathBuf, limit: u64) -> std::io::Result<Arc<FileCache>> {
        crate::catalog::private_dir(&dir)?;
        let lock = super::diskcache::lock_dir(&dir)?;
        let mut found = Vec::new();
        for (path, md) in super::diskcache::files(&dir) {
            match parse_name(&path) {
                Some(hash) => {
                    let written = md.modified().unwrap_or(std::time::UNIX_EPOCH);
                    found.push((written, hash, md.len(), ctime(&md)));
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        found.sort();
        let seal = unseal(&dir)?;
        let mut state = State::default();
        for (_, hash, size, renamed) in found {
            let durable = seal.as_ref().is_some_and(|(t, unchecked)| {
                // Only one process writes entries (the lock), the seal is made after its
                // last fill, and the next removes it before its first: an entry sealed is
                // one renamed before the seal's clock reading (equal: the same tick), and
                // not one the sealing process itself never checked (left by a crash).
                !unchecked.contains(&hash) && renamed <= *t
            });
            state.tick += 1;
            state.used += footprint(size);
            let last = state.tick;
            state.entries.insert(
                hash,
                Entry {
                    size,
                    last,
                    checked: durable,
                    pins: 0,
                },
            );
        }
        let cache = FileCache {
            dir,
            limit,
            state: Mutex::new(state),
            _lock: lock,
        };
        cache.make_room(&mut cache.state.lock(), 0);
        Ok(Arc::new(cache))
    }

    fn path(&self, hash: &Hash) -> PathBuf {
        path_in(&self.dir, hash)
    }

    /// At a clean unmount: makes every entry written so far durable (one `syncfs` of the
    /// cache's filesystem) and seals the cache with the time just before it, on the
    /// filesystem's own clock (a new file's ctime). The next `open` trusts entries whose
    /// ctime (set by the rename that put them in place) is older, without hashing them.
    pub fn seal(&self) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let probe = self.dir.join(".seal-probe");
        let _ = std::fs::remove_file(&probe);
        crate::catalog::private_file(&probe)?;
        let t = ctime(&std::fs::metadata(&probe)?);
        let dir = File::open(&self.dir)?;
        // SAFETY: syncfs on a descriptor we own.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Entries this process never checked (after a crash, those it did not open) stay
        // unchecked: the seal vouches for durability, not for what a crash left.
        let unchecked: Vec<String> = {
            let st = self.state.lock();
            st.entries
                .iter()
                .filter(|(_, e)| !e.checked)
                .map(|(h, _)| hex::encode(h))
                .collect()
        };
        let tmp = self.dir.join(".seal-tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = crate::catalog::private_file(&tmp)?;
        writeln!(f, "{} {}", t.0, t.1)?;
        for h in unchecked {
            writeln!(f, "{h}")?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(SEAL))?;
        dir.sync_all()?;
        std::fs::remove_file(&probe)
    }

    /// The kept copy of the file with content `hash` and `size` bytes, open for reading
    /// and pinned until dropped; None when there is none, or when it turns out damaged
    /// (then it is deleted).
    pub fn get(self: &Arc<Self>, hash: &Hash, size: u64) -> Option<Pinned> {
        let checked = {
            let mut st = self.state.lock();
            st.tick += 1;
            let tick = st.tick;
            let e = st.entries.get_mut(hash)?;
            e.last = tick;
            e.pins += 1;
            (e.size == size).then_some(e.checked)
        };
        let path = self.path(hash);
        // Whether the entry is wrong (gone, another size, other bytes) and must go; an
        // error that says nothing about it (EMFILE, EIO) only makes this a miss.
        let opened = match checked {
            None => Err(true),
            Some(checked) => match File::open(&path) {
                Ok(f) => match f.metadata() {
                    Ok(m) if m.len() != size => Err(true),
                    Ok(_) if checked => Ok(f),
                    Ok(_) => match content_hash(&f) {
                        Ok(h) if h == *hash => Ok(f),
                        Ok(_) => {
                            tracing::warn!(
                                "file cache: {} does not match its content hash; deleted, the \
                                 file is read from the repository",
                                path.display()
                            );
                            Err(true)
                        }
                        Err(_) => Err(false),
                    },
                    Err(_) => Err(false),
                },
                Err(e) => Err(e.kind() == std::io::ErrorKind::NotFound),
            },
        };
        let mut st = self.state.lock();
        match opened {
            Ok(file) => {
                if let Some(e) = st.entries.get_mut(hash) {
                    e.checked = true;
                }
                Some(Pinned {
                    cache: self.clone(),
                    hash: *hash,
                    file,
                })
            }
            Err(wrong) => {
                let pinned = st.entries.get_mut(hash).is_some_and(|e| {
                    e.pins = e.pins.saturating_sub(1);
                    e.pins > 0
                });
                // An entry someone else holds open stays (its blocks are still counted,
                // and their unpin must find it): the next `get` after them forgets it.
                if wrong && !pinned {
                    self.forget(&mut st, hash);
                }
                None
            }
        }
    }

    /// Drops the entry `hash`, file and all (under the lock: see `make_room`).
    fn forget(&self, st: &mut State, hash: &Hash) {
        if let Some(e) = st.entries.remove(hash) {
            st.used -= footprint(e.size).min(st.used);
            let _ = std::fs::remove_file(self.path(hash));
        }
    }

    /// Starts keeping the file with content `hash` and `size` bytes, to be written by its
    /// reader; None when it is kept already, empty, larger than a quarter of the cache, or
    /// when fills in progress hold the room it needs. `holes` are the byte ranges the file
    /// has no data in: a reader skips them (`cp` seeks over holes), and they are zeros in
    /// the new file already.
    pub fn begin(self: &Arc<Self>, hash: &Hash, size: u64, holes: &[(u64, u64)]) -> Option<Fill> {
        if size == 0 || size > self.limit / 4 {
            return None;
        }
        {
            let mut st = self.state.lock();
            if st.entries.contains_key(hash)
                || st.filling.contains(hash)
                || !self.make_room(&mut st, footprint(size))
            {
                return None;
            }
            st.used += footprint(size);
            st.filling.insert(*hash);
        }
        let unreserve = || {
            let mut st = self.state.lock();
            st.used -= footprint(size).min(st.used);
            st.filling.remove(hash);
        };
        let final_path = self.path(hash);
        let Some(parent) = final_path.parent() else {
            unreserve();
            return None;
        };
        let tmp = parent.join(format!(".fill-{:016x}", rand::random::<u64>()));
        // set_len: the holes of a sparse file stay holes (zeros are never written).
        // Readable too: a fill written out of order is hashed from the file at the end.
        let made = crate::catalog::private_dir(parent)
            .and_then(|_| {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
            })
            .and_then(|f| f.set_len(size).map(|_| f));
        match made {
            Ok(file) => Some(Fill {
                cache: self.clone(),
                hash: *hash,
                size,
                file,
                tmp,
                state: Mutex::new(FillState::new(holes, size)),
                ended: AtomicBool::new(false),
                done: AtomicBool::new(false),
            }),
            Err(e) => {
                tracing::debug!("file cache: {}: {e}", tmp.display());
                let _ = std::fs::remove_file(&tmp);
                unreserve();
                None
            }
        }
    }

    /// Deletes least recently used entries until `need` more bytes fit; false when even an
    /// empty cache (but for fills in progress) has no room. Files go under the lock: a
    /// fill renaming the same name meanwhile would otherwise lose its file while indexed.
    fn make_room(&self, st: &mut State, need: u64) -> bool {
        if st.used + need <= self.limit {
            return true;
        }
        // Pinned entries stay: an open file's blocks would outlive its unlink.
        let mut by_age: Vec<(u64, Hash)> = st
            .entries
            .iter()
            .filter(|(_, e)| e.pins == 0)
            .map(|(h, e)| (e.last, *h))
            .collect();
        let freeable: u64 = by_age
            .iter()
            .filter_map(|(_, h)| st.entries.get(h))
            .map(|e| footprint(e.size))
            .sum();
        if st.used.saturating_sub(freeable) + need > self.limit {
            // Not enough even with every unpinned entry gone: delete nothing.
            return false;
        }
        by_age.sort_unstable();
        for (_, hash) in by_age {
            if st.used + need <= self.limit {
                break;
            }
            self.forget(st, &hash);
        }
        st.used + need <= self.limit
    }

    fn unpin(&self, hash: &Hash) {
        if let Some(e) = self.state.lock().entries.get_mut(hash) {
            e.pins = e.pins.saturating_sub(1);
        }
    }

    /// Bytes of entries and reservations, by the cache's own count.
    pub fn used(&self) -> u64 {
        self.state.lock().used
    }
}

/// What a file of `size` bytes may take on disk: whole 4 KiB blocks, so that the limit
/// holds for the blocks the directory takes (`du`), not only for the files' lengths.
fn footprint(size: u64) -> u64 {
    size.div_ceil(4096) * 4096
}

/// blake3 of a whole file, read by offset (the file's position stays at 0 for its user).
fn content_hash(f: &File) -> std::io::Result<Hash> {
    let mut h = blake3::Hasher::new();
    let len = f.metadata()?.len();
    let mut buf = vec![0u8; len.clamp(1, 1 << 20) as usize];
    let mut at = 0;
    loop {
        let n = f.read_at(&mut buf, at)?;
        if n == 0 {
            return Ok(*h.finalize().as_bytes());
        }
        h.update(&buf[..n]);
        at += n as u64;
    }
}

/// A kept file, open for reading; its entry is not evicted while this lives.
pub struct Pinned {
    cache: Arc<FileCache>,
    hash: Hash,
    pub file: File,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.cache.unpin(&self.hash);
    }
}

/// The seal's name, in the cache directory (entries are one level further down).
const SEAL: &str = "sealed";

fn path_in(dir: &Path, hash: &Hash) -> PathBuf {
    let h = hex::encode(hash);
    dir.join(&h[..2]).join(h)
}

fn ctime(m: &std::fs::Metadata) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.ctime(), m.ctime_nsec())
}

/// The time a clean unmount sealed the cache at (`FileCache::seal`), if it did. The seal is
/// removed, durably, before this process writes any entry: should it crash, its entries
/// must not pass for sealed ones.
/// The seal's time, and the entries it does not vouch for.
type Seal = ((i64, i64), HashSet<Hash>);

fn unseal(dir: &Path) -> std::io::Result<Option<Seal>> {
    let path = dir.join(SEAL);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    std::fs::remove_file(&path)?;
    File::open(dir)?.sync_all()?;
    let mut lines = text.lines();
    let mut parts = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::parse::<i64>);
    let t = match (parts.next(), parts.next()) {
        (Some(Ok(s)), Some(Ok(ns))) => (s, ns),
        _ => return Ok(None),
    };
    let mut unchecked = HashSet::new();
    for l in lines {
        match hex::decode(l).ok().and_then(|b| Hash::try_from(b).ok()) {
            Some(h) => {
                unchecked.insert(h);
            }
            // A seal that cannot be read whole vouches for nothing.
            None => return Ok(None),
        }
    }
    Ok(Some((t, unchecked)))
}

/// `<64 hex digits>` → the hash it names.
fn parse_name(path: &Path) -> Option<Hash> {
    let name = path.file_name()?.to_str()?;
    hex::decode(name).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests;
