//! cofre's command line: the library's first front end. Parse arguments, open a session,
//! call the library, print its report (text or `--json`), map errors to exit codes (0 ok,
//! 1 failure, 2 usage, 3 done with some sources or metadata missing; docs/exit-codes.md).
//! One file per command; each holds its clap `Args` and how its report is printed.

mod catalog;
mod check;
mod completion;
mod config;
mod copy;
mod diff;
mod drill;
mod find;
mod forget;
mod generate;
mod ingest;
mod init;
mod key;
mod lock;
mod log;
mod ls;
mod metrics;
mod mount;
mod pitr;
mod progress;
mod prune;
mod repair;
mod restore;
mod run;
mod schedule;
mod serve;
mod snapshots;
mod stats;
mod thaw;
mod unlock;
mod wal;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use cofre::error::{Error, Result};
use cofre::{Config, OpenOptions, PasswordSource, Session};

#[derive(Parser)]
#[command(
    name = "cofre",
    version,
    about = "Versioned, encrypted, deduplicating backups you can mount"
)]
pub struct Cli {
    /// Configuration file (default /etc/cofre/cofre.toml for root, else
    /// $XDG_CONFIG_HOME/cofre/cofre.toml; see docs/config.md).
    #[arg(long, global = true, env = "COFRE_CONFIG")]
    config: Option<PathBuf>,
    /// Repository: a local directory, s3://bucket/prefix, az://container/prefix or
    /// gs://bucket/prefix (docs/stores.md).
    #[arg(short, long, global = true, env = "COFRE_REPO")]
    repo: Option<String>,
    /// Read the password from this file.
    #[arg(long, global = true, env = "COFRE_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password.
    #[arg(long, global = true, env = "COFRE_PASSWORD_COMMAND")]
    password_command: Option<String>,
    /// Catalog database (default: $XDG_CACHE_HOME/cofre/<repo id>/catalog.db).
    #[arg(long, global = true, env = "COFRE_CATALOG")]
    catalog: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// Wait up to this long for another process's lock (e.g. 30s, 10m, 1h).
    #[arg(long, global = true, default_value = "0s", value_parser = parse_wait)]
    retry_lock: std::time::Duration,
    /// restore and check take no lock (for a repository you cannot write to; a prune
    /// running meanwhile can then make them fail).
    #[arg(long, global = true)]
    no_lock: bool,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new repository.
    Init(init::Args),
    /// Back up paths, standard input or a command's output as a new snapshot.
    Ingest(ingest::Args),
    /// List snapshots.
    Snapshots(snapshots::Args),
    /// List the contents of SNAPSHOT[:PATH].
    Ls(ls::Args),
    /// Restore SNAPSHOT[:PATH] under a target directory.
    Restore(restore::Args),
    /// Every version of a file or directory across snapshots (from the catalog).
    Log(log::Args),
    /// Entries whose name matches a glob, across snapshots, by path and version.
    Find(find::Args),
    /// What changed between two snapshots: added, removed, content, metadata only.
    Diff(diff::Args),
    /// Show every snapshot as a read-only filesystem (stays in the foreground).
    Mount(mount::Args),
    /// Verify the repository: structure, or every byte with --read-data.
    Check(check::Args),
    /// Remove snapshots by policy (per set) or by id; --prune frees their data.
    Forget(Box<forget::Args>),
    /// Delete data no snapshot references; repack partly used packs.
    Prune(prune::Args),
    /// Remove stale locks (of processes that are gone or silent for 30 minutes).
    Unlock(unlock::Args),
    /// Take every snapshot the configuration file says is due, then apply retention.
    Run(run::Args),
    /// The recovery test: mount each set's snapshot, copy it out with cp -a (or rsync),
    /// verify every file and its metadata, report RTO and RPO against the set's targets.
    Drill(drill::Args),
    /// Sizes, dedup and compression ratios, and the estimated monthly bill.
    Stats(stats::Args),
    /// Print the Prometheus metrics `cofre run` writes (docs/monitoring.md).
    Metrics(metrics::Args),
    /// A web page to browse, search, compare and download any version (docs/serve.md).
    Serve(serve::Args),
    /// Install, remove or show the timer that calls `cofre run`.
    Schedule {
        #[command(subcommand)]
        cmd: schedule::Cmd,
    },
    /// Make the archived (GLACIER, DEEP_ARCHIVE) data a snapshot or a path needs readable
    /// for a while: exactly its packs, with the cost stated first (docs/s3.md "Thawing").
    Thaw(thaw::Args),
    /// S3 Object Lock: extend retention, recover deleted or overwritten objects.
    Lock {
        #[command(subcommand)]
        cmd: lock::Cmd,
    },
    /// PostgreSQL's archive_command: keep a WAL file (`cofre wal-push %p`; docs/pitr.md).
    WalPush(wal::PushArgs),
    /// PostgreSQL's restore_command: fetch a WAL file (`cofre wal-fetch %f %p`); exits 1
    /// when the archive does not have it, 126 on any other failure.
    WalFetch(wal::FetchArgs),
    /// The WAL archive: flush the spool, list what is archived.
    Wal {
        #[command(subcommand)]
        cmd: wal::Cmd,
    },
    /// Restore a PostgreSQL data directory to a point in time from a base backup and the
    /// archived WAL (--start also runs the replay).
    Pitr(pitr::Args),
    /// Copy snapshots, as they are, into a second repository made with
    /// `init --copy-params-from` (an offsite copy); a second run copies nothing.
    Copy(copy::Args),
    /// Check or show the configuration file.
    Config {
        #[command(subcommand)]
        cmd: config::Cmd,
    },
    /// Manage the repository's passwords.
    Key {
        #[command(subcommand)]
        cmd: key::Cmd,
    },
    /// Maintain the local catalog.
    Catalog {
        #[command(subcommand)]
        cmd: catalog::Cmd,
    },
    /// Repair the repository (adds objects, deletes nothing).
    Repair {
        #[command(subcommand)]
        cmd: repair::Cmd,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(completion::Args),
    /// Write man pages, completions and systemd units into a directory (for packaging).
    #[command(hide = true)]
    Generate(generate::Args),
}

/// What every command gets: how to open the repository, the configuration file, `--json`.
pub struct Ctx {
    pub open: OpenOptions,
    pub json: bool,
    /// `--config` as given (schedule and config find the file themselves).
    pub config_path: Option<PathBuf>,
    pub file: Option<Config>,
}

impl Ctx {
    pub fn session(&self) -> Result<Session> {
        Session::open(self.open.clone())
    }

