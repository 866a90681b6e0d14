//! What a front end does with an open [`Session`]: back up, restore, verify, forget and
//! prune, keep the catalog. Each returns a typed report; printing it is the front end's.
//! The session's lock wait (`retry_lock`) applies to every operation here.

use std::path::PathBuf;

use super::{browse::SnapshotInfo, Session};
use crate::catalog::{sync, Catalog};
use crate::check::{CheckReport, ReadData};
use crate::error::Result;
use crate::forget::{ForgetOptions, ForgetReport};
use crate::ingest::{IngestOptions, IngestReport, StreamSource};
use crate::prune::{PruneOptions, PruneReport};
use crate::repair::RepairReport;
use crate::restore::RestoreReport;

/// What to restore and where.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// An id prefix or `latest`.
    pub snapshot: String,
    /// The path in the snapshot (`/`: all of it).
    pub path: String,
    /// Resolve `latest` or the prefix within this set.
    pub set: Option<String>,
    pub target: PathBuf,
    /// Memory for decoded chunks, in MiB.
    pub cache_mib: usize,
}

/// `check --against`: each side's check, and how their snapshots compare.
#[derive(Debug, serde::Serialize)]
pub struct AgainstReport {
    pub source: CheckReport,
    pub target: CheckReport,
    pub comparison: crate::check::against::Comparison,
}

impl AgainstReport {
    /// Problems found on either side (snapshots only one side holds are not problems).
    pub fn problems(&self) -> usize {
        let c = &self.comparison;
        self.source.errors.len() + self.target.errors.len() + c.errors.len() + c.differ.len()
    }
}

/// A restore's report and the snapshot it read.
#[derive(Debug, serde::Serialize)]
pub struct RestoreOutcome {
    #[serde(skip)]
    pub snapshot: SnapshotInfo,
    #[serde(flatten)]
    pub report: RestoreReport,
}

impl Session {
    /// A new snapshot. The catalog is synced first (a damaged one rebuilt, then the ingest
    /// run again, unless it read standard input, which is spent).
    pub fn ingest(&self, mut opts: IngestOptions) -> Result<IngestReport> {
        opts.retry_lock = self.opts.retry_lock;
        let retry = !matches!(opts.stream, Some(StreamSource::Stdin { .. }));
        self.healing(retry, || {
            // Synced here too, outside the lock, because `open_synced` is where a damaged
            // catalog is rebuilt; ingest syncs again (two listings) once it holds its lock.
            let mut cat = self.synced_catalog()?;
            let mut report = crate::ingest::ingest(&self.repo, &mut cat, opts.clone())?;
            let locked = crate::objlock::after_ingest(&self.repo, &report.snapshot, None);
            report.warnings.extend(locked);
            Ok(report)
        })
    }

    /// Keeps what kept snapshots need under S3 Object Lock (a repository made with
    /// `init --object-lock`): `cofre lock extend`.
    pub fn lock_extend(
        &self,
        opts: &crate::objlock::ExtendOptions,
    ) -> Result<crate::objlock::ExtendReport> {
        crate::objlock::extend(&self.repo, opts)
    }

    /// Restores `opts.path` of a snapshot under `opts.target`, holding a shared lock. Entries
    /// that could not be restored are in the report's `errors`; the caller decides what
    /// that means (the CLI exits 1).
    pub fn restore(&self, opts: &RestoreOptions) -> Result<RestoreOutcome> {
        let row = self.healing(true, || {
            self.reading_catalog()?
                .resolve(&opts.snapshot, opts.set.as_deref())
        })?;
        let _lock = self.read_lock("restore")?;
        let report = crate::restore::restore_with_cache(
            &self.repo,
            &row.id,
            &opts.path,
            &opts.target,
            opts.cache_mib.max(1).saturating_mul(1 << 20),
        )?;
        Ok(RestoreOutcome {
            snapshot: SnapshotInfo::from(&row),
            report,
        })
    }

    /// Copies snapshots into `target`, a repository made with `init --copy-params-from`
    /// this one (`cofre copy`).
    pub fn copy_to(
        &self,
        target: &Session,
        mut opts: crate::copy::CopyOptions,
    ) -> Result<crate::copy::CopyReport> {
        opts.retry_lock = self.opts.retry_lock;
        crate::copy::copy(&self.repo, &target.repo, &opts)
    }

    /// Verifies the repository's structure, and the data `read` says, under a shared lock
    /// (a prune running meanwhile would make packs look missing).
    /// The result is also kept on this machine ([`Session::last_check`]).
    pub fn check(&self, read: ReadData) -> Result<CheckReport> {
        let _lock = self.read_lock("check")?;
        let record_read = read;
        let mut report = crate::check::check(&self.repo, read)?;
        let mut index = self.wal_index()?;
        let oldest = |set: &str| self.oldest_base_backup(set);
        let wal = crate::wal::check::check(&self.repo, &mut index, read == ReadData::All, &oldest)?;
        if wal.objects > 0 {
            report.errors.extend(wal.errors.iter().cloned());
            report.wal = Some(wal);
        }
        let rec = crate::check::CheckRecord::new(&report, &record_read, crate::ingest::now());
        if let Err(e) = rec.save(&self.state_dir()) {
            tracing::warn!("the check's result is not kept for `cofre serve`: {e}");
        }
        Ok(report)
    }

