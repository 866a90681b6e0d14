//! cofre: a FUSE-mountable, versioned, encrypted, deduplicating backup filesystem.
//!
//! Layers: `store` (object storage) → `repo` (format, encryption) → `catalog` (local SQLite
//! index) → commands (`ingest`, `restore`, …). See docs/architecture.md.

pub mod catalog;
pub mod check;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod drill;
pub mod error;
pub mod forget;
pub mod fsutil;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod mount;
pub mod notify;
pub mod password;
pub mod prune;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod run;
pub mod stats;
pub mod store;
pub mod vfs;
