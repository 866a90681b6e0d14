//! `cofre wal-push`, `cofre wal-fetch` (PostgreSQL's archive_command and restore_command)
//! and `cofre wal flush|list` (docs/pitr.md). Their exit codes follow PostgreSQL's rules,
//! not only cofre's (docs/exit-codes.md): wal-push never exits above 125; wal-fetch exits
//! 1 only for a file the archive does not have, and 126 for any other failure, so that
//! the server stops replay instead of taking a failed read for the end of the WAL.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cofre::error::{Error, Result};
use cofre::wal::{FlusherOptions, Spool};
use cofre::Session;

use crate::Ctx;

/// Flush interval when neither the flag nor the set's `wal_flush` gives one.
const DEFAULT_FLUSH: Duration = Duration::from_secs(60);
/// A flusher also flushes once this much waits, whatever the interval.
const FLUSH_BYTES: u64 = 256 << 20;
/// The exit code that makes PostgreSQL stop recovery (it treats > 125 as fatal).
pub const EXIT_FETCH_FAILED: i32 = 126;

#[derive(clap::Args, Clone)]
pub struct Where {
    /// The set whose WAL this is (default: the configuration file's only set with
    /// `wal = true`).
    #[arg(long)]
    set: Option<String>,
    /// The spool directory (default: the set's `wal_spool`, else
    /// $XDG_STATE_HOME/cofre/wal/SET).
    #[arg(long)]
    spool: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// The WAL file (PostgreSQL's %p).
    path: PathBuf,
    #[command(flatten)]
    at: Where,
    /// Longest time a file waits in the spool (default: the set's `wal_flush`, else 60s);
    /// 0s stores it in the repository before wal-push returns.
    #[arg(long, value_parser = crate::parse_wait)]
    flush_every: Option<Duration>,
}

#[derive(clap::Args)]
pub struct FetchArgs {
    /// The WAL file's name (PostgreSQL's %f).
    name: String,
    /// Where to write it (PostgreSQL's %p).
    dest: PathBuf,
    #[command(flatten)]
    at: Where,
    /// Files of the timeline fetched ahead into the prefetch directory.
    #[arg(long, default_value_t = 8)]
    ahead: usize,
}

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Store what waits in the spool now (with --wait: wait the flush interval first,
    /// and keep going until the spool is empty; what wal-push starts).
    Flush {
        #[command(flatten)]
        at: Where,
        #[arg(long)]
        wait: bool,
        #[arg(long, value_parser = crate::parse_wait)]
        flush_every: Option<Duration>,
    },
    /// Delete the set's WAL that no kept base backup can replay (`cofre run` does this
    /// after pruning the set).
    Prune {
        #[command(flatten)]
        at: Where,
        /// Say what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The set's archived WAL files, and what waits in the spool.
    List {
        #[command(flatten)]
        at: Where,
    },
}

pub fn set_of(ctx: &Ctx, given: &Option<String>) -> Result<String> {
    if let Some(s) = given {
        return Ok(s.clone());
    }
    let wal_sets: Vec<&String> = ctx
        .file
        .iter()
        .flat_map(|f| f.sets.iter())
        .filter(|(_, s)| s.src.wal == Some(true))
        .map(|(n, _)| n)
        .collect();
    match wal_sets.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(Error::InvalidArgument(
            "name the set the WAL belongs to: --set NAME (or one set with wal = true in the configuration file)".into(),
        )),
    }
}

fn spool_dir(ctx: &Ctx, set: &str, given: &Option<PathBuf>) -> PathBuf {
    let from_file = ctx
        .file
        .as_ref()
        .and_then(|f| f.sets.get(set))
        .and_then(|s| s.src.wal_spool.clone());
    given.clone().or(from_file).unwrap_or_else(|| {
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("/var/lib"));
        base.join("cofre/wal").join(set)
    })
}

