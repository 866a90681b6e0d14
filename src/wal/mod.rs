//! PostgreSQL point-in-time recovery: WAL archived continuously into the repository
//! (`wal-push` into a local spool, flushed into `wal/` objects), fetched back for replay
//! (`wal-fetch`), and a data directory restored from a base backup set up to replay to a
//! chosen time (`pitr`). docs/pitr.md has the design and its numbers.

pub mod check;
pub mod fetch;
pub mod index;
pub mod names;
pub mod object;
pub mod pitr;
pub mod retention;
pub mod server;
pub mod spool;

pub use fetch::Source;
pub use index::WalIndex;
pub use pitr::{PitrOptions, PitrReport, Target};
pub use spool::{FlushReport, FlusherOptions, Pushed, Spool};
