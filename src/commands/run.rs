//! `cofre run`: what the timer calls (see `crate::run`).

use super::Context;
use crate::catalog::{self, sync};
use crate::error::{Error, Result};
use crate::run::{self as runner, RunOptions};

pub fn run(ctx: &Context, file: Option<&crate::config::Config>, opts: RunOptions) -> Result<i32> {
    let Some(cfg) = file else {
        return Err(Error::InvalidArgument(format!(
            "cofre run needs a configuration file ({} or --config FILE; see docs/config.md)",
            crate::config::default_path().display()
        )));
    };
    let repo = ctx.open_repo()?;
    let mut cat = sync::open_synced(&ctx.catalog_path(&repo), &repo)?;
    let lock_dir = catalog::cache_dir(&repo.config.id);
    let results = runner::run(&repo, &mut cat, cfg, &lock_dir, &opts)?;
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
    Ok(results
        .iter()
        .fold(0, |acc, r| runner::worst(acc, r.exit_code)))
}
