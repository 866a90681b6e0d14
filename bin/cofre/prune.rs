//! `cofre prune`.

use cofre::error::{Error, Result};
use cofre::prune::Minimums;
use cofre::{PruneOptions, PruneReport};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Leave at most this much unused data in partly used packs, as a share of the
    /// used data (as restic).
    #[arg(long, default_value = "5%", value_parser = crate::parse_percent)]
    max_unused: f64,
    /// Show the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Judge minimum storage durations as of this time (RFC 3339) instead of the store's
    /// clock: with --dry-run, what a later prune will free.
    #[arg(long)]
    now: Option<String>,
}

/// Minimum storage durations from the price table that `stats` uses (the configuration's
/// `provider` and `prices`, else the built-in table of the repository's provider).
pub fn minimums(ctx: &Ctx) -> Result<Minimums> {
    Minimums::from_config(ctx.file.as_ref(), ctx.open.url()?)
}

/// What the held packs' remaining minimum days cost, by the price table `stats` uses.
fn early_dollars(ctx: &Ctx, held: &cofre::prune::Held) -> Option<f64> {
    let pricing =
        cofre::Pricing::resolve(ctx.file.as_ref(), None, None, ctx.open.default_provider()).ok()?;
    Some(
        held.owed_gb_days_by_class
            .iter()
            .map(|(class, gb_days)| {
                let price = pricing.table.get(class).map_or(0.0, |p| p.storage_gb_month);
                gb_days * price / 30.0
            })
            .sum(),
    )
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let opts = PruneOptions {
        max_unused_percent: a.max_unused,
        dry_run: a.dry_run,
        minimums: Some(minimums(ctx)?),
        now: a
            .now
            .as_deref()
            .map(|t| crate::parse_time("--now", t).map(|t| t.0))
            .transpose()?,
        ..Default::default()
    };
    let report = ctx.session()?.prune(opts)?;
    if ctx.json {
        ctx.print_json(&report)?;
    }
    finish(ctx, &report)
}

/// Prints the text report (JSON is the caller's) and turns failed deletions into exit 1.
pub fn finish(ctx: &Ctx, report: &PruneReport) -> Result<i32> {
    let (s, exec) = (&report.plan, &report.done);
    let failures = exec.as_ref().map_or(0, |e| e.delete_failures.len());
    if !ctx.json {
        println!(
            "{} snapshots; {} packs, {} ({} used)",
            s.snapshots,
            s.packs_total,
            crate::mib(s.bytes_total),
            crate::mib(s.bytes_used)
        );
        let verb = if report.dry_run { "would" } else { "will" };
        println!(
            "{verb} delete {} packs ({}), repack {} packs ({}, {} of it still used), replace {} index objects",
            s.packs_delete,
            crate::mib(s.bytes_delete),
            s.packs_repack,
            crate::mib(s.bytes_repack),
            crate::mib(s.bytes_repack_used),
            s.index_objects_replaced
        );
        let mut classes: Vec<_> = s.freed_by_class.iter().collect();
        classes.sort_by_key(|(c, _)| c.as_str());
        for (class, t) in classes {
            println!("  {class}: {} packs, {}", t.packs, crate::mib(t.bytes));
        }
        for p in &s.packs_unreadable {
            eprintln!("warning: {p} kept: its header cannot be read");
        }
        let held = &s.held_min_duration;
        if held.packs > 0 {
            let until = held.until.map_or("an unknown date".to_string(), crate::day);
            let owed: f64 = held.owed_gb_days_by_class.values().sum();
            println!(
                "kept {} unused pack(s) ({}) until their class's minimum storage duration has passed (the last on {until}): deleting them now would still be billed for {owed:.2} GB-days{}",
                held.packs,
                crate::mib(held.bytes),
                early_dollars(ctx, held).map_or(String::new(), |d| format!(" (${d:.4})"))
            );
        }
        let locked = &s.held_object_lock;
        if locked.packs > 0 {
            let until = locked
                .until
                .map_or("an unknown date".to_string(), crate::day);
            println!(
                "kept {} unused pack(s) ({}) under S3 Object Lock (the last until {until}): a prune after that deletes them",
                locked.packs,
                crate::mib(locked.bytes),
            );
        }
        if s.chunks_outside_own_class > 0 {
            eprintln!(
                "warning: {} chunk(s) of self-contained snapshots have no copy in their own class; their hotter copies are kept (`cofre check` names the snapshots)",
                s.chunks_outside_own_class
            );
        }
        if let Some(e) = &exec {
            println!(
                "deleted {} packs ({}), wrote {} packs ({}): freed {} in {:.1}s",
                e.packs_deleted,
                crate::mib(e.bytes_deleted),
                e.packs_written,
                crate::mib(e.bytes_written),
                crate::mib(e.bytes_deleted.saturating_sub(e.bytes_written)),
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
