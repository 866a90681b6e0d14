//! `cofre pitr`: restore a PostgreSQL data directory to a point in time (the library:
//! `Session::pitr`; docs/pitr.md).

use std::path::PathBuf;
use std::time::Duration;

use cofre::error::{Error, Result};
use cofre::wal::server::Server;
use cofre::wal::{PitrOptions, Target};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The set holding the cluster's base backups and WAL (default: the configuration
    /// file's only set with `wal = true`).
    #[arg(long)]
    set: Option<String>,
    /// `latest` (the end of the archive), an RFC 3339 time, or an LSN such as 0/3000060.
    #[arg(long, default_value = "latest")]
    to: String,
    /// The new data directory (must be absent or empty).
    #[arg(long)]
    target: PathBuf,
    /// Recovery target timeline (default: latest).
    #[arg(long)]
    timeline: Option<String>,
    /// Keep archive_mode as the backed-up cluster had it (default: off in the restored
    /// copy, so that it never archives into the set it came from).
    #[arg(long)]
    keep_archiving: bool,
    /// Start the server on the restored directory and wait until replay is done.
    #[arg(long)]
    start: bool,
    /// Port for --start (it listens on a unix socket in the data directory only).
    #[arg(long, default_value_t = 5433)]
    port: u16,
    /// Directory of pg_ctl and psql (default: PATH, else the newest /usr/lib/postgresql/*/bin).
    #[arg(long)]
    pg_bin: Option<PathBuf>,
    /// Longest wait for replay with --start (e.g. 30m, 2h).
    #[arg(long, default_value = "2h", value_parser = crate::parse_wait)]
    timeout: Duration,
}

/// The `restore_command` the server runs: this binary, reaching the repository as this
/// command did. A password given only in the environment cannot be handed over.
fn restore_command(ctx: &Ctx, set: &str) -> Result<String> {
    let pw = &ctx.open.password;
    if pw.file.is_none() && pw.command.is_none() {
        return Err(Error::InvalidArgument(
            "pitr writes a restore_command for the server: give the password as a file or a command (--password-file, --password-command or the configuration file), not in COFRE_PASSWORD".into(),
        ));
    }
    let exe = std::env::current_exe().map_err(Error::Os)?;
    Ok(cofre::wal::pitr::restore_command(
        &exe,
        &crate::wal::forwarded(ctx),
        set,
    ))
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let set = crate::wal::set_of(ctx, &a.set)?;
    let target = std::path::absolute(&a.target).map_err(|e| Error::io(&a.target, e))?;
    let opts = PitrOptions {
        set: set.clone(),
        to: Target::parse(&a.to)?,
        target: target.clone(),
        timeline: a.timeline.clone(),
        restore_command: restore_command(ctx, &set)?,
        keep_archiving: a.keep_archiving,
    };
    let report = ctx.session()?.pitr(&opts)?;
    let server = Server {
        data: &target,
        socket_dir: &target,
        port: a.port,
        pg_bin: a.pg_bin.as_deref(),
        env: &[],
        scratch: false,
    };
    let replay = match a.start {
        true => Some(server.start_and_wait(a.timeout)?),
        false => None,
    };
    if ctx.json {
        let mut v =
            serde_json::to_value(&report).map_err(|e| Error::corrupt("json", e.to_string()))?;
        v["replay_seconds"] = serde_json::json!(replay);
        ctx.print_json(&v)?;
        return Ok(0);
    }
    let b = &report.base_backup;
    println!(
        "restored base backup {} ({}, WAL from {}) into {} in {:.1}s",
        &b.snapshot[..8],
        b.snapshot_time,
        b.start_wal,
        target.display(),
        report.seconds_restoring
    );
    match replay {
        Some(s) => println!(
            "replayed WAL to {} in {s:.1}s: the server runs on port {} (socket in {})",
            report.target,
            a.port,
            target.display()
        ),
        None => println!(
            "recovery to {} is set up (recovery.signal, postgresql.auto.conf); start it as the \
             database's user: pg_ctl -D {} start",
            report.target,
            target.display()
        ),
    }
    if !a.keep_archiving {
        println!(
            "archive_mode is off in the restored copy: if it becomes the primary, remove that \
             line from postgresql.auto.conf, restart it, and take a new base backup"
        );
    }
    Ok(0)
}
