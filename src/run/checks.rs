//! `cofre run`'s scheduled verification (`[check]` in the file): the repository and each
//! `copy_to` target checked on a schedule, reading a rotating part of the data, so that
//! every pack of every repository is read once per cycle (`read_data = "1/30"`: one
//! thirtieth a run). The next part is kept in the run state, so restarts do not reset it.
//! Each repository's check is a job of its own: result, exit code, notification, metrics.

use std::collections::BTreeSet;
use std::path::Path;

use super::{state, Action, JobResult, RunOptions};
use crate::check::{CheckReport, ReadData};
use crate::config::Config;
use crate::error::{Result, EXIT_FAILURE};

/// Checks one repository (None: this one; Some(url): a `copy_to` target) reading `read`.
pub type CheckFn<'a> = &'a dyn Fn(Option<&str>, ReadData) -> Result<CheckReport>;

/// The state file of check jobs: not a set's (no set name starts with a dot).
pub const STATE_SET: &str = ".check";

/// What a check of `read` reads in a run whose rotation stands at `next` (1-based): a part
/// `n/m` in the file means "one m-th a run", the parts taken in turn; anything else is read
/// as it is. Returns what to read and the rotation for the run after it.
pub fn rotate(read: ReadData, next: Option<u32>) -> (ReadData, Option<u32>) {
    match read {
        ReadData::Part(_, m) => {
            let n = next.filter(|n| (1..=m).contains(n)).unwrap_or(1);
            (ReadData::Part(n, m), Some(n % m + 1))
        }
        other => (other, None),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn checks(
    cfg: &Config,
    here: &str,
    lock_dir: &Path,
    opts: &RunOptions,
    now: i64,
    check: CheckFn,
    mut begin: impl FnMut(),
    results: &mut Vec<JobResult>,
) {
    let Some(c) = &cfg.check else { return };
    if !opts.sets.is_empty() {
        return; // a run of named sets is about those sets only
    }
    let mut repos: Vec<Option<&str>> = vec![None];
    if c.copies.unwrap_or(true) {
        let targets: BTreeSet<&str> = cfg
            .sets
            .keys()
            .flat_map(|s| cfg.copy_targets(s))
            .map(String::as_str)
            .collect();
        repos.extend(targets.into_iter().map(Some));
    }
    let st = state::load(lock_dir, STATE_SET);
    for repo in repos {
        let name = repo.unwrap_or(here);
        let prev = st.get(name);
        let mut r = JobResult {
            set: name.to_string(),
            class: "check".into(),
            action: Action::Pending,
            reason: match prev {
                Some(p) => format!("last check {}", crate::ingest::format_time((p.last_run, 0))),
                None => "no check yet".into(),
            },
            snapshot: None,
            exit_code: 0,
        };
        if !c.schedule.due(prev.map(|p| p.last_run), now) {
            r.action = Action::NotDue;
        } else if opts.dry_run {
            r.action = Action::WouldRun;
        } else {
            begin();
            let started = std::time::Instant::now();
            let (read, after) = rotate(c.read, prev.and_then(|p| p.next_part));
            let mut damaged_parts = prev.map(|p| p.damaged_parts.clone()).unwrap_or_default();
            let part = match read {
                ReadData::Part(n, _) => n,
                _ => 0,
            };
            let (outcome, next) = match check(repo, read) {
                Ok(rep) if rep.errors.is_empty() => {
                    r.action = Action::Done;
                    r.reason = format!(
                        "{} snapshots, {} packs, {} read ({}): no errors",
                        rep.snapshots,
                        rep.packs,
                        rep.packs_read,
                        read.describe()
                    );
                    // A part read clean clears what it had found; a random share proves
                    // nothing about the rest, only a read of all of it clears everything.
                    if part != 0 {
                        damaged_parts.remove(&part);
                    }
                    if read == ReadData::All {
                        damaged_parts.clear();
                    }
                    (state::Outcome::Ok, after)
                }
                Ok(rep) => {
                    r.action = Action::Failed;
                    r.exit_code = EXIT_FAILURE;
                    r.reason = format!(
                        "{} problem(s) ({}); first: {}",
                        rep.errors.len(),
                        read.describe(),
                        rep.errors[0]
                    );
                    if read == ReadData::All {
                        damaged_parts.clear();
                    }
                    match rep.damaged_packs as u64 {
                        0 if part != 0 => {
                            damaged_parts.remove(&part);
                        }
                        0 => {}
                        n => {
                            damaged_parts.insert(part, n);
                        }
                    }
                    (state::Outcome::Failed, after)
                }
                // The check could not run (the store down): the same part next time, and
                // the damage known so far stays known.
                Err(e) => {
                    r.action = Action::Failed;
                    r.exit_code = e.exit_code().max(EXIT_FAILURE);
                    r.reason = format!("check: {e}");
                    (state::Outcome::Failed, prev.and_then(|p| p.next_part))
                }
            };
            let s = state::ClassState {
                last_run: now,
                duration_seconds: started.elapsed().as_secs_f64(),
                outcome,
                exit_code: r.exit_code,
                error: (outcome == state::Outcome::Failed).then(|| r.reason.clone()),
                snapshot: None,
                last_success: None,
                last_result: None,
                through: None,
                next_part: next,
                damaged_parts,
            };
            if let Err(e) = state::record(lock_dir, STATE_SET, name, s) {
                tracing::warn!("could not record the check of {name}: {e}");
            }
        }
        results.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_rotates_through_every_part_and_survives_odd_state() {
        // (configured, stored next) → (read now, next)
        let table = [
            (ReadData::Part(1, 3), None, ReadData::Part(1, 3), Some(2)),
            (ReadData::Part(1, 3), Some(2), ReadData::Part(2, 3), Some(3)),
            (ReadData::Part(1, 3), Some(3), ReadData::Part(3, 3), Some(1)),
            // The file changed from 1/30 to 1/3: a stored 17 starts again at 1.
            (
                ReadData::Part(1, 3),
                Some(17),
                ReadData::Part(1, 3),
                Some(2),
            ),
            (ReadData::Part(1, 1), Some(1), ReadData::Part(1, 1), Some(1)),
            (ReadData::All, Some(2), ReadData::All, None),
            (ReadData::None, None, ReadData::None, None),
        ];
        for (cfg, next, want, want_next) in table {
            let (got, got_next) = rotate(cfg, next);
            assert_eq!((got, got_next), (want, want_next), "{cfg:?} {next:?}");
        }
    }
}
