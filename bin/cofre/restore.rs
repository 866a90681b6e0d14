//! `cofre restore`.

use std::path::PathBuf;

use cofre::error::{Error, Result, EXIT_PARTIAL};
use cofre::RestoreOptions;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// SNAPSHOT[:PATH]: an id prefix or `latest`, and a path in it.
    spec: String,
    #[arg(long)]
    target: PathBuf,
    #[arg(long)]
    set: Option<String>,
    /// Memory for reading packs, in MiB: three quarters hold pack windows (fetched once,
    /// decoded as files need them), a quarter decoded delta bases. More fetches less twice
    /// from S3; the default keeps a restore under 100 MB.
    #[arg(long, default_value_t = cofre::DEFAULT_CACHE_MIB)]
    cache_mib: usize,
}

impl From<Args> for RestoreOptions {
    fn from(a: Args) -> RestoreOptions {
        let (snap, path) = crate::split_spec(&a.spec);
        RestoreOptions {
            snapshot: snap.to_string(),
            path: path.to_string(),
            set: a.set,
            target: a.target,
            cache_mib: a.cache_mib,
        }
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let opts = RestoreOptions::from(a);
    let done = ctx.session()?.restore(&opts)?;
    let report = &done.report;
    if ctx.json {
        ctx.print_json(report)?;
    } else {
        println!(
            "restored {} files, {} directories, {} bytes from {} to {}",
            report.files,
            report.dirs,
            report.bytes,
            done.snapshot.short_id,
            opts.target.display()
        );
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if report.archived > 0 {
        let how = match ctx.open.url().is_ok_and(|u| u.starts_with("az://")) {
            // Azure rehydrates by access tier; `thaw` is built for S3.
            true => "set their blobs' access tier to Hot or Cool (rehydration)".to_string(),
            false => format!(
                "run `cofre thaw {}:{} --wait`",
                done.snapshot.short_id, opts.path
            ),
        };
        eprintln!(
            "{} file(s) are in the archive tier: {how}, then restore again",
            report.archived
        );
    }
    if let Some(first) = report.errors.first() {
        return Err(Error::RestoreIncomplete {
            count: report.errors.len(),
            first: first.clone(),
        });
    }
    Ok(if report.warnings.is_empty() {
        0
    } else {
        EXIT_PARTIAL
    })
}