    pub fn print_json<T: serde::Serialize>(&self, v: &T) -> Result<()> {
        let s =
            serde_json::to_string_pretty(v).map_err(|e| Error::corrupt("json", e.to_string()))?;
        println!("{s}");
        Ok(())
    }

    /// The configuration file a command cannot do without.
    pub fn need_file(&self, what: &str) -> Result<&Config> {
        self.file.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{what} needs a configuration file ({} or --config FILE; see docs/config.md)",
                cofre::default_config_path().display()
            ))
        })
    }
}

/// `30s`, `10m`, `2h` or plain seconds, for `--retry-lock`.
fn parse_wait(s: &str) -> std::result::Result<std::time::Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 30s, 10m or 2h"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{s:?}: unit must be s, m or h")),
    };
    Ok(std::time::Duration::from_secs(n * mult))
}

/// `5%` (or `5`), between 0 and 100.
pub fn parse_percent(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?}: expected a percentage such as 5%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{s:?}: must be between 0% and 100%"));
    }
    Ok(v)
}

/// An RFC 3339 time given as `flag`, as (seconds, nanoseconds).
pub fn parse_time(flag: &str, s: &str) -> Result<(i64, u32)> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::InvalidArgument(format!("{flag} {s}: {e}")))?;
    Ok((t.unix_timestamp(), t.nanosecond()))
}

/// A Unix time as its UTC date (YYYY-MM-DD), for people.
pub fn day(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!("{}-{:02}-{:02}", t.year(), t.month() as u8, t.day()),
        Err(_) => unix.to_string(),
    }
}

