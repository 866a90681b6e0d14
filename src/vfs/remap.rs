//! A catalog replaced under a running mount (`catalog rebuild`, a deleted and recreated
//! catalog): its row ids now mean other rows, and the kernel still holds inodes that carry
//! the old ones. Detected by the catalog's generation; every inode is then looked up again
//! by snapshot and name, under an exclusive lock, so no request mixes an old row id with
//! the new file.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::inodes::Entry;
use super::layout::{Child, Layout, SnapRef};
use super::Vfs;
use crate::catalog::Catalog;
use crate::error::{Error, Result};

impl Vfs {
    /// Runs a request that pairs inode row ids with catalog queries. When it meets the
    /// replaced catalog first (a new connection opened on the new file, before the refresher
    /// noticed), the mount switches at once and the request runs again.
    pub(super) fn on_current_catalog<T>(&self, f: impl Fn() -> Result<T>) -> Result<T> {
        match f() {
            Err(Error::CatalogReplaced) => {
                self.follow_replaced_catalog()?;
                f()
            }
            Err(e) if crate::catalog::sync::is_damaged(&e) => {
                self.note_damaged_catalog(&e);
                Err(e)
            }
            r => r,
        }
    }

    /// Says once that the catalog is damaged and what happens next; the refresher
    /// (`mount::refresher`) rebuilds it. Requests answer EIO until the switch.
    pub fn note_damaged_catalog(&self, e: &Error) {
        use std::sync::atomic::Ordering;
        if !self.catalog_damaged.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "the catalog {} is damaged ({e}); rebuilding it from the repository beside it, the mount switches to it when done",
                self.pool.path().display()
            );
        }
    }

    /// Whether a request found the catalog damaged since the last call.
    pub fn take_damaged_catalog(&self) -> bool {
        self.catalog_damaged
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the catalog file is another one than the mount has been reading; then
    /// switches to it (connections, inodes) and returns true.
    pub(super) fn follow_replaced_catalog(&self) -> Result<bool> {
        let fresh = Catalog::open(self.pool.path())?;
        let now = fresh.generation()?;
        if *self.generation.lock() == now {
            return Ok(false);
        }
        let _switch = self.switch.write();
        // Another thread may have switched while this one waited for the lock.
        if *self.generation.lock() == now {
            return Ok(true);
        }
        // Read before anything is switched: when these are refused (`shown_snapshots`),
        // the pool's connections still read the old file, which the inodes' row ids are of.
        let snaps = self.shown_snapshots(&fresh)?;
        tracing::warn!("the catalog was replaced under the mount; re-resolving its inodes");
        self.pool.reset();
        self.pool.expect_generation(now.clone());
        let cat = self.pool.get()?;
        let layout = Layout::build(&snaps, self.local_time, Some(&self.layout.read()));
        self.inodes.remap(|e, parent| match e {
            Entry::Virtual { .. } | Entry::Link { .. } => Some(e.clone()),
            Entry::SnapRoot { snap } => {
                new_snap(&layout, &snap.id).map(|snap| Entry::SnapRoot { snap })
            }
            Entry::Node { meta, .. } => {
                let (snap, tree) = Vfs::snap_and_tree(parent)?;
                let row = cat.child(tree, &meta.name).ok().flatten()?;
                Some(Entry::Node {
                    snap,
                    rowid: row.rowid,
                    meta: meta.clone(),
                    subtree: row.subtree_rowid,
                })
            }
        });
        // Row ids of the old file number nothing in the new one.
        self.first_rows.lock().clear();
        self.files.lock().clear();
        self.listed.lock().clear();
        *self.layout.write() = Arc::new(layout);
        self.layout_changes.fetch_add(1, Ordering::Relaxed);
        self.drop_listings();
        *self.generation.lock() = now;
        Ok(true)
    }
}

fn new_snap(layout: &Layout, id: &str) -> Option<Arc<SnapRef>> {
    layout
        .dirs
        .values()
        .flat_map(|d| d.values())
        .find_map(|c| match c {
            Child::Snapshot(s) if s.id == id => Some(s.clone()),
            _ => None,
        })
}
