//! Minimum storage durations. Most colder classes bill an object deleted (or overwritten)
//! early as if it had been kept for the class's minimum: S3 STANDARD_IA and ONEZONE_IA 30
//! days, GLACIER_IR and GLACIER 90, DEEP_ARCHIVE 180; GCS NEARLINE 30, COLDLINE 90, ARCHIVE
//! 365; Azure Cool 30, Cold 90, Archive 180. Deleting such a pack sooner saves nothing and
//! loses the data that later snapshots could have reused, so prune keeps it (neither
//! deleted nor repacked) until its minimum has passed, and says so. This is about money,
//! never about safety: a pack kept longer is only ever more data kept.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::crypto::BlobId;
use crate::error::Result;
use crate::repo::index::{IndexPack, DEFAULT_CLASS};
use crate::store::ObjectInfo;

const DAY: i64 = 86_400;

/// Days of minimum storage, by class, for the provider a repository URL names.
#[derive(Debug, Clone, Default)]
pub struct Minimums(BTreeMap<String, u32>);

impl Minimums {
    pub fn new(days: BTreeMap<String, u32>) -> Minimums {
        Minimums(days)
    }

    /// From the built-in price table of the provider the store's location names
    /// (`s3://` aws, `gs://` gcs, `az://` azure; a local directory has none).
    pub fn for_location(location: &str) -> Minimums {
        let table = crate::stats::builtin(provider_of(location)).unwrap_or_default();
        Minimums(table.into_iter().map(|(c, p)| (c, p.min_days)).collect())
    }

    /// From the price table `stats` uses: the configuration's `provider` and `prices` when
    /// it sets them, else the built-in table of the provider `location` names.
    pub fn from_config(cfg: Option<&crate::config::Config>, location: &str) -> Result<Minimums> {
        let pricing = crate::stats::Pricing::resolve(cfg, None, None, provider_of(location))?;
        let days = pricing.table.into_iter().map(|(c, p)| (c, p.min_days));
        Ok(Minimums(days.collect()))
    }

    pub fn days(&self, class: Option<&str>) -> u32 {
        let class = class.unwrap_or(DEFAULT_CLASS);
        self.0.get(class).copied().unwrap_or(0)
    }

    /// When a pack of `class` written at `written` (the store's clock) may go without an
    /// early-deletion charge: None when it may go now (as judged at `now`). An object
    /// whose age the store does not say is kept (every real store says it).
    pub fn release(&self, class: Option<&str>, written: Option<i64>, now: i64) -> Option<i64> {
        let days = self.days(class);
        if days == 0 {
            return None;
        }
        match written {
            Some(t) => Some(t + days as i64 * DAY).filter(|r| *r > now),
            None => Some(i64::MAX),
        }
    }
}

/// The provider whose prices apply to a store location, by its scheme.
fn provider_of(location: &str) -> &'static str {
    match location.split_once("://").map(|(scheme, _)| scheme) {
        Some("s3") => "aws",
        Some("gs") => "gcs",
        Some("az") => "azure",
        _ => "local",
    }
}

/// Packs a plan kept because their minimum storage duration has not passed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Held {
    pub packs: usize,
    pub bytes: u64,
    /// When the last of them may go (Unix seconds, the store's clock); None if unknown.
    pub until: Option<i64>,
    /// What deleting them now would have been billed for nothing: GB-days of storage
    /// still owed, by class.
    pub owed_gb_days_by_class: BTreeMap<String, f64>,
}

/// Moves out of `delete` and `repack` (into `keep`) every pack still inside its minimum
/// storage duration at `now`, with the storage it would still owe.
pub fn hold(
    minimums: &Minimums,
    listing: &HashMap<BlobId, ObjectInfo>,
    doomed_before: &HashSet<BlobId>,
    now: i64,
    delete: &mut Vec<IndexPack>,
    repack: &mut Vec<(IndexPack, HashSet<BlobId>)>,
    keep: &mut Vec<IndexPack>,
) -> Held {
    let mut owed: BTreeMap<String, f64> = BTreeMap::new();
    let mut held = hold_where(doomed_before, delete, repack, keep, |p| {
        let written = listing.get(&p.id).and_then(|o| o.modified);
        let at = minimums.release(p.class.as_deref(), written, now)?;
        if at != i64::MAX {
            let days = (at - now) as f64 / DAY as f64;
            let class = p.class.clone().unwrap_or_else(|| DEFAULT_CLASS.into());
            *owed.entry(class).or_default() += p.size as f64 / 1e9 * days;
        }
        Some(at)
    });
    held.owed_gb_days_by_class = owed;
    held
}

/// Moves out of `delete` and `repack` (into `keep`, whole, with their index entries) every
/// pack `release` gives a date for (i64::MAX: unknown). Packs an earlier prune doomed are
/// left where they are: that prune may wake and delete them anyway, and its list is
/// settled only once they go. Keeping more never endangers a snapshot.
pub fn hold_where(
    doomed_before: &HashSet<BlobId>,
    delete: &mut Vec<IndexPack>,
    repack: &mut Vec<(IndexPack, HashSet<BlobId>)>,
    keep: &mut Vec<IndexPack>,
    mut release: impl FnMut(&IndexPack) -> Option<i64>,
) -> Held {
    let mut held = Held::default();
    let mut hold = |p: &IndexPack| -> bool {
        if doomed_before.contains(&p.id) {
            return false;
        }
        let Some(at) = release(p) else {
            return false;
        };
        held.packs += 1;
        held.bytes += p.size;
        held.until = held.until.max(Some(at)).filter(|t| *t != i64::MAX);
        true
    };
    let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(delete).into_iter().partition(|p| hold(p));
    *delete = gone;
    keep.extend(kept);
    let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(repack)
        .into_iter()
        .partition(|(p, _)| hold(p));
    *repack = gone;
    keep.extend(kept.into_iter().map(|(p, _)| p));
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_goes_only_once_its_class_minimum_has_passed() {
        let now = 1_000 * DAY;
        let aws = Minimums::for_location("s3://bucket/prefix");
        // (class, written days before now, released at: days after now, or None for now)
        let cases = [
            (None, 1, None),
            (Some("STANDARD"), 0, None),
            (Some("STANDARD_IA"), 10, Some(20)),
            (Some("STANDARD_IA"), 30, None),
            (Some("STANDARD_IA"), 31, None),
            (Some("GLACIER_IR"), 89, Some(1)),
            (Some("GLACIER"), 1, Some(89)),
            (Some("DEEP_ARCHIVE"), 100, Some(80)),
            (Some("DEEP_ARCHIVE"), 180, None),
            (Some("SOMETHING_ELSE"), 1, None),
        ];
        for (class, age, want) in cases {
            let got = aws.release(class, Some(now - age * DAY), now);
            assert_eq!(got, want.map(|d| now + d * DAY), "{class:?} {age}");
        }
        // The age unknown: kept.
        assert_eq!(aws.release(Some("GLACIER"), None, now), Some(i64::MAX));
        // Other providers' tables.
        let gcs = Minimums::for_location("gs://b/p");
        assert_eq!(gcs.days(Some("ARCHIVE")), 365);
        assert_eq!(gcs.days(Some("NEARLINE")), 30);
        let azure = Minimums::for_location("az://c/p");
        assert_eq!(azure.days(Some("DEEP_ARCHIVE")), 180);
        assert_eq!(
            Minimums::for_location("/var/backups").days(Some("GLACIER")),
            0
        );
    }
}