/// Bytes as MiB with one decimal, for people.
pub fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// `SNAPSHOT[:PATH]` → (snapshot, path), path defaulting to `/`.
pub fn split_spec(spec: &str) -> (&str, &str) {
    match spec.split_once(':') {
        Some((s, p)) if !p.is_empty() => (s, p),
        Some((s, _)) => (s, "/"),
        None => (spec, "/"),
    }
}

/// Flags and environment first, then the configuration file (`config::resolve`).
fn context(cli: &Cli, rt: &tokio::runtime::Runtime, file: Option<Config>) -> Ctx {
    use cofre::resolve;
    let env = std::env::var("COFRE_PASSWORD").ok();
    // The password source is one choice: a file's source only when none was given here.
    let given = cli.password_command.is_some() || cli.password_file.is_some() || env.is_some();
    let (file_cmd, file_pw) = match &file {
        Some(f) if !given => (f.password_command.clone(), f.password_file.clone()),
        _ => (None, None),
    };
    let open = OpenOptions {
        runtime: Some(rt.handle().clone()),
        repo: resolve(
            cli.repo.clone(),
            file.as_ref().and_then(|f| f.repository.as_ref()),
        ),
        password: PasswordSource {
            command: cli.password_command.clone().or(file_cmd),
            file: cli.password_file.clone().or(file_pw),
            env,
        },
        catalog: resolve(
            cli.catalog.clone(),
            file.as_ref().and_then(|f| f.catalog.as_ref()),
        ),
        retry_lock: cli.retry_lock,
        no_lock: cli.no_lock,
    };
    Ctx {
        open,
        json: cli.json,
        config_path: cli.config.clone(),
        file,
    }
}

fn dispatch(cli: Cli, rt: &tokio::runtime::Runtime) -> Result<i32> {
    // These two need no configuration, repository or password.
    match &cli.cmd {
        Cmd::Completion(a) => return completion::run(a),
        Cmd::Generate(a) => return generate::run(a),
        Cmd::Serve(a) => {
            if let Some(done) = serve::passwd(cli.config.as_deref(), a) {
                return done;
            }
        }
        _ => {}
    }
    // A broken file fails every command with the same message `config validate` gives.
    let file = cofre::load_config(cli.config.as_deref())?.map(|(_, c)| c);
    let ctx = context(&cli, rt, file);
    match cli.cmd {
        Cmd::Init(a) => init::run(&ctx, a),
        Cmd::Ingest(a) => ingest::run(&ctx, a),
        Cmd::Snapshots(a) => snapshots::run(&ctx, a),
        Cmd::Ls(a) => ls::run(&ctx, a),
        Cmd::Restore(a) => restore::run(&ctx, a),
        Cmd::Log(a) => log::run(&ctx, a),
        Cmd::Find(a) => find::run(&ctx, a),
        Cmd::Diff(a) => diff::run(&ctx, a),
        Cmd::Mount(a) => mount::run(&ctx, a),
        Cmd::Check(a) => check::run(&ctx, a),
        Cmd::Forget(a) => forget::run(&ctx, *a),
        Cmd::Prune(a) => prune::run(&ctx, a),
        Cmd::Unlock(a) => unlock::run(&ctx, a),
        Cmd::Run(a) => run::run(&ctx, a),
        Cmd::Drill(a) => drill::run(&ctx, a),
        Cmd::Stats(a) => stats::run(&ctx, a),
        Cmd::Metrics(a) => metrics::run(&ctx, a),
        Cmd::Serve(a) => serve::run(&ctx, a, rt),
        Cmd::Schedule { cmd } => schedule::run(&ctx, cmd),
        Cmd::Copy(a) => copy::run(&ctx, a),
        Cmd::WalPush(a) => wal::push(&ctx, a),
        Cmd::WalFetch(a) => Ok(wal::fetch(&ctx, a)),
        Cmd::Wal { cmd } => wal::run(&ctx, cmd),
        Cmd::Pitr(a) => pitr::run(&ctx, a),
        Cmd::Thaw(a) => thaw::run(&ctx, a),
        Cmd::Lock { cmd } => lock::run(&ctx, cmd),
        Cmd::Config { cmd } => config::run(&ctx, cmd),
        Cmd::Key { cmd } => key::run(&ctx, cmd),
        Cmd::Catalog { cmd } => catalog::run(&ctx, cmd),
        Cmd::Repair { cmd } => repair::run(&ctx, cmd),
        Cmd::Completion(_) | Cmd::Generate(_) => unreachable!("handled above"),
    }
}

