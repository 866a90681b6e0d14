//! `cofre thaw`: makes readable, for a while, exactly the archived packs that a snapshot (or
//! a path in it) needs, so that a restore, the mount or a drill can read them. Listing and
//! browsing never need a thaw: trees, index and manifests stay in the default class.
//!
//! The packs come from the index (each file's chunks, and their deltas' bases, at the copy
//! readers take), never from a listing of the bucket; only those in an archive class are
//! asked for. Each request is recorded in the catalog (`thaws`), so `--status` can say how
//! far they are, from the store's own answer (S3: HEAD's `x-amz-restore`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::index::MasterIndex;
use crate::repo::pack::pack_key;
use crate::session::browse::walk_path_each;
use crate::session::Session;
use crate::store::{ThawState, ThawTier};

#[derive(Debug, Clone)]
pub struct ThawOptions {
    /// An id prefix or `latest`.
    pub snapshot: String,
    /// A path in it (`/` for all of it).
    pub path: String,
    pub set: Option<String>,
    pub tier: ThawTier,
    /// How long the thawed copies stay readable.
    pub days: u32,
}

/// One pack a thaw needs.
#[derive(Debug, Clone, Serialize)]
pub struct PackThaw {
    pub key: String,
    pub class: String,
    pub bytes: u64,
    pub state: ThawState,
}

/// What a thaw of a snapshot (or a path) takes, before anything is asked for.
#[derive(Debug, Clone, Serialize)]
pub struct ThawPlan {
    pub snapshot: String,
    pub path: String,
    pub tier: ThawTier,
    pub days: u32,
    /// Files under the path, and how many need an archived pack.
    pub files: u64,
    pub frozen_files: u64,
    pub packs: Vec<PackThaw>,
    /// Bytes of the packs still to ask for (frozen ones).
    pub bytes_to_thaw: u64,
    pub estimate: Estimate,
}

/// What S3 bills for the thaw and how long it takes (docs/s3.md "Thawing").
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Estimate {
    pub retrieval_dollars: f64,
    pub request_dollars: f64,
    /// The restored copies are billed as STANDARD for `days`.
    pub temporary_copy_dollars: f64,
    pub dollars: f64,
    /// The slowest of the packs' classes at this tier.
    pub ready_within_hours: f64,
}

/// One recorded request, as `--status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ThawRecord {
    #[serde(flatten)]
    pub asked: crate::catalog::ThawRow,
    pub state: ThawState,
}

/// AWS us-east-1 list prices as of 2026-11, per class and tier: dollars per GB retrieved,
/// per 1,000 requests, and the hours it takes at most. None: the tier does not exist there.
pub fn tier_price(class: &str, tier: ThawTier) -> Option<(f64, f64, f64)> {
    match (class, tier) {
        ("GLACIER", ThawTier::Expedited) => Some((0.03, 10.0, 5.0 / 60.0)),
        ("GLACIER", ThawTier::Standard) => Some((0.01, 0.05, 5.0)),
        ("GLACIER", ThawTier::Bulk) => Some((0.0, 0.0, 12.0)),
        ("DEEP_ARCHIVE", ThawTier::Standard) => Some((0.02, 0.10, 12.0)),
        ("DEEP_ARCHIVE", ThawTier::Bulk) => Some((0.0025, 0.025, 48.0)),
        _ => None,
    }
}

const STANDARD_GB_MONTH: f64 = 0.023;

/// The estimate for thawing `packs` (class, bytes) at `tier` for `days`.
pub fn estimate(packs: &[(&str, u64)], tier: ThawTier, days: u32) -> Result<Estimate> {
    let mut e = Estimate::default();
    for (class, bytes) in packs {
        let (per_gb, per_1000, hours) = tier_price(class, tier).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{class} data cannot be thawed at the {tier} tier: use --tier standard or --tier bulk"
            ))
        })?;
        let gb = *bytes as f64 / 1e9;
        e.retrieval_dollars += gb * per_gb;
        e.request_dollars += per_1000 / 1000.0;
        e.temporary_copy_dollars += gb * STANDARD_GB_MONTH * days as f64 / 30.0;
        e.ready_within_hours = e.ready_within_hours.max(hours);
    }
    e.dollars = e.retrieval_dollars + e.request_dollars + e.temporary_copy_dollars;
    Ok(e)
}

