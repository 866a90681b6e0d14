//! The FUSE adapter: translates kernel requests to `Vfs` calls and replies. No logic here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyLseek, ReplyOpen, ReplyXattr, Request,
};

use crate::error::Error;
use crate::model::Kind;
use crate::vfs::{Attr, Listing, Vfs};

use super::counts::{Counts, Op};

pub struct CofreFs {
    pub vfs: Arc<Vfs>,
    /// The kernel accepts ENOSYS from open as "no open needed" (Linux 4.19 and later).
    pub zero_message_open: bool,
    /// The kernel accepts ENOSYS from opendir the same way (Linux 5.1 and later).
    pub zero_message_opendir: bool,
    /// Other users are let in: have the kernel enforce the stored POSIX ACLs too.
    pub posix_acl: bool,
    /// Answer listxattr; otherwise ENOSYS, and the kernel stops sending it (two round
    /// trips per entry of a `cp -a`). Off only when no snapshot has xattrs.
    pub list_xattrs: bool,
    /// Answer getxattr; otherwise ENOSYS, and the kernel stops sending it (`cp -a`'s ACL
    /// probe, one per entry). Off only when no snapshot has xattrs, as listings.
    pub get_xattrs: bool,
    pub counts: Counts,
    /// Pushes the next files of a directory being read into the page cache
    /// (`push.rs`); set once the session can send notifications.
    pub pusher: Arc<std::sync::OnceLock<super::push::Pusher>>,
    /// With a file cache (`--file-cache`): opens, reads and releases go here
    /// (passthrough, `opens.rs`).
    pub opens: Option<super::opens::Opens>,
}

/// The errno for a failed request; anything but "no such entry" is logged, so an EIO has
/// a cause in the mount's log.
pub(super) fn errno(e: &Error) -> Errno {
    let n = e.errno();
    // A damaged catalog is said once, by `Vfs::note_damaged_catalog`, not per request.
    if n != libc::ENOENT && !crate::catalog::sync::is_damaged(e) {
        tracing::error!("{e}");
    }
    Errno::from_i32(n)
}

fn time(t: (i64, u32)) -> SystemTime {
    if t.0 >= 0 {
        UNIX_EPOCH + Duration::new(t.0 as u64, t.1)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.0.unsigned_abs()) + Duration::from_nanos(t.1 as u64)
    }
}

fn kind(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::CharDev => FileType::CharDevice,
        Kind::BlockDev => FileType::BlockDevice,
        Kind::Socket => FileType::Socket,
    }
}

fn attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.mtime),
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

fn xattr_reply(data: Vec<u8>, size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(&data);
    }
}

const EROFS: i32 = libc::EROFS;

impl CofreFs {
    /// What a readdir from `offset` reads: the listing, the base of its offsets and the
    /// index to go on from. With a handle, its listing; with none (no opendir sent:
    /// handle 0, ours start at 1), the directory's own (`Vfs::listing_of`).
    fn listing(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
    ) -> crate::error::Result<(Listing, u64, usize)> {
        if fh.0 != 0 {
            return Ok((self.vfs.listing(fh.0)?, 0, offset as usize));
        }
        self.vfs.listing_of(ino.0, offset)
    }
}

