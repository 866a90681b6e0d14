//! Open files, when the mount keeps a file cache (`--file-cache`, `vfs/filecache.rs`).
//!
//! A file whose content is in the cache is opened in FUSE passthrough mode (Linux 6.9 and
//! later, root): the kernel reads the cached file itself, with no request to the mount
//! and no decoding, and its page cache serves every later reader. Any other file is
//! decoded by the mount as usual, and what is served is also written into the cache
//! (`Fill`), so its next open can pass through.
//!
//! The kernel will not mix the two on one inode: a passthrough open while a handle read
//! through the mount is open fails with EIO, and so does a passthrough open with another
//! backing file than the inode's open handles use. So the mode is decided per inode, by
//! the handles open on it: a new open joins them, and only an inode with none open can
//! change mode. Where passthrough is refused (no CAP_SYS_ADMIN, a cache on a filesystem
//! that cannot back it), the mount reads the cached file itself, which still saves the
//! decoding; this is said once in the log.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use fuser::{BackingId, Errno, FileHandle, FopenFlags, ReplyData, ReplyOpen};
use parking_lot::Mutex;

use crate::vfs::filecache::{FileCache, Fill, Pinned};
use crate::vfs::Vfs;

use super::fs::errno;

pub struct Opens {
    cache: Arc<FileCache>,
    /// Whether to try passthrough: cleared when the kernel lacks it or refuses it.
    passthrough: AtomicBool,
    next_fh: AtomicU64,
    state: Mutex<State>,
    /// Opens answered in passthrough mode, for the log's request counts.
    pub passed_through: AtomicU64,
    /// Smaller files are not kept (`MountOptions::file_cache_min`).
    min_size: u64,
}

#[derive(Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    handles: HashMap<u64, Handle>,
}

/// The open handles of one inode.
#[derive(Default)]
struct Inode {
    /// Handles read through the mount (`Decoded`, `Cached`).
    through_mount: u32,
    /// Handles in passthrough mode, and the backing file they all share (its cache entry
    /// pinned while the kernel holds it).
    passthrough: u32,
    backing: Option<(BackingId, Pinned)>,
    /// The file being written into the cache by the handles reading through the mount.
    fill: Option<Arc<Fill>>,
}

struct Handle {
    ino: u64,
    how: How,
}

#[derive(Clone)]
enum How {
    /// Decoded by the mount; what it serves also goes into the fill, if any.
    Decoded(Option<Arc<Fill>>),
    /// Read by the mount from the cached file (passthrough refused).
    Cached(Arc<Pinned>),
    /// Read by the kernel from the cached file.
    Passthrough,
}

impl Opens {
    pub fn new(cache: Arc<FileCache>, min_size: u64) -> Opens {
        Opens {
            cache,
            passthrough: AtomicBool::new(true),
            // 0 is the handle of opens answered without state (no file cache).
            next_fh: AtomicU64::new(1),
            state: Mutex::new(State::default()),
            passed_through: AtomicU64::new(0),
            min_size,
        }
    }

    /// The kernel did not offer passthrough at init: the cache is read by the mount.
    pub fn without_passthrough(&self, why: &str) {
        self.passthrough.store(false, Ordering::Relaxed);
        tracing::warn!("file cache: no FUSE passthrough ({why}); cached files are read by the mount, which still saves decoding them");
    }

