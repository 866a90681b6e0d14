//! Drilling a set from a front end: the mount child's command line, a scratch directory,
//! the record stored in the repository and the local state for the metrics.

use std::path::PathBuf;

use super::{record, Copier, DrillOptions, MountCommand, SetReport};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::session::Session;

#[derive(Clone)]
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
/// typed at a prompt cannot be handed on, so the drill needs one it can pass. Paths are
/// absolute: the PITR drill's server runs the same options in its data directory.
fn mount_command(s: &Session) -> Result<MountCommand> {
    let opts = s.options();
    let exe = crate::session::cofre_binary()?;
    let mut env = Vec::new();
    let absolute = |p: &std::path::Path| std::path::absolute(p).map_err(|e| Error::io(p, e));
    let url = opts.url()?;
    let repo = match url.contains("://") || url.starts_with('~') {
        true => url.into(),
        false => absolute(std::path::Path::new(url))?.into_os_string(),
    };
    let mut args: Vec<std::ffi::OsString> = vec!["--repo".into(), repo];
    args.extend([
        "--catalog".into(),
        absolute(s.catalog_path())?.into_os_string(),
    ]);
    match (
        &opts.password.command,
        &opts.password.file,
        &opts.password.env,
    ) {
        (Some(c), _, _) => args.extend(["--password-command".into(), c.into()]),
        (None, Some(f), _) => {
            args.extend(["--password-file".into(), absolute(f)?.into_os_string()])
        }
        // Set, not inherited: a library front end may have it as a value only.
        (None, None, Some(pw)) => env.push(("COFRE_PASSWORD".to_string(), pw.clone())),
        (None, None, None) => {
            return Err(Error::InvalidArgument(
                "cofre drill mounts in a child process: give the password with --password-file, \
                 --password-command, COFRE_PASSWORD or the configuration's password_file"
                    .into(),
            ))
        }
    }
    Ok(MountCommand { exe, args, env })
}

/// What drilling needs besides the set: the open repository and catalog, and how to mount.
pub struct Driller<'a> {
    session: &'a Session,
    file: Option<&'a Config>,
    repo: &'a crate::repo::Repository,
    mc: MountCommand,
    scratch: super::scratch::Scratch,
}

impl<'a> Driller<'a> {
    pub fn new(s: &'a Session, file: Option<&'a Config>) -> Result<Driller<'a>> {
        Ok(Driller {
            session: s,
            file,
            repo: s.repository(),
            mc: mount_command(s)?,
            scratch: super::scratch::new_dir()?,
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
        let mut pg_cfg = set_cfg.and_then(|s| s.src.pg_drill.clone());
        if let Some(dsn) = &a.pg_restore {
            pg_cfg.get_or_insert_with(Default::default).dsn = dsn.clone();
        }
        // A set whose WAL is archived is drilled by point-in-time recovery when `to` says
        // where to; its RPO is then measured from the last commit the recovery brought back.
        let pitr = pg_cfg.take_if(|p| p.to.is_some() && a.pg_restore.is_none());
        let rpo = set_cfg.and_then(|s| s.src.rpo_secs);
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
            rto: set_cfg.and_then(|s| s.src.rto_secs),
            // Checked below for a PITR drill, against what the recovery reached.
            rpo: rpo.filter(|_| pitr.is_none()),
            now: crate::ingest::now().0,
        };
        let snap = cat.resolve(snapshot.unwrap_or("latest"), Some(set))?;
        let mut r = super::drill(cat, &self.mc, set, &snap, &self.scratch.dir, &opts)?;
        if let Some(cfg) = &pitr {
            let p = super::pitr::PitrDrill {
                session: self.session,
                set,
                cfg,
                mc: &self.mc,
                scratch: &self.scratch.dir,
                now: opts.now,
            }
            .run();
            add_pitr(&mut r, p, rpo, opts.now);
        }
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

/// A point-in-time drill's report joins the set's: its failures are the set's problems,
/// and its recovery time (restore and replay) is held to the set's RTO too. The RPO is the
/// age of the last commit the recovery brought back (none: the base backup's age), only
/// when it passed: a replay that stopped at a gap promotes anyway, and must not be credited
/// with WAL archived after the gap.
fn add_pitr(r: &mut SetReport, p: super::pg::PgReport, rpo: Option<u64>, now: i64) {
    let steps = std::iter::once(&p.restore)
        .chain(&p.replay)
        .chain(&p.checks)
        .chain(&p.command);
    for s in steps.filter(|s| !s.ok) {
        r.problems
            .push(format!("PostgreSQL: {}: {}", s.what, s.output));
    }
    let recovery = p.restore.seconds + p.replay.as_ref().map_or(0.0, |s| s.seconds);
    if let Some(t) = r.rto_target_seconds.filter(|t| recovery > *t as f64) {
        r.problems.push(format!(
            "RTO missed: {recovery:.1} s to recover the database to its point in time, target {t} s"
        ));
    }
    if let Some(at) = p.recovered_unix.filter(|_| p.passed) {
        r.rpo_seconds = r.rpo_seconds.min(now - at);
    }
    r.rpo_target_seconds = rpo;
    if let Some(t) = rpo.filter(|t| r.rpo_seconds > *t as i64) {
        r.problems.push(format!(
            "RPO missed: the newest data recovered is {} s old, target {t} s",
            r.rpo_seconds
        ));
    }
    r.passed = r.passed && p.passed && r.problems.is_empty();
    r.pg = Some(p);
}

/// The sets a drill covers: those named, else every set of the file. A usage error when
/// there are none, or when a SNAPSHOT is given for more than one.
pub fn sets_to_drill(file: Option<&Config>, args: &DrillArgs) -> Result<Vec<String>> {
    let sets: Vec<String> = match (&args.sets, file) {
        (s, _) if !s.is_empty() => s.clone(),
        (_, Some(cfg)) if !cfg.sets.is_empty() => cfg.sets.keys().cloned().collect(),
        _ => {
            return Err(Error::InvalidArgument(
                "which sets? give --set S or a configuration file with sets".into(),
            ))
        }
    };
    if args.snapshot.is_some() && sets.len() != 1 {
        return Err(Error::InvalidArgument(
            "a SNAPSHOT is drilled with exactly one --set".into(),
        ));
    }
    Ok(sets)
}

impl Session {
    /// Drills `args.sets` (default: every set of `file`), or `args.snapshot` of the one set
    /// given, one after another; each report says whether it passed. The JSON reports are
    /// also written to `args.report` when given.
    pub fn drill(&self, file: Option<&Config>, args: &DrillArgs) -> Result<Vec<SetReport>> {
        let sets = sets_to_drill(file, args)?;
        let cat = self.synced_catalog()?;
        let driller = Driller::new(self, file)?;
        let mut reports = Vec::new();
        for set in &sets {
            reports.push(driller.drill(&cat, set, args.snapshot.as_deref(), args)?);
        }
        drop(driller);
        if let Some(path) = &args.report {
            let json = serde_json::to_vec_pretty(&reports)
                .map_err(|e| Error::corrupt("drill report", e.to_string()))?;
            crate::fsutil::write_atomic(path, &json, 0o600)?;
        }
        Ok(reports)
    }
}
