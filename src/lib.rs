//! cofre: a FUSE-mountable, versioned, encrypted, deduplicating backup filesystem.
//!
//! # The public API
//!
//! A front end opens a [`Session`] from [`OpenOptions`] and works through it: list
//! snapshots, browse them by path (the mount's layout, `<set>/YYYY/MM/DD/HHMM/...`), restore,
//! back up, verify, apply retention. Results are typed reports; printing them, JSON, and exit
//! codes ([`Error::exit_code`]) are the front end's. The CLI (`bin/cofre/`) is the first
//! front end. A small one, from `tests/library_api.rs`:
//!
//! ```no_run
//! use cofre::{Browse, OpenOptions, RestoreOptions, Session};
//!
//! let session = Session::open(OpenOptions::new("/srv/backups", "the password"))?;
//! for s in session.snapshots(None)? {
//!     println!("{} {} {} files", s.short_id, s.time, s.files);
//! }
//! if let Browse::Dir { entries, .. } = session.browse("/default/latest/etc")? {
//!     for e in entries {
//!         println!("{} {}", e.kind, e.path);
//!     }
//! }
//! let done = session.restore(&RestoreOptions {
//!     snapshot: "latest".into(),
//!     path: "/etc/hosts".into(),
//!     set: None,
//!     target: "/tmp/restored".into(),
//!     cache_mib: 32,
//! })?;
//! assert!(done.report.errors.is_empty());
//! # Ok::<(), cofre::Error>(())
//! ```
//!
//! # The building blocks
//!
//! Layers, bottom up: `store` (object storage) → `repo` (format, encryption, index, locks,
//! packer) → `catalog` (local SQLite index) → operations (`ingest`, `restore`, `check`,
//! `forget`, `prune`, `drill`, `run`) → [`Session`]. They stay public for the tests, the
//! simulation and the benchmarks, which reach below the session on purpose (craft a
//! damaged repository, drive one store call at a time); they are not a stable API and are
//! hidden from the docs. See docs/architecture.md.

// The session and what its operations take and return.
pub use catalog::sync::SyncReport;
pub use check::against::Comparison;
pub use check::{CheckRecord, CheckReport, ReadData};
pub use copy::{CopiedSnapshot, CopyOptions, CopyReport};
pub use drill::{record::DrillRecord, sets_to_drill, Copier, DrillArgs, SetReport};
pub use error::{Error, Result};
pub use forget::{
    policy::{Policy, Span},
    ForgetOptions, ForgetReport,
};
pub use history::{Change, Diff, DiffEntry, FindOptions, Found, Version};
pub use ingest::{IngestOptions, IngestReport, StreamSource};
pub use mount::{MountOptions, Xattrs};
pub use objlock::{ExtendOptions, ExtendReport, RecoverReport};
pub use password::PasswordSource;
pub use progress::{NoProgress, Progress};
pub use prune::{PruneOptions, PruneReport};
pub use repair::RepairReport;
pub use repo::compress::Compression;
pub use repo::keyfiles::KeyEntry;
pub use repo::retain::ObjectLock;
pub use restore::{RestoreReport, DEFAULT_CACHE_MIB};
pub use run::{Action, JobResult, RunOptions, StatusRow};
pub use session::{
    AgainstReport, Browse, Contents, Entry, FileReader, OpenOptions, RestoreOptions,
    RestoreOutcome, Session, SnapshotInfo,
};
pub use stats::{Pricing, Stats};
pub use store::s3::S3Options;
pub use store::LockMode;

// Without a repository: the configuration file, the timer, files written whole.
pub use config::{
    default_path as default_config_path, load as load_config, parse as parse_config, resolve,
    valid_user_name, Config, Role, Serve, ServeUser, USER_NAME_RULE,
};
pub use fsutil::write_atomic;
pub use metrics::write as write_metrics;
pub use run::units::Every;
pub use run::units::{serve_service as serve_unit, service as service_unit, timer as timer_unit};
pub use run::{
    install as install_schedule, remove as remove_schedule, worst, ScheduleOptions, UnitStep,
};

#[doc(hidden)]
pub mod catalog;
#[doc(hidden)]
pub mod check;
#[doc(hidden)]
pub mod config;
#[doc(hidden)]
pub mod copy;
#[doc(hidden)]
pub mod crypto;
#[doc(hidden)]
pub mod drill;
pub mod error;
#[doc(hidden)]
pub mod forget;
#[doc(hidden)]
pub mod fsutil;
pub mod history;
#[doc(hidden)]
pub mod ingest;
#[doc(hidden)]
pub mod metrics;
#[doc(hidden)]
pub mod model;
#[doc(hidden)]
pub mod mount;
#[doc(hidden)]
pub mod notify;
#[doc(hidden)]
pub mod objlock;
#[doc(hidden)]
pub mod password;
pub mod progress;
#[doc(hidden)]
pub mod prune;
#[doc(hidden)]
pub mod repair;
#[doc(hidden)]
pub mod repo;
#[doc(hidden)]
pub mod restore;
#[doc(hidden)]
pub mod run;
pub mod session;
mod spare;
#[doc(hidden)]
pub mod stats;
#[doc(hidden)]
pub mod store;
pub mod thaw;
#[doc(hidden)]
pub mod vfs;
pub mod wal;
