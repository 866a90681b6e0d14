//! `cofre copy`.

use std::path::PathBuf;

use cofre::error::{Error, Result};
use cofre::{CopyOptions, OpenOptions, PasswordSource, Session};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The repository to copy into, made with `cofre init --copy-params-from` this one.
    #[arg(long, env = "COFRE_TO_REPO")]
    to: String,
    /// The target's password, from this file (else COFRE_TO_PASSWORD, else asked).
    #[arg(long)]
    to_password_file: Option<PathBuf>,
    /// Only snapshots of this set (repeatable).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Only snapshots taken at or after this time: RFC 3339, or an age such as 7d or 12h.
    #[arg(long)]
    since: Option<String>,
    /// Say what would be copied, and how much; copy nothing.
    #[arg(long)]
    dry_run: bool,
    /// Snapshot ids or unique id prefixes (default: every snapshot the filters select).
    snapshots: Vec<String>,
}

/// The options of the target repository: `--to` and its own password.
pub fn target_options(ctx: &Ctx, repo: &str, password_file: Option<PathBuf>) -> OpenOptions {
    OpenOptions {
        repo: Some(repo.to_string()),
        password: PasswordSource {
            file: password_file,
            env: std::env::var("COFRE_TO_PASSWORD").ok(),
            command: None,
        },
        catalog: None,
        ..ctx.open.clone()
    }
}

/// `--since`: an RFC 3339 time, or an age before now (`7d`).
fn since(s: &str) -> Result<i64> {
    if let Ok(secs) = cofre::config::parse_duration(s) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        return Ok(now - secs as i64);
    }
    crate::parse_time("--since", s).map(|t| t.0).map_err(|_| {
        Error::InvalidArgument(format!(
            "--since {s}: expected an RFC 3339 time or an age such as 7d"
        ))
    })
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let since = a.since.as_deref().map(since).transpose()?;
    let src = ctx.session()?;
    let dst = Session::open(target_options(ctx, &a.to, a.to_password_file))?;
    let report = src.copy_to(
        &dst,
        CopyOptions {
            sets: a.sets,
            since,
            snapshots: a.snapshots,
            dry_run: a.dry_run,
            retry_lock: ctx.open.retry_lock,
        },
    )?;
    if ctx.json {
        ctx.print_json(&report)?;
        return Ok(0);
    }
    let verb = if report.dry_run {
        "would copy"
    } else {
        "copied"
    };
    for s in &report.copied {
        println!(
            "{verb} {} ({} {}): {} blobs, {}",
            &s.id[..8.min(s.id.len())],
            s.set,
            s.time,
            s.blobs,
            crate::mib(s.bytes)
        );
    }
    println!(
        "{} snapshot(s) {verb}, {} already there; {} blobs, {} in {:.1}s",
        report.copied.len(),
        report.present,
        report.blobs,
        crate::mib(report.bytes),
        report.duration_secs
    );
    Ok(0)
}
