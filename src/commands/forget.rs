//! `cofre forget`: the retention policy per set; `--prune` frees the data afterwards.

use super::Context;
use crate::catalog::sync;
use crate::error::{Error, Result};
use crate::forget::{forget as run_forget, ForgetOptions};
use crate::prune::PruneOptions;

pub fn forget(ctx: &Context, opts: ForgetOptions, prune: Option<PruneOptions>) -> Result<i32> {
    let repo = ctx.open_repo()?;
    let report = run_forget(&repo, &opts)?;
    // With --prune and --json, one document with both reports (printed at the end).
    if ctx.json && prune.is_none() {
        ctx.print_json(&report)?;
    } else if !ctx.json {
        for (set, entries) in &report.sets {
            let kept = entries.iter().filter(|e| e.keep).count();
            println!(
                "set {set}: keep {kept}, remove {} of {}",
                entries.len() - kept,
                entries.len()
            );
            for e in entries {
                let verdict = if e.keep { "keep  " } else { "remove" };
                println!(
                    "  {verdict} {} {}  {}",
                    &e.id[..8],
                    e.time,
                    e.reasons.join(", ")
                );
            }
        }
        if opts.dry_run {
            println!("dry run: nothing was removed");
        } else {
            println!("{} snapshot(s) removed", report.removed);
        }
    }
    for f in &report.failures {
        eprintln!("error: {f}");
    }
    // Forgotten snapshots leave this host's catalog (and its mounts) now.
    if !opts.dry_run {
        drop(sync::open_synced(&ctx.catalog_path(&repo), &repo)?);
    }
    if !report.failures.is_empty() {
        if ctx.json && prune.is_some() {
            ctx.print_json(&report)?;
        }
        return Err(Error::WriteFailed(format!(
            "{} snapshot(s) could not be removed",
            report.failures.len()
        )));
    }
    let Some(p) = prune else {
        return Ok(0);
    };
    let pruned = super::prune::run(ctx, &repo, &p)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"forget": report, "prune": pruned}))?;
    }
    super::prune::finish(ctx, &pruned)
}
