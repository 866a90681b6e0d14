//! Filesystem operations relative to directory file descriptors, for restore. Every
//! directory below the target is opened without following any symlink and without leaving
//! the target (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), and every change is made
//! through that descriptor and a single name: a local user who swaps a directory for a
//! symlink during a restore to `/` cannot redirect a write, a chmod or a chown.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::sync::Arc;

use crate::model::{Kind, Node};

pub type Io<T> = std::io::Result<T>;

fn cvt(rc: libc::c_int) -> Io<()> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn cstr(b: &[u8]) -> Io<CString> {
    CString::new(b).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// The restore target, opened once; everything else is reached from it.
pub struct Beneath {
    root: OwnedFd,
}

/// A directory below the target and one name in it. The descriptor is shared: the files
/// of one directory are written through the one the walk opened for it.
pub struct Slot {
    pub dir: Arc<OwnedFd>,
    pub name: CString,
}

impl Slot {
    pub fn new(dir: Arc<OwnedFd>, name: &[u8]) -> Io<Slot> {
        Ok(Slot {
            dir,
            name: cstr(name)?,
        })
    }
}

impl Beneath {
    pub fn open(target: &Path) -> Io<Beneath> {
        let c = cstr(target.as_os_str().as_bytes())?;
        // SAFETY: valid C string; the fd is owned from here on.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        cvt(fd)?;
        Ok(Beneath {
            root: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The directory at `rel` (relative to the target; empty is the target itself).
    pub fn dir(&self, rel: &Path) -> Io<OwnedFd> {
        let path = if rel.as_os_str().is_empty() {
            cstr(b".")?
        } else {
            cstr(rel.as_os_str().as_bytes())?
        };
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags =
            (libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
        how.resolve =
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: `how` and `path` are valid for the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.root.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        } as RawFd;
        if fd >= 0 {
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(err);
        }
        self.dir_by_components(rel)
    }

    /// Kernels before 5.6: one O_NOFOLLOW openat per component.
    fn dir_by_components(&self, rel: &Path) -> Io<OwnedFd> {
        let mut cur = self.root.try_clone()?;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(std::io::Error::from_raw_os_error(libc::EXDEV));
            };
            cur = openat_dir(&cur, &cstr(name.as_bytes())?)?;
        }
        Ok(cur)
    }

    /// The parent directory of `rel` and its last name.
    pub fn slot(&self, rel: &Path) -> Io<Slot> {
        let name = rel
            .file_name()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        Slot::new(Arc::new(self.dir(parent)?), name.as_bytes())
    }
}

fn openat_dir(dir: &OwnedFd, name: &CString) -> Io<OwnedFd> {
    // SAFETY: valid fd and C string.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    cvt(fd)?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What is at a name, without following it.
pub fn lstat_kind(s: &Slot) -> Io<Option<u32>> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, name and buffer.
    let rc = unsafe {
        libc::fstatat(
            s.dir.as_raw_fd(),
            s.name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match cvt(rc) {
        Ok(()) => Ok(Some(st.st_mode & libc::S_IFMT)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn mkdir(s: &Slot) -> Io<()> {
    cvt(unsafe { libc::mkdirat(s.dir.as_raw_fd(), s.name.as_ptr(), 0o700) })
}

/// Unlinks `s` only if it is still the file `f` (same device and inode): another entry of
/// the same name (case-folding targets, a damaged tree) may have been renamed over it.
pub fn unlink_if_same(s: &Slot, f: &File) -> Io<()> {
    use std::os::unix::fs::MetadataExt;
    let mine = f.metadata()?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, name and buffer.
    cvt(unsafe {
        libc::fstatat(
            s.dir.as_raw_fd(),
            s.name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    if st.st_dev != mine.dev() || st.st_ino != mine.ino() {
        return Ok(());
    }
    unlink(s)
}

pub fn unlink(s: &Slot) -> Io<()> {
    cvt(unsafe { libc::unlinkat(s.dir.as_raw_fd(), s.name.as_ptr(), 0) })
}

/// A fresh name beside `s`, for writing before renaming into place.
pub fn temp_beside(s: &Slot) -> Io<Slot> {
    let name = format!(".cofre-restore-{:016x}", rand::random::<u64>());
    Ok(Slot {
        dir: s.dir.clone(),
        name: cstr(name.as_bytes())?,
    })
}

/// Replaces whatever non-directory is at `to` with `from` in one step.
pub fn rename_over(from: &Slot, to: &Slot) -> Io<()> {
    cvt(unsafe {
        libc::renameat(
            from.dir.as_raw_fd(),
            from.name.as_ptr(),
            to.dir.as_raw_fd(),
            to.name.as_ptr(),
        )
    })
}

pub fn create_file(s: &Slot) -> Io<File> {
    // SAFETY: valid fd and name; the fd is owned by the File.
    let fd = unsafe {
        libc::openat(
            s.dir.as_raw_fd(),
            s.name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    cvt(fd)?;
    Ok(unsafe { File::from_raw_fd(fd) })
}

pub fn symlink(target: &[u8], s: &Slot) -> Io<()> {
    let t = cstr(target)?;
    cvt(unsafe { libc::symlinkat(t.as_ptr(), s.dir.as_raw_fd(), s.name.as_ptr()) })
}

pub fn mknod(s: &Slot, mode: u32, rdev: u64) -> Io<()> {
    cvt(unsafe {
        libc::mknodat(
            s.dir.as_raw_fd(),
            s.name.as_ptr(),
            mode,
            rdev as libc::dev_t,
        )
    })
}

pub fn link(from: &Slot, to: &Slot) -> Io<()> {
    cvt(unsafe {
        libc::linkat(
            from.dir.as_raw_fd(),
            from.name.as_ptr(),
            to.dir.as_raw_fd(),
            to.name.as_ptr(),
            0,
        )
    })
}

/// `/proc/self/fd/<dir>/<name>`: reaches the name through the held directory; the last
/// component is not followed by the l* calls used with it.
fn proc_path(s: &Slot) -> Io<CString> {
    let mut p = format!("/proc/self/fd/{}/", s.dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(s.name.as_bytes());
    cstr(&p)
}

/// Applies owner, xattrs, mode and times to the entry at `s`, never following a symlink.
/// Returns what could not be applied (the content stays: FAT, CIFS and root-squashed NFS
/// refuse some metadata). `chown` is tried by root only: others cannot give files away.
pub fn apply_metadata(s: &Slot, n: &Node, is_root: bool) -> Vec<String> {
    let mut failed = Vec::new();
    let mut note = |what: &str, r: Io<()>| {
        if let Err(e) = r {
            failed.push(format!("{what}: {e}"));
        }
    };
    let (dir, name) = (s.dir.as_raw_fd(), s.name.as_ptr());
    // Ownership first: chown clears setuid/setgid, so chmod must come after it.
    if is_root {
        note(
            "owner",
            cvt(unsafe { libc::fchownat(dir, name, n.uid, n.gid, libc::AT_SYMLINK_NOFOLLOW) }),
        );
    }
    if !n.xattrs.is_empty() {
        match proc_path(s) {
            Ok(p) => {
                for x in &n.xattrs {
                    let r = xattr::set(
                        OsStr::from_bytes(p.as_bytes()),
                        OsStr::from_bytes(&x.name),
                        &x.value,
                    );
                    note(&format!("xattr {}", String::from_utf8_lossy(&x.name)), r);
                }
            }
            Err(e) => note("xattrs", Err(e)),
        }
    }
    if n.kind != Kind::Symlink {
        note("mode", chmod_nofollow(s, n.mode & 0o7777));
    }
    let ts = times(n);
    note(
        "times",
        cvt(unsafe { libc::utimensat(dir, name, ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }),
    );
    failed
}

/// A node's (atime, mtime), as utimensat and futimens take them.
fn times(n: &Node) -> [libc::timespec; 2] {
    let t = |(sec, nsec): (i64, u32)| libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec as i64,
    };
    [t(n.atime), t(n.mtime)]
}

/// `apply_metadata` for a regular file this restore created and holds open: every call on
/// the descriptor (no path, so nothing to follow), in the same order.
pub fn apply_metadata_fd(f: &File, n: &Node, is_root: bool) -> Vec<String> {
    use xattr::FileExt;
    let mut failed = Vec::new();
    let mut note = |what: &str, r: Io<()>| {
        if let Err(e) = r {
            failed.push(format!("{what}: {e}"));
        }
    };
    let fd = f.as_raw_fd();
    // Ownership first: chown clears setuid/setgid, so chmod must come after it.
    if is_root {
        note("owner", cvt(unsafe { libc::fchown(fd, n.uid, n.gid) }));
    }
    for x in &n.xattrs {
        let r = f.set_xattr(OsStr::from_bytes(&x.name), &x.value);
        note(&format!("xattr {}", String::from_utf8_lossy(&x.name)), r);
    }
    note("mode", cvt(unsafe { libc::fchmod(fd, n.mode & 0o7777) }));
    let ts = times(n);
    note("times", cvt(unsafe { libc::futimens(fd, ts.as_ptr()) }));
    failed
}

/// chmod of the entry itself: through an O_PATH descriptor opened without following, so a
/// symlink swapped in is never followed (fchmodat has no working AT_SYMLINK_NOFOLLOW).
fn chmod_nofollow(s: &Slot, mode: u32) -> Io<()> {
    let fd = unsafe {
        libc::openat(
            s.dir.as_raw_fd(),
            s.name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    cvt(fd)?;
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
    }
    let p = cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    cvt(unsafe { libc::chmod(p.as_ptr(), mode) })
}
