//! `cofre drill`: mount, copy out, verify, time (see `crate::drill`).

use std::path::PathBuf;

use super::Context;
use crate::catalog::sync;
use crate::config::{self, Config};
use crate::drill::{self, record, Copier, DrillOptions, MountCommand, SetReport};
use crate::error::{Error, Result, EXIT_FAILURE};

pub struct DrillArgs {
    /// List the drills stored in the repository instead of drilling.
    pub history: bool,
    pub sets: Vec<String>,
    pub snapshot: Option<String>,
    pub target: Option<PathBuf>,
    pub copier: Copier,
    /// Restore the sets' dumps into a scratch database on this server (libpq string).
    pub pg_restore: Option<String>,
    /// Also write the JSON report here (for the audit file or the ticket).
    pub report: Option<PathBuf>,
}

/// The mount child gets the resolved repository, catalog and password source; a password
/// typed at a prompt cannot be handed on, so the drill needs one it can pass.
fn mount_command(ctx: &Context, catalog: &std::path::Path) -> Result<MountCommand> {
    let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
    let mut args: Vec<std::ffi::OsString> = vec!["--repo".into(), ctx.url()?.into()];
    args.extend(["--catalog".into(), catalog.as_os_str().to_owned()]);
    match (&ctx.password.command, &ctx.password.file, &ctx.password.env) {
        (Some(c), _, _) => args.extend(["--password-command".into(), c.into()]),
        (None, Some(f), _) => args.extend(["--password-file".into(), f.as_os_str().to_owned()]),
        (None, None, Some(_)) => {} // COFRE_PASSWORD is inherited
        (None, None, None) => {
            return Err(Error::InvalidArgument(
                "cofre drill mounts in a child process: give the password with --password-file, \
                 --password-command, COFRE_PASSWORD or the configuration's password_file"
                    .into(),
            ))
        }
    }
    Ok(MountCommand { exe, args })
}

fn scratch_dir() -> Result<PathBuf> {
    let base = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    let dir = base.join(format!(
        "cofre-drill-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    ));
    crate::catalog::private_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// `cofre drill --history`: every drill stored in the repository, oldest first.
fn history(ctx: &Context, sets: &[String]) -> Result<i32> {
    let repo = ctx.open_repo()?;
    let all: Vec<record::DrillRecord> = record::history(&repo)?
        .into_iter()
        .filter(|r| sets.is_empty() || sets.contains(&r.set))
        .collect();
    if ctx.json {
        ctx.print_json(&all)?;
        return Ok(0);
    }
    println!(
        "{:<20}  {:<12} {:<8} {:<4} {:>8} {:>12} {:>9} {:>9}  host",
        "time", "set", "snapshot", "", "files", "bytes", "RTO s", "RPO s"
    );
    for r in &all {
        println!(
            "{:<20}  {:<12} {:<8} {:<4} {:>8} {:>12} {:>9.1} {:>9}  {}",
            &r.time[..19.min(r.time.len())],
            r.set,
            &r.snapshot[..8.min(r.snapshot.len())],
            if r.passed { "PASS" } else { "FAIL" },
            r.files,
            r.bytes,
            r.rto_seconds,
            r.rpo_seconds,
            r.hostname
        );
    }
    println!("{} drills", all.len());
    Ok(0)
}

/// What drilling needs besides the set: the open repository and catalog, and how to mount.
pub struct Driller<'a> {
    file: Option<&'a Config>,
    repo: &'a crate::repo::Repository,
    mc: MountCommand,
    scratch: PathBuf,
}

impl<'a> Driller<'a> {
    pub fn new(
        ctx: &Context,
        file: Option<&'a Config>,
        repo: &'a crate::repo::Repository,
        cat_path: &std::path::Path,
    ) -> Result<Driller<'a>> {
        Ok(Driller {
            file,
            repo,
            mc: mount_command(ctx, cat_path)?,
            scratch: scratch_dir()?,
        })
    }

    /// Drills `snapshot` (default: latest) of `set`, stores the record in the repository
    /// and the local state for the metrics.
    pub fn drill(
        &self,
        cat: &crate::catalog::Catalog,
        set: &str,
        snapshot: Option<&str>,
        a: &DrillArgs,
    ) -> Result<SetReport> {
        let set_cfg = self.file.and_then(|f| f.sets.get(set));
        let target = |v: Option<&String>| -> Result<Option<u64>> {
            v.map(|v| config::parse_duration(v))
                .transpose()
                .map_err(Error::InvalidArgument)
        };
        let mut pg_cfg = set_cfg.and_then(|s| s.src.pg_drill.clone());
        if let Some(dsn) = &a.pg_restore {
            pg_cfg.get_or_insert_with(Default::default).dsn = dsn.clone();
        }
        let pg = match pg_cfg {
            None => None,
            Some(p) => {
                let name = set_cfg.and_then(|s| s.src.stdin_name.clone()).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "set {set}: a PostgreSQL drill needs the set's `command` and `stdin_name` in the configuration"
                    ))
                })?;
                Some((p, name))
            }
        };
        let opts = DrillOptions {
            pg,
            copier: a.copier,
            target: a.target.clone(),
            rto: target(set_cfg.and_then(|s| s.src.rto.as_ref()))?,
            rpo: target(set_cfg.and_then(|s| s.src.rpo.as_ref()))?,
            now: crate::ingest::now().0,
        };
        let snap = cat.resolve(snapshot.unwrap_or("latest"), Some(set))?;
        let mut r = drill::drill(cat, &self.mc, set, &snap, &self.scratch, &opts)?;
        // The record is the evidence: a drill that cannot store it does not pass.
        let now = crate::ingest::now();
        let rec = record::DrillRecord::from_report(&r, now);
        if let Err(e) = record::save(self.repo, &rec) {
            r.problems
                .push(format!("the drill's record was not stored: {e}"));
            r.passed = false;
        }
        let state = crate::catalog::cache_dir(&self.repo.config.id);
        if let Err(e) = record::record_local(&state, set, now.0, r.passed, r.rto_seconds) {
            tracing::warn!("drill metrics state not written: {e}");
        }
        Ok(r)
    }
}

