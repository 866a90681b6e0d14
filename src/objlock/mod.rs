//! S3 Object Lock for a repository (docs/object-lock.md): how long a snapshot's objects
//! stay locked (`horizon_days`), keeping what kept snapshots need locked (`extend`),
//! prune's respect for locks (`hold`), and recovery from deletes and overwrites that the
//! locks survived (`recover`).

mod extend;
mod needs;
mod recover;

pub use extend::{extend, ExtendOptions, ExtendReport};
pub use recover::{recover, RecoverReport};

use std::collections::{HashMap, HashSet};

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::forget::policy::{Policy, Span};
use crate::repo::file::pack_key;
use crate::repo::index::IndexPack;
use crate::repo::retain::ObjectLock;
use crate::repo::Repository;

pub const DAY: i64 = 86_400;

/// The lock of a repository made with `init --object-lock`, or an error saying it was not.
pub fn lock_of(repo: &Repository) -> Result<ObjectLock> {
    repo.config.object_lock.ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{} was made without --object-lock: there is nothing to extend or recover",
            repo.store().location()
        ))
    })
}

fn span_days(s: &Span) -> i64 {
    i64::from(s.years) * 366
        + i64::from(s.months) * 31
        + i64::from(s.days)
        + (i64::from(s.hours) + 23) / 24
}

/// How many days after it was taken a snapshot can still be kept by `policy`, at most,
/// when snapshots come on schedule: its lock should last that long. None when the policy
/// has no calendar bound (`last` or tags alone): the repository's `--lock-days` then.
/// Each `<unit> = n` keeps one snapshot per unit for the last n units, the one being
/// filled included, so n + 1 units bound it; months count 31 days, years 366.
pub fn horizon_days(policy: &Policy) -> Option<i64> {
    let counted = [
        ((i64::from(policy.hourly) + 1 + 23) / 24, policy.hourly),
        (i64::from(policy.daily) + 1, policy.daily),
        (7 * (i64::from(policy.weekly) + 1), policy.weekly),
        (31 * (i64::from(policy.monthly) + 1), policy.monthly),
        (366 * (i64::from(policy.yearly) + 1), policy.yearly),
    ];
    let spans = [
        policy.within,
        policy.within_hourly,
        policy.within_daily,
        policy.within_weekly,
        policy.within_monthly,
        policy.within_yearly,
    ];
    let by_count = counted.iter().filter(|(_, n)| *n > 0).map(|(d, _)| *d);
    let by_span = spans.iter().filter(|s| !s.is_zero()).map(span_days);
    by_count.chain(by_span).max()
}

/// What a configuration's policies keep, as `ExtendOptions::horizon`: a snapshot's set
/// and class (its tag, as `cofre run` writes it) name the policy.
pub fn config_horizon(
    cfg: &crate::config::Config,
) -> impl Fn(&crate::model::Manifest) -> Option<i64> + '_ {
    move |m| {
        crate::run::jobs(cfg)
            .into_iter()
            .filter(|j| j.set == m.set && m.tags.contains(&j.tag))
            .filter_map(|j| j.class.policy.as_ref().and_then(horizon_days))
            .max()
    }
}

/// After a snapshot is committed in a locked repository: its manifest and every pack it
/// uses, old ones it reused included, retained for `horizon` days (None: the lock days).
/// The snapshot is committed whatever happens here: what went wrong comes back as
/// warnings, each naming the command that finishes the job.
pub fn after_ingest(repo: &Repository, id: &str, horizon: Option<i64>) -> Vec<String> {
    if repo.config.object_lock.is_none() {
        return Vec::new();
    }
    let opts = ExtendOptions {
        horizon: &|_| horizon,
        only: Some(vec![id.to_string()]),
        dry_run: false,
    };
    match extend(repo, &opts) {
        Ok(r) => r.problems(),
        Err(e) => vec![format!(
            "snapshot {} is committed, but the older data it reuses may be locked for less than its retention ({e}): run `cofre lock extend`",
            &id[..8.min(id.len())]
        )],
    }
}

/// Moves every pack under an Object Lock retention at `now` out of `delete` and `repack`
/// into `keep`: S3 refuses to delete a locked version, and a repack would copy its blobs
/// and then fail to delete it. A later prune takes it once the retention has passed. Packs
/// an earlier prune doomed are not held (`hold_where`): that prune may wake and delete
/// them; if one is locked its deletion fails (reported, exit 1) until the lock ends, which
/// loses nothing. A failed retention lookup stops prune before anything is deleted.
pub fn hold(
    repo: &Repository,
    doomed_before: &HashSet<BlobId>,
    now: i64,
    delete: &mut Vec<IndexPack>,
    repack: &mut Vec<(IndexPack, HashSet<BlobId>)>,
    keep: &mut Vec<IndexPack>,
) -> Result<crate::prune::Held> {
    if repo.config.object_lock.is_none() {
        return Ok(crate::prune::Held::default());
    }
    let packs: Vec<BlobId> = delete
        .iter()
        .map(|p| p.id)
        .chain(repack.iter().map(|(p, _)| p.id))
        .collect();
    let until = retained_until(repo, packs.iter().map(pack_key).collect())?;
    let locked: HashMap<BlobId, i64> = packs
        .into_iter()
        .zip(until)
        .filter_map(|(p, u)| Some((p, u?)).filter(|(_, u)| *u > now))
        .collect();
    Ok(crate::prune::hold_where(
        doomed_before,
        delete,
        repack,
        keep,
        |p| locked.get(&p.id).copied(),
    ))
}

/// The retain-until date of each key's current version (None: not locked, or gone).
pub fn retained_until(repo: &Repository, keys: Vec<String>) -> Result<Vec<Option<i64>>> {
    repo.run_many(keys.into_iter().map(|key| {
        let store = repo.store().clone();
        async move {
            match store.retained_until(&key, None).await {
                Err(crate::store::StoreError::NotFound(_)) => Ok(None),
                r => r,
            }
        }
    }))
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_bounds_how_long_a_snapshot_is_kept() {
        let span = |s: &str| Span::parse(s).expect("span");
        let cases = [
            (Policy::default(), None),
            (
                Policy {
                    last: 10,
                    ..Default::default()
                },
                None,
            ),
            (
                Policy {
                    daily: 30,
                    ..Default::default()
                },
                Some(31),
            ),
            (
                Policy {
                    hourly: 48,
                    ..Default::default()
                },
                Some(3),
            ),
            // The users' plan: 30 days of 4-hourly snapshots, a year of weeklies.
            (
                Policy {
                    within: span("30d"),
                    weekly: 52,
                    ..Default::default()
                },
                Some(371),
            ),
            (
                Policy {
                    monthly: 12,
                    within_daily: span("1y"),
                    ..Default::default()
                },
                Some(403),
            ),
            (
                Policy {
                    within: span("2d12h"),
                    ..Default::default()
                },
                Some(3),
            ),
        ];
        for (policy, want) in cases {
            assert_eq!(horizon_days(&policy), want, "{policy:?}");
        }
    }
}
