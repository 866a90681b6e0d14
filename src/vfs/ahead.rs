//! What a reader walking a directory reads next: the mount pushes those files into the
//! kernel's page cache before they are asked for (`mount/push.rs`).

use super::inodes::{key_position, same_block, Entry};
use super::{ListItem, Vfs};
use crate::model::Kind;

/// A file listed after the one being read.
pub struct Next {
    pub ino: u64,
    pub size: u64,
    entry: Entry,
}

/// A directory's entries are numbered by their place in it: a run of this many numbers
/// with no entry of the directory is its end.
const MISSES: usize = 64;

/// Which files to push, and how many.
pub struct Window {
    pub files: usize,
    /// Larger files are left to the kernel's read-ahead.
    pub max_size: u64,
    pub bytes: u64,
}

impl Vfs {
    /// The directory `ino` is in, if the table holds it.
    pub fn parent_of(&self, ino: u64) -> Option<u64> {
        self.inodes.get(ino).map(|(p, _)| p)
    }

    /// The regular files listed after `ino` in its directory, in listing order.
    pub fn files_after(&self, ino: u64, w: &Window) -> Vec<Next> {
        match self.inodes.get(ino) {
            Some((parent, Entry::Node { .. })) => self.files_from(parent, ino + 1, w),
            _ => Vec::new(),
        }
    }

    /// The number the entries of `listing` (directory `dir`'s) from `at` on start at, among
    /// those `first_files` could return: entries of a hardlinked file, probed past a
    /// collision, or past the 16M-th place are numbered outside the directory's block.
    /// `u64::MAX` when none is.
    pub fn numbered_from(&self, dir: u64, listing: &[ListItem], at: usize) -> u64 {
        let block = key_position(dir, 0, b"");
        listing
            .iter()
            .skip(at)
            .filter(|i| i.is_counted() && same_block(i.attr.ino, block))
            .map(|i| i.attr.ino)
            .next()
            .unwrap_or(u64::MAX)
    }

    /// The regular files of directory `dir`, from its first, in listing order, numbered
    /// below `upto`.
    pub fn first_files(&self, dir: u64, upto: u64, w: &Window) -> Vec<Next> {
        let mut files = self.files_from(dir, key_position(dir, 0, b""), w);
        files.retain(|f| f.ino < upto);
        files
    }

    /// Files of `parent` numbered from `first` on (their numbers rise with their place:
    /// `inodes::key_position`): at most `w.files`, sizes from 1 to `w.max_size` bytes,
    /// until `w.bytes`. Entries the table does not hold (not listed, forgotten, or another
    /// directory's after a collision) are skipped.
    fn files_from(&self, parent: u64, first: u64, w: &Window) -> Vec<Next> {
        let mut out = Vec::new();
        let (mut bytes, mut misses) = (0, 0);
        for ino in first.. {
            let entry = match self.inodes.get(ino) {
                Some((p, e)) if p == parent => e,
                _ => {
                    misses += 1;
                    if misses >= MISSES {
                        break;
                    }
                    continue;
                }
            };
            misses = 0;
            let Entry::Node { meta, .. } = &entry else {
                continue;
            };
            if meta.kind != Kind::File || meta.size == 0 || meta.size > w.max_size {
                continue;
            }
            bytes += meta.size;
            out.push(Next {
                ino,
                size: meta.size,
                entry,
            });
            if out.len() >= w.files || bytes >= w.bytes {
                break;
            }
        }
        out
    }

    /// `next`'s whole content, as a READ of it would return it, without keeping its
    /// resolved chunks (it is read once).
    pub fn read_whole(&self, next: &Next) -> crate::error::Result<super::reader::ReadBuf> {
        let f = self.file_kept(next.ino, false)?;
        self.cache.read(&f, 0, next.size as u32)
    }

    /// Runs `f` while `next.ino` is held for the entry it was listed as (None if the kernel
    /// does not hold the number, or it stands for another entry now): whatever `f` hands
    /// the kernel under that number is that entry's.
    pub fn while_held<T>(&self, next: &Next, f: impl FnOnce() -> T) -> Option<T> {
        if !self.inodes.hold(next.ino, &next.entry) {
            return None;
        }
        let out = f();
        self.inodes.release(next.ino, &next.entry);
        Some(out)
    }
}
