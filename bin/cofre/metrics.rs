//! `cofre metrics`: the metrics `cofre run` writes, printed (or written to a file).

use std::path::PathBuf;

use cofre::error::Result;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Write them to this file (atomically) instead of printing them.
    #[arg(long)]
    metrics_file: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let text = ctx.session()?.metrics(ctx.file.as_ref())?;
    match a.metrics_file {
        Some(path) => cofre::write_metrics(&path, &text)?,
        None => print!("{text}"),
    }
    Ok(0)
}
