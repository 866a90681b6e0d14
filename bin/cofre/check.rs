//! `cofre check`.

use cofre::error::{Error, Result};
use cofre::ReadData;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Download and verify every pack.
    #[arg(long)]
    read_data: bool,
    /// Download and verify a subset: n/m (part n of m, by pack id: monthly runs of
    /// 1/12..12/12 read everything once a year), X% (random) or a size (500M, 2G).
    #[arg(long, value_parser = ReadData::parse_subset, conflicts_with = "read_data")]
    read_data_subset: Option<ReadData>,
}

impl From<Args> for ReadData {
    fn from(a: Args) -> ReadData {
        match (a.read_data, a.read_data_subset) {
            (_, Some(s)) => s,
            (true, None) => ReadData::All,
            (false, None) => ReadData::None,
        }
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let r = ctx.session()?.check(ReadData::from(a))?;
    if ctx.json {
        ctx.print_json(&r)?;
    } else {
        println!(
            "{} snapshots, {} trees, {} chunks, {} packs ({} read, {} not indexed: leftovers for prune)",
            r.snapshots, r.trees, r.chunks, r.packs, r.packs_read, r.unindexed_packs
        );
        for e in &r.errors {
            eprintln!("error: {e}");
        }
        if r.errors.is_empty() {
            println!("no errors");
        }
    }
    if r.errors.is_empty() {
        Ok(0)
    } else {
        Err(Error::CheckFailed(r.errors.len()))
    }
}
