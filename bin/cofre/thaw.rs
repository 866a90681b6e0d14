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
    /// Days the thawed copies stay readable (at least 1).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
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
        let longest = cofre::thaw::longest_hours(packs.iter().map(|p| p.class.as_str()), plan.tier);
        if !wait(&session, &mut packs, &plan, longest)? {
            return Ok(1);
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

/// Polls the packs still to come, with backoff (1 s doubling to 15 minutes: a Standard
/// thaw takes hours, and every poll is a billed HEAD per pack), asking again for a copy
/// that expired meanwhile (at most three times each). Gives up at twice the tier's longest
/// time plus an hour: false then, after saying what is left.
fn wait(
    session: &cofre::Session,
    packs: &mut [cofre::thaw::PackThaw],
    plan: &cofre::thaw::ThawPlan,
    longest_hours: f64,
) -> Result<bool> {
    let started = Instant::now();
    let limit = Duration::from_secs_f64((2.0 * longest_hours + 1.0) * 3600.0);
    let mut pause = Duration::from_secs(1);
    let mut asked_again = vec![0u32; packs.len()];
    let pending_at = |packs: &[cofre::thaw::PackThaw]| -> Vec<usize> {
        (0..packs.len())
            .filter(|&i| matches!(packs[i].state, ThawState::Frozen | ThawState::Thawing))
            .collect()
    };
    let mut pending = pending_at(packs);
    while !pending.is_empty() {
        if started.elapsed() > limit {
            eprintln!(
                "{} pack(s) still not readable after {:.1} hours: `cofre thaw --status` shows where each stands",
                pending.len(),
                started.elapsed().as_secs_f64() / 3600.0
            );
            return Ok(false);
        }
        eprintln!(
            "waiting: {} of {} pack(s) still thawing ({:.0} s so far)",
            pending.len(),
            packs.len(),
            started.elapsed().as_secs_f64()
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(15 * 60));
        let keys: Vec<String> = pending.iter().map(|&i| packs[i].key.clone()).collect();
        for (&i, s) in pending.iter().zip(session.thaw_states(&keys)?) {
            packs[i].state = s;
        }
        // A copy that expired meanwhile (a long Bulk wait, a short --days) is asked again.
        let expired: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&i| packs[i].state == ThawState::Frozen && asked_again[i] < 3)
            .collect();
        if !expired.is_empty() {
            let again: Vec<_> = expired.iter().map(|&i| packs[i].clone()).collect();
            let states = session.ask_thaw(&again, plan.tier, plan.days, now())?;
            for (&i, s) in expired.iter().zip(states) {
                asked_again[i] += 1;
                packs[i].state = s;
            }
        }
        pending = pending_at(packs);
    }
    Ok(true)
}

fn describe(s: ThawState) -> String {
    match s {
        ThawState::Readable => "readable (not archived)".into(),
        ThawState::Frozen => "frozen (expired, or never thawed)".into(),
        ThawState::Thawing => "thawing".into(),
        ThawState::Thawed { expiry: Some(t) } => format!("readable until {}", crate::day(t)),
        ThawState::Thawed { expiry: None } => "readable".into(),
        ThawState::Gone => "no longer in the store (pruned since)".into(),
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