/// Readers and writers run on many threads, each with its own glibc arena by default, and
/// glibc raises its mmap threshold as big buffers are freed: freed chunk buffers (MiBs each)
/// then stay in the arenas, and a restore with a 48 MiB cache reached 320 MB RSS. Two
/// arenas, with a fixed threshold (setting the trim threshold fixes both), keep RSS near
/// what is live (docs/benchmarks.md, "Restore speed and memory").
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 20);
    }
}

/// Commands that run and end (ingest, restore, check, ...) keep buffers up to 4 MiB in
/// glibc's arenas rather than mapping each of 128 KiB or more on its own: a restore's 2 MiB
/// pack windows and the MiB-sized chunks of ingest and restore were each a fresh mapping,
/// page-faulted in and unmapped again (9% of a restore's CPU over S3 in `perf`). Measured:
/// S3 restore 0.3-0.5 s less, ingest 0.1-0.6 s less, peak RSS +0-8 MB (docs/benchmarks.md,
/// "Restore writers and glibc's mmap threshold"). The mount and `serve` run for days with a
/// chunk cache evicted in LRU order; what eviction frees in the arenas is not given back
/// (a copy out of the mount measured no faster either way), so they keep glibc's threshold.
/// The mount also runs one arena: with two, a chunk evicted from one arena left a hole
/// there while its successor, decoded on a thread of the other, grew that one; one arena
/// reuses the holes (peak RSS of a cold `cp -a` 315-333 -> 306-313 MiB, with ~6% more
/// copy time until the mount reused its reply buffers; docs/benchmarks.md "The mount's
/// memory within its cache"). `serve`, not measured so, keeps two.
fn big_buffers_in_arenas(cmd: &Cmd) {
    if matches!(cmd, Cmd::Mount(_)) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: as in `limit_malloc_arenas`; called before the runtime's threads start.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
        return;
    }
    if matches!(cmd, Cmd::Serve(_)) {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as in `limit_malloc_arenas`; called before the runtime's threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// A reader that stops early (`cofre ls latest | head`) closes the pipe, and `println!`
/// then panics. Exit quietly instead, with the status of a program killed by SIGPIPE (141),
/// as `ls` or `cat` do. SIGPIPE itself stays ignored (Rust's default), so that a
/// connection a server closes is an error, never the death of the process.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() {
    limit_malloc_arenas();
    quiet_on_closed_stdout();
    // PostgreSQL takes any exit below 126 from its restore_command for "no such file" and
    // ends recovery there: wal-fetch failing in any other way (a bad flag, a broken
    // configuration file, a panic) must exit 126, which stops replay instead.
    let fetching = std::env::args().any(|a| a == "wal-fetch");
    if fetching {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            std::process::exit(wal::EXIT_FETCH_FAILED);
        }));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if fetching && e.use_stderr() => {
            let _ = e.print();
            std::process::exit(wal::EXIT_FETCH_FAILED);
        }
        Err(e) => e.exit(),
    };
    big_buffers_in_arenas(&cli.cmd);
    // fuser warns "Failed to umount filesystem" when `fusermount3 -u` already unmounted us:
    // nothing a user can act on, so its warnings are left out below -v.
    let level = match cli.verbose {
        0 => "warn,fuser=error",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COFRE_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        // Colors only for a person: a log file, a pipe or the journal get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match dispatch(cli, &rt) {
        Ok(code) => code,
        Err(e) if fetching => {
            eprintln!("error: {e}");
            wal::EXIT_FETCH_FAILED
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn specs_split_into_snapshot_and_path() {
        for (spec, want) in [
            ("latest", ("latest", "/")),
            ("latest:", ("latest", "/")),
            ("1a2b:/etc", ("1a2b", "/etc")),
            ("1a2b:etc/x:y", ("1a2b", "etc/x:y")),
        ] {
            assert_eq!(split_spec(spec), want, "{spec}");
        }
    }
}
