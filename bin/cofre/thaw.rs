//! `cofre thaw`: makes the archived data a snapshot or a path needs readable (the library:
//! `Session::thaw_plan`, `Session::thaw`).

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use cofre::error::{Error, Result};
use cofre::store::{ThawState, ThawTier};
use cofre::thaw::{pending, ThawOptions};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// SNAPSHOT[:PATH]: an id prefix or `latest`, and a path in it (all of it by default).
    spec: Option<String>,
    #[arg(long)]
    set: Option<String>,
    /// Retrieval tier: expedited (GLACIER only, minutes), standard (hours), bulk (cheapest).
    #[arg(long, default_value = "standard")]
    tier: ThawTier,
    /// Days the thawed copies stay readable.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Wait until every pack is readable, then exit 0.
    #[arg(long)]
    wait: bool,
    /// Go ahead without asking (needed when not on a terminal).
    #[arg(long)]
    yes: bool,
    /// Show the thaws asked for from this machine, and where each stands.
    #[arg(long)]
    status: bool,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let session = ctx.session()?;
    if a.status {
        let records = session.thaw_status(now())?;
        if ctx.json {
            ctx.print_json(&records)?;
            return Ok(0);
        }
        let states: Vec<ThawState> = records.iter().map(|r| r.state).collect();
        println!(
            "{} thaw request(s): {} readable, {} still thawing",
            records.len(),
            records.len() - pending(&states),
            pending(&states)
        );
        for r in &records {
            let a = &r.asked;
            println!(
                "  {} ({}, asked {}, expected by {}): {}",
                a.key,
                a.tier,
                crate::day(a.requested),
                crate::day(a.expected),
                describe(r.state)
            );
        }
        return Ok(0);
    }
    let spec = a.spec.as_deref().ok_or_else(|| {
        Error::InvalidArgument("give SNAPSHOT[:PATH] to thaw, or --status".into())
    })?;
    let (snapshot, path) = crate::split_spec(spec);
    let opts = ThawOptions {
        snapshot: snapshot.to_string(),
        path: path.to_string(),
        set: a.set.clone(),
        tier: a.tier,
        days: a.days,
    };
    let plan = session.thaw_plan(&opts)?;
    let count = |s: fn(&ThawState) -> bool| plan.packs.iter().filter(|p| s(&p.state)).count();
    let frozen = count(|s| *s == ThawState::Frozen);
    let short = &plan.snapshot[..8.min(plan.snapshot.len())];
    eprintln!(
        "{} of {} file(s) under {path} in {short} need {} archived pack(s) ({}): {frozen} frozen, {} thawing, {} thawed, {} readable as they are",
        plan.frozen_files,
        plan.files,
        plan.packs.len(),
        crate::mib(plan.packs.iter().map(|p| p.bytes).sum()),
        count(|s| *s == ThawState::Thawing),
        count(|s| matches!(s, ThawState::Thawed { .. })),
        count(|s| *s == ThawState::Readable),
    );
    if frozen > 0 {
        let e = &plan.estimate;
        eprintln!(
            "thawing {frozen} pack(s) ({}) at the {} tier for {} day(s) costs about ${:.4} (retrieval ${:.4}, requests ${:.4}, the thawed copies ${:.4}) and takes up to {:.1} hours",
            crate::mib(plan.bytes_to_thaw),
            plan.tier,
            plan.days,
            e.dollars,
            e.retrieval_dollars,
            e.request_dollars,
            e.temporary_copy_dollars,
            e.ready_within_hours
        );
        if !a.yes && !confirm()? {
            eprintln!("nothing asked for");
            return Ok(1);
        }
    }
    let mut packs = session.thaw(&plan, now())?;
    if a.wait {
        let keys: Vec<String> = packs.iter().map(|p| p.key.clone()).collect();
        let started = Instant::now();
        let mut pause = Duration::from_secs(1);
        let mut states: Vec<ThawState> = packs.iter().map(|p| p.state).collect();
        let mut last = usize::MAX;
        while pending(&states) > 0 {
            if pending(&states) != last {
                last = pending(&states);
                eprintln!(
                    "waiting: {last} of {} pack(s) still thawing ({:.0} s so far)",
                    keys.len(),
                    started.elapsed().as_secs_f64()
                );
            }
            std::thread::sleep(pause);
            // Polls back off to one a minute: a Standard thaw takes hours.
            pause = (pause * 2).min(Duration::from_secs(60));
            states = session.thaw_states(&keys)?;
            // A copy that expired meanwhile (a long Bulk wait) is asked for again.
            let expired: Vec<cofre::thaw::PackThaw> = packs
                .iter()
                .zip(&states)
                .filter(|(_, s)| **s == ThawState::Frozen)
                .map(|(p, _)| p.clone())
                .collect();
            if !expired.is_empty() {
                session.ask_thaw(&expired, plan.tier, plan.days, now())?;
            }
        }
        for (p, s) in packs.iter_mut().zip(states) {
            p.state = s;
        }
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "plan": plan, "packs": packs }))?;
    }
    let left = packs
        .iter()
        .filter(|p| matches!(p.state, ThawState::Frozen | ThawState::Thawing))
        .count();
    if left == 0 {
        eprintln!(
            "every pack {path} needs is readable: `cofre restore {short}:{path} --target DIR`, or read it through the mount"
        );
    } else {
        eprintln!(
            "asked for {left} pack(s); `cofre thaw --status` shows progress, `cofre thaw {short}:{path} --wait` waits"
        );
    }
    Ok(0)
}

fn describe(s: ThawState) -> String {
    match s {
        ThawState::Readable => "readable (not archived)".into(),
        ThawState::Frozen => "frozen (expired, or never thawed)".into(),
        ThawState::Thawing => "thawing".into(),
        ThawState::Thawed { expiry: Some(t) } => format!("readable until {}", crate::day(t)),
        ThawState::Thawed { expiry: None } => "readable".into(),
    }
}

/// Asks on the terminal; off a terminal, `--yes` is required.
fn confirm() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::InvalidArgument(
            "a thaw is billed: pass --yes to go ahead without a terminal to ask on".into(),
        ));
    }
    eprint!("go ahead? [y/N] ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io("stdin", e))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
