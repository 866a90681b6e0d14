//! `cofre diff A B [PATH]`: what changed between two snapshots.

use cofre::error::Result;
use cofre::Change;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The older snapshot (an id prefix or `latest`).
    a: String,
    /// The newer snapshot.
    b: String,
    /// Only below this path.
    #[arg(default_value = "/")]
    path: String,
    /// Resolve `latest` and prefixes in this set.
    #[arg(long)]
    set: Option<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let d = ctx.session()?.diff(&a.a, &a.b, &a.path, a.set.as_deref())?;
    if ctx.json {
        return ctx.print_json(&d).map(|_| 0);
    }
    for e in &d.entries {
        // As restic: + added, - removed, M content, T type, U metadata only.
        let mark = match e.change {
            Change::Added => "+",
            Change::Removed => "-",
            Change::Content => "M",
            Change::Type => "T",
            Change::Metadata => "U",
        };
        let size = match (e.size_before, e.size_after) {
            (Some(x), Some(y)) if x != y => format!("  ({x} -> {y} bytes)"),
            _ => String::new(),
        };
        println!("{mark}    {}{size}", e.path);
    }
    println!(
        "{} -> {}: {} added, {} removed, {} changed, {} metadata only; {} bytes added, {} removed",
        d.from.short_id,
        d.to.short_id,
        d.added,
        d.removed,
        d.changed,
        d.metadata_only,
        d.bytes_added,
        d.bytes_removed
    );
    Ok(0)
}
