//! `cofre forget`: the retention policy per set; `--prune` frees the data afterwards.

use cofre::error::{Error, Result};
use cofre::Span;
use cofre::{ForgetOptions, Policy, PruneOptions};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot ids (unique prefixes) to forget, instead of a policy.
    ids: Vec<String>,
    /// Only these sets (repeatable); each set is judged on its own.
    #[arg(long = "set")]
    sets: Vec<String>,
    #[arg(long, default_value_t = 0)]
    keep_last: u32,
    #[arg(long, default_value_t = 0)]
    keep_hourly: u32,
    #[arg(long, default_value_t = 0)]
    keep_daily: u32,
    #[arg(long, default_value_t = 0)]
    keep_weekly: u32,
    #[arg(long, default_value_t = 0)]
    keep_monthly: u32,
    #[arg(long, default_value_t = 0)]
    keep_yearly: u32,
    /// Keep every snapshot within this span of the newest (e.g. 30d, 1y6m, 12h).
    #[arg(long, value_parser = Span::parse)]
    keep_within: Option<Span>,
    #[arg(long, value_parser = Span::parse)]
    keep_within_hourly: Option<Span>,
    #[arg(long, value_parser = Span::parse)]
    keep_within_daily: Option<Span>,
    #[arg(long, value_parser = Span::parse)]
    keep_within_weekly: Option<Span>,
    #[arg(long, value_parser = Span::parse)]
    keep_within_monthly: Option<Span>,
    #[arg(long, value_parser = Span::parse)]
    keep_within_yearly: Option<Span>,
    /// Keep snapshots with all of these comma-separated tags (repeatable).
    #[arg(long = "keep-tag")]
    keep_tags: Vec<String>,
    /// Show what would be kept and removed, and why; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run prune afterwards.
    #[arg(long)]
    prune: bool,
    /// With --prune: see `prune --max-unused`.
    #[arg(long, default_value = "5%", value_parser = crate::parse_percent)]
    max_unused: f64,
}

impl From<&Args> for Policy {
    fn from(a: &Args) -> Policy {
        Policy {
            last: a.keep_last,
            hourly: a.keep_hourly,
            daily: a.keep_daily,
            weekly: a.keep_weekly,
            monthly: a.keep_monthly,
            yearly: a.keep_yearly,
            within: a.keep_within.unwrap_or_default(),
            within_hourly: a.keep_within_hourly.unwrap_or_default(),
            within_daily: a.keep_within_daily.unwrap_or_default(),
            within_weekly: a.keep_within_weekly.unwrap_or_default(),
            within_monthly: a.keep_within_monthly.unwrap_or_default(),
            within_yearly: a.keep_within_yearly.unwrap_or_default(),
            tags: a
                .keep_tags
                .iter()
                .map(|t| t.split(',').map(str::to_string).collect())
                .collect(),
        }
    }
}

impl TryFrom<Args> for ForgetOptions {
    type Error = Error;

    fn try_from(a: Args) -> Result<ForgetOptions> {
        let policy = Policy::from(&a);
        if !a.ids.is_empty() && !policy.is_empty() {
            return Err(Error::InvalidArgument(
                "give either snapshot ids or --keep-* options, not both".into(),
            ));
        }
        Ok(ForgetOptions {
            policy,
            sets: a.sets,
            ids: a.ids,
            tag: None,
            dry_run: a.dry_run,
            retry_lock: Default::default(),
        })
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let prune = match a.prune {
        true => Some(PruneOptions {
            max_unused_percent: a.max_unused,
            dry_run: a.dry_run,
            minimums: Some(crate::prune::minimums(ctx)?),
            ..Default::default()
        }),
        false => None,
    };
    let opts = ForgetOptions::try_from(a)?;
    let session = ctx.session()?;
    let report = session.forget(opts.clone())?;
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
        for (id, until) in &report.locked {
            println!(
                "  kept {} under S3 Object Lock until {}: a forget after that removes it",
                &id[..8.min(id.len())],
                crate::day(*until)
            );
        }
    }
    for f in &report.failures {
        eprintln!("error: {f}");
    }
    // Forgotten snapshots leave this host's catalog (and its mounts) now.
    if !opts.dry_run {
        drop(session.synced_catalog()?);
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
    let Some(mut p) = prune else {
        return Ok(0);
    };
    if opts.dry_run {
        // Nothing was forgotten: plan as if it had been, to show what the policy frees.
        p.assume_forgotten = report.removed_ids();
    }
    let pruned = session.prune(p)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"forget": report, "prune": pruned}))?;
    }
    crate::prune::finish(ctx, &pruned)
}
