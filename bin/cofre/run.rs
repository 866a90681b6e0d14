//! `cofre run`: what the timer calls.

use std::path::PathBuf;

use cofre::error::Result;
use cofre::RunOptions;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Only these sets (repeatable); a set without a schedule runs only when named.
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Say what would run and why; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Evaluate schedules at this time (RFC 3339) and record snapshots with it.
    #[arg(long)]
    now: Option<String>,
    /// Write Prometheus metrics here when the run ends (default: the file's `metrics_file`).
    #[arg(long)]
    metrics_file: Option<PathBuf>,
}

impl TryFrom<&Args> for RunOptions {
    type Error = cofre::Error;

    fn try_from(a: &Args) -> Result<RunOptions> {
        Ok(RunOptions {
            sets: a.sets.clone(),
            dry_run: a.dry_run,
            now: a
                .now
                .as_deref()
                .map(|t| crate::parse_time("--now", t))
                .transpose()?,
            retry_lock: Default::default(),
        })
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let opts = RunOptions::try_from(&a)?;
    let cfg = ctx.need_file("cofre run")?;
    let results = ctx.session()?.run(cfg, &opts, a.metrics_file)?;
    let code = results
        .iter()
        .fold(0, |acc, r| cofre::worst(acc, r.exit_code));
    if ctx.json {
        ctx.print_json(&results)?;
    } else {
        for r in &results {
            let snap = r.snapshot.as_deref().map(|s| &s[..8]).unwrap_or("");
            println!(
                "{:<12} {:<8} {:<9} {snap:8}  {}",
                r.set, r.class, r.action, r.reason
            );
        }
    }
    Ok(code)
}
