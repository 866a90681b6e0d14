//! `cofre prune` and `cofre unlock`.

use super::Context;
use crate::catalog::sync;
use crate::error::{Error, Result};
use crate::prune::{self, PruneOptions, PruneReport};
use crate::repo::lock;
use crate::repo::Repository;

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

pub fn prune(ctx: &Context, opts: PruneOptions) -> Result<i32> {
    let repo = ctx.open_repo()?;
    prune_with(ctx, &repo, opts)
}

pub fn prune_with(ctx: &Context, repo: &Repository, opts: PruneOptions) -> Result<i32> {
    let report = run(ctx, repo, &opts)?;
    if ctx.json {
        ctx.print_json(&report)?;
    }
    finish(ctx, &report)
}

/// Prunes, then brings this host's catalog up to date (it forgets the deleted index
/// objects at once).
pub(super) fn run(ctx: &Context, repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let report = prune::prune(repo, opts)?;
    if !opts.dry_run {
        drop(sync::open_synced(&ctx.catalog_path(repo), repo)?);
    }
    Ok(report)
}

/// Prints the text report (JSON is the caller's) and turns failed deletions into exit 1.
pub(super) fn finish(ctx: &Context, report: &PruneReport) -> Result<i32> {
    let (s, exec) = (&report.plan, &report.done);
    let failures = exec.as_ref().map_or(0, |e| e.delete_failures.len());
    if !ctx.json {
        println!(
            "{} snapshots; {} packs, {} ({} used)",
            s.snapshots,
            s.packs_total,
            mib(s.bytes_total),
            mib(s.bytes_used)
        );
        let verb = if report.dry_run { "would" } else { "will" };
        println!(
            "{verb} delete {} packs ({}), repack {} packs ({}, {} of it still used), replace {} index objects",
            s.packs_delete,
            mib(s.bytes_delete),
            s.packs_repack,
            mib(s.bytes_repack),
            mib(s.bytes_repack_used),
            s.index_objects_replaced
        );
        let mut classes: Vec<_> = s.freed_by_class.iter().collect();
        classes.sort_by_key(|(c, _)| c.as_str());
        for (class, t) in classes {
            println!("  {class}: {} packs, {}", t.packs, mib(t.bytes));
        }
        for p in &s.packs_unreadable {
            eprintln!("warning: {p} kept: its header cannot be read");
        }
        if let Some(e) = &exec {
            println!(
                "deleted {} packs ({}), wrote {} packs ({}): freed {} in {:.1}s",
                e.packs_deleted,
                mib(e.bytes_deleted),
                e.packs_written,
                mib(e.bytes_written),
                mib(e.bytes_deleted.saturating_sub(e.bytes_written)),
                report.duration_secs
            );
            for f in &e.delete_failures {
                eprintln!("error: not deleted: {f}");
            }
        } else if report.dry_run {
            println!("dry run: nothing was changed");
        } else {
            println!("nothing to do");
        }
    }
    if failures > 0 {
        return Err(Error::WriteFailed(format!(
            "{failures} pack(s) could not be deleted; they are unreferenced and the next prune removes them"
        )));
    }
    Ok(0)
}

pub fn unlock(ctx: &Context, all: bool) -> Result<i32> {
    let repo = ctx.open_repo()?;
    let removed = lock::unlock(&repo, all)?;
    if ctx.json {
        ctx.print_json(&removed)?;
    } else {
        for r in &removed {
            println!("removed {r}");
        }
        println!("{} lock(s) removed", removed.len());
    }
    Ok(0)
}
