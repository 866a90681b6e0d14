//! The library's front door: open a repository from one options struct ([`OpenOptions`]),
//! then list, browse, restore and back up through a [`Session`]. Every front end (the CLI in
//! `bin/cofre/`, a web server, `copy`) goes through it, so the rules below are written once:
//! when to ask for the password, how the catalog is brought up to date and what happens when
//! that fails, which lock a reading command takes.

pub(crate) mod browse;
mod contents;
mod ops;
mod wal;

pub(crate) use browse::show_path;
pub use browse::{components, Browse, Entry, SnapshotInfo};
pub use contents::{Contents, FileReader};
pub use ops::{AgainstReport, RestoreOptions, RestoreOutcome};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::catalog::{self, sync, Catalog};
use crate::error::{Error, Result};
use crate::password::PasswordSource;
use crate::repo::file::FileType;
use crate::repo::lock::Lock;
use crate::repo::Repository;
use crate::store::s3::S3Options;

/// Where the repository is, how to unlock it, where its catalog lives.
#[derive(Clone, Default)]
pub struct OpenOptions {
    /// A local path, `~/path`, `file:///path` or `s3://bucket/prefix`.
    pub repo: Option<String>,
    pub password: PasswordSource,
    /// The catalog database (default: `$XDG_CACHE_HOME/cofre/<repo id>/catalog.db`).
    pub catalog: Option<PathBuf>,
    /// How long to wait for a conflicting lock (a running prune) to go away.
    pub retry_lock: Duration,
    /// Reading operations take no lock (a repository this user cannot write to).
    pub no_lock: bool,
    /// The runtime store calls run on (default: one the session makes and owns).
    pub runtime: Option<Handle>,
}