impl Drop for Driller<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

pub fn drill(ctx: &Context, file: Option<&Config>, a: DrillArgs) -> Result<i32> {
    if a.history {
        return history(ctx, &a.sets);
    }
    let sets: Vec<String> = match (&a.sets, file) {
        (s, _) if !s.is_empty() => s.clone(),
        (_, Some(cfg)) if !cfg.sets.is_empty() => cfg.sets.keys().cloned().collect(),
        _ => {
            return Err(Error::InvalidArgument(
                "which sets? give --set S or a configuration file with sets".into(),
            ))
        }
    };
    if a.snapshot.is_some() && sets.len() != 1 {
        return Err(Error::InvalidArgument(
            "a SNAPSHOT is drilled with exactly one --set".into(),
        ));
    }
    let repo = ctx.open_repo()?;
    let cat_path = ctx.catalog_path(&repo);
    let cat = sync::open_synced(&cat_path, &repo)?;
    let driller = Driller::new(ctx, file, &repo, &cat_path)?;
    let mut reports: Vec<SetReport> = Vec::new();
    let mut code = 0;
    for set in &sets {
        let r = driller.drill(&cat, set, a.snapshot.as_deref(), &a)?;
        if !r.passed {
            code = EXIT_FAILURE;
        }
        reports.push(r);
    }
    drop(driller);
    if let Some(path) = &a.report {
        let json = serde_json::to_vec_pretty(&reports)
            .map_err(|e| Error::corrupt("drill report", e.to_string()))?;
        crate::fsutil::write_atomic(path, &json, 0o600)?;
    }
    if ctx.json {
        ctx.print_json(&reports)?;
        return Ok(code);
    }
    for r in &reports {
        let mb = r.bytes as f64 / 1e6;
        println!(
            "{} {}  snapshot {} ({})",
            if r.passed { "PASS" } else { "FAIL" },
            r.set,
            &r.snapshot[..8],
            r.snapshot_time
        );
        println!(
            "  {} files, {} dirs, {} other, {mb:.1} MB verified; mount {:.1} s, copy {:.1} s ({:.1} MB/s), verify {:.1} s",
            r.files,
            r.dirs,
            r.other,
            r.mount_seconds,
            r.copy_seconds,
            r.throughput_bytes_per_second / 1e6,
            r.verify_seconds
        );
        let target = |t: Option<u64>| t.map_or(String::new(), |t| format!(" (target {t} s)"));
        println!(
            "  RTO {:.1} s{}, RPO {} s{}",
            r.rto_seconds,
            target(r.rto_target_seconds),
            r.rpo_seconds,
            target(r.rpo_target_seconds)
        );
        if let Some(p) = &r.pg {
            println!(
                "  PostgreSQL ({}): restore {:.1} s {}; {} check(s) ok of {}{}",
                p.format,
                p.restore.seconds,
                if p.restore.ok { "ok" } else { "FAILED" },
                p.checks.iter().filter(|c| c.ok).count(),
                p.checks.len(),
                p.command.as_ref().map_or(String::new(), |c| format!(
                    "; `{}` {} in {:.1} s",
                    c.what,
                    if c.ok { "ok" } else { "FAILED" },
                    c.seconds
                ))
            );
        }
        for p in &r.problems {
            println!("  problem: {p}");
        }
        for m in r.mismatches.iter().take(50) {
            println!("  mismatch: {m}");
        }
        if r.mismatches.len() > 50 {
            println!(
                "  ... and {} more (--json lists all)",
                r.mismatches.len() - 50
            );
        }
    }
    Ok(code)
}
