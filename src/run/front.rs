//! `cofre run`, `cofre metrics` and `cofre schedule status` from a [`Session`]: the parts
//! of them that are not printing.

use std::path::PathBuf;

use serde::Serialize;

use super::{state, JobResult, RunOptions};
use crate::config::{self, Config};
use crate::drill::{DrillArgs, Driller};
use crate::error::{Error, Result};
use crate::session::Session;

impl Session {
    /// The WAL archive's part of a run, for each set with `wal = true`: what waits in this
    /// machine's spool is stored (a flusher that died leaves it there), and after a snapshot
    /// of a set that prunes, the WAL no kept base backup needs is deleted. Never fatal:
    /// failures are logged (and `wal-push` fails while a spool does not drain).
    fn wal_upkeep(&self, cfg: &Config, results: &[super::JobResult]) {
        for (set, s) in cfg.sets.iter().filter(|(_, s)| s.src.wal == Some(true)) {
            // Another user's spool (root's timer, postgres's spool) is its flusher's to drain.
            let own = |dir: &std::path::Path| {
                use std::os::unix::fs::MetadataExt;
                // SAFETY: geteuid cannot fail.
                std::fs::metadata(dir).is_ok_and(|m| m.uid() == unsafe { libc::geteuid() })
            };
            if let Some(dir) = s.src.wal_spool.as_deref().filter(|d| own(d)) {
                let flushed = crate::wal::Spool::open(dir).and_then(|sp| self.wal_flush(&sp, set));
                if let Err(e) = flushed {
                    tracing::warn!(
                        "set {set}: the WAL spool {} was not flushed: {e}",
                        dir.display()
                    );
                }
            }
            let prunes = std::iter::once(&s.main)
                .chain(s.classes.values())
                .any(|c| c.prune == Some(true));
            let snapshot = results
                .iter()
                .any(|r| r.set == *set && r.action == super::Action::Done);
            if prunes && snapshot {
                match self.wal_prune(set, false) {
                    Ok(r) if r.files_deleted > 0 => tracing::info!(
                        "set {set}: {} WAL file(s) older than the oldest base backup deleted",
                        r.files_deleted
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("set {set}: old WAL not deleted: {e}"),
                }
            }
        }
    }

    /// Takes every snapshot `cfg` says is due, applies retention, drills the sets whose
    /// drill is due, and writes the metrics file (`metrics_file`, else the file's) when the
    /// run ends. One set failing does not stop the others.
    pub fn run(
        &self,
        cfg: &Config,
        opts: &RunOptions,
        metrics_file: Option<PathBuf>,
    ) -> Result<Vec<JobResult>> {
        let mut cat = self.synced_catalog()?;
        let lock_dir = self.state_dir();
        // Drills need a mount child; made only when a set schedules drills.
        let wants_drill = cfg.sets.values().any(|s| s.src.drill_every.is_some());
        let driller = wants_drill.then(|| Driller::new(self, Some(cfg)));
        let args = DrillArgs {
            history: false,
            sets: Vec::new(),
            snapshot: None,
            target: None,
            copier: crate::drill::Copier::Cp,
            pg_restore: None,
            report: None,
        };
        let drill_one = |set: &str, cat: &crate::catalog::Catalog| match &driller {
            Some(Ok(d)) => d.drill(cat, set, None, &args),
            Some(Err(e)) => Err(Error::InvalidArgument(e.to_string())),
            None => Err(Error::InvalidArgument("no drills scheduled".into())),
        };
        let open_target = |url: &str| Session::open(self.copy_target_options(cfg, url));
        let check = |repo: Option<&str>, read| match repo {
            None => self.check(read),
            Some(url) => open_target(url)?.check(read),
        };
        let mut opts = opts.clone();
        opts.retry_lock = self.options().retry_lock;
        let outside = super::Outside {
            drill: Some(&drill_one),
            copy_target: Some(&open_target),
            check: Some(&check),
            location: self.location(),
        };
        let results = super::run(self.repository(), &mut cat, cfg, &lock_dir, &opts, &outside)?;
        if !opts.dry_run {
            self.wal_upkeep(cfg, &results);
        }
        // Written when the run ends, from what it recorded: a failure to write is reported
        // but does not change the backup's exit code.
        let metrics_file = config::resolve(metrics_file, cfg.metrics_file.as_ref());
        if let (Some(path), false) = (metrics_file, opts.dry_run) {
            let now = opts.now.map_or_else(|| crate::ingest::now().0, |t| t.0);
            let cost = self.monthly_cost(Some(cfg), &cat);
            match crate::metrics::render(cfg, &cat, &lock_dir, now, cost)
                .and_then(|text| crate::metrics::write(&path, &text))
            {
                Ok(()) => {}
                Err(e) => tracing::warn!("metrics not written: {e}"),
            }
        }
        Ok(results)
    }

    /// How `cofre run` opens a `copy_to` repository: the file's copy password, else this
    /// repository's own; its own catalog; the same runtime and lock wait.
    pub fn copy_target_options(&self, cfg: &Config, url: &str) -> crate::session::OpenOptions {
        let password = match (&cfg.copy_password_file, &cfg.copy_password_command) {
            (None, None) => self.options().password.clone(),
            (file, command) => crate::password::PasswordSource {
                file: file.clone(),
                command: command.clone(),
                env: None,
            },
        };
        crate::session::OpenOptions {
            repo: Some(url.to_string()),
            password,
            catalog: None,
            ..self.options().clone()
        }
    }

    /// The Prometheus metrics `cofre run` writes, as text.
    pub fn metrics(&self, file: Option<&Config>) -> Result<String> {
        let default = Config::default();
        let cfg = file.unwrap_or(&default);
        let cat = self.synced_catalog()?;
        let cost = self.monthly_cost(file, &cat);
        crate::metrics::render(cfg, &cat, &self.state_dir(), crate::ingest::now().0, cost)
    }

    /// Each set's schedule: its last snapshot, this machine's last run and its result, and
    /// when it is due next (as of `now`, default now).
    pub fn schedule_status(&self, cfg: &Config, now: Option<(i64, u32)>) -> Result<Vec<StatusRow>> {
        let cat = self.synced_catalog()?;
        let dir = self.state_dir();
        let now = now.unwrap_or_else(crate::ingest::now).0;
        let fmt = |t: i64| crate::ingest::format_time((t, 0));
        let mut rows = Vec::new();
        for job in super::jobs(cfg) {
            let last = super::latest(&cat, job.set, &job.tag)?.map(|s| s.manifest.time.0);
            let st = state::load(&dir, job.set).remove(&job.tag);
            // When it fell due: the next slot seen from the last snapshot's own time.
            let due_at = last.and_then(|l| job.schedule.next(Some(l), l));
            rows.push(StatusRow {
                overdue_secs: due_at.map(|d| now - d).filter(|s| *s > 0),
                interval_secs: job.schedule.interval(),
                set: job.set.to_string(),
                class: job.tag.clone(),
                schedule: job.schedule.describe(),
                last_snapshot: last.map(fmt),
                last_run: st.as_ref().map(|s| fmt(s.last_run)),
                result: st.as_ref().map(|s| s.outcome),
                error: st.and_then(|s| s.error),
                next_due: job.schedule.next(last, now).map(fmt),
                lag_snapshots: None,
            });
        }
        for set in cfg.sets.keys() {
            let mut st = state::load(&dir, set);
            for target in cfg.copy_targets(set) {
                let c = st.remove(&super::copies::state_key(target));
                let through = c.as_ref().and_then(|c| c.through);
                rows.push(StatusRow {
                    set: set.clone(),
                    class: super::copies::state_key(target),
                    schedule: "after each snapshot".into(),
                    last_snapshot: through.map(fmt),
                    last_run: c.as_ref().map(|s| fmt(s.last_run)),
                    result: c.as_ref().map(|s| s.outcome),
                    error: c.and_then(|s| s.error),
                    next_due: None,
                    overdue_secs: None,
                    interval_secs: None,
                    lag_snapshots: Some(super::copies::lag(&cat, set, through)?),
                });
            }
        }
        Ok(rows)
    }
}

/// One schedule's state, for `cofre schedule status`.
#[derive(Debug, Serialize)]
pub struct StatusRow {
    pub set: String,
    pub class: String,
    pub schedule: String,
    pub last_snapshot: Option<String>,
    pub last_run: Option<String>,
    pub result: Option<state::Outcome>,
    pub error: Option<String>,
    pub next_due: Option<String>,
    /// How long ago it fell due (none while it is not due, or never backed up).
    pub overdue_secs: Option<i64>,
    /// The schedule's nominal time between snapshots (none for manual sets).
    pub interval_secs: Option<i64>,
    /// A copy's row (class `copy:TARGET`): the set's snapshots not yet on the target; its
    /// `last_snapshot` is the newest one that is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_snapshots: Option<u64>,
}
