//! Directory listings served to the kernel: by handle (opendir, readdir, releasedir), or
//! by inode when the kernel sends no opendir (`listing_of`). Entries the kernel never
//! looked up are dropped with their listing.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::inodes::Entry;
use super::{DirHandle, ListItem, Listing, Vfs};
use crate::error::{Error, Result};
use crate::model::Kind;

impl Vfs {
    /// A handle on directory `ino`, and whether its listing never changes (a snapshot's
    /// directories; the layout's change as snapshots come and go). The listing is made on
    /// the first `listing`: a kernel that still has it cached never asks.
    pub fn opendir(&self, ino: u64) -> Result<(u64, bool)> {
        let (_, e) = self.entry(ino)?;
        let immutable = match &e {
            Entry::Virtual { .. } => false,
            Entry::SnapRoot { .. } => true,
            Entry::Node { meta, .. } if meta.kind == Kind::Dir => true,
            _ => {
                return Err(Error::io(
                    "opendir",
                    std::io::Error::from_raw_os_error(libc::ENOTDIR),
                ))
            }
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs
            .lock()
            .insert(fh, DirHandle { ino, listing: None });
        Ok((fh, immutable))
    }

    /// The listing of handle `fh`, `.` and `..` first, made once per handle.
    pub fn listing(&self, fh: u64) -> Result<Listing> {
        let ino = match self.dirs.lock().get(&fh) {
            Some(DirHandle {
                listing: Some(l), ..
            }) => return Ok(l.clone()),
            Some(h) => h.ino,
            None => {
                return Err(Error::io(
                    "readdir",
                    std::io::Error::from_raw_os_error(libc::EBADF),
                ))
            }
        };
        let all = self.make_listing(ino)?;
        if let Some(h) = self.dirs.lock().get_mut(&fh) {
            h.listing = Some(all.clone());
        }
        Ok(all)
    }

    /// The listing of directory `ino` read from `offset`, when the kernel sends no opendir
    /// (`FUSE_NO_OPENDIR_SUPPORT`: two round trips less per directory, and no handle).
    /// Returns the listing, the base of its offsets and the index to go on from. A read
    /// from offset 0 makes it afresh, since the layout's directories change, under a new
    /// number that the offsets handed out carry in their high 32 bits; a
    /// read going on from a later offset gets that same listing, even when another reader
    /// of the directory started a newer one meanwhile. Kept until its end was served
    /// (the request at or past it lets it go, as a releasedir would) or, for a reader
    /// that stopped early, until evicted; a listing evicted mid-read is made again.
    pub fn listing_of(&self, ino: u64, offset: u64) -> Result<(Listing, u64, usize)> {
        let (number, at) = if offset == 0 {
            (
                self.next_listing.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff,
                0,
            )
        } else {
            ((offset >> 32) as u32, (offset & 0xffff_ffff) as usize)
        };
        let base = (number as u64) << 32;
        let key = (ino, number);
        let kept = self.by_ino.lock().get(&key).cloned();
        let listing = match kept {
            Some(l) => l,
            None => {
                let l = self.make_listing(ino)?;
                if let Some((k, old)) = self.by_ino.lock().push(key, l.clone()) {
                    if k != key {
                        self.drop_unlooked(&old);
                    }
                }
                l
            }
        };
        if at >= listing.len() {
            if let Some(l) = self.by_ino.lock().pop(&key) {
                self.drop_unlooked(&l);
            }
        }
        Ok((listing, base, at))
    }

    /// After the catalog was replaced: listings being read are made again.
    pub(super) fn drop_listings(&self) {
        let all: Vec<Listing> = {
            let mut by_ino = self.by_ino.lock();
            let all = by_ino.iter().map(|(_, l)| l.clone()).collect();
            by_ino.clear();
            all
        };
        for l in all {
            self.drop_unlooked(&l);
        }
    }

    /// `.`, `..` and the entries of directory `ino`.
    fn make_listing(&self, ino: u64) -> Result<Listing> {
        let me = self.getattr(ino)?;
        let parent = self
            .getattr(self.parent(ino))
            .unwrap_or_else(|_| me.clone());
        let dot = |name: &[u8], attr| ListItem {
            name: name.to_vec(),
            attr,
            counted: None,
        };
        let mut all = vec![dot(b".", me), dot(b"..", parent)];
        all.extend(self.readdir(ino)?);
        Ok(Arc::new(all))
    }

    /// Entries the kernel never looked up are dropped with their listing.
    pub fn releasedir(&self, fh: u64) {
        if let Some(listing) = self.dirs.lock().remove(&fh).and_then(|h| h.listing) {
            self.drop_unlooked(&listing);
        }
    }

    fn drop_unlooked(&self, listing: &Listing) {
        let listed = listing.iter().filter(|i| i.counted.is_some());
        self.inodes.drop_unreferenced(listed.map(|i| i.attr.ino));
    }
}
