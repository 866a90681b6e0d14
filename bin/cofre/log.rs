//! `cofre log PATH`: every version of a file or directory across snapshots.

use cofre::error::Result;
use cofre::{Change, Version};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The path, as in the snapshot (`/etc/app.conf`).
    path: String,
    /// Only this set's snapshots.
    #[arg(long)]
    set: Option<String>,
}

/// One line per version, as `log` and `find` print them.
pub fn print_versions(versions: &[Version], indent: &str) {
    for v in versions {
        let span = match v.snapshots {
            1 => v.first.short_id.clone(),
            n => format!("{}..{} ({n})", v.first.short_id, v.last.short_id),
        };
        let when = &v.first.time[..19.min(v.first.time.len())];
        match &v.entry {
            None => println!("{indent}{when}  {:<8}  {span}", "removed"),
            Some(e) => {
                let what = match v.change {
                    Change::Added => "added",
                    Change::Removed => "removed",
                    Change::Content => "changed",
                    Change::Metadata => "metadata",
                    Change::Type => "type",
                };
                let hash = e.blake3.as_deref().map_or("-", |h| &h[..16.min(h.len())]);
                println!(
                    "{indent}{when}  {what:<8}  {:<7} {:>5} {:>12}  {hash}  {span}",
                    e.kind, e.mode, e.size
                );
            }
        }
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let versions = ctx.session()?.log(&a.path, a.set.as_deref())?;
    if ctx.json {
        return ctx.print_json(&versions).map(|_| 0);
    }
    if versions.is_empty() {
        println!("{}: in no snapshot", a.path);
        return Ok(0);
    }
    print_versions(&versions, "");
    Ok(0)
}
