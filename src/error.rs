//! Every error cofre reports, and the ONE place they become exit codes and errnos.

use std::path::PathBuf;

use crate::store::StoreError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("wrong password: the password does not open any key of this repository (check COFRE_PASSWORD, COFRE_PASSWORD_FILE or COFRE_PASSWORD_COMMAND)")]
    WrongPassword,
    #[error("no password given: set COFRE_PASSWORD, COFRE_PASSWORD_FILE or COFRE_PASSWORD_COMMAND, or run on a terminal")]
    NoPassword,
    #[error("password command failed: {0}")]
    PasswordCommand(String),
    #[error("no repository at {0}: create one with `cofre init --repo {0}`")]
    NoRepository(String),
    #[error("a repository already exists at {0}")]
    RepositoryExists(String),
    #[error("no repository given: use --repo or set COFRE_REPO")]
    NoRepositoryGiven,
    #[error("unsupported repository location {0:?}: use a path, ~/path, file:///absolute/path, s3://bucket/prefix, az://container/prefix or gs://bucket/prefix (docs/stores.md)")]
    UnsupportedUrl(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("corrupted data in {what}: {why}")]
    Corrupt { what: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Os(std::io::Error),
    #[error("catalog: {0}")]
    Catalog(#[from] rusqlite::Error),
    #[error("no snapshot matches {0:?}")]
    NoSnapshot(String),
    #[error("snapshot prefix {0:?} is ambiguous: it matches several snapshots")]
    AmbiguousSnapshot(String),
    #[error("no such path in snapshot: {0}")]
    NoSuchPath(String),
    #[error("command `{cmd}` failed ({status}); nothing was committed. Its stderr:\n{stderr}")]
    SourceCommand {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("writing to the repository failed, nothing was committed: {0}")]
    WriteFailed(String),
    #[error("cannot read {path}: {why}")]
    ReadFailed { path: String, why: String },
    #[error("none of the given paths could be read, nothing was committed: {0}")]
    NoSource(String),
    #[error("the catalog was replaced while in use")]
    CatalogReplaced,
    #[error("check found {0} problem(s), listed above")]
    CheckFailed(usize),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("refusing to restore {0}: it would write outside the target directory")]
    UnsafePath(String),
    #[error("{count} file(s) could not be restored (first: {first})")]
    RestoreIncomplete { count: usize, first: String },
    #[error("the repository is locked: {0}. Retry later (or use --retry-lock); if that process is gone, `cofre unlock` removes its lock")]
    Locked(String),
    #[error("our repository lock was lost ({0}); nothing was committed: run again")]
    LockLost(String),
    #[error("this machine's clock is {0}s off the repository store's clock: fix its time (NTP, `timedatectl set-ntp true`) and run again; locks and snapshot times need clocks within {1}s")]
    ClockSkew(i64, u64),
    #[error("prune stopped: {0}")]
    PruneRefused(String),
    #[error("{0}")]
    Hook(String),
    /// A program cofre runs for the user (systemctl) failed: not a usage error.
    #[error("{0}")]
    External(String),
    #[error("interrupted")]
    Interrupted,
    /// `wal-fetch` of a WAL file the repository does not have: PostgreSQL asks for names
    /// that may not exist (the next timeline's history, the segment after the last).
    #[error("{0} is not in the repository's WAL archive")]
    WalNotFound(String),
    /// `wal-push` of a name already archived with other bytes (PostgreSQL's rule: fail).
    #[error("{0}")]
    WalConflict(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn corrupt(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            why: why.into(),
        }
    }

    /// Whether it failed on data in an archive class (`cofre thaw` helps): the store's
    /// error, or a read that kept only its text.
    pub fn is_archived(&self) -> bool {
        match self {
            Error::Store(crate::store::StoreError::Archived(_)) => true,
            Error::ReadFailed { why, .. } => why.contains(crate::store::ARCHIVED),
            _ => false,
        }
    }

    /// Process exit code, as restic's table. Documented in docs/exit-codes.md.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidArgument(_) | Error::UnsupportedUrl(_) => EXIT_USAGE,
            Error::NoRepository(_) | Error::NoRepositoryGiven => EXIT_NO_REPOSITORY,
            Error::WrongPassword | Error::NoPassword => EXIT_WRONG_PASSWORD,
            Error::Interrupted => EXIT_INTERRUPTED,
            Error::Locked(_) => EXIT_LOCKED,
            Error::ClockSkew(..) => EXIT_CLOCK_SKEW,
            _ => EXIT_FAILURE,
        }
    }

    /// errno for the FUSE layer: the one place store and data failures become errnos.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NoSuchPath(_) | Error::NoSnapshot(_) => libc::ENOENT,
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            _ => libc::EIO,
        }
    }
}

pub const EXIT_FAILURE: i32 = 1;
/// Bad flags or arguments (clap uses 2 as well).
pub const EXIT_USAGE: i32 = 2;
/// A snapshot was saved but some sources could not be read, or a restore could not apply
/// some metadata (as restic).
pub const EXIT_PARTIAL: i32 = 3;
pub const EXIT_NO_REPOSITORY: i32 = 10;
/// Another process holds a conflicting lock (as restic).
pub const EXIT_LOCKED: i32 = 11;
pub const EXIT_WRONG_PASSWORD: i32 = 12;
/// This machine's clock is too far from the store's: nothing was done.
pub const EXIT_CLOCK_SKEW: i32 = 13;
pub const EXIT_INTERRUPTED: i32 = 130;
