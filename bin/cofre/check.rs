//! `cofre check`.

use std::path::PathBuf;

use cofre::error::{Error, Result};
use cofre::{CheckReport, ReadData, Session};

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
    /// Also check this repository (a copy made with `cofre init --copy-params-from` this
    /// one) and compare the two: snapshots only one side has, or that differ. The
    /// --read-data options apply to both.
    #[arg(long)]
    against: Option<String>,
    /// The --against repository's password, from this file (else COFRE_TO_PASSWORD, else
    /// asked).
    #[arg(long, requires = "against")]
    against_password_file: Option<PathBuf>,
}

impl From<&Args> for ReadData {
    fn from(a: &Args) -> ReadData {
        match (a.read_data, a.read_data_subset) {
            (_, Some(s)) => s,
            (true, None) => ReadData::All,
            (false, None) => ReadData::None,
        }
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let read = ReadData::from(&a);
    if let Some(other) = &a.against {
        return against(ctx, a.against_password_file, other, read);
    }
    let r = ctx.session()?.check(read)?;
    if ctx.json {
        ctx.print_json(&r)?;
    } else {
        print_report(&r, "");
    }
    match r.errors.len() {
        0 => Ok(0),
        n => Err(Error::CheckFailed(n)),
    }
}

fn print_report(r: &CheckReport, indent: &str) {
    println!(
        "{indent}{} snapshots, {} trees, {} chunks, {} packs ({} read, {} not indexed: leftovers for prune)",
        r.snapshots, r.trees, r.chunks, r.packs, r.packs_read, r.unindexed_packs
    );
    for s in r.wal.iter().flat_map(|w| &w.sets) {
        println!(
            "{indent}WAL of set {}: {} file(s), {} to {}, {} gap(s)",
            s.set,
            s.files,
            s.first.as_deref().unwrap_or("-"),
            s.last.as_deref().unwrap_or("-"),
            s.gaps.len()
        );
        for w in &s.warnings {
            eprintln!("{indent}warning: {w}");
        }
    }
    for e in &r.errors {
        eprintln!("{indent}error: {e}");
    }
    if r.errors.is_empty() {
        println!("{indent}no errors");
    }
}

fn against(ctx: &Ctx, password: Option<PathBuf>, other: &str, read: ReadData) -> Result<i32> {
    let src = ctx.session()?;
    let dst = Session::open(crate::copy::target_options(ctx, other, password))?;
    let r = src.check_against(&dst, read)?;
    if ctx.json {
        ctx.print_json(&r)?;
    } else {
        let c = &r.comparison;
        println!("this repository:");
        print_report(&r.source, "  ");
        println!("{}:", c.target);
        print_report(&r.target, "  ");
        println!(
            "compared: {} snapshots in both, {} only here, {} only on {}, {} differ",
            c.in_both,
            c.only_source.len(),
            c.only_target.len(),
            c.target,
            c.differ.len()
        );
        let short = |id: &str| id[..8.min(id.len())].to_string();
        for s in &c.only_source {
            println!("  only here:  {} {} {}", short(&s.id), s.set, s.time);
        }
        for s in &c.only_target {
            println!("  only there: {} {} {}", short(&s.id), s.set, s.time);
        }
        for d in &c.differ {
            eprintln!(
                "error: {} here and {} there ({} {}): {}",
                short(&d.source.id),
                short(&d.target.id),
                d.source.set,
                d.source.time,
                d.what
            );
        }
        for e in &c.errors {
            eprintln!("error: {e}");
        }
    }
    match r.problems() {
        0 => Ok(0),
        n => Err(Error::CheckFailed(n)),
    }
}
