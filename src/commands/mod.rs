//! Command implementations behind the CLI: open the repository and catalog, run, print.

mod config;
pub mod drill;
mod forget;
mod key;
mod listing;
mod prune;
mod run;
pub mod schedule;
pub mod stats;

pub use config::config;
pub use forget::forget;
pub use key::{key, KeyAction};
pub use listing::{ls, snapshots};
pub use prune::{prune, unlock};
pub use run::{metrics, run};

use std::path::PathBuf;

use tokio::runtime::Handle;

use crate::catalog::{self, sync, Catalog};
use crate::error::{Error, Result, EXIT_PARTIAL};
use crate::ingest::{self, IngestOptions};
use crate::password::PasswordSource;
use crate::repo::file::FileType;
use crate::repo::lock::Lock;
use crate::repo::Repository;

/// What every command needs: where the repository is, how to unlock it, where the catalog is.
pub struct Context {
    pub rt: Handle,
    pub repo: Option<String>,
    pub password: PasswordSource,
    pub catalog: Option<PathBuf>,
    pub json: bool,
    /// How long to wait for a conflicting lock.
    pub retry_lock: std::time::Duration,
    /// Reading commands take no lock (a repository this user cannot write to).
    pub no_lock: bool,
}

impl Context {
    /// The shared lock of a reading command, unless `--no-lock`.
    fn read_lock(&self, repo: &Repository, purpose: &str) -> Result<Option<Lock>> {
        if self.no_lock {
            return Ok(None);
        }
        Lock::acquire(repo, false, purpose, self.retry_lock).map(Some)
    }
}

/// `30s`, `10m`, `2h` or plain seconds, for `--retry-lock`.
pub fn parse_wait(s: &str) -> std::result::Result<std::time::Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 30s, 10m or 2h"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{s:?}: unit must be s, m or h")),
    };
    Ok(std::time::Duration::from_secs(n * mult))
}

impl Context {
    pub fn url(&self) -> Result<&str> {
        self.repo.as_deref().ok_or(Error::NoRepositoryGiven)
    }

    pub fn open_repo(&self) -> Result<Repository> {
        self.open_repo_with(crate::store::s3::S3Options::default())
    }

    pub fn is_remote(&self) -> bool {
        self.repo.as_deref().is_some_and(|u| u.starts_with("s3://"))
    }

    pub fn open_repo_with(&self, s3opts: crate::store::s3::S3Options) -> Result<Repository> {
        let store = crate::store::open_with(self.url()?, &self.rt, s3opts)?;
        // Check the repository exists before asking for a password.
        match crate::repo::block(&self.rt, store.head(&FileType::Config.key(""))) {
            Err(crate::store::StoreError::NotFound(_)) => {
                return Err(Error::NoRepository(store.location()))
            }
            r => r?,
        };
        let pw = self.password.get(false)?;
        Repository::open(store, self.rt.clone(), &pw)
    }

    pub fn catalog_path(&self, repo: &Repository) -> PathBuf {
        self.catalog
            .clone()
            .unwrap_or_else(|| catalog::default_path(&repo.config.id))
    }

    /// Repository plus an up-to-date catalog.
    /// For reading commands (`snapshots`, `ls`, `restore`): when the sync itself fails (a
    /// listing or a read fails part-way), they go on with what the catalog already knew,
    /// with a warning — a half-done sync never removes anything from it.
    pub fn open_synced(&self) -> Result<(Repository, Catalog)> {
        let repo = self.open_repo()?;
        let path = self.catalog_path(&repo);
        let cat = match sync::open_synced(&path, &repo) {
            Ok(cat) => cat,
            Err(e) if !sync::is_damaged(&e) => {
                tracing::warn!("catalog not brought up to date ({e}); showing what it knew");
                Catalog::open(&path)?
            }
            Err(e) => return Err(e),
        };
        Ok((repo, cat))
    }

    pub fn print_json<T: serde::Serialize>(&self, v: &T) -> Result<()> {
        let s =
            serde_json::to_string_pretty(v).map_err(|e| Error::corrupt("json", e.to_string()))?;
        println!("{s}");
        Ok(())
    }
}

