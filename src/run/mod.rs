//! `cofre run`: for every set (and class) of the configuration whose snapshot is due, run
//! its hooks, take the snapshot (tagged with the class), apply its retention and prune when
//! configured. One set failing does not stop the others; the exit code is the worst.

mod checks;
pub mod copies;
mod front;
mod hooks;
mod install;
pub mod state;
pub mod units;

pub use checks::{CheckFn, STATE_SET as CHECK_STATE};
pub use front::StatusRow;
pub use install::{install, remove, ScheduleOptions, UnitStep};

use std::path::Path;

use serde::Serialize;

use crate::catalog::{Catalog, SnapshotRow};
use crate::config::{ClassConfig, Config, Schedule, SetConfig};
use crate::error::{Error, Result, EXIT_FAILURE, EXIT_PARTIAL};
use crate::forget::ForgetOptions;
use crate::ingest::{IngestOptions, StreamSource};
use crate::prune::PruneOptions;
use crate::repo::Repository;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only these sets (a set with no schedule runs only when named).
    pub sets: Vec<String>,
    pub dry_run: bool,
    /// Evaluate schedules at this time and record snapshots with it (default: now).
    pub now: Option<(i64, u32)>,
    pub retry_lock: std::time::Duration,
}

#[derive(Debug, Serialize)]
pub struct JobResult {
    pub set: String,
    pub class: String,
    pub action: Action,
    pub reason: String,
    pub snapshot: Option<String>,
    pub exit_code: i32,
}

/// What a run did with a job. Serialized (JSON, notifications) as the words below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    /// Not decided yet (never in a returned result).
    #[serde(rename = "")]
    Pending,
    #[serde(rename = "done")]
    Done,
    #[serde(rename = "not due")]
    NotDue,
    #[serde(rename = "would run")]
    WouldRun,
    #[serde(rename = "skipped")]
    Skipped,
    #[serde(rename = "failed")]
    Failed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pending => "",
            Action::Done => "done",
            Action::NotDue => "not due",
            Action::WouldRun => "would run",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl JobResult {
    /// Whether this run worked on the job (took it, failed it, or a hook skipped it).
    pub fn ran(&self) -> bool {
        !matches!(self.action, Action::NotDue | Action::WouldRun)
    }
}

/// One schedule of a set: its main class or a named one.
pub struct Job<'a> {
    pub set: &'a str,
    pub cfg: &'a SetConfig,
    pub class: &'a ClassConfig,
    /// The snapshot tag: the class name, or for the main class its `every` ("4h"), else
    /// "daily", "weekly" or "manual".
    pub tag: String,
    pub schedule: Schedule,
}

/// Every set's classes, in the configuration's order.
pub fn jobs(cfg: &Config) -> Vec<Job<'_>> {
    let mut out = Vec::new();
    for (set, sc) in &cfg.sets {
        let classes = std::iter::once((None, &sc.main))
            .chain(sc.classes.iter().map(|(n, c)| (Some(n.clone()), c)));
        for (name, class) in classes {
            let schedule = class.schedule;
            let tag = name.unwrap_or_else(|| match (&class.every, schedule) {
                (Some(e), _) => e.clone(),
                (None, Schedule::Daily(_)) => "daily".into(),
                (None, Schedule::Weekly(..)) => "weekly".into(),
                _ => "manual".into(),
            });
            out.push(Job {
                set,
                cfg: sc,
                class,
                tag,
                schedule,
            });
        }
    }
    out
}

/// The newest snapshot of `set` carrying `tag`.
pub fn latest(cat: &Catalog, set: &str, tag: &str) -> Result<Option<SnapshotRow>> {
    Ok(cat
        .snapshots(Some(set))?
        .into_iter()
        .filter(|s| s.manifest.tags.iter().any(|t| t == tag))
        .max_by_key(|s| s.manifest.time))
}

fn last_snapshot(cat: &Catalog, set: &str, tag: &str) -> Result<Option<i64>> {
    Ok(latest(cat, set, tag)?.map(|s| s.manifest.time.0))
}

