//! `cofre drill`: mount, copy out, verify, time (the library: `Session::drill`).

use std::path::PathBuf;

use cofre::error::{Result, EXIT_FAILURE};
use cofre::{Copier, DrillArgs};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot to drill (default: the latest of the set; needs exactly one --set).
    snapshot: Option<String>,
    /// Sets to drill (repeatable; default: every set of the configuration).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Copy into DIR/<set> and keep it (default: a temporary directory, removed).
    #[arg(long)]
    target: Option<PathBuf>,
    /// How to copy out of the mount: cp (cp -a) or rsync (rsync -aHAX).
    #[arg(long, default_value = "cp", value_parser = Copier::parse)]
    copy: Copier,
    /// List the drills stored in the repository (all machines) instead.
    #[arg(long)]
    history: bool,
    /// Also restore the set's pg_dump into a scratch database on this server
    /// (libpq connection string; default: the set's `pg_drill`).
    #[arg(long)]
    pg_restore: Option<String>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

impl From<Args> for DrillArgs {
    fn from(a: Args) -> DrillArgs {
        DrillArgs {
            history: a.history,
            sets: a.sets,
            snapshot: a.snapshot,
            target: a.target,
            copier: a.copy,
            pg_restore: a.pg_restore,
            report: a.report,
        }
    }
}

/// `cofre drill --history`: every drill stored in the repository, oldest first.
fn history(ctx: &Ctx, sets: &[String]) -> Result<i32> {
    let all: Vec<cofre::DrillRecord> = ctx
        .session()?
        .drill_history()?
        .into_iter()
        .filter(|r| sets.is_empty() || sets.contains(&r.set))
        .collect();
    if ctx.json {
        ctx.print_json(&all)?;
        return Ok(0);
    }
    println!(
        "{:<20}  {:<12} {:<8} {:<4} {:>8} {:>12} {:>9} {:>9}  host",
        "time", "set", "snapshot", "", "files", "bytes", "RTO s", "RPO s"
    );
    for r in &all {
        println!(
            "{:<20}  {:<12} {:<8} {:<4} {:>8} {:>12} {:>9.1} {:>9}  {}",
            &r.time[..19.min(r.time.len())],
            r.set,
            &r.snapshot[..8.min(r.snapshot.len())],
            if r.passed { "PASS" } else { "FAIL" },
            r.files,
            r.bytes,
            r.rto_seconds,
            r.rpo_seconds,
            r.hostname
        );
    }
    println!("{} drills", all.len());
    Ok(0)
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let file = ctx.file.as_ref();
    let a = DrillArgs::from(a);
    if a.history {
        return history(ctx, &a.sets);
    }
    // Usage mistakes before the repository is opened (and its password asked).
    cofre::sets_to_drill(file, &a)?;
    let reports = ctx.session()?.drill(file, &a)?;
    let code = match reports.iter().all(|r| r.passed) {
        true => 0,
        false => EXIT_FAILURE,
    };
    if ctx.json {
        ctx.print_json(&reports)?;
        return Ok(code);
    }
    for r in &reports {
        let mb = r.bytes as f64 / 1e6;
        println!(
            "{} {}  snapshot {} ({})",
            if r.passed { "PASS" } else { "FAIL" },
            r.set,
            &r.snapshot[..8],
            r.snapshot_time
        );
        println!(
            "  {} files, {} dirs, {} other, {mb:.1} MB verified; mount {:.1} s, copy {:.1} s ({:.1} MB/s), verify {:.1} s",
            r.files,
            r.dirs,
            r.other,
            r.mount_seconds,
            r.copy_seconds,
            r.throughput_bytes_per_second / 1e6,
            r.verify_seconds
        );
        let target = |t: Option<u64>| t.map_or(String::new(), |t| format!(" (target {t} s)"));
        println!(
            "  RTO {:.1} s{}, RPO {} s{}",
            r.rto_seconds,
            target(r.rto_target_seconds),
            r.rpo_seconds,
            target(r.rpo_target_seconds)
        );
        if let Some(p) = &r.pg {
            let ok = |ok: bool| if ok { "ok" } else { "FAILED" };
            if let Some(rep) = &p.replay {
                println!(
                    "  PostgreSQL {}: {:.1} s {}; replay {:.1} s {}; last commit recovered: {}",
                    p.restore.what,
                    p.restore.seconds,
                    ok(p.restore.ok),
                    rep.seconds,
                    ok(rep.ok),
                    p.recovered_to.as_deref().unwrap_or("none replayed")
                );
            }
            println!(
                "  PostgreSQL ({}): restore {:.1} s {}; {} check(s) ok of {}{}",
                p.format,
                p.restore.seconds,
                if p.restore.ok { "ok" } else { "FAILED" },
                p.checks.iter().filter(|c| c.ok).count(),
                p.checks.len(),
                p.command.as_ref().map_or(String::new(), |c| format!(
                    "; `{}` {} in {:.1} s",
                    c.what,
                    if c.ok { "ok" } else { "FAILED" },
                    c.seconds
                ))
            );
        }
        for p in &r.problems {
            println!("  problem: {p}");
        }
        for m in r.mismatches.iter().take(50) {
            println!("  mismatch: {m}");
        }
        if r.mismatches.len() > 50 {
            println!(
                "  ... and {} more (--json lists all)",
                r.mismatches.len() - 50
            );
        }
    }
    Ok(code)
}
