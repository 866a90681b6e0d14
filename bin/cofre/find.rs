//! `cofre find PATTERN`: names across snapshots, grouped by path and version.

use cofre::error::Result;
use cofre::FindOptions;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// A glob on entry names: `*`, `?`, `[...]`, case-sensitive (`*.conf`, `report-2026-*`).
    pattern: String,
    /// Only this set's snapshots.
    #[arg(long)]
    set: Option<String>,
    /// Only snapshots taken at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only snapshots taken at or before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Only entries at or below this path.
    #[arg(long)]
    path_prefix: Option<String>,
}

impl TryFrom<Args> for FindOptions {
    type Error = cofre::Error;

    fn try_from(a: Args) -> Result<FindOptions> {
        let time = |flag: &str, v: Option<String>| {
            v.map(|t| crate::parse_time(flag, &t).map(|t| t.0))
                .transpose()
        };
        Ok(FindOptions {
            set: a.set,
            since: time("--since", a.since)?,
            until: time("--until", a.until)?,
            path_prefix: a.path_prefix,
        })
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let pattern = a.pattern.clone();
    let opts = FindOptions::try_from(a)?;
    let found = ctx.session()?.find(&pattern, &opts)?;
    if ctx.json {
        return ctx.print_json(&found).map(|_| 0);
    }
    for f in &found {
        println!("{}", f.path);
        crate::log::print_versions(&f.versions, "  ");
    }
    println!("{} path(s)", found.len());
    Ok(0)
}