impl OpenOptions {
    /// A repository at `location`, unlocked with `password`.
    pub fn new(location: impl Into<String>, password: impl Into<String>) -> OpenOptions {
        OpenOptions {
            repo: Some(location.into()),
            password: PasswordSource {
                env: Some(password.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    pub fn url(&self) -> Result<&str> {
        self.repo.as_deref().ok_or(Error::NoRepositoryGiven)
    }

    /// Whether the repository is in object storage (prices, disk caches).
    pub fn is_remote(&self) -> bool {
        self.repo
            .as_deref()
            .is_some_and(|u| ["s3://", "az://", "gs://"].iter().any(|s| u.starts_with(s)))
    }

    /// Whose price table `stats` uses when none is named: by where the repository is.
    pub fn default_provider(&self) -> &'static str {
        match self.repo.as_deref() {
            Some(u) if u.starts_with("az://") => "azure",
            Some(u) if u.starts_with("gs://") => "gcs",
            Some(u) if u.starts_with("s3://") => "aws",
            _ => "local",
        }
    }
}

/// The runtime a session's store calls run on: the caller's, or its own.
enum Runtime {
    Borrowed(Handle),
    Owned(tokio::runtime::Runtime),
}

impl Runtime {
    fn new(given: Option<Handle>) -> Result<Runtime> {
        match given {
            Some(h) => Ok(Runtime::Borrowed(h)),
            None => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .map(Runtime::Owned)
                .map_err(Error::Os),
        }
    }

    fn handle(&self) -> Handle {
        match self {
            Runtime::Borrowed(h) => h.clone(),
            Runtime::Owned(rt) => rt.handle().clone(),
        }
    }
}

/// An open repository and where its catalog is. Cheap to share: operations open the
/// catalog (a SQLite file) per call, so a server can serve requests on several threads.
pub struct Session {
    opts: OpenOptions,
    repo: Arc<Repository>,
    catalog: PathBuf,
    // Dropped last: the repository's store may hold tasks on it.
    _rt: Runtime,
}

impl Session {
    /// Opens the repository: it must exist before the password is asked for.
    pub fn open(opts: OpenOptions) -> Result<Session> {
        Session::open_with(opts, S3Options::default())
    }

    /// [`Session::open`] with S3 timeouts of its own (the mount gives up sooner).
    pub fn open_with(opts: OpenOptions, s3: S3Options) -> Result<Session> {
        let rt = Runtime::new(opts.runtime.clone())?;
        let store = crate::store::open_with(opts.url()?, &rt.handle(), s3)?;
        match crate::repo::block(&rt.handle(), store.head(&FileType::Config.key(""))) {
            Err(crate::store::StoreError::NotFound(_)) => {
                return Err(Error::NoRepository(store.location()))
            }
            r => r?,
        };
        let pw = opts.password.get(false)?;
        let repo = Repository::open(store, rt.handle(), &pw)?;
        Ok(Session::from_parts(opts, repo, rt))
    }

    /// Creates a repository. A local one's parent directory must exist: `init --repo
    /// /mnt/usb/backups` with the disk not mounted must not write to the root filesystem.
    pub fn init(
        opts: OpenOptions,
        compression: Option<crate::repo::compress::Compression>,
        object_lock: Option<crate::repo::retain::ObjectLock>,
    ) -> Result<Session> {
        let home = std::env::var_os("HOME");
        if let crate::store::Location::Local(dir) =
            crate::store::Location::parse(opts.url()?, home)?
        {
            if let Some(parent) = dir.parent().filter(|p| !p.is_dir()) {
                return Err(Error::InvalidArgument(format!(
                    "{} does not exist: create it first (or check that its disk is mounted)",
                    parent.display()
                )));
            }
        }
        let rt = Runtime::new(opts.runtime.clone())?;
        let store = crate::store::open(opts.url()?, &rt.handle())?;
        let pw = new_password(&opts)?;
        let repo = Repository::init_locked(
            store,
            rt.handle(),
            &pw,
            compression.unwrap_or(crate::repo::compress::Compression::DEFAULT),
            object_lock,
        )?;
        Ok(Session::from_parts(opts, repo, rt))
    }

    /// `cofre lock recover`: puts back the deleted or overwritten objects of a locked
    /// repository from the bucket's versions. Works before the repository is opened (its
    /// config or key files may be what was hit); call [`Session::lock_extend`] after.
    pub fn lock_recover(opts: OpenOptions, dry_run: bool) -> Result<crate::objlock::RecoverReport> {
        let rt = Runtime::new(opts.runtime.clone())?;
        let store = crate::store::open(opts.url()?, &rt.handle())?;
        let pw = opts.password.get(false)?;
        let handle = rt.handle();
        let opens = |sealed: &[u8]| crate::repo::config_opens(&store, &handle, &pw, sealed);
        crate::objlock::recover(&store, &handle, &opens, dry_run)
    }

    /// Creates a repository that shares `from`'s keys and chunker, with a password of its
    /// own, so that `copy` moves snapshots into it as they are (`init --copy-params-from`).
    pub fn init_copying(
        opts: OpenOptions,
        from: &Session,
        object_lock: Option<crate::repo::retain::ObjectLock>,
    ) -> Result<Session> {
        let rt = Runtime::new(opts.runtime.clone())?;
        let store = crate::store::open(opts.url()?, &rt.handle())?;
        let pw = new_password(&opts)?;
        let repo = Repository::init_copying(store, rt.handle(), &pw, &from.repo, object_lock)?;
        Ok(Session::from_parts(opts, repo, rt))
    }

    fn from_parts(opts: OpenOptions, repo: Repository, rt: Runtime) -> Session {
        let catalog = opts
            .catalog
            .clone()
            .unwrap_or_else(|| catalog::default_path(&repo.config.id));
        Session {
            opts,
            repo: Arc::new(repo),
            catalog,
            _rt: rt,
        }
    }

    /// The repository itself, for the building blocks (`repo`, `prune`, `check`, …).
    pub fn repository(&self) -> &Arc<Repository> {
        &self.repo
    }

    pub fn options(&self) -> &OpenOptions {
        &self.opts
    }

    /// The repository's id (names its catalog and cache directory).
    pub fn id(&self) -> &str {
        &self.repo.config.id
    }

    /// Where the repository is, as a person would write it.
    pub fn location(&self) -> String {
        self.repo.store().location()
    }

    pub fn catalog_path(&self) -> &Path {
        &self.catalog
    }

    /// This machine's state for the repository: run results, drill times, locks of `run`.
    pub fn state_dir(&self) -> PathBuf {
        catalog::cache_dir(&self.repo.config.id)
    }

    /// The catalog brought up to date with the repository. A damaged catalog is rebuilt
    /// from the store; any other failure to sync is an error.
    pub fn synced_catalog(&self) -> Result<Catalog> {
        sync::open_synced(&self.catalog, &self.repo)
    }

    /// The catalog for reading (`snapshots`, `ls`, `restore`, browsing): brought up to date
    /// when it can be. When the sync fails part-way (a listing or a read fails), what the
    /// catalog already knew is shown, with a warning: a half-done sync never removes
    /// anything from it. A damaged catalog is rebuilt.
    pub fn reading_catalog(&self) -> Result<Catalog> {
        match sync::open_synced(&self.catalog, &self.repo) {
            Ok(cat) => Ok(cat),
            Err(e) => match after_failed_sync(&e) {
                AfterFailedSync::UseWhatItKnew => {
                    tracing::warn!("catalog not brought up to date ({e}); showing what it knew");
                    Catalog::open(&self.catalog)
                }
                AfterFailedSync::Fail => Err(e),
            },
        }
    }

    /// Runs `f`, which reads the catalog. A catalog damaged inside (pages the sync did not
    /// touch) fails it with SQLITE_CORRUPT: that is said once, the catalog is rebuilt from
    /// the store beside the damaged file and put in its place, and `f` runs once more —
    /// unless `retry` is false (its input, stdin, is spent). The catalog is a cache.
    pub fn healing<T>(&self, retry: bool, f: impl Fn() -> Result<T>) -> Result<T> {
        match f() {
            Err(e) if sync::is_damaged(&e) => {
                tracing::warn!(
                    "the catalog {} is damaged ({e}); rebuilding it from the repository",
                    self.catalog.display()
                );
                sync::rebuild(&self.catalog, &self.repo)?;
                match retry {
                    true => f(),
                    false => Err(e),
                }
            }
            r => r,
        }
    }

    /// The shared lock of a reading operation, unless the options say no locks: a prune
    /// does not delete what it reads meanwhile (the mount takes none: it runs for days and
    /// would hold off prune forever; docs/prune.md).
    pub fn read_lock(&self, purpose: &str) -> Result<Option<Lock>> {
        if self.opts.no_lock {
            return Ok(None);
        }
        Lock::acquire(&self.repo, false, purpose, self.opts.retry_lock).map(Some)
    }
}

/// The password of a new repository: asked twice on a terminal, never empty.
fn new_password(opts: &OpenOptions) -> Result<Vec<u8>> {
    let pw = opts.password.get(true)?;
    if pw.is_empty() {
        return Err(Error::InvalidArgument(
            "an empty password protects nothing".into(),
        ));
    }
    Ok(pw)
}

/// The cofre CLI, for what runs it (a drill's mount child, the timer's unit): this binary
/// when it is the CLI, else `cofre` on PATH (a library front end, such as a web server,
/// is not).
pub(crate) fn cofre_binary() -> Result<PathBuf> {
    let me = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
    if me.file_name().is_some_and(|n| n == "cofre") {
        return Ok(me);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("cofre"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::InvalidArgument(
                "this needs the cofre binary (a drill mounts with it, the timer runs it): install it on PATH".into(),
            )
        })
}

/// What a reading operation does when the catalog's sync fails.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterFailedSync {
    /// A listing or read failed part-way: go on with what the catalog knew.
    UseWhatItKnew,
    /// The catalog itself is damaged: that is for [`Session::healing`] to rebuild.
    Fail,
}

pub fn after_failed_sync(e: &Error) -> AfterFailedSync {
    match sync::is_damaged(e) {
        true => AfterFailedSync::Fail,
        false => AfterFailedSync::UseWhatItKnew,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn corrupt_db() -> Error {
        Error::Catalog(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        ))
    }

    #[test]
    fn a_failed_sync_falls_back_unless_the_catalog_is_damaged() {
        let table: Vec<(Error, AfterFailedSync)> = vec![
            (
                Error::Store(StoreError::Backend {
                    op: "list",
                    key: "index/".into(),
                    msg: "timeout".into(),
                }),
                AfterFailedSync::UseWhatItKnew,
            ),
            (
                Error::corrupt("index/ab", "bad MAC"),
                AfterFailedSync::UseWhatItKnew,
            ),
            (
                Error::io("/x", std::io::Error::from_raw_os_error(libc::EIO)),
                AfterFailedSync::UseWhatItKnew,
            ),
            (corrupt_db(), AfterFailedSync::Fail),
            (
                Error::Catalog(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
                    None,
                )),
                AfterFailedSync::Fail,
            ),
        ];
        for (e, want) in table {
            assert_eq!(after_failed_sync(&e), want, "{e}");
        }
    }
}