fn interval(ctx: &Ctx, set: &str, given: Option<Duration>) -> Duration {
    let from_file = ctx
        .file
        .as_ref()
        .and_then(|f| f.sets.get(set))
        .and_then(|s| s.src.wal_flush_secs)
        .map(Duration::from_secs);
    given.or(from_file).unwrap_or(DEFAULT_FLUSH)
}

/// The global options a child `cofre` needs to reach the same repository the same way
/// (the environment, COFRE_PASSWORD included, it inherits).
pub fn forwarded(ctx: &Ctx) -> Vec<String> {
    let mut v = Vec::new();
    let mut add = |flag: &str, val: Option<String>| {
        if let Some(val) = val {
            v.push(flag.to_string());
            v.push(val);
        }
    };
    // Absolute: PostgreSQL runs restore_command in its data directory.
    let path = |p: &Option<PathBuf>| {
        p.as_ref().map(|p| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        })
    };
    add("--config", path(&ctx.config_path));
    let repo = ctx
        .open
        .repo
        .as_ref()
        .map(|r| match r.contains("://") || r.starts_with('~') {
            true => r.clone(),
            false => path(&Some(PathBuf::from(r))).unwrap_or_else(|| r.clone()),
        });
    add("--repo", repo);
    add("--password-file", path(&ctx.open.password.file));
    add("--password-command", ctx.open.password.command.clone());
    add("--catalog", path(&ctx.open.catalog));
    v
}

pub fn push(ctx: &Ctx, a: PushArgs) -> Result<i32> {
    let set = set_of(ctx, &a.at.set)?;
    let spool = Spool::open(&spool_dir(ctx, &set, &a.at.spool))?;
    let pushed = spool.push(&a.path)?;
    let every = interval(ctx, &set, a.flush_every);
    if every.is_zero() {
        let report = ctx.session()?.wal_flush(&spool, &set)?;
        tracing::info!("{pushed:?}; flushed {} file(s)", report.files);
        return Ok(0);
    }
    tracing::info!("{}: {pushed:?}", a.path.display());
    // The lock is free: no flusher runs (one that is finishing looks at the spool again
    // after it lets go of the lock, so this push is never left behind).
    if spool.flusher_lock()?.is_some() && !spool.pending()?.is_empty() {
        start_flusher(ctx, &set, spool.dir(), every)?;
    }
    // A flusher that fails or hangs makes the archiving fail, so that PostgreSQL keeps the
    // WAL in pg_wal and its own monitoring (pg_stat_archiver) shows it.
    if let Some(why) = spool.stalled(every)? {
        return Err(Error::WriteFailed(format!(
            "{} is in the spool {}, but the spool does not reach the repository: {why}",
            a.path.display(),
            spool.dir().display()
        )));
    }
    Ok(0)
}

