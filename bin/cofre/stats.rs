//! `cofre stats`: sizes, ratios and the estimated monthly bill (the library: `Session::stats`).

use std::path::PathBuf;

use cofre::error::Result;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Only these sets' snapshots (repeatable; stored bytes are the repository's).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Whose prices: aws, b2, wasabi, gcs, local (default: aws for s3://, else local).
    #[arg(long)]
    provider: Option<String>,
    /// A TOML price table overriding the built-in one (docs/stats.md).
    #[arg(long)]
    prices: Option<PathBuf>,
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

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let file = ctx.file.as_ref();
    let pricing = cofre::Pricing::resolve(file, a.provider, a.prices, ctx.open.default_provider())?;
    let s = ctx.session()?.stats(&pricing, &a.sets)?;
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
        match s.also_in_other_classes.get(class) {
            Some(dup) => println!(
                "  {class}: {} ({} of it also stored in another class: self-contained snapshots)",
                human(*b),
                human(*dup)
            ),
            None => println!("  {class}: {}", human(*b)),
        }
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
    for (set, w) in &s.wal {
        println!(
            "WAL of {set}: {} files ({}) stored in {} objects, {}; {} PUTs in the last 30 days: ${:.4}/month ({} storage, {} writes)",
            w.files,
            human(w.raw_bytes),
            w.objects,
            human(w.stored_bytes),
            w.puts_per_month,
            w.storage_dollars + w.request_dollars,
            format_args!("${:.4}", w.storage_dollars),
            format_args!("${:.4}", w.request_dollars),
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
    if let Some(e) = s.early_deletion.filter(|e| e.packs > 0) {
        println!(
            "early-deletion liability: {} pack(s), {}, are inside their class's minimum storage duration; deleting them now would still cost ${:.4} (prune keeps them until then)",
            e.packs,
            human(e.bytes),
            e.dollars
        );
    }
    Ok(0)
}