    pub fn open(&self, vfs: &Vfs, ino: u64, reply: ReplyOpen) {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        // Small and empty files first, from the inode table: most opens of a tree of small
        // files cost no catalog query (their pages may well be cached, with no read to come).
        match vfs.size(ino) {
            Ok(size) if size == 0 || size < self.min_size => {
                return self.through_mount(ino, fh, reply)
            }
            Ok(_) => {}
            Err(e) => return reply.error(errno(&e)),
        }
        let content = match vfs.content(ino) {
            Ok(c) => c,
            Err(e) => return reply.error(errno(&e)),
        };
        let size = content.size;
        let Some(hash) = content.blake3 else {
            return self.through_mount(ino, fh, reply);
        };
        // Opening the cached file may hash it (first use in this process): not under the
        // lock, and only when no handle is open on the inode to decide the mode.
        let open_now = self.state.lock().inodes.contains_key(&ino);
        let mut cached = if open_now {
            None
        } else {
            self.cache.get(&hash, size)
        };
        let mut st = self.state.lock();
        let State { inodes, handles } = &mut *st;
        let node = inodes.entry(ino).or_default();
        if node.passthrough > 0 {
            return self.join_passthrough(node, handles, ino, fh, reply);
        }
        match &cached {
            Some(pinned) if node.through_mount == 0 && self.passthrough.load(Ordering::Relaxed) => {
                match reply.open_backing(&pinned.file) {
                    Ok(id) => {
                        node.backing = cached.take().map(|p| (id, p));
                        return self.join_passthrough(node, handles, ino, fh, reply);
                    }
                    // What says passthrough cannot work here: not root, a kernel or a
                    // cache filesystem that cannot back it. Anything else (EMFILE,
                    // ENOMEM) only costs this open.
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EPERM | libc::EOPNOTSUPP | libc::ELOOP | libc::EINVAL)
                        ) =>
                    {
                        self.without_passthrough(&format!("the kernel refused: {e}"))
                    }
                    Err(e) => tracing::debug!("file cache: passthrough open: {e}"),
                }
            }
            Some(_) => {}
            // A fill that ended (its entry may be evicted since) or failed is replaced; a
            // new one is not started while the entry is there (`begin`).
            None if node.fill.as_ref().is_none_or(|f| f.ended()) => {
                node.fill = self
                    .cache
                    .begin(&hash, size, &content.holes())
                    .map(Arc::new);
            }
            None => {}
        }
        let how = match cached {
            Some(file) => How::Cached(Arc::new(file)),
            None => How::Decoded(node.fill.clone()),
        };
        node.through_mount += 1;
        // A handle that fills the cache must see every byte: without FOPEN_KEEP_CACHE the
        // kernel drops the pages it kept from earlier opens, and reads them all again.
        let flags = match &how {
            How::Decoded(Some(_)) => FopenFlags::empty(),
            _ => FopenFlags::FOPEN_KEEP_CACHE,
        };
        handles.insert(fh, Handle { ino, how });
        reply.opened(FileHandle(fh), flags);
    }

    /// A handle read through the mount, with no file cache involved (an empty file, or
    /// one without a recorded blake3).
    fn through_mount(&self, ino: u64, fh: u64, reply: ReplyOpen) {
        let mut st = self.state.lock();
        st.inodes.entry(ino).or_default().through_mount += 1;
        st.handles.insert(
            fh,
            Handle {
                ino,
                how: How::Decoded(None),
            },
        );
        drop(st);
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn join_passthrough(
        &self,
        node: &mut Inode,
        handles: &mut HashMap<u64, Handle>,
        ino: u64,
        fh: u64,
        reply: ReplyOpen,
    ) {
        let Some((backing, _)) = &node.backing else {
            return reply.error(Errno::from_i32(libc::EIO));
        };
        node.passthrough += 1;
        handles.insert(
            fh,
            Handle {
                ino,
                how: How::Passthrough,
            },
        );
        self.passed_through.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("inode {ino}: opened in passthrough mode");
        reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), backing);
    }

    pub fn read(&self, vfs: &Vfs, ino: u64, fh: u64, offset: u64, size: u32, reply: ReplyData) {
        let how = self.state.lock().handles.get(&fh).map(|h| h.how.clone());
        if let Some(How::Cached(pinned)) = how {
            let mut buf = vec![0u8; size as usize];
            return match read_at_most(&pinned.file, &mut buf, offset) {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => {
                    tracing::error!("file cache: reading inode {ino}: {e}");
                    reply.error(Errno::from_i32(libc::EIO))
                }
            };
        }
        match vfs.read(ino, offset, size) {
            Ok(d) => {
                reply.data(&d[..]);
                // After the reply: the reader does not wait for the cache's write.
                if let Some(How::Decoded(Some(fill))) = how {
                    fill.write(offset, &d[..]);
                }
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// The kernel closed handle `fh`: the inode's backing file goes with its last
    /// passthrough handle, an unfinished fill with its last handle read through the mount.
    pub fn release(&self, fh: u64) {
        let mut st = self.state.lock();
        let Some(h) = st.handles.remove(&fh) else {
            return;
        };
        let Some(node) = st.inodes.get_mut(&h.ino) else {
            return;
        };
        match h.how {
            How::Passthrough => node.passthrough = node.passthrough.saturating_sub(1),
            _ => node.through_mount = node.through_mount.saturating_sub(1),
        }
        if node.passthrough == 0 {
            node.backing = None;
        }
        if node.through_mount == 0 {
            node.fill = None;
        }
        if node.passthrough == 0 && node.through_mount == 0 {
            st.inodes.remove(&h.ino);
        }
    }
}

/// Reads up to `buf.len()` bytes at `offset`, fewer only at the end of the file.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