impl Filesystem for CofreFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_readahead(1024 * 1024);
        self.zero_message_open = config
            .capabilities()
            .contains(fuser::InitFlags::FUSE_NO_OPEN_SUPPORT);
        self.zero_message_opendir = config
            .capabilities()
            .contains(fuser::InitFlags::FUSE_NO_OPENDIR_SUPPORT);
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_CACHE_SYMLINKS);
        if let Some(opens) = &self.opens {
            // Depth 2: the cache directory may itself be on a stacked filesystem
            // (overlayfs, as in a container); nothing stacks on a backup mount.
            if let Err(e) = config.add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH) {
                opens.without_passthrough(&format!("the kernel does not offer it: {e:?}"));
            } else {
                let _ = config.set_max_stack_depth(2);
            }
        }
        // Entries come with their attributes: `find` and `cp -a` need no lookup per entry.
        // Without READDIRPLUS_AUTO, which would make a listing's later requests plain
        // READDIRs: the pusher waits for the second READDIRPLUS of a listing (`readdirplus`).
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_DO_READDIRPLUS);
        if self.posix_acl && self.get_xattrs {
            // With default_permissions the kernel then checks system.posix_acl_access
            // (answered by getxattr from the snapshot) beside the mode bits.
            if let Err(e) = config.add_capabilities(fuser::InitFlags::FUSE_POSIX_ACL) {
                tracing::warn!("kernel without FUSE_POSIX_ACL ({e:?}): only mode bits are enforced for other users");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.counts.add(Op::Lookup);
        match self.vfs.lookup(parent.0, name.as_bytes()) {
            Ok(a) => reply.entry(&a.ttl, &attr(&a), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.counts.add(Op::Forget);
        self.vfs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.counts.add(Op::Getattr);
        match self.vfs.getattr(ino.0) {
            Ok(a) => reply.attr(&a.ttl, &attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.counts.add(Op::Readlink);
        match self.vfs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// No per-open state: answering ENOSYS once makes the kernel stop sending open and
    /// release (two round trips less per file) and keep the page cache across opens.
    /// Write opens never get here: the mount is read-only, the VFS answers EROFS.
    /// With a file cache, every open is answered (`opens.rs`): passthrough needs one.
    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.counts.add(Op::Open);
        if let Some(opens) = &self.opens {
            return opens.open(&self.vfs, ino.0, reply);
        }
        if self.zero_message_open {
            reply.error(Errno::from_i32(libc::ENOSYS));
        } else {
            reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
        }
    }

    /// Nothing to flush: ENOSYS once and the kernel stops sending flush at every close.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(libc::ENOSYS));
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        self.counts.add(Op::Read);
        if let Some(opens) = &self.opens {
            return opens.read(&self.vfs, ino.0, fh.0, offset, size, reply);
        }
        if let Some(p) = self.pusher.get() {
            p.read(ino.0, offset);
        }
        match self.vfs.read(ino.0, offset, size) {
            Ok(d) => reply.data(&d[..]),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        self.counts.add(Op::Lseek);
        let data = match whence {
            libc::SEEK_DATA => true,
            libc::SEEK_HOLE => false,
            _ => return reply.error(Errno::from_i32(libc::EINVAL)),
        };
        match self.vfs.seek(ino.0, offset.max(0) as u64, data) {
            Ok(Some(o)) => reply.offset(o as i64),
            Ok(None) => reply.error(Errno::from_i32(libc::ENXIO)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// ENOSYS once, where the kernel allows it: it then sends no opendir or releasedir
    /// for any directory, and keeps every listing (as with FOPEN_CACHE_DIR and
    /// FOPEN_KEEP_CACHE) until the mount invalidates it (the layout's directories, when
    /// snapshots come and go). readdir then comes with no handle (`listing`).
    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.counts.add(Op::Opendir);
        if self.zero_message_opendir {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        match self.vfs.opendir(ino.0) {
            // The listing of a snapshot directory never changes: the kernel keeps it
            // across opens (a second `find` or `cp -a` of a snapshot lists nothing).
            Ok((fh, true)) => reply.opened(
                FileHandle(fh),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Ok((fh, false)) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_CACHE_DIR),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.vfs.releasedir(fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.counts.add(Op::Readdir);
        let (listing, base, at) = match self.listing(ino, fh, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(errno(&e)),
        };
        for (i, item) in listing.iter().enumerate().skip(at) {
            let a = &item.attr;
            if reply.add(
                INodeNo(a.ino),
                base | (i as u64 + 1),
                kind(a.kind),
                OsStr::from_bytes(&item.name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: fuser::ReplyDirectoryPlus,
    ) {
        self.counts.add(Op::Readdirplus);
        let (listing, base, at) = match self.listing(ino, fh, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(errno(&e)),
        };
        for (i, item) in listing.iter().enumerate().skip(at) {
            // The kernel takes a lookup on every READDIRPLUS entry but `.` and `..`: counted
            // before the entry is added, under the number the table holds it by now.
            let ino = self.vfs.remember(item);
            let mut a = item.attr.clone();
            a.ino = ino;
            if reply.add(
                INodeNo(ino),
                base | (i as u64 + 1),
                OsStr::from_bytes(&item.name),
                &a.ttl,
                &attr(&a),
                Generation(0),
            ) {
                // Full: this entry goes in the next reply, which counts it again.
                self.vfs.unremember(item, ino);
                break;
            }
        }
        reply.ok();
        // Not at offset 0: the kernel makes the inodes of a reply's entries in the reader's
        // own call, after this reply is sent, and a store to an inode it has not made yet is
        // lost (ENOENT, which fuser reports as done). The request for the next offset comes
        // from the reader once that call has returned, with every entry before it made, and
        // none of this reply's: those are numbered from `upto` on.
        if let Some(p) = self.pusher.get().filter(|_| offset != 0) {
            p.listed(ino.0, self.vfs.numbered_from(ino.0, &listing, at));
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.counts.add(Op::Getxattr);
        if !self.get_xattrs {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        match self.vfs.getxattr(ino.0, name) {
            Ok(Some(v)) => xattr_reply(v, size, reply),
            Ok(None) => reply.error(Errno::from_i32(libc::ENODATA)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.counts.add(Op::Listxattr);
        if !self.list_xattrs {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        match self.vfs.listxattr(ino.0) {
            Ok(names) => xattr_reply(
                names
                    .into_iter()
                    .flat_map(|mut n| {
                        n.push(0);
                        n
                    })
                    .collect(),
                size,
                reply,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.counts.add(Op::Release);
        if let Some(opens) = &self.opens {
            opens.release(fh.0);
        }
        reply.ok();
    }

    fn destroy(&mut self) {
        let passthrough = self.opens.as_ref().map_or(String::new(), |o| {
            let n = o.passed_through.load(std::sync::atomic::Ordering::Relaxed);
            format!(", passthrough {n}")
        });
        tracing::info!("FUSE requests: {}{passthrough}", self.counts.summary());
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: fuser::ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    // Everything that would change the filesystem: read-only.
    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::from_i32(EROFS));
    }

    fn mknod(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _r: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::from_i32(EROFS));
    }

    fn mkdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        reply.error(Errno::from_i32(EROFS));
    }

    fn unlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::from_i32(EROFS));
    }

    fn rmdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::from_i32(EROFS));
    }

    fn symlink(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _l: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::from_i32(EROFS));
    }

    fn rename(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _np: INodeNo,
        _nn: &OsStr,
        _f: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(EROFS));
    }

    fn link(&self, _req: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::from_i32(EROFS));
    }

    fn setxattr(
        &self,
        _req: &Request,
        _i: INodeNo,
        _n: &OsStr,
        _v: &[u8],
        _f: i32,
        _p: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(EROFS));
    }

    fn removexattr(&self, _req: &Request, _i: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::from_i32(EROFS));
    }

    fn create(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _f: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(Errno::from_i32(EROFS));
    }
}
