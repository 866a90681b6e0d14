//! Reading what the filesystem says about an entry: lstat, owner names, xattrs, data extents.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::model::{Kind, Node, Xattr};

pub fn kind_of(md: &Metadata) -> Kind {
    let ft = md.file_type();
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_char_device() {
        Kind::CharDev
    } else if ft.is_block_device() {
        Kind::BlockDev
    } else if ft.is_socket() {
        Kind::Socket
    } else {
        Kind::File
    }
}

/// uid/gid → name, looked up once each.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    pub fn user(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(|| lookup_user(uid))
            .clone()
    }
    pub fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| lookup_group(gid))
            .clone()
    }
}

fn lookup_user(uid: u32) -> String {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: buffers are valid for the call; the result points into `buf`.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned()
}

fn lookup_group(gid: u32) -> String {
    let mut buf = vec![0u8; 4096];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in lookup_user.
    let rc =
        unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(grp.gr_name) }
        .to_string_lossy()
        .into_owned()
}

pub fn read_xattrs(path: &Path) -> std::io::Result<Vec<Xattr>> {
    xattrs_with(path, |p| xattr::list(p), |p, n| xattr::get(p, n))
}

/// The xattrs of what `path` leads to (for ancestors recorded as directories).
pub fn read_xattrs_deref(path: &Path) -> std::io::Result<Vec<Xattr>> {
    xattrs_with(
        path,
        |p| xattr::list_deref(p),
        |p, n| xattr::get_deref(p, n),
    )
}

fn xattrs_with(
    path: &Path,
    list: fn(&Path) -> std::io::Result<xattr::XAttrs>,
    get: fn(&Path, &std::ffi::OsStr) -> std::io::Result<Option<Vec<u8>>>,
) -> std::io::Result<Vec<Xattr>> {
    let mut out = Vec::new();
    let names = match list(path) {
        Ok(n) => n,
        // Filesystems without xattr support simply have none.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e),
    };
    for name in names {
        if let Some(value) = get(path, &name)? {
            out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A node with everything but content and subtree. Directories keep their size (so `du
/// --apparent-size` of a snapshot matches the source). atime is recorded only when asked
/// (`--atime`): reading a tree moves it, and a moved atime would store a new tree for every
/// directory that was read; without it atime is taken to be mtime, as borg does.
pub fn node_from_metadata(name: &[u8], md: &Metadata, names: &mut Names, atime: bool) -> Node {
    let mtime = (md.mtime(), md.mtime_nsec() as u32);
    Node {
        name: name.to_vec(),
        kind: kind_of(md),
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        user: names.user(md.uid()),
        group: names.group(md.gid()),
        size: if md.is_file() || md.is_dir() {
            md.size()
        } else {
            0
        },
        mtime,
        atime: if atime {
            (md.atime(), md.atime_nsec() as u32)
        } else {
            mtime
        },
        ctime: (md.ctime(), md.ctime_nsec() as u32),
        inode: md.ino(),
        dev: md.dev(),
        nlink: md.nlink(),
        rdev: md.rdev(),
        target: Vec::new(),
        xattrs: Vec::new(),
        chunks: Vec::new(),
        blake3: None,
        subtree: None,
    }
}

/// Data extents (offset, len) of an open file; holes are skipped. Falls back to one
/// extent when the filesystem does not support SEEK_DATA.
pub fn data_extents(file: &std::fs::File, size: u64) -> std::io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < size {
        // SAFETY: plain syscalls on a file descriptor we own.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENXIO) => break,
                Some(libc::EINVAL) if out.is_empty() => return Ok(vec![(0, size)]),
                _ => return Err(err),
            }
        }
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let end = (hole as u64).min(size);
        if end > data as u64 {
            out.push((data as u64, end - data as u64));
        }
        pos = hole;
    }
    Ok(out)
}

/// Whether a file changed between two stats (size, mtime, ctime, inode).
pub fn changed(a: &Metadata, b: &Metadata) -> bool {
    a.size() != b.size()
        || a.mtime() != b.mtime()
        || a.mtime_nsec() != b.mtime_nsec()
        || a.ctime() != b.ctime()
        || a.ctime_nsec() != b.ctime_nsec()
        || a.ino() != b.ino()
}
