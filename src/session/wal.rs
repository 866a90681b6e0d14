//! PostgreSQL WAL archiving and point-in-time recovery through a [`Session`] (`crate::wal`
//! has the building blocks; `wal-push` itself needs no session: it only writes the spool).

use std::path::Path;

use super::Session;
use crate::error::Result;
use crate::wal::{
    fetch, index, pitr, FlushReport, PitrOptions, PitrReport, Source, Spool, WalIndex,
};

impl Session {
    /// This machine's index of the repository's WAL (beside the catalog; derived from the
    /// store, not synced by this call).
    pub fn wal_index(&self) -> Result<WalIndex> {
        WalIndex::open(&index::path_for(self.catalog_path()))
    }

    /// Moves what waits in `spool` into the repository as `set`'s WAL.
    pub fn wal_flush(&self, spool: &Spool, set: &str) -> Result<FlushReport> {
        let mut index = self.wal_index()?;
        spool.flush(self.repository(), &mut index, set)
    }

    /// The prefetch directory of `set` for this repository (`wal-fetch` reads it before it
    /// opens a session).
    pub fn wal_prefetch_dir(
        location: &str,
        set: &str,
        catalog: Option<&Path>,
    ) -> std::path::PathBuf {
        fetch::prefetch_dir(location, set, catalog)
    }

    /// Fetches WAL file `name` of `set` into `dest`, and `ahead` following files into the
    /// prefetch directory. `Error::WalNotFound` when the archive does not have it.
    pub fn wal_fetch(&self, set: &str, name: &str, dest: &Path, ahead: usize) -> Result<Source> {
        let mut index = self.wal_index()?;
        let catalog = self.options().catalog.as_deref();
        let prefetch = fetch::prefetch_dir(self.options().url()?, set, catalog);
        let req = fetch::Request {
            set,
            name,
            dest,
            prefetch: &prefetch,
            ahead,
        };
        fetch::from_store(self.repository(), &mut index, &req)
    }

    /// Every WAL file of `set` the repository holds, by name (the index synced first).
    pub fn wal_files(&self, set: &str) -> Result<Vec<index::Located>> {
        let mut index = self.wal_index()?;
        index.sync(self.repository())?;
        index.all(set)
    }

    /// The base backups of `set` usable with its WAL, newest first.
    pub fn base_backups(&self, set: &str) -> Result<Vec<pitr::BaseBackup>> {
        let mut index = self.wal_index()?;
        pitr::base_backups(self, &mut index, set, None)
    }

    /// Restores a data directory for point-in-time recovery (`cofre pitr`).
    pub fn pitr(&self, opts: &PitrOptions) -> Result<PitrReport> {
        let mut index = self.wal_index()?;
        pitr::pitr(self, &mut index, opts)
    }

    /// Deletes `set`'s WAL that no kept base backup can replay (`cofre wal prune`; `cofre
    /// run` does it after a prune of the set).
    pub fn wal_prune(
        &self,
        set: &str,
        dry_run: bool,
    ) -> Result<crate::wal::retention::WalPruneReport> {
        let mut index = self.wal_index()?;
        crate::wal::retention::prune(self, &mut index, set, dry_run)
    }

    /// The WAL file the oldest base backup of `set` starts in (None: no base backup).
    pub fn oldest_base_backup(&self, set: &str) -> Result<Option<String>> {
        crate::wal::retention::oldest_start(self, set, false)
    }
}