pub fn init(ctx: &Context, compression: Option<crate::repo::compress::Compression>) -> Result<i32> {
    // The repository's own directory is made by its first write, durably; a missing
    // parent is an error, not made: `init --repo /mnt/usb/backups` with the disk not
    // mounted must not put the repository on the root filesystem.
    let home = std::env::var_os("HOME");
    if let crate::store::Location::Local(dir) = crate::store::Location::parse(ctx.url()?, home)? {
        if let Some(parent) = dir.parent().filter(|p| !p.is_dir()) {
            return Err(Error::InvalidArgument(format!(
                "{} does not exist: create it first (or check that its disk is mounted)",
                parent.display()
            )));
        }
    }
    let store = crate::store::open(ctx.url()?, &ctx.rt)?;
    let pw = ctx.password.get(true)?;
    if pw.is_empty() {
        return Err(Error::InvalidArgument(
            "an empty password protects nothing".into(),
        ));
    }
    let repo = Repository::init_with(
        store,
        ctx.rt.clone(),
        &pw,
        compression.unwrap_or(crate::repo::compress::Compression::DEFAULT),
    )?;
    if ctx.json {
        ctx.print_json(
            &serde_json::json!({"id": repo.config.id, "location": repo.store().location()}),
        )?;
    } else {
        println!(
            "created repository {} at {}",
            repo.config.id,
            repo.store().location()
        );
        println!("keep the password safe: without it the data cannot be recovered");
    }
    Ok(0)
}

/// Runs `f`, a command that reads the catalog. A catalog damaged inside (pages
/// `open_synced` did not touch) fails it with SQLITE_CORRUPT: that is said once, the catalog
/// is rebuilt from the store beside the damaged file and put in its place, and `f` runs once
/// more — unless `retry` is false (its input, stdin, is spent). The catalog is a cache.
pub fn healing<T>(ctx: &Context, retry: bool, f: impl Fn() -> Result<T>) -> Result<T> {
    match f() {
        Err(e) if sync::is_damaged(&e) => {
            let repo = ctx.open_repo()?;
            let path = ctx.catalog_path(&repo);
            tracing::warn!(
                "the catalog {} is damaged ({e}); rebuilding it from the repository",
                path.display()
            );
            sync::rebuild(&path, &repo)?;
            match retry {
                true => f(),
                false => Err(e),
            }
        }
        r => r,
    }
}

pub fn run_ingest(ctx: &Context, opts: IngestOptions) -> Result<i32> {
    let repo = ctx.open_repo()?;
    let retry = !matches!(opts.stream, Some(ingest::StreamSource::Stdin { .. }));
    let report = healing(ctx, retry, || {
        // Synced here too, outside the lock, because `open_synced` is where a damaged
        // catalog is rebuilt; ingest syncs again (two listings) once it holds its lock.
        let mut cat = sync::open_synced(&ctx.catalog_path(&repo), &repo)?;
        ingest::ingest(&repo, &mut cat, opts.clone())
    })?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        let s = &report.summary;
        println!(
            "snapshot {} saved (set {}, {})",
            &report.snapshot[..8],
            report.set,
            report.time
        );
        println!(
            "files: {} new, {} changed, {} unchanged; dirs: {}",
            s.new_files, s.changed_files, s.unchanged_files, s.dirs
        );
        println!(
            "read {} bytes, added {} bytes to the repository (after dedup and compression), {:.2}s",
            s.bytes_read, s.bytes_added, report.duration_secs
        );
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(if report.partial { EXIT_PARTIAL } else { 0 })
}

pub fn restore(
    ctx: &Context,
    spec: &str,
    set: Option<&str>,
    target: &std::path::Path,
    cache_mib: usize,
) -> Result<i32> {
    let (repo, cat) = ctx.open_synced()?;
    let (snap, path) = split_spec(spec);
    let row = cat.resolve(snap, set)?;
    let repo = std::sync::Arc::new(repo);
    // Shared: a prune does not delete what we are reading (the mount takes none: it runs
    // for days and would hold off prune forever; docs/prune.md).
    let _lock = ctx.read_lock(&repo, "restore")?;
    let report = crate::restore::restore_with_cache(
        &repo,
        &row.id,
        path,
        target,
        cache_mib.saturating_mul(1 << 20),
    )?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        println!(
            "restored {} files, {} directories, {} bytes from {} to {}",
            report.files,
            report.dirs,
            report.bytes,
            &row.id[..8],
            target.display()
        );
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if let Some(first) = report.errors.first() {
        return Err(Error::RestoreIncomplete {
            count: report.errors.len(),
            first: first.clone(),
        });
    }
    Ok(if report.warnings.is_empty() {
        0
    } else {
        EXIT_PARTIAL
    })
}

/// `SNAPSHOT[:PATH]` → (snapshot, path), path defaulting to `/`.
pub fn split_spec(spec: &str) -> (&str, &str) {
    match spec.split_once(':') {
        Some((s, p)) if !p.is_empty() => (s, p),
        Some((s, _)) => (s, "/"),
        None => (spec, "/"),
    }
}

pub fn catalog_rebuild(ctx: &Context) -> Result<i32> {
    let repo = ctx.open_repo()?;
    let started = std::time::Instant::now();
    let (_, report) = sync::rebuild(&ctx.catalog_path(&repo), &repo)?;
    report_sync(ctx, &report, started)
}

