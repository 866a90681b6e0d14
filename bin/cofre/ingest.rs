//! `cofre ingest`.

use std::io::IsTerminal;
use std::path::PathBuf;

use cofre::error::{Error, Result, EXIT_PARTIAL};
use cofre::Compression;
use cofre::{IngestOptions, StreamSource};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
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
    /// Store every chunk this snapshot needs in its own class, deduplicating only against
    /// earlier snapshots of that class (the default for GLACIER and DEEP_ARCHIVE), so that
    /// it does not depend on hotter packs.
    #[arg(long, overrides_with = "no_self_contained")]
    self_contained: bool,
    /// Deduplicate against hotter classes too (the default for instant classes).
    #[arg(long)]
    no_self_contained: bool,
    /// Compression of new blobs: lz4, zstd, zstd:LEVEL or none (default: the repository's).
    #[arg(long, value_parser = Compression::parse)]
    compression: Option<Compression>,
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
}

impl TryFrom<Args> for IngestOptions {
    type Error = Error;

    fn try_from(a: Args) -> Result<IngestOptions> {
        let stream = match (a.stdin_from_command, a.stdin_name) {
            (Some(cmd), name) => Some(StreamSource::Command {
                name: name.unwrap_or_else(|| "stdin".into()),
                cmd,
            }),
            (None, Some(name)) => Some(StreamSource::Stdin { name }),
            (None, None) => None,
        };
        if stream.is_some() != a.paths.is_empty() {
            return Err(Error::InvalidArgument(
                "give either PATHs or --stdin-name/--stdin-from-command".into(),
            ));
        }
        Ok(IngestOptions {
            set: a.set,
            tags: a.tags,
            time: a
                .time
                .as_deref()
                .map(|t| crate::parse_time("--time", t))
                .transpose()?,
            excludes: a.excludes,
            paths: a.paths,
            stream,
            progress: None,
            data_class: a.data_storage_class,
            self_contained: match (a.self_contained, a.no_self_contained) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            compression: a.compression,
            atime: a.atime,
            delta: !a.no_delta,
            retry_lock: Default::default(),
        })
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let quiet = a.quiet;
    let mut opts = IngestOptions::try_from(a)?;
    // Before the session, whose key derivation takes a core for 0.2 s: meanwhile the other
    // stats the walk's first entries.
    let _warm = cofre::ingest::Prewarm::start(&opts);
    let session = ctx.session()?;
    // The line only for a person watching a directory backup.
    let line = (!quiet && !ctx.json && opts.stream.is_none() && std::io::stderr().is_terminal())
        .then(crate::progress::Line::start)
        .map(|(line, counters)| {
            opts.progress = Some(counters);
            line
        });
    let report = session.ingest(opts);
    drop(line);
    let report = report?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        let s = &report.summary;
        println!(
            "snapshot {} saved (set {}, {})",
            &report.snapshot[..8],
            report.set,
            report.time
        );
        println!(
            "files: {} new, {} changed, {} unchanged; dirs: {}",
            s.new_files, s.changed_files, s.unchanged_files, s.dirs
        );
        println!(
            "read {} bytes, added {} bytes to the repository (after dedup and compression), {:.2}s",
            s.bytes_read, s.bytes_added, report.duration_secs
        );
    }
    // Each warning was logged once as it happened (the JSON report lists them too).
    if !ctx.json && !report.warnings.is_empty() {
        eprintln!("{} warning(s), listed above", report.warnings.len());
    }
    Ok(if report.partial { EXIT_PARTIAL } else { 0 })
}
