//! `cofre stats`: sizes, ratios and the estimated monthly bill (see `crate::stats`).

use std::path::PathBuf;

use super::Context;
use crate::catalog::sync;
use crate::config::Config;
use crate::error::Result;

pub struct StatsArgs {
    pub sets: Vec<String>,
    pub provider: Option<String>,
    pub prices: Option<PathBuf>,
}

/// The provider whose prices apply: the flag, the file's `provider`, else by repository.
pub fn provider(ctx: &Context, flag: Option<String>, file: Option<&Config>) -> String {
    crate::config::resolve(flag, file.and_then(|f| f.provider.as_ref()))
        .unwrap_or_else(|| if ctx.is_remote() { "aws" } else { "local" }.to_string())
}

/// The monthly estimate for the metrics; a bad price table is a warning there, not a
/// failed backup.
pub fn monthly_cost(
    ctx: &Context,
    file: Option<&Config>,
    cat: &crate::catalog::Catalog,
    pack_size: u64,
) -> Option<f64> {
    let provider = provider(ctx, None, file);
    let prices = file.and_then(|f| f.prices.as_deref());
    let r = crate::stats::prices(&provider, prices).and_then(|p| {
        crate::stats::stats(cat, &[], &provider, &p, pack_size, crate::ingest::now().0)
    });
    match r {
        Ok(s) => Some(s.monthly_dollars),
        Err(e) => {
            tracing::warn!("cost estimate left out of the metrics: {e}");
            None
        }
    }
}

fn human(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

pub fn stats(ctx: &Context, file: Option<&Config>, a: StatsArgs) -> Result<i32> {
    let provider = provider(ctx, a.provider, file);
    let price_file = crate::config::resolve(a.prices, file.and_then(|f| f.prices.as_ref()));
    let prices = crate::stats::prices(&provider, price_file.as_deref())?;
    let repo = ctx.open_repo()?;
    let cat = sync::open_synced(&ctx.catalog_path(&repo), &repo)?;
    let s = crate::stats::stats(
        &cat,
        &a.sets,
        &provider,
        &prices,
        repo.config.pack_size as u64,
        crate::ingest::now().0,
    )?;
    if ctx.json {
        ctx.print_json(&s)?;
        return Ok(0);
    }
    println!("snapshots: {} in {} set(s)", s.snapshots, s.sets.len());
    for (name, set) in &s.sets {
        println!(
            "  {name}: {} snapshots; latest {} in {} files; all {}",
            set.snapshots,
            human(set.latest_bytes),
            set.latest_files,
            human(set.all_bytes)
        );
    }
    println!(
        "stored: {} (compressed, encrypted) for {} of distinct data and {} of trees",
        human(s.stored_bytes),
        human(s.unique_data_bytes),
        human(s.unique_tree_bytes)
    );
    for (class, b) in &s.stored_by_class {
        println!("  {class}: {}", human(*b));
    }
    println!(
        "dedup {:.2}x, compression {:.2}x: all snapshots ({}) in {}",
        s.dedup_ratio,
        s.compression_ratio,
        human(s.all_bytes),
        human(s.stored_bytes)
    );
    if s.delta_chunk_bytes > 0 {
        println!(
            "deltas: {} of changed chunks stored in {} ({:.1}x)",
            human(s.delta_chunk_bytes),
            human(s.delta_stored_bytes),
            s.delta_ratio
        );
    }
    println!(
        "monthly estimate ({}; docs/stats.md): ${:.4} storage + ${:.4} for {} writes = ${:.4}",
        s.provider, s.storage_dollars, s.request_dollars, s.puts_per_month, s.monthly_dollars
    );
    println!(
        "the same snapshots as compressed full copies (the scripts' way): {} = ${:.4}/month",
        human(s.full_copies_bytes),
        s.full_copies_monthly_dollars
    );
    Ok(0)
}
