//! `cofre run`'s copy jobs: each set's snapshots into each of its `copy_to` repositories,
//! after the backups, each (set, target) its own job with its own result, state, metrics
//! and notification. A target that is down fails its job only: the snapshot taken stays,
//! and a later run catches up (a copy job runs whenever the set has snapshots newer than
//! the newest one known to be on the target, or its last copy did not end well). It copies
//! only those: a snapshot the target's own retention removed is not sent again.

use std::path::Path;

use super::{record, state, Action, JobResult, RunOptions};
use crate::config::Config;
use crate::copy::CopyOptions;
use crate::error::{Result, EXIT_FAILURE};
use crate::repo::Repository;
use crate::session::Session;

/// Opens a `copy_to` repository (the caller knows its password).
pub type TargetFn<'a> = &'a dyn Fn(&str) -> Result<Session>;

/// The state key of a copy job: beside the set's classes in its state file.
pub fn state_key(target: &str) -> String {
    format!("copy:{target}")
}

/// What one run of a copy job does, given the set's lag behind the target (snapshots
/// newer than the newest known there, whoever took them) and how its last copy ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    Copy,
    /// Nothing new, and the last copy ended well.
    NotDue,
}

pub fn due(lag: u64, last: Option<state::Outcome>) -> Due {
    match (lag, last) {
        (0, Some(state::Outcome::Ok)) => Due::NotDue,
        // Something new; or never copied, failed, skipped: catch up now.
        _ => Due::Copy,
    }
}

/// Snapshots of `set` in the catalog newer than `through` (every one when nothing was
/// copied yet): how far its copy is behind.
pub fn lag(cat: &crate::catalog::Catalog, set: &str, through: Option<i64>) -> Result<u64> {
    Ok(cat
        .snapshots(Some(set))?
        .iter()
        .filter(|s| through.is_none_or(|t| s.manifest.time.0 > t))
        .count() as u64)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn copies(
    repo: &Repository,
    cat: &crate::catalog::Catalog,
    cfg: &Config,
    lock_dir: &Path,
    opts: &RunOptions,
    now: i64,
    open: TargetFn,
    mut begin: impl FnMut(),
    results: &mut Vec<JobResult>,
) {
    for set in cfg.sets.keys() {
        if !opts.sets.is_empty() && !opts.sets.contains(set) {
            continue;
        }
        let st = state::load(lock_dir, set);
        for target in cfg.copy_targets(set) {
            let key = state_key(target);
            let prev = st.get(&key);
            let mut r = JobResult {
                set: set.clone(),
                class: key.clone(),
                action: Action::Pending,
                reason: match prev.and_then(|p| p.last_success) {
                    Some(t) => format!("last copy {}", crate::ingest::format_time((t, 0))),
                    None => "no copy yet".into(),
                },
                snapshot: None,
                exit_code: 0,
            };
            let last = prev.and_then(|p| p.last_result);
            let since = prev.and_then(|p| p.through);
            // A catalog that cannot say counts as behind: the copy itself will tell.
            let behind = lag(cat, set, since).unwrap_or(1);
            if due(behind, last) == Due::NotDue {
                r.action = Action::NotDue;
            } else if opts.dry_run {
                r.action = Action::WouldRun;
            } else {
                begin();
                let started = std::time::Instant::now();
                let through = copy_one(repo, set, target, since, open, opts, &mut r);
                record(lock_dir, now, started.elapsed().as_secs_f64(), &r, through);
            }
            results.push(r);
        }
    }
}

/// A copy job looks this far back before the newest snapshot known on the target: a
/// snapshot committed after that copy but stamped earlier (another host's long ingest,
/// stamped when it started, or its clock behind) is still sent. Older than that, it is
/// left to a `cofre copy` by hand (docs/copy.md).
const LOOK_BACK: i64 = 86_400;

/// Runs one copy job: the set's snapshots from `since - LOOK_BACK` on (those already there
/// cost a listing). Returns the time through which the target is complete, as far as this
/// copy got.
fn copy_one(
    repo: &Repository,
    set: &str,
    target: &str,
    since: Option<i64>,
    open: TargetFn,
    opts: &RunOptions,
    r: &mut JobResult,
) -> Option<i64> {
    let mut rep = crate::copy::CopyReport::default();
    let copied = open(target).and_then(|dst| {
        crate::copy::copy_into(
            repo,
            dst.repository(),
            &CopyOptions {
                sets: vec![set.to_string()],
                since: since.map(|t| t - LOOK_BACK),
                retry_lock: opts.retry_lock,
                ..Default::default()
            },
            &mut rep,
        )
    });
    match copied {
        Ok(()) => {
            r.action = Action::Done;
            r.snapshot = rep.copied.last().map(|s| s.id.clone());
            r.reason = format!(
                "copied {} snapshot(s) to {target} ({} blobs, {:.1} MB); {} already there",
                rep.copied.len(),
                rep.blobs,
                rep.bytes as f64 / 1e6,
                rep.present
            );
            rep.through
        }
        Err(e) => {
            r.action = Action::Failed;
            r.reason = format!(
                "copy to {target}: {e} ({} snapshot(s) copied before)",
                rep.copied.len()
            );
            r.exit_code = e.exit_code().max(EXIT_FAILURE);
            rep.through
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::Outcome;

    #[test]
    fn a_copy_runs_while_behind_and_until_one_ends_well() {
        let table = [
            (1, Some(Outcome::Ok), Due::Copy),
            (3, None, Due::Copy),
            (0, Some(Outcome::Ok), Due::NotDue),
            (0, Some(Outcome::Failed), Due::Copy),
            (0, Some(Outcome::Partial), Due::Copy),
            (0, Some(Outcome::Skipped), Due::Copy),
            (0, None, Due::Copy),
        ];
        for (lag, last, want) in table {
            assert_eq!(due(lag, last), want, "{lag} {last:?}");
        }
    }
}