/// Rank for "the worst exit code": success, then partial, then any failure.
pub fn worst(a: i32, b: i32) -> i32 {
    let rank = |c: i32| match c {
        0 => 0,
        EXIT_PARTIAL => 1,
        _ => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// The run's ping says "started" once, before the first job that works (a backup, a
/// copy, a check or a drill).
fn begin(began: &mut bool, cfg: &Config, notifier: &crate::notify::Notifier) {
    if !std::mem::replace(began, true) {
        if let Some(url) = &cfg.notify.ping {
            notifier.ping_start(url);
        }
    }
}

/// Drills one set (given by `cofre run`'s caller, which knows how to mount).
pub type DrillFn<'a> = &'a dyn Fn(&str, &Catalog) -> Result<crate::drill::SetReport>;

/// What `cofre run`'s caller does for it: drill a set (it knows how to mount), open a
/// `copy_to` repository (it knows the passwords), check a repository. None: that kind of
/// job is not run.
#[derive(Default)]
pub struct Outside<'a> {
    pub drill: Option<DrillFn<'a>>,
    pub copy_target: Option<copies::TargetFn<'a>>,
    pub check: Option<CheckFn<'a>>,
    /// This repository's location, as the check jobs name it.
    pub location: String,
}

pub fn run(
    repo: &Repository,
    cat: &mut Catalog,
    cfg: &Config,
    lock_dir: &Path,
    opts: &RunOptions,
    outside: &Outside,
) -> Result<Vec<JobResult>> {
    for s in &opts.sets {
        if !cfg.sets.contains_key(s) {
            return Err(Error::InvalidArgument(format!(
                "no set {s:?} in the configuration"
            )));
        }
    }
    let at = opts.now.unwrap_or_else(crate::ingest::now);
    let notifier = crate::notify::Notifier::new(&cfg.notify);
    let mut began = false;
    let mut results = Vec::new();
    for job in jobs(cfg) {
        let named = opts.sets.iter().any(|s| s == job.set);
        if !opts.sets.is_empty() && !named {
            continue;
        }
        let last = last_snapshot(cat, job.set, &job.tag)?;
        let due = job.schedule.due(last, at.0) || (named && job.schedule == Schedule::Manual);
        let mut r = JobResult {
            set: job.set.to_string(),
            class: job.tag.clone(),
            action: Action::Pending,
            reason: match last {
                Some(t) => format!(
                    "last {} snapshot {}",
                    job.tag,
                    crate::ingest::format_time((t, 0))
                ),
                None => format!("no {} snapshot yet", job.tag),
            },
            snapshot: None,
            exit_code: 0,
        };
        if !due {
            r.action = Action::NotDue;
        } else if opts.dry_run {
            r.action = Action::WouldRun;
        } else {
            begin(&mut began, cfg, &notifier);
            if let Some(url) = &job.cfg.src.ping {
                notifier.ping_start(url);
            }
            let started = std::time::Instant::now();
            if run_job(repo, cat, cfg, &job, lock_dir, at, opts, &mut r) {
                record(lock_dir, at.0, started.elapsed().as_secs_f64(), &r, None);
            }
            if let Some(url) = &job.cfg.src.ping {
                notifier.ping_end(url, r.exit_code, &[&r]);
            }
        }
        results.push(r);
    }
    // Copies after the backups, so each new snapshot goes out in the run that took it.
    if let Some(open) = outside.copy_target {
        let begin = || begin(&mut began, cfg, &notifier);
        copies::copies(
            repo,
            cat,
            cfg,
            lock_dir,
            opts,
            at.0,
            open,
            begin,
            &mut results,
        );
    }
    // Verification after the copies, so a copy made in this run is checked with the rest.
    if let Some(check) = outside.check {
        let begin = || begin(&mut began, cfg, &notifier);
        checks::checks(
            cfg,
            &outside.location,
            lock_dir,
            opts,
            at.0,
            check,
            begin,
            &mut results,
        );
    }
    if let Some(d) = outside.drill {
        drills(
            cat,
            cfg,
            lock_dir,
            opts,
            at.0,
            d,
            &mut began,
            &notifier,
            &mut results,
        )?;
    }
    if began {
        let ran: Vec<&JobResult> = results.iter().filter(|r| r.ran()).collect();
        let code = ran.iter().fold(0, |acc, r| worst(acc, r.exit_code));
        if let Some(url) = &cfg.notify.ping {
            notifier.ping_end(url, code, &ran);
        }
        notifier.run_ended(&ran, code);
    }
    Ok(results)
}

#[allow(clippy::too_many_arguments)]
fn run_job(
    repo: &Repository,
    cat: &mut Catalog,
    cfg: &Config,
    job: &Job,
    lock_dir: &Path,
    at: (i64, u32),
    opts: &RunOptions,
    r: &mut JobResult,
) -> bool {
    // Two overlapping runs never both work on a set: a per-set flock, released by the
    // kernel when its process dies (no stale state to detect).
    let _guard = match hooks::SetLock::try_lock(lock_dir, job.set) {
        Ok(Some(g)) => g,
        Ok(None) => {
            // Not recorded: the run holding the lock records its own result.
            r.action = Action::Skipped;
            r.reason = "another cofre run is working on this set".into();
            return false;
        }
        Err(e) => {
            fail(r, cfg, job, e);
            return true;
        }
    };
    let env = hooks::Env::new(job.set, &job.tag);
    match hooks::before(cfg, job.cfg, job.class, &env) {
        Ok(hooks::Before::Go) => {}
        Ok(hooks::Before::Skip(why)) => {
            r.action = Action::Skipped;
            r.reason = why;
            return true;
        }
        Err(e) => {
            fail(r, cfg, job, e);
            return true;
        }
    }
    match snapshot_and_retain(repo, cat, job, at, opts, cfg) {
        Ok((id, code)) => {
            r.action = Action::Done;
            r.exit_code = code;
            let env = env.with_snapshot(&id, code);
            r.snapshot = Some(id);
            if let Err(e) = hooks::after(cfg, job.cfg, job.class, &env) {
                fail(r, cfg, job, e);
            }
        }
        Err(e) => fail(r, cfg, job, e),
    }
    true
}

/// Drills each set whose `drill_every` has passed since its last drill on this machine,
/// after the backups (so the newest snapshot is drilled). A drill is a job like a backup:
/// in the results, the exit code, the pings and the webhooks.
#[allow(clippy::too_many_arguments)]
fn drills(
    cat: &Catalog,
    cfg: &Config,
    lock_dir: &Path,
    opts: &RunOptions,
    now: i64,
    drill: DrillFn,
    began: &mut bool,
    notifier: &crate::notify::Notifier,
    results: &mut Vec<JobResult>,
) -> Result<()> {
    let last = crate::drill::record::load_local(lock_dir);
    for (set, sc) in &cfg.sets {
        let Some(every) = sc.src.drill_every_secs else {
            continue;
        };
        if !opts.sets.is_empty() && !opts.sets.contains(set) {
            continue;
        }
        let every = every as i64;
        let prev = last.get(set).map(|d| d.time);
        let mut r = JobResult {
            set: set.clone(),
            class: "drill".into(),
            action: Action::Pending,
            reason: match prev {
                Some(t) => format!("last drill {}", crate::ingest::format_time((t, 0))),
                None => "no drill yet".into(),
            },
            snapshot: None,
            exit_code: 0,
        };
        if prev.is_some_and(|t| now - t < every) {
            r.action = Action::NotDue;
        } else if opts.dry_run {
            r.action = Action::WouldRun;
        } else {
            begin(began, cfg, notifier);
            match drill(set, cat) {
                Ok(rep) => {
                    r.snapshot = Some(rep.snapshot.clone());
                    r.action = if rep.passed {
                        Action::Done
                    } else {
                        Action::Failed
                    };
                    r.reason = match (rep.passed, rep.problems.first(), rep.mismatches.first()) {
                        (true, _, _) => format!(
                            "drill passed: {} files, {:.1} MB, RTO {:.1} s, RPO {} s",
                            rep.files,
                            rep.bytes as f64 / 1e6,
                            rep.rto_seconds,
                            rep.rpo_seconds
                        ),
                        (false, Some(p), _) => format!("drill failed: {p}"),
                        (false, None, Some(m)) => format!(
                            "drill failed: {} mismatches, first {m}",
                            rep.mismatches.len()
                        ),
                        (false, None, None) => "drill failed".into(),
                    };
                    r.exit_code = if rep.passed { 0 } else { EXIT_FAILURE };
                }
                Err(e) => {
                    r.action = Action::Failed;
                    r.reason = format!("drill: {e}");
                    r.exit_code = e.exit_code().max(EXIT_FAILURE);
                }
            }
        }
        results.push(r);
    }
    Ok(())
}

/// Keeps what this run of a job did for `schedule status` and the metrics. A failure to
/// write it is reported, not fatal: the snapshot is what matters.
fn record(dir: &Path, at: i64, seconds: f64, r: &JobResult, through: Option<i64>) {
    use state::Outcome;
    let outcome = match (r.action, r.exit_code) {
        (Action::Skipped, _) => Outcome::Skipped,
        (Action::Done, 0) => Outcome::Ok,
        (Action::Done, EXIT_PARTIAL) => Outcome::Partial,
        _ => Outcome::Failed,
    };
    let s = state::ClassState {
        last_run: at,
        duration_seconds: seconds,
        outcome,
        exit_code: r.exit_code,
        error: (outcome == Outcome::Failed).then(|| r.reason.clone()),
        snapshot: r.snapshot.clone(),
        last_success: None,
        last_result: None,
        through,
        next_part: None,
        damaged_parts: Default::default(),
    };
    if let Err(e) = state::record(dir, &r.set, &r.class, s) {
        tracing::warn!("could not record the run of {}/{}: {e}", r.set, r.class);
    }
}

fn fail(r: &mut JobResult, cfg: &Config, job: &Job, e: Error) {
    r.action = Action::Failed;
    r.reason = e.to_string();
    r.exit_code = worst(r.exit_code, e.exit_code().max(EXIT_FAILURE));
    let env = hooks::Env::new(job.set, &job.tag).with_error(r.exit_code, &r.reason);
    hooks::failure(cfg, job.cfg, job.class, &env);
}

fn snapshot_and_retain(
    repo: &Repository,
    cat: &mut Catalog,
    job: &Job,
    at: (i64, u32),
    opts: &RunOptions,
    cfg: &Config,
) -> Result<(String, i32)> {
    let stream = job
        .cfg
        .src
        .command
        .as_ref()
        .map(|cmd| StreamSource::Command {
            cmd: cmd.clone(),
            name: job
                .cfg
                .src
                .stdin_name
                .clone()
                .unwrap_or_else(|| "stdin".into()),
        });
    let report = crate::ingest::ingest(
        repo,
        cat,
        IngestOptions {
            set: job.set.to_string(),
            tags: vec![job.tag.clone()],
            time: opts.now.map(|_| at),
            excludes: job.cfg.src.exclude.clone(),
            paths: job.cfg.src.paths.clone(),
            stream,
            progress: None,
            data_class: job.class.storage_class.clone(),
            self_contained: job.class.self_contained,
            compression: job.cfg.src.compression,
            atime: false,
            delta: job.cfg.src.delta.unwrap_or(true),
            retry_lock: opts.retry_lock,
        },
    )?;
    let code = if report.partial { EXIT_PARTIAL } else { 0 };
    let horizon = job
        .class
        .policy
        .as_ref()
        .and_then(crate::objlock::horizon_days);
    for w in crate::objlock::after_ingest(repo, &report.snapshot, horizon) {
        tracing::warn!("{w}");
    }
    if let Some(policy) = job.class.policy.clone() {
        let f = crate::forget::forget(
            repo,
            &ForgetOptions {
                policy,
                sets: vec![job.set.to_string()],
                tag: Some(job.tag.clone()),
                retry_lock: opts.retry_lock,
                ..Default::default()
            },
        )?;
        if let Some(first) = f.failures.first() {
            return Err(Error::WriteFailed(first.clone()));
        }
        if job.class.prune == Some(true) {
            // Packs inside their class's minimum storage duration stay, by the prices the
            // configuration names; a price file that cannot be read costs a warning and
            // the built-in table, never the backup.
            let location = repo.store().location();
            let minimums = crate::prune::Minimums::from_config(Some(cfg), &location)
                .unwrap_or_else(|e| {
                    tracing::warn!("prune uses the built-in minimum storage durations: {e}");
                    crate::prune::Minimums::for_location(&location)
                });
            let p = crate::prune::prune(
                repo,
                &PruneOptions {
                    retry_lock: opts.retry_lock,
                    minimums: Some(minimums),
                    ..Default::default()
                },
            )?;
            // The admin's run: what every kept snapshot needs stays locked, by the
            // policies as they are now (a policy made longer reaches old snapshots here),
            // whether or not some deletions failed.
            if repo.config.object_lock.is_some() {
                let horizon = crate::objlock::config_horizon(cfg);
                let extended = crate::objlock::extend(
                    repo,
                    &crate::objlock::ExtendOptions {
                        horizon: &horizon,
                        only: None,
                        dry_run: false,
                    },
                );
                // Never fatal here: the snapshot and the prune are done, and a failed
                // extension says which command finishes it.
                let problems = match extended {
                    Ok(r) => r.problems(),
                    Err(e) => vec![format!(
                        "locks could not be extended ({e}): run `cofre lock extend`"
                    )],
                };
                for w in problems {
                    tracing::warn!("{w}");
                }
            }
            if let Some(first) = p.done.as_ref().and_then(|d| d.delete_failures.first()) {
                return Err(Error::WriteFailed(first.clone()));
            }
        }
        crate::catalog::sync::sync(cat, repo)?;
    }
    Ok((report.snapshot, code))
}
