//! cofre's entry point: parse arguments, build the runtime, call the library, map errors
//! to exit codes (0 ok, 1 failure, 2 usage, 3 snapshot saved with unreadable sources).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use cofre::commands::{self, Context};
use cofre::ingest::{IngestOptions, StreamSource};
use cofre::password::PasswordSource;

#[derive(Parser)]
#[command(
    name = "cofre",
    version,
    about = "Versioned, encrypted, deduplicating backups you can mount"
)]
struct Cli {
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
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new repository.
    Init,
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
        /// Record access times (off by default: reading files moves them, and every
        /// directory that was read would be stored again).
        #[arg(long)]
        atime: bool,
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
        #[arg(long)]
        read_data: bool,
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

fn run(cli: Cli, rt: &tokio::runtime::Runtime) -> cofre::error::Result<i32> {
    let ctx = Context {
        rt: rt.handle().clone(),
        repo: cli.repo,
        password: PasswordSource {
            command: cli.password_command,
            file: cli.password_file,
            env: std::env::var("COFRE_PASSWORD").ok(),
        },
        catalog: cli.catalog,
        json: cli.json,
        retry_lock: cli.retry_lock,
    };
    match cli.cmd {
        Cmd::Init => commands::init(&ctx),
        Cmd::Ingest {
            paths,
            set,
            tags,
            time,
            excludes,
            stdin_name,
            stdin_from_command,
            data_storage_class,
            atime,
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
                    atime,
                    retry_lock: ctx.retry_lock,
                },
            )
        }
        Cmd::Snapshots { set } => commands::snapshots(&ctx, set.as_deref()),
        Cmd::Ls { spec, set } => commands::ls(&ctx, &spec, set.as_deref()),
        Cmd::Restore { spec, target, set } => {
            commands::restore(&ctx, &spec, set.as_deref(), &target)
        }
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
        Cmd::Check { read_data } => commands::check(&ctx, read_data),
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

fn main() {
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
