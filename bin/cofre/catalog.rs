//! `cofre catalog rebuild|sync`.

use clap::Subcommand;
use cofre::error::{Error, Result};
use cofre::SyncReport;

use crate::Ctx;

#[derive(Subcommand)]
pub enum Cmd {
    /// Recreate the catalog from the repository alone.
    Rebuild,
    /// Add snapshots and index objects the catalog does not know yet.
    Sync,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    let s = ctx.session()?;
    let started = std::time::Instant::now();
    let r = match cmd {
        Cmd::Rebuild => s.catalog_rebuild()?,
        Cmd::Sync => s.catalog_sync()?,
    };
    report(ctx, &r, started)
}

fn report(ctx: &Ctx, r: &SyncReport, started: std::time::Instant) -> Result<i32> {
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
    let unreadable = r.unreadable();
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
