//! Snapshots coming and going: the layout (sets, dates, `latest`, `ids`) read again from
//! the catalog, what the kernel must forget when it changed, and the gate that keeps a
//! snapshot with xattrs off a mount that told the kernel there are none.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::layout::{self, Layout};
use super::{virtual_ino, Invalidations, Vfs};
use crate::catalog::{Catalog, SnapshotRow};
use crate::error::{Error, Result};

impl Vfs {
    /// Re-reads the snapshot list from the catalog; returns what the kernel must forget
    /// (nothing when the layout did not change).
    pub fn refresh(&self) -> Result<Invalidations> {
        // Taken first: when a switch to a replaced catalog happens below or meanwhile, the
        // kernel is told every name that changed since (more than needed is harmless).
        let prev = self.layout.read().clone();
        self.follow_replaced_catalog()?;
        // Under the switch lock, on a connection to the file the inodes are of: otherwise a
        // FUSE thread switching to a replaced catalog meanwhile (`remap.rs`) could have its
        // layout overwritten by one built from the old file.
        let _switch = self.switch.read();
        let cat = self.pool.get()?;
        if cat.generation()? != *self.generation.lock() {
            return Err(Error::CatalogReplaced);
        }
        let snaps = self.shown_snapshots(&cat)?;
        let new = Layout::build(&snaps, self.local_time, Some(&self.layout.read()));
        let changed = layout::changes(&prev, &new);
        if !changed.is_empty() {
            *self.layout.write() = Arc::new(new);
            self.layout_changes.fetch_add(1, Ordering::Relaxed);
        }
        let mut inv = Invalidations::default();
        for (path, names) in changed {
            let dir = virtual_ino(&path);
            inv.dirs.push(dir);
            inv.entries
                .extend(names.into_iter().map(|n| (dir, n.into_bytes())));
        }
        // `latest` first: whoever sees a new snapshot directory must see `latest` moved.
        inv.entries.sort_by_key(|(_, n)| n.as_slice() != b"latest");
        Ok(inv)
    }

    /// The snapshots the layout shows: the catalog's, of the mounted sets. On a mount that
    /// told the kernel there are no xattrs, the catalog is checked after the list is
    /// read, so the check covers every snapshot in it (each was committed before). A
    /// snapshot with xattrs is an error and sets the gate, which tells the refresher to end
    /// the mount; a failed check is an error too. Either way the layout stays as it was.
    pub(super) fn shown_snapshots(&self, cat: &Catalog) -> Result<Vec<SnapshotRow>> {
        let mut snaps = cat.snapshots(None)?;
        if let Some(gate) = &self.xattr_gate {
            if cat.any_xattrs()? {
                gate.store(true, Ordering::SeqCst);
                return Err(Error::InvalidArgument(
                    "a snapshot with extended attributes arrived; not shown".into(),
                ));
            }
        }
        if !self.sets.is_empty() {
            snaps.retain(|s| self.sets.contains(&s.manifest.set));
        }
        Ok(snaps)
    }
}
