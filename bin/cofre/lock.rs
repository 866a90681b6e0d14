//! `cofre lock extend|recover`: S3 Object Lock (docs/object-lock.md).

use cofre::error::Result;
use cofre::{ExtendOptions, Session};

use crate::Ctx;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Keep every object a kept snapshot needs under Object Lock for as long as its
    /// policy keeps it (by the configuration file's policies), and at least the lock days
    /// ahead. Only ever raises a retention. `cofre run` does this after every snapshot.
    Extend {
        /// Count what would be extended; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// After a credential was misused: put back every object that was deleted (a delete
    /// marker) or overwritten, from the versions Object Lock kept, index the packs whose
    /// index objects were deleted, then lock what was put back.
    Recover {
        /// Say what would be put back; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Extend { dry_run } => extend(ctx, &ctx.session()?, dry_run),
        Cmd::Recover { dry_run } => {
            let report = Session::lock_recover(ctx.open.clone(), dry_run)?;
            if !ctx.json {
                for key in &report.restored {
                    println!(
                        "{} {key}",
                        if dry_run { "would restore" } else { "restored" }
                    );
                }
                for key in &report.unrecoverable {
                    eprintln!("error: {key}: no version left holds what cofre wrote");
                }
                for f in &report.failed {
                    eprintln!("error: {f}");
                }
                println!(
                    "{} object(s) looked at, {} restored, {} unrecoverable, {} failed",
                    report.objects,
                    report.restored.len(),
                    report.unrecoverable.len(),
                    report.failed.len()
                );
            }
            let bad = !report.unrecoverable.is_empty() || !report.failed.is_empty();
            if dry_run {
                if ctx.json {
                    ctx.print_json(&report)?;
                }
                return Ok(i32::from(bad));
            }
            // Index objects are not locked (they are rebuilt from the packs' headers):
            // index what no index object names any more, then lock what was put back.
            // Both run even when some keys could not be put back: what could, is.
            let session = ctx.session()?;
            let repaired = session.repair_index()?;
            let locked = lock_extend(ctx, &session, false)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({
                    "recover": report, "repair": repaired, "extend": locked,
                }))?;
            } else {
                if repaired.packs_reindexed > 0 {
                    println!(
                        "re-indexed {} pack(s) whose index objects were gone",
                        repaired.packs_reindexed
                    );
                }
                print_extend(&locked, false);
            }
            if bad {
                eprintln!("run `cofre check` to see which snapshots the objects above hurt");
            }
            Ok(i32::from(bad || !locked.problems().is_empty()))
        }
    }
}

/// `lock extend` over every snapshot, by the configuration file's policies if there is one.
fn lock_extend(ctx: &Ctx, session: &Session, dry_run: bool) -> Result<cofre::ExtendReport> {
    let none = |_: &cofre::model::Manifest| None;
    let by_config = ctx.file.as_ref().map(cofre::objlock::config_horizon);
    let horizon: &dyn Fn(&cofre::model::Manifest) -> Option<i64> = match &by_config {
        Some(h) => h,
        None => &none,
    };
    session.lock_extend(&ExtendOptions {
        horizon,
        only: None,
        dry_run,
    })
}

fn print_extend(report: &cofre::ExtendReport, dry_run: bool) {
    println!(
        "{} snapshot(s), {} object(s): {} version(s) {}; the earliest retention ends {}",
        report.snapshots,
        report.objects,
        report.extended,
        if dry_run {
            "would be extended"
        } else {
            "extended"
        },
        report
            .earliest_until
            .map_or("never".to_string(), crate::day)
    );
    for p in report.problems() {
        eprintln!("warning: {p}");
    }
}

fn extend(ctx: &Ctx, session: &Session, dry_run: bool) -> Result<i32> {
    let report = lock_extend(ctx, session, dry_run)?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        print_extend(&report, dry_run);
    }
    Ok(i32::from(!report.problems().is_empty()))
}
