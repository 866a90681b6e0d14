//! `cofre repair index`.

use clap::Subcommand;
use cofre::error::{Error, Result, EXIT_PARTIAL};

use crate::Ctx;

#[derive(Subcommand)]
pub enum Cmd {
    /// Rebuild index objects from the packs that no readable index lists.
    Index,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    let Cmd::Index = cmd;
    let r = ctx.session()?.repair_index()?;
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
                "warning: {} pack(s) left unindexed, in an archive storage class (first: {first}): restore them from the archive tier (`aws s3api restore-object`: `cofre thaw` needs their index), then run `cofre repair index` again",
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
