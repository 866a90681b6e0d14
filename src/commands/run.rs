//! `cofre run`: what the timer calls (see `crate::run`), and `cofre metrics`.

use std::path::PathBuf;

use super::Context;
use crate::catalog::{self, sync};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::run::{self as runner, RunOptions};

pub fn run(
    ctx: &Context,
    file: Option<&Config>,
    opts: RunOptions,
    metrics_file: Option<PathBuf>,
) -> Result<i32> {
    let Some(cfg) = file else {
        return Err(Error::InvalidArgument(format!(
            "cofre run needs a configuration file ({} or --config FILE; see docs/config.md)",
            crate::config::default_path().display()
        )));
    };
    let repo = ctx.open_repo()?;
    let mut cat = sync::open_synced(&ctx.catalog_path(&repo), &repo)?;
    let lock_dir = catalog::cache_dir(&repo.config.id);
    // Drills need a mount child; made only when a set schedules drills.
    let wants_drill = cfg.sets.values().any(|s| s.src.drill_every.is_some());
    let cat_path = ctx.catalog_path(&repo);
    let driller = wants_drill.then(|| super::drill::Driller::new(ctx, Some(cfg), &repo, &cat_path));
    let args = super::drill::DrillArgs {
        history: false,
        sets: Vec::new(),
        snapshot: None,
        target: None,
        copier: crate::drill::Copier::Cp,
        pg_restore: None,
        report: None,
    };
    let drill_one = |set: &str, cat: &crate::catalog::Catalog| match &driller {
        Some(Ok(d)) => d.drill(cat, set, None, &args),
        Some(Err(e)) => Err(Error::InvalidArgument(e.to_string())),
        None => Err(Error::InvalidArgument("no drills scheduled".into())),
    };
    let results = runner::run(&repo, &mut cat, cfg, &lock_dir, &opts, Some(&drill_one))?;
    let code = results
        .iter()
        .fold(0, |acc, r| runner::worst(acc, r.exit_code));
    // Written when the run ends, from what it recorded: a failure to write is reported
    // but does not change the backup's exit code.
    let metrics_file = crate::config::resolve(metrics_file, cfg.metrics_file.as_ref());
    if let (Some(path), false) = (metrics_file, opts.dry_run) {
        let now = opts.now.map_or_else(|| crate::ingest::now().0, |t| t.0);
        let cost = super::stats::monthly_cost(ctx, Some(cfg), &cat, repo.config.pack_size as u64);
        match crate::metrics::render(cfg, &cat, &lock_dir, now, cost)
            .and_then(|text| crate::metrics::write(&path, &text))
        {
            Ok(()) => {}
            Err(e) => tracing::warn!("metrics not written: {e}"),
        }
    }
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

/// `cofre metrics [--write]`: the metrics `cofre run` writes, printed (or written to the
/// configured file).
pub fn metrics(ctx: &Context, file: Option<&Config>, write: Option<PathBuf>) -> Result<i32> {
    let default = Config::default();
    let cfg = file.unwrap_or(&default);
    let repo = ctx.open_repo()?;
    let cat = sync::open_synced(&ctx.catalog_path(&repo), &repo)?;
    let cost = super::stats::monthly_cost(ctx, file, &cat, repo.config.pack_size as u64);
    let text = crate::metrics::render(
        cfg,
        &cat,
        &catalog::cache_dir(&repo.config.id),
        crate::ingest::now().0,
        cost,
    )?;
    match write {
        Some(path) => crate::metrics::write(&path, &text)?,
        None => print!("{text}"),
    }
    Ok(0)
}
