//! cofre's entry point: parse arguments, build the runtime, call the library, map errors
//! to exit codes (0 ok, 1 failure, 2 usage, 3 snapshot saved with unreadable sources).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use cofre::check::ReadData;
use cofre::commands::{self, Context, KeyAction};
use cofre::forget::policy::{Policy, Span};
use cofre::forget::ForgetOptions;
use cofre::ingest::{IngestOptions, StreamSource};
use cofre::password::PasswordSource;
use cofre::prune::PruneOptions;

#[derive(Parser)]
#[command(
    name = "cofre",
    version,
    about = "Versioned, encrypted, deduplicating backups you can mount"
)]
struct Cli {
    /// Configuration file (default /etc/cofre/cofre.toml for root, else
    /// $XDG_CONFIG_HOME/cofre/cofre.toml; see docs/config.md).
    #[arg(long, global = true, env = "COFRE_CONFIG")]
    config: Option<PathBuf>,
    /// Repository: a local directory (or s3://bucket/prefix).
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
    #[arg(long, global = true, default_value = "0s", value_parser = cofre::commands::parse_wait)]
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
    Init {
        /// How new blobs are compressed by default: lz4, zstd, zstd:LEVEL or none.
        #[arg(long, value_parser = cofre::repo::compress::Compression::parse)]
        compression: Option<cofre::repo::compress::Compression>,
    },
    /// Back up paths, standard input or a command's output as a new snapshot.
    Ingest {
        /// Paths to back up (absolute paths are kept in the snapshot).
        paths: Vec<PathBuf>,
        #[arg(long, default_value = "default")]
        set: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Snapshot time (RFC 3339) instead of now.
        #[arg(long)]
        time: Option<String>,
        #[arg(long = "exclude")]
        excludes: Vec<String>,
        /// Store standard input as one file with this name.
        #[arg(long)]
        stdin_name: Option<String>,
        /// Run this shell command and store its output (name from --stdin-name).
        #[arg(long)]
        stdin_from_command: Option<String>,
        /// S3 storage class for data packs (index, trees and manifests stay STANDARD).
        #[arg(long)]
        data_storage_class: Option<String>,
        /// Compression of new blobs: lz4, zstd, zstd:LEVEL or none (default: the repository's).
        #[arg(long, value_parser = cofre::repo::compress::Compression::parse)]
        compression: Option<cofre::repo::compress::Compression>,
        /// Record access times (off by default: reading files moves them, and every
        /// directory that was read would be stored again).
        #[arg(long)]
        atime: bool,
        /// Store changed chunks whole, never as deltas against the previous version.
        #[arg(long)]
        no_delta: bool,
        /// No progress line.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List snapshots.
    Snapshots {
        #[arg(long)]
        set: Option<String>,
    },
    /// List the contents of SNAPSHOT[:PATH].
    Ls {
        spec: String,
        #[arg(long)]
        set: Option<String>,
    },
    /// Restore SNAPSHOT[:PATH] under a target directory.
    Restore {
        spec: String,
        #[arg(long)]
        target: PathBuf,
        #[arg(long)]
        set: Option<String>,
        /// Memory for decoded chunks, in MiB: more reads further ahead (faster from S3),
        /// less keeps the process smaller (24: under 100 MB).
        #[arg(long, default_value_t = cofre::restore::DEFAULT_CACHE_MIB)]
        cache_mib: usize,
    },
    /// Show every snapshot as a read-only filesystem (stays in the foreground).
    Mount {
        mountpoint: PathBuf,
        /// Only these sets (repeatable).
        #[arg(long = "set")]
        sets: Vec<String>,
        /// Let other users in, with the original permissions enforced.
        #[arg(long)]
        allow_other: bool,
        /// Name snapshot directories in local time instead of UTC.
        #[arg(long)]
        local_time: bool,
        /// Memory for decoded chunks, in MiB.
        #[arg(long, default_value_t = 256)]
        cache_mib: usize,
        /// On-disk cache of fetched data for S3 repositories, in MiB (0: none).
        #[arg(long, default_value_t = 2048)]
        cache_size: u64,
        /// Seconds between checks for new snapshots.
        #[arg(long, default_value_t = 2)]
        poll_secs: u64,
    },
    /// Verify the repository: structure, or every byte with --read-data.
    Check {
        /// Download and verify every pack.
        #[arg(long)]
        read_data: bool,
        /// Download and verify a subset: n/m (part n of m, by pack id: monthly runs of
        /// 1/12..12/12 read everything once a year), X% (random) or a size (500M, 2G).
        #[arg(long, value_parser = ReadData::parse_subset, conflicts_with = "read_data")]
        read_data_subset: Option<ReadData>,
    },
    /// Remove snapshots by policy (per set) or by id; --prune frees their data.
    Forget {
        /// Snapshot ids (unique prefixes) to forget, instead of a policy.
        ids: Vec<String>,
        /// Only these sets (repeatable); each set is judged on its own.
        #[arg(long = "set")]
        sets: Vec<String>,
        #[arg(long, default_value_t = 0)]
        keep_last: u32,
        #[arg(long, default_value_t = 0)]
        keep_hourly: u32,
        #[arg(long, default_value_t = 0)]
        keep_daily: u32,
        #[arg(long, default_value_t = 0)]
        keep_weekly: u32,
        #[arg(long, default_value_t = 0)]
        keep_monthly: u32,
        #[arg(long, default_value_t = 0)]
        keep_yearly: u32,
        /// Keep every snapshot within this span of the newest (e.g. 30d, 1y6m, 12h).
        #[arg(long, value_parser = Span::parse)]
        keep_within: Option<Span>,
        #[arg(long, value_parser = Span::parse)]
        keep_within_hourly: Option<Span>,
        #[arg(long, value_parser = Span::parse)]
        keep_within_daily: Option<Span>,
        #[arg(long, value_parser = Span::parse)]
        keep_within_weekly: Option<Span>,
        #[arg(long, value_parser = Span::parse)]
        keep_within_monthly: Option<Span>,
        #[arg(long, value_parser = Span::parse)]
        keep_within_yearly: Option<Span>,
        /// Keep snapshots with all of these comma-separated tags (repeatable).
        #[arg(long = "keep-tag")]
        keep_tags: Vec<String>,
        /// Show what would be kept and removed, and why; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run prune afterwards.
        #[arg(long)]
        prune: bool,
        /// With --prune: see `prune --max-unused`.
        #[arg(long, default_value = "5%", value_parser = parse_percent)]
        max_unused: f64,
    },
    /// Delete data no snapshot references; repack partly used packs.
    Prune {
        /// Leave at most this much unused data in partly used packs, as a share of the
        /// used data (as restic).
        #[arg(long, default_value = "5%", value_parser = parse_percent)]
        max_unused: f64,
        /// Show the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove stale locks (of processes that are gone or silent for 30 minutes).
    Unlock {
        /// Remove every lock, even live ones: only when no other cofre uses the repository.
        #[arg(long)]
        remove_all: bool,
    },
    /// Take every snapshot the configuration file says is due, then apply retention.
    Run {
        /// Only these sets (repeatable); a set without a schedule runs only when named.
        #[arg(long = "set")]
        sets: Vec<String>,
        /// Say what would run and why; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Evaluate schedules at this time (RFC 3339) and record snapshots with it.
        #[arg(long)]
        now: Option<String>,
        /// Write Prometheus metrics here when the run ends (default: the file's `metrics_file`).
        #[arg(long)]
        metrics_file: Option<PathBuf>,
    },
    /// The recovery test: mount each set's snapshot, copy it out with cp -a (or rsync),
    /// verify every file and its metadata, report RTO and RPO against the set's targets.
    Drill {
        /// Snapshot to drill (default: the latest of the set; needs exactly one --set).
        snapshot: Option<String>,
        /// Sets to drill (repeatable; default: every set of the configuration).
        #[arg(long = "set")]
        sets: Vec<String>,
        /// Copy into DIR/<set> and keep it (default: a temporary directory, removed).
        #[arg(long)]
        target: Option<PathBuf>,
        /// How to copy out of the mount: cp (cp -a) or rsync (rsync -aHAX).
        #[arg(long, default_value = "cp", value_parser = cofre::drill::Copier::parse)]
        copy: cofre::drill::Copier,
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
    },
    /// Sizes, dedup and compression ratios, and the estimated monthly bill.
    Stats {
        /// Only these sets' snapshots (repeatable; stored bytes are the repository's).
        #[arg(long = "set")]
        sets: Vec<String>,
        /// Whose prices: aws, b2, wasabi, gcs, local (default: aws for s3://, else local).
        #[arg(long)]
        provider: Option<String>,
        /// A TOML price table overriding the built-in one (docs/stats.md).
        #[arg(long)]
        prices: Option<PathBuf>,
    },
    /// Print the Prometheus metrics `cofre run` writes (docs/monitoring.md).
    Metrics {
        /// Write them to this file (atomically) instead of printing them.
        #[arg(long)]
        metrics_file: Option<PathBuf>,
    },
    /// Install, remove or show the timer that calls `cofre run`.
    Schedule {
        #[command(subcommand)]
        cmd: ScheduleCmd,
    },
    /// Check or show the configuration file.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Manage the repository's passwords.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Maintain the local catalog.
    Catalog {
        #[command(subcommand)]
        cmd: CatalogCmd,
    },
    /// Repair the repository (adds objects, deletes nothing).
    Repair {
        #[command(subcommand)]
        cmd: RepairCmd,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Parse and check the file; errors name the table and key.
    Validate,
    /// The parsed file with defaults filled in (--json for JSON).
    Show,
}

#[derive(clap::Args)]
struct UnitArgs {
    /// Unit name: NAME.service and NAME.timer.
    #[arg(long, default_value = "cofre")]
    name: String,
    /// Write or remove the units in this directory and leave systemctl alone.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ScheduleCmd {
    /// Write and enable a systemd service + timer (Persistent=true) that calls `cofre run`.
    Install {
        #[command(flatten)]
        unit: UnitArgs,
        /// How often the timer starts `cofre run` (minutes dividing an hour, or hours).
        #[arg(long, default_value = "15m", value_parser = cofre::run::units::Every::parse)]
        every: cofre::run::units::Every,
        /// Print a crontab line instead.
        #[arg(long)]
        cron: bool,
    },
    /// Disable and delete the units.
    Remove {
        #[command(flatten)]
        unit: UnitArgs,
    },
    /// Each set's schedule: last snapshot, last run and its result, next due time.
    Status {
        /// Say what is due at this time (RFC 3339) instead of now.
        #[arg(long)]
        now: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// List key files; `*` marks the one in use.
    List,
    /// Add a password.
    Add {
        /// Read the new password from this file (else prompt).
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key (not the one in use, never the last).
    Remove { id: String },
    /// Change the password in use: adds a key with the new password, removes the old one.
    Passwd {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?}: expected a percentage such as 5%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{s:?}: must be between 0% and 100%"));
    }
    Ok(v)
}

#[derive(Subcommand)]
enum RepairCmd {
    /// Rebuild index objects from the packs that no readable index lists.
    Index,
}

#[derive(Subcommand)]
enum CatalogCmd {
    /// Recreate the catalog from the repository alone.
    Rebuild,
    /// Add snapshots and index objects the catalog does not know yet.
    Sync,
}

fn parse_time(s: &str) -> cofre::error::Result<(i64, u32)> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| cofre::error::Error::InvalidArgument(format!("--time {s}: {e}")))?;
    Ok((t.unix_timestamp(), t.nanosecond()))
}

/// Flags and environment first, then the configuration file (`config::resolve`).
fn context(
    cli: &Cli,
    rt: &tokio::runtime::Runtime,
    file: Option<&cofre::config::Config>,
) -> Context {
    use cofre::config::resolve;
    let env = std::env::var("COFRE_PASSWORD").ok();
    // The password source is one choice: a file's source only when none was given here.
    let given = cli.password_command.is_some() || cli.password_file.is_some() || env.is_some();
    let (file_cmd, file_pw) = match file {
        Some(f) if !given => (f.password_command.clone(), f.password_file.clone()),
        _ => (None, None),
    };
    Context {
        rt: rt.handle().clone(),
        repo: resolve(cli.repo.clone(), file.and_then(|f| f.repository.as_ref())),
        password: PasswordSource {
            command: cli.password_command.clone().or(file_cmd),
            file: cli.password_file.clone().or(file_pw),
            env,
        },
        catalog: resolve(cli.catalog.clone(), file.and_then(|f| f.catalog.as_ref())),
        json: cli.json,
        retry_lock: cli.retry_lock,
        no_lock: cli.no_lock,
    }
}

fn run(cli: Cli, rt: &tokio::runtime::Runtime) -> cofre::error::Result<i32> {
    // A broken file fails every command with the same message `config validate` gives.
    let file = cofre::config::load(cli.config.as_deref())?.map(|(_, c)| c);
    let ctx = context(&cli, rt, file.as_ref());
    match cli.cmd {
        Cmd::Init { compression } => commands::init(&ctx, compression),
        Cmd::Ingest {
            paths,
            set,
            tags,
            time,
            excludes,
            stdin_name,
            stdin_from_command,
            data_storage_class,
            compression,
            atime,
            no_delta,
            quiet,
        } => {
            let stream = match (stdin_from_command, stdin_name) {
                (Some(cmd), name) => Some(StreamSource::Command {
                    name: name.unwrap_or_else(|| "stdin".into()),
                    cmd,
                }),
                (None, Some(name)) => Some(StreamSource::Stdin { name }),
                (None, None) => None,
            };
            if stream.is_some() != paths.is_empty() {
                return Err(cofre::error::Error::InvalidArgument(
                    "give either PATHs or --stdin-name/--stdin-from-command".into(),
                ));
            }
            let time = time.as_deref().map(parse_time).transpose()?;
            commands::run_ingest(
                &ctx,
                IngestOptions {
                    set,
                    tags,
                    time,
                    excludes,
                    paths,
                    stream,
                    progress: !quiet && !ctx.json,
                    data_class: data_storage_class,
                    compression,
                    atime,
                    delta: !no_delta,
                    retry_lock: ctx.retry_lock,
                },
            )
        }
        Cmd::Snapshots { set } => {
            commands::healing(&ctx, true, || commands::snapshots(&ctx, set.as_deref()))
        }
        Cmd::Ls { spec, set } => {
            commands::healing(&ctx, true, || commands::ls(&ctx, &spec, set.as_deref()))
        }
        Cmd::Restore {
            spec,
            target,
            set,
            cache_mib,
        } => commands::healing(&ctx, true, || {
            commands::restore(&ctx, &spec, set.as_deref(), &target, cache_mib.max(1))
        }),
        Cmd::Mount {
            mountpoint,
            sets,
            allow_other,
            local_time,
            cache_mib,
            cache_size,
            poll_secs,
        } => commands::mount(
            &ctx,
            &mountpoint,
            cofre::mount::MountOptions {
                allow_other,
                local_time,
                sets,
                cache_bytes: cache_mib * 1024 * 1024,
                poll: std::time::Duration::from_secs(poll_secs.max(1)),
                disk_cache: None,
            },
            cache_size,
        ),
        Cmd::Check {
            read_data,
            read_data_subset,
        } => {
            let read = match (read_data, read_data_subset) {
                (_, Some(s)) => s,
                (true, None) => ReadData::All,
                (false, None) => ReadData::None,
            };
            commands::check(&ctx, read)
        }
        Cmd::Forget {
            ids,
            sets,
            keep_last,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_within,
            keep_within_hourly,
            keep_within_daily,
            keep_within_weekly,
            keep_within_monthly,
            keep_within_yearly,
            keep_tags,
            dry_run,
            prune,
            max_unused,
        } => {
            let policy = Policy {
                last: keep_last,
                hourly: keep_hourly,
                daily: keep_daily,
                weekly: keep_weekly,
                monthly: keep_monthly,
                yearly: keep_yearly,
                within: keep_within.unwrap_or_default(),
                within_hourly: keep_within_hourly.unwrap_or_default(),
                within_daily: keep_within_daily.unwrap_or_default(),
                within_weekly: keep_within_weekly.unwrap_or_default(),
                within_monthly: keep_within_monthly.unwrap_or_default(),
                within_yearly: keep_within_yearly.unwrap_or_default(),
                tags: keep_tags
                    .iter()
                    .map(|t| t.split(',').map(str::to_string).collect())
                    .collect(),
            };
            if !ids.is_empty() && !policy.is_empty() {
                return Err(cofre::error::Error::InvalidArgument(
                    "give either snapshot ids or --keep-* options, not both".into(),
                ));
            }
            let prune = prune.then_some(PruneOptions {
                max_unused_percent: max_unused,
                dry_run,
                retry_lock: ctx.retry_lock,
            });
            commands::forget(
                &ctx,
                ForgetOptions {
                    policy,
                    sets,
                    ids,
                    tag: None,
                    dry_run,
                    retry_lock: ctx.retry_lock,
                },
                prune,
            )
        }
        Cmd::Prune {
            max_unused,
            dry_run,
        } => commands::prune(
            &ctx,
            PruneOptions {
                max_unused_percent: max_unused,
                dry_run,
                retry_lock: ctx.retry_lock,
            },
        ),
        Cmd::Unlock { remove_all } => commands::unlock(&ctx, remove_all),
        Cmd::Run {
            sets,
            dry_run,
            now,
            metrics_file,
        } => commands::run(
            &ctx,
            file.as_ref(),
            cofre::run::RunOptions {
                sets,
                dry_run,
                now: now.as_deref().map(parse_time).transpose()?,
                retry_lock: ctx.retry_lock,
            },
            metrics_file,
        ),
        Cmd::Drill {
            snapshot,
            sets,
            target,
            copy,
            history,
            pg_restore,
            report,
        } => commands::drill::drill(
            &ctx,
            file.as_ref(),
            commands::drill::DrillArgs {
                history,
                sets,
                snapshot,
                target,
                copier: copy,
                pg_restore,
                report,
            },
        ),
        Cmd::Stats {
            sets,
            provider,
            prices,
        } => commands::stats::stats(
            &ctx,
            file.as_ref(),
            commands::stats::StatsArgs {
                sets,
                provider,
                prices,
            },
        ),
        Cmd::Metrics { metrics_file } => commands::metrics(&ctx, file.as_ref(), metrics_file),
        Cmd::Schedule { cmd } => {
            use commands::schedule::{self, ScheduleOptions};
            let opts = |unit: UnitArgs, every, cron| ScheduleOptions {
                cron,
                dir: unit.dir,
                every,
                name: unit.name,
            };
            match cmd {
                ScheduleCmd::Install { unit, every, cron } => {
                    schedule::install(cli.config.as_deref(), &opts(unit, every, cron))
                }
                ScheduleCmd::Remove { unit } => {
                    schedule::remove(&opts(unit, cofre::run::units::Every::DEFAULT, false))
                }
                ScheduleCmd::Status { now } => schedule::status(
                    &ctx,
                    file.as_ref(),
                    now.as_deref().map(parse_time).transpose()?,
                ),
            }
        }
        Cmd::Config { cmd } => {
            commands::config(&ctx, cli.config.clone(), matches!(cmd, ConfigCmd::Show))
        }
        Cmd::Key { cmd } => commands::key(
            &ctx,
            match cmd {
                KeyCmd::List => KeyAction::List,
                KeyCmd::Add { new_password_file } => KeyAction::Add { new_password_file },
                KeyCmd::Remove { id } => KeyAction::Remove { id },
                KeyCmd::Passwd { new_password_file } => KeyAction::Passwd { new_password_file },
            },
        ),
        Cmd::Catalog {
            cmd: CatalogCmd::Rebuild,
        } => commands::catalog_rebuild(&ctx),
        Cmd::Catalog {
            cmd: CatalogCmd::Sync,
        } => commands::catalog_sync(&ctx),
        Cmd::Repair {
            cmd: RepairCmd::Index,
        } => commands::repair_index(&ctx),
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

fn main() {
    limit_malloc_arenas();
    let cli = Cli::parse();
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
    let code = match run(cli, &rt) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