impl Session {
    /// The archived packs that `opts.path` of `opts.snapshot` needs, with where each stands
    /// (one HEAD per pack) and what asking for the frozen ones costs.
    pub fn thaw_plan(&self, opts: &ThawOptions) -> Result<ThawPlan> {
        let cat = self.synced_catalog()?;
        let row = cat.resolve(&opts.snapshot, opts.set.as_deref())?;
        // Restore reads through the repository's index, the mount through the catalog: of
        // equally near copies they may take different ones, so both are thawed.
        let index = self.repository().load_master_index()?;
        let (mut files, mut frozen_files) = (0, 0);
        let mut needed: BTreeMap<BlobId, String> = BTreeMap::new();
        walk_path_each(&cat, row.root_rowid, &opts.path, true, &mut |_, r| {
            if r.node.kind != crate::model::Kind::File {
                return Ok(());
            }
            files += 1;
            // Every chunk: each adds its archived packs to `needed`.
            let mut frozen = false;
            for c in &r.node.chunks {
                frozen |= archived_packs(&cat, &index, &c.id, &mut needed)?;
            }
            frozen_files += u64::from(frozen);
            Ok(())
        })?;
        let repo = self.repository();
        let keys: Vec<String> = needed.keys().map(pack_key).collect();
        let sizes = repo.run_many(keys.iter().map(|k| {
            let (store, k) = (repo.store().clone(), k.clone());
            async move { Ok((store.head(&k).await?, store.thaw_state(&k).await?)) }
        }));
        let mut packs = Vec::new();
        for ((key, class), got) in keys.into_iter().zip(needed.into_values()).zip(sizes) {
            let (bytes, state) = got?;
            packs.push(PackThaw {
                key,
                class,
                bytes,
                state,
            });
        }
        // Every archived pack may be asked for (a thawed copy to extend): the tier must
        // exist for each class. The cost is the frozen ones' (extending costs a request).
        let archived: Vec<(&str, u64)> = packs
            .iter()
            .filter(|p| p.state != ThawState::Readable)
            .map(|p| (p.class.as_str(), p.bytes))
            .collect();
        estimate(&archived, opts.tier, opts.days)?;
        let frozen: Vec<(&str, u64)> = packs
            .iter()
            .filter(|p| p.state == ThawState::Frozen)
            .map(|p| (p.class.as_str(), p.bytes))
            .collect();
        Ok(ThawPlan {
            snapshot: row.id.clone(),
            path: opts.path.clone(),
            tier: opts.tier,
            days: opts.days,
            files,
            frozen_files,
            bytes_to_thaw: frozen.iter().map(|(_, b)| b).sum(),
            estimate: estimate(&frozen, opts.tier, opts.days)?,
            packs,
        })
    }