/// Starts `cofre wal flush --wait` in its own session, detached from PostgreSQL's
/// archiver, logging to the spool's `flusher.log`.
fn start_flusher(ctx: &Ctx, set: &str, dir: &Path, every: Duration) -> Result<()> {
    let exe = std::env::current_exe().map_err(Error::Os)?;
    let log_path = dir.join("flusher.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, e))?;
    let err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(forwarded(ctx))
        .args(["wal", "flush", "--wait", "--set", set, "--spool"])
        .arg(dir)
        .args(["--flush-every", &format!("{}s", every.as_secs())])
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; it only makes the child a session leader, so
    // that signals to the archiver's process group do not reach it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| Error::WriteFailed(format!("cannot start the WAL flusher: {e}")))?;
    Ok(())
}

pub fn fetch(ctx: &Ctx, a: FetchArgs) -> i32 {
    match fetch_inner(ctx, &a) {
        Ok(()) => 0,
        Err(e @ Error::WalNotFound(_)) => {
            eprintln!("{e}");
            1
        }
        Err(e) => {
            eprintln!(
                "error: {e}\nerror: wal-fetch {} failed: recovery stops here rather than end \
                 early; fix the cause and start the server again",
                a.name
            );
            EXIT_FETCH_FAILED
        }
    }
}

fn fetch_inner(ctx: &Ctx, a: &FetchArgs) -> Result<()> {
    let set = set_of(ctx, &a.at.set)?;
    let url = ctx.open.url()?.to_string();
    let prefetch = Session::wal_prefetch_dir(&url, &set, ctx.open.catalog.as_deref());
    let spool = spool_dir(ctx, &set, &a.at.spool);
    let spool = spool.is_dir().then_some(spool.as_path());
    if cofre::wal::fetch::from_local(&a.name, &a.dest, &prefetch, spool)?.is_some() {
        return Ok(());
    }
    // Transient store failures get two more tries before replay is stopped.
    let mut last = None;
    for pause in [0u64, 2, 5] {
        std::thread::sleep(Duration::from_secs(pause));
        let r = ctx
            .session()
            .and_then(|s| s.wal_fetch(&set, &a.name, &a.dest, a.ahead));
        match r {
            Ok(_) => return Ok(()),
            Err(e @ (Error::WalNotFound(_) | Error::WrongPassword | Error::InvalidArgument(_))) => {
                return Err(e)
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(Error::Interrupted))
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Flush {
            at,
            wait,
            flush_every,
        } => {
            let set = set_of(ctx, &at.set)?;
            let spool = Spool::open(&spool_dir(ctx, &set, &at.spool))?;
            let report = if wait {
                let opts = FlusherOptions {
                    interval: interval(ctx, &set, flush_every),
                    max_bytes: FLUSH_BYTES,
                };
                let open = || {
                    let s = ctx.session()?;
                    Ok((Arc::clone(s.repository()), s.wal_index()?))
                };
                cofre::wal::spool::run_flusher(&spool, &set, &opts, &open)?
            } else {
                ctx.session()?.wal_flush(&spool, &set)?
            };
            if ctx.json {
                ctx.print_json(&report)?;
            } else {
                println!(
                    "{} WAL file(s), {} stored as {} in {} object(s)",
                    report.files,
                    crate::mib(report.raw_bytes),
                    crate::mib(report.stored_bytes),
                    report.objects.len()
                );
            }
            Ok(0)
        }
        Cmd::Prune { at, dry_run } => {
            let set = set_of(ctx, &at.set)?;
            let r = ctx.session()?.wal_prune(&set, dry_run)?;
            if ctx.json {
                ctx.print_json(&r)?;
                return Ok(0);
            }
            match &r.oldest_start {
                None => println!("set {set}: no base backup found; no WAL deleted"),
                Some(start) => println!(
                    "set {set}: the oldest base backup starts in {start}; {} {} WAL file(s) in {} object(s), {}",
                    if dry_run { "would delete" } else { "deleted" },
                    r.files_deleted,
                    r.objects_deleted.len(),
                    crate::mib(r.bytes_freed)
                ),
            }
            Ok(0)
        }
        Cmd::List { at } => {
            let set = set_of(ctx, &at.set)?;
            let files = ctx.session()?.wal_files(&set)?;
            let spool = spool_dir(ctx, &set, &at.spool);
            let waiting = match spool.is_dir() {
                true => Spool::open(&spool)?.pending()?,
                false => Vec::new(),
            };
            if ctx.json {
                let names: Vec<_> = files
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "name": l.entry.name, "size": l.entry.raw_len,
                            "stored": l.entry.len, "object": l.object, "pushed": l.entry.pushed,
                        })
                    })
                    .collect();
                let spooled: Vec<_> = waiting.iter().map(|p| &p.name).collect();
                ctx.print_json(&serde_json::json!({ "archived": names, "spool": spooled }))?;
                return Ok(0);
            }
            for l in &files {
                println!(
                    "{}  {}  {}",
                    l.entry.name,
                    crate::mib(l.entry.raw_len),
                    &l.object[..12]
                );
            }
            println!(
                "{} file(s) archived; {} waiting in {}",
                files.len(),
                waiting.len(),
                spool.display()
            );
            Ok(0)
        }
    }
}