pub fn catalog_sync(ctx: &Context) -> Result<i32> {
    let repo = ctx.open_repo()?;
    let started = std::time::Instant::now();
    let mut cat = Catalog::open(&ctx.catalog_path(&repo))?;
    let report = sync::sync(&mut cat, &repo)?;
    report_sync(ctx, &report, started)
}

fn report_sync(ctx: &Context, r: &sync::SyncReport, started: std::time::Instant) -> Result<i32> {
    if ctx.json {
        ctx.print_json(r)?;
    } else {
        println!(
            "catalog: {} snapshots added, {} removed, {} trees, {} index files added, {} removed, {:.2}s",
            r.snapshots_added,
            r.snapshots_removed,
            r.trees_added,
            r.index_files_added,
            r.index_files_removed,
            started.elapsed().as_secs_f64()
        );
    }
    let mut unreadable: Vec<String> = r
        .snapshots_skipped
        .iter()
        .map(|s| FileType::Snapshot.key(s))
        .collect();
    unreadable.extend(r.index_files_skipped.iter().map(|s| FileType::Index.key(s)));
    if unreadable.is_empty() {
        Ok(0)
    } else {
        Err(Error::corrupt(
            "repository",
            format!(
                "{} object(s) could not be read and were skipped: {}; see `cofre check`",
                unreadable.len(),
                unreadable.join(", ")
            ),
        ))
    }
}

pub fn repair_index(ctx: &Context) -> Result<i32> {
    let repo = ctx.open_repo()?;
    let r = crate::repair::repair_index(&repo)?;
    if ctx.json {
        ctx.print_json(&r)?;
    } else {
        println!(
            "{} packs, {} not indexed: {} blobs re-indexed in {} new index object(s)",
            r.packs, r.packs_reindexed, r.blobs_reindexed, r.index_files_written
        );
        if r.packs_doomed > 0 {
            eprintln!(
                "{} unindexed pack(s) left alone: a prune announced it deletes them (the next `cofre prune` finishes that)",
                r.packs_doomed
            );
        }
        for p in &r.damaged_packs {
            eprintln!("error: {p}: header unreadable, its data cannot be re-indexed");
        }
        if let Some(first) = r.archived_packs.first() {
            eprintln!(
                "warning: {} pack(s) left unindexed, in an archive storage class (first: {first}): restore them from the archive tier (`aws s3api restore-object`), then run `cofre repair index` again",
                r.archived_packs.len()
            );
        }
    }
    if r.damaged_packs.is_empty() {
        Ok(match r.archived_packs.is_empty() {
            true => 0,
            false => EXIT_PARTIAL,
        })
    } else {
        Err(Error::corrupt(
            "repository",
            format!("{} pack(s) are damaged", r.damaged_packs.len()),
        ))
    }
}

/// `disk_cache_mib`: size of the on-disk blob cache used for remote repositories.
pub fn mount(
    ctx: &Context,
    mountpoint: &std::path::Path,
    mut opts: crate::mount::MountOptions,
    disk_cache_mib: u64,
) -> Result<i32> {
    // A reader waits at most ~3 x 15 s for a dead server, then gets EIO.
    let s3opts = crate::store::s3::S3Options {
        attempts: 3,
        attempt_timeout: std::time::Duration::from_secs(15),
        ..Default::default()
    };
    let repo = ctx.open_repo_with(s3opts)?;
    let cat = ctx.catalog_path(&repo);
    if ctx.is_remote() && disk_cache_mib > 0 {
        let dir = catalog::cache_dir(&repo.config.id).join("blobs");
        opts.disk_cache = Some((dir, disk_cache_mib * 1024 * 1024));
    }
    crate::mount::mount(repo, &cat, mountpoint, opts)?;
    Ok(0)
}

pub fn check(ctx: &Context, read: crate::check::ReadData) -> Result<i32> {
    let repo = ctx.open_repo()?;
    // Shared: a prune running meanwhile would make packs look missing.
    let lock = ctx.read_lock(&repo, "check")?;
    let r = crate::check::check(&repo, read)?;
    drop(lock);
    if ctx.json {
        ctx.print_json(&r)?;
    } else {
        println!(
            "{} snapshots, {} trees, {} chunks, {} packs ({} read, {} not indexed: leftovers for prune)",
            r.snapshots, r.trees, r.chunks, r.packs, r.packs_read, r.unindexed_packs
        );
        for e in &r.errors {
            eprintln!("error: {e}");
        }
        if r.errors.is_empty() {
            println!("no errors");
        }
    }
    if r.errors.is_empty() {
        Ok(0)
    } else {
        Err(Error::CheckFailed(r.errors.len()))
    }
}