    /// Asks the store to thaw the plan's frozen packs, and those whose thawed copy expires
    /// within `plan.days` (asking again extends it), concurrently; records each request in
    /// the catalog. Returns the plan's packs with where each stands now.
    pub fn thaw(&self, plan: &ThawPlan, now: i64) -> Result<Vec<PackThaw>> {
        let until = now + plan.days as i64 * 86_400;
        let (ask, mut out): (Vec<PackThaw>, Vec<PackThaw>) =
            plan.packs.iter().cloned().partition(|p| match p.state {
                ThawState::Frozen => true,
                ThawState::Thawed { expiry: Some(e) } => e < until,
                _ => false,
            });
        let states = self.ask_thaw(&ask, plan.tier, plan.days, now)?;
        out.extend(
            ask.into_iter()
                .zip(states)
                .map(|(p, state)| PackThaw { state, ..p }),
        );
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Sends one thaw request per pack (32 at a time) and records each that the store took,
    /// also when another failed (it was sent, and is billed): the first failure is
    /// returned after the others are recorded.
    pub fn ask_thaw(
        &self,
        packs: &[PackThaw],
        tier: ThawTier,
        days: u32,
        now: i64,
    ) -> Result<Vec<ThawState>> {
        let repo = self.repository();
        let asked = repo.run_many(packs.iter().map(|p| {
            let (store, k) = (repo.store().clone(), p.key.clone());
            async move { store.thaw(&k, days, tier).await }
        }));
        let cat = Catalog::open(self.catalog_path())?;
        let mut states = Vec::with_capacity(packs.len());
        let mut failed = None;
        for (p, state) in packs.iter().zip(asked) {
            match state {
                Ok(state) => {
                    let hours = tier_price(&p.class, tier).map_or(0.0, |t| t.2);
                    let expected = now + (hours * 3600.0) as i64;
                    cat.record_thaw(&p.key, &tier.to_string(), now, expected, days)?;
                    states.push(state);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(states),
        }
    }

    /// Where each of `keys` stands now (one HEAD each); a pack deleted since is `Gone`.
    pub fn thaw_states(&self, keys: &[String]) -> Result<Vec<ThawState>> {
        let repo = self.repository();
        repo.run_many(keys.iter().map(|k| {
            let (store, k) = (repo.store().clone(), k.clone());
            async move {
                match store.thaw_state(&k).await {
                    Err(crate::store::StoreError::NotFound(_)) => Ok(ThawState::Gone),
                    r => r,
                }
            }
        }))
        .into_iter()
        .collect()
    }

    /// Every request recorded here whose copies may still be readable, with where each
    /// stands now.
    pub fn thaw_status(&self, now: i64) -> Result<Vec<ThawRecord>> {
        let cat = Catalog::open(self.catalog_path())?;
        let recorded = cat.thaws(now)?;
        let keys: Vec<String> = recorded.iter().map(|r| r.key.clone()).collect();
        let states = self.thaw_states(&keys)?;
        Ok(recorded
            .into_iter()
            .zip(states)
            .map(|(asked, state)| ThawRecord { asked, state })
            .collect())
    }
}

/// Adds to `needed` the archived packs a chunk is read from (its nearest copy, and for a
/// delta its bases' nearest whole copies, as the catalog and the index each choose them);
/// whether it needs any.
fn archived_packs(
    cat: &Catalog,
    index: &MasterIndex,
    id: &BlobId,
    needed: &mut BTreeMap<BlobId, String>,
) -> Result<bool> {
    let mut reads = Vec::new();
    for loc in [cat.blob_location(id)?, index.get(id)]
        .into_iter()
        .flatten()
    {
        reads.push(loc);
        for b in loc.base.iter().flat_map(|b| b.ids()) {
            reads.extend(cat.base_location(&b)?);
            reads.extend(index.get_whole(&b));
        }
    }
    let mut any = false;
    for l in reads.into_iter().filter(|l| l.tier > 0) {
        any = true;
        if let std::collections::btree_map::Entry::Vacant(v) = needed.entry(l.pack) {
            v.insert(cat.pack_class(&l.pack)?);
        }
    }
    Ok(any)
}

/// The longest a thaw of `classes` at `tier` takes, in hours (AWS's figures).
pub fn longest_hours<'a>(classes: impl Iterator<Item = &'a str>, tier: ThawTier) -> f64 {
    classes
        .filter_map(|c| tier_price(c, tier).map(|t| t.2))
        .fold(0.0, f64::max)
}

/// Packs whose thaw is still to come, of `states`.
pub fn pending(states: &[ThawState]) -> usize {
    states
        .iter()
        .filter(|s| matches!(s, ThawState::Frozen | ThawState::Thawing))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_the_class_and_tier() {
        // (packs, tier, days, dollars, hours) — 10 GB in GLACIER at Standard for 7 days:
        // 0.10 retrieval + 0.00005 × 1 request + 10 × 0.023 × 7/30.
        type Case<'a> = (&'a [(&'a str, u64)], ThawTier, u32, f64, f64);
        let cases: [Case; 4] = [
            (
                &[("GLACIER", 10_000_000_000)],
                ThawTier::Standard,
                7,
                0.1 + 0.00005 + 0.053_666,
                5.0,
            ),
            (
                &[("GLACIER", 10_000_000_000)],
                ThawTier::Bulk,
                1,
                0.007_666,
                12.0,
            ),
            (
                &[("DEEP_ARCHIVE", 1_000_000_000), ("GLACIER", 0)],
                ThawTier::Bulk,
                30,
                0.0025 + 0.000025 + 0.023,
                48.0,
            ),
            (&[], ThawTier::Expedited, 1, 0.0, 0.0),
        ];
        for (packs, tier, days, dollars, hours) in cases {
            let e = estimate(packs, tier, days).expect("estimate");
            assert!(
                (e.dollars - dollars).abs() < 0.0001,
                "{packs:?} {tier}: {e:?}"
            );
            assert_eq!(e.ready_within_hours, hours, "{packs:?} {tier}");
        }
        let err =
            estimate(&[("DEEP_ARCHIVE", 1)], ThawTier::Expedited, 1).expect_err("no expedited");
        assert!(err.to_string().contains("--tier standard"), "{err}");
    }
}