    /// `check --against`: this repository and `other` (its copy, sharing its keys) each
    /// checked as [`Session::check`] does, then their snapshots compared by id, all under a
    /// shared lock on both (no forget or prune changes either side between the checks and
    /// the comparison).
    pub fn check_against(&self, other: &Session, read: ReadData) -> Result<AgainstReport> {
        if self.repo.config.id == other.repo.config.id {
            return Err(crate::error::Error::InvalidArgument(format!(
                "{} is this repository itself: compare with its copy",
                other.repo.store().location()
            )));
        }
        let _locks = (self.read_lock("check")?, other.read_lock("check")?);
        let source = self.check(read)?;
        let target = other.check(read)?;
        let comparison = crate::check::against::compare(&self.repo, &other.repo)?;
        Ok(AgainstReport {
            source,
            target,
            comparison,
        })
    }

    /// The last check run on this machine, if one was kept.
    pub fn last_check(&self) -> Option<crate::check::CheckRecord> {
        crate::check::CheckRecord::load(&self.state_dir())
    }

    /// Removes snapshots by policy or id. The catalog is not touched: call
    /// [`Session::synced_catalog`] afterwards (the CLI does, once the report is printed, so
    /// a sync that fails cannot hide what was removed) and the removed snapshots leave this
    /// host's catalog and its mounts.
    pub fn forget(&self, mut opts: ForgetOptions) -> Result<ForgetReport> {
        opts.retry_lock = self.opts.retry_lock;
        crate::forget::forget(&self.repo, &opts)
    }

    /// Deletes unreferenced data, then brings this host's catalog up to date (it forgets
    /// the deleted index objects at once).
    pub fn prune(&self, mut opts: PruneOptions) -> Result<PruneReport> {
        opts.retry_lock = self.opts.retry_lock;
        let report = crate::prune::prune(&self.repo, &opts)?;
        if !opts.dry_run {
            drop(self.synced_catalog()?);
        }
        Ok(report)
    }

    /// Removes stale locks (or, with `all`, every lock): the names removed.
    pub fn unlock(&self, all: bool) -> Result<Vec<String>> {
        crate::repo::lock::unlock(&self.repo, all)
    }

    /// Recreates the catalog from the repository alone.
    pub fn catalog_rebuild(&self) -> Result<sync::SyncReport> {
        sync::rebuild(&self.catalog, &self.repo).map(|(_, r)| r)
    }

    /// Adds what the catalog does not know yet and drops what the repository no longer has.
    pub fn catalog_sync(&self) -> Result<sync::SyncReport> {
        let mut cat = Catalog::open(&self.catalog)?;
        sync::sync(&mut cat, &self.repo)
    }

    /// Rebuilds index objects for packs no readable index lists (adds, deletes nothing).
    pub fn repair_index(&self) -> Result<RepairReport> {
        crate::repair::repair_index(&self.repo)
    }

    /// Shows every snapshot as a read-only filesystem at `mountpoint` until it is unmounted.
    /// `disk_cache_mib`: the on-disk cache of fetched data, for a remote repository (0: none).
    /// `file_cache_mib`: the cache of decoded files (0: none; plaintext, see
    /// docs/mount.md "The file cache").
    pub fn mount(
        &self,
        mountpoint: &std::path::Path,
        mut opts: crate::mount::MountOptions,
        disk_cache_mib: u64,
        file_cache_mib: u64,
    ) -> Result<()> {
        if self.opts.is_remote() && disk_cache_mib > 0 {
            let dir = self.state_dir().join("blobs");
            opts.disk_cache = Some((dir, disk_cache_mib * 1024 * 1024));
        }
        if file_cache_mib > 0 {
            let dir = self.state_dir().join("files");
            opts.file_cache = Some((dir, file_cache_mib * 1024 * 1024));
        }
        crate::mount::mount(self.repo.clone(), &self.catalog, mountpoint, opts)
    }

    /// The repository's key files; `current` marks the one this session opened.
    pub fn keys(&self) -> Result<Vec<crate::repo::keyfiles::KeyEntry>> {
        crate::repo::keyfiles::list(&self.repo)
    }

    /// Adds a key for `password`: its id.
    pub fn add_key(&self, password: &[u8]) -> Result<String> {
        crate::repo::keyfiles::add(&self.repo, password)
    }

    /// Removes a key (never the one in use, never the last): its full id.
    pub fn remove_key(&self, id_prefix: &str) -> Result<String> {
        crate::repo::keyfiles::remove(&self.repo, id_prefix)
    }

    /// Replaces the key in use by one for `password`: the new key's id.
    pub fn change_password(&self, password: &[u8]) -> Result<String> {
        crate::repo::keyfiles::passwd(&self.repo, password)
    }

    /// The drills stored in the repository (every machine's), oldest first.
    pub fn drill_history(&self) -> Result<Vec<crate::drill::record::DrillRecord>> {
        crate::drill::record::history(&self.repo)
    }
}
