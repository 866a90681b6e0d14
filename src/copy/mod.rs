//! `cofre copy`: snapshots, with their trees, data and delta bases, into a second repository
//! made with `init --copy-params-from` (same keys and chunker, its own password).
//!
//! Blobs and manifests move as they are stored: no decompression, no re-chunking, and the
//! sources are never read again. Each blob is authenticated (the AEAD, bound to its id)
//! before it is written, so a damaged source pack is reported, never copied. Since the
//! manifest's bytes are copied too, a snapshot has the same id in both repositories.
//!
//! Safety, the same as an ingest's on the target (docs/prune.md): a shared lock on each
//! repository (no prune deletes what we read or reuse), blobs reused on the target only
//! when its index lists them in a pack its listing holds and no doomed list names, and
//! each snapshot committed on its own (packs → index → manifest, `repo::commit`), oldest
//! first. A copy that is killed leaves the snapshots it committed and packs no index names
//! (a later prune collects them); the next copy goes on from there.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::model::Manifest;
use crate::repo::file::FileType;
use crate::repo::index::{IndexFile, Location, MasterIndex, Reach};
use crate::repo::lock::Lock;
use crate::repo::pack::{pack_key, BlobKind};
use crate::repo::Repository;
use target::Target;

mod target;

/// What to copy. Empty filters select every snapshot.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    pub sets: Vec<String>,
    /// Only snapshots taken at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Snapshot ids or unique id prefixes.
    pub snapshots: Vec<String>,
    /// Say what would be copied, copy nothing.
    pub dry_run: bool,
    pub retry_lock: Duration,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct CopyReport {
    /// Snapshots copied (or, with `dry_run`, to copy), oldest first.
    pub copied: Vec<CopiedSnapshot>,
    /// Selected snapshots the target had already.
    pub present: usize,
    /// The time (Unix seconds) of the newest selected snapshot: with a copy that did not
    /// fail, the target holds every selected snapshot up to it.
    pub through: Option<i64>,
    /// Blobs written to the target, and their stored bytes.
    pub blobs: u64,
    pub bytes: u64,
    pub dry_run: bool,
    pub duration_secs: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct CopiedSnapshot {
    pub id: String,
    pub set: String,
    pub time: String,
    pub blobs: u64,
    pub bytes: u64,
}

/// Source reads are grouped by pack; blobs closer than this in a pack are read with one
/// request (the gap is read and dropped).
const MERGE_GAP: u64 = 1 << 20;
/// Bytes read from the source per round of concurrent requests.
const ROUND_BYTES: u64 = 64 << 20;

pub fn copy(src: &Repository, dst: &Repository, opts: &CopyOptions) -> Result<CopyReport> {
    let mut report = CopyReport::default();
    let done = copy_into(src, dst, opts, &mut report);
    // A locked target keeps what each copied snapshot reuses there locked too.
    for c in &report.copied {
        for w in crate::objlock::after_ingest(dst, &c.id, None) {
            tracing::warn!("{w}");
        }
    }
    done?;
    Ok(report)
}

/// `copy`, filling `report` as it goes: after a failure it says what was committed before
/// (`cofre run` counts the lag from it).
pub fn copy_into(
    src: &Repository,
    dst: &Repository,
    opts: &CopyOptions,
    report: &mut CopyReport,
) -> Result<()> {
    let started = Instant::now();
    report.dry_run = opts.dry_run;
    require_shared_keys(src, dst)?;
    // No prune on the source deletes what we read until we are done.
    let _src_lock = Lock::acquire(src, false, "copy (source)", opts.retry_lock)?;
    let selected = select(src, opts)?;
    let on_target: HashSet<String> = dst.snapshot_ids()?.into_iter().collect();
    let (present, todo): (Vec<_>, Vec<_>) = selected
        .into_iter()
        .partition(|(id, _)| on_target.contains(id));
    report.present = present.len();
    // Every selected snapshot older than the first to copy is on the target already.
    let first_todo = todo.first().map(|(_, m)| m.time);
    report.through = present
        .iter()
        .map(|(_, m)| m.time)
        .filter(|t| first_todo.is_none_or(|f| *t < f))
        .max()
        .map(|t| t.0);
    let newest = present.iter().chain(&todo).map(|(_, m)| m.time.0).max();
    if todo.is_empty() {
        report.duration_secs = started.elapsed().as_secs_f64();
        return Ok(());
    }
    let lock = match opts.dry_run {
        true => None,
        false => Some(Lock::acquire(dst, false, "copy", opts.retry_lock)?),
    };
    let src_index = src.load_master_index()?;
    let classes = todo
        .iter()
        .filter_map(|(_, m)| match Reach::of(m) {
            Reach::Class(c) => Some(c),
            Reach::Tier(_) => None,
        })
        .collect();
    let target = Target::load(dst, &classes)?;
    let mut run = Run {
        src,
        src_index: &src_index,
        target: &target,
        done: HashMap::new(),
        done_in: HashMap::new(),
        walked: HashMap::new(),
    };
    // A snapshot damaged on the source does not hold back the ones after it: they are
    // copied, the copy still fails (naming it), and `through` stays before it.
    let mut damaged: Option<Error> = None;
    for (id, manifest) in todo {
        // Its manifest as stored, read first: one a forget on the source removed since the
        // listing is left out, with a warning, not an error for the whole copy.
        let sealed = match src.sealed_manifest(&id) {
            Err(Error::Store(crate::store::StoreError::NotFound(_))) => {
                tracing::warn!("snapshot {id} was forgotten on the source meanwhile: not copied");
                continue;
            }
            r => r,
        };
        let planned = sealed.and_then(|sealed| Ok((sealed, run.plan(&id, &manifest)?)));
        let (sealed, plan) = match planned {
            Err(e @ Error::Corrupt { .. }) => {
                tracing::warn!("snapshot {id} not copied: {e}");
                damaged.get_or_insert(e);
                continue;
            }
            r => r?,
        };
        let blobs = plan.blobs.len() as u64;
        let bytes = plan.blobs.iter().map(|(_, l)| u64::from(l.length)).sum();
        if let Some(lock) = &lock {
            match write_snapshot(src, dst, lock, &id, &manifest, sealed, &plan.blobs) {
                Err(e @ Error::Corrupt { .. }) => {
                    tracing::warn!("snapshot {id} not copied: {e}");
                    damaged.get_or_insert(e);
                    continue;
                }
                r => r?,
            }
        }
        run.committed(plan);
        report.blobs += blobs;
        report.bytes += bytes;
        if damaged.is_none() {
            report.through = Some(manifest.time.0);
        }
        report.copied.push(CopiedSnapshot {
            id,
            set: manifest.set.clone(),
            time: crate::ingest::format_time(manifest.time),
            blobs,
            bytes,
        });
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    if let Some(e) = damaged {
        return Err(e);
    }
    report.through = newest;
    Ok(())
}

/// A copy, and a comparison with one, needs a target made with `init --copy-params-from`
/// the source: the same keys and chunker, so that blobs and manifests keep their ids.
pub(crate) fn require_shared_keys(src: &Repository, dst: &Repository) -> Result<()> {
    if dst.shares_keys_with(src) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{} does not share {}'s keys: make the target with `cofre init --copy-params-from {}`",
        dst.store().location(),
        src.store().location(),
        src.store().location()
    )))
}

/// The source's snapshots that the options select, oldest first.
fn select(src: &Repository, opts: &CopyOptions) -> Result<Vec<(String, Manifest)>> {
    let ids = src.snapshot_ids()?;
    let mut wanted = HashSet::new();
    for spec in &opts.snapshots {
        let hits: Vec<&String> = ids
            .iter()
            .filter(|i| i.starts_with(spec.as_str()))
            .collect();
        match hits.as_slice() {
            [one] => {
                wanted.insert((*one).clone());
            }
            [] => return Err(Error::NoSnapshot(spec.clone())),
            _ => return Err(Error::AmbiguousSnapshot(spec.clone())),
        }
    }
    let mut out = Vec::new();
    for (id, m) in ids.iter().zip(src.load_manifests(&ids)) {
        // A manifest that cannot be read is an error, never a snapshot left out quietly.
        let m = m?;
        let keep = (opts.snapshots.is_empty() || wanted.contains(id))
            && (opts.sets.is_empty() || opts.sets.contains(&m.set))
            && opts.since.is_none_or(|t| m.time.0 >= t);
        if keep {
            out.push((id.clone(), m));
        }
    }
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// A blob this run wrote to the target: the nearest tier of any of its copies, and of its
/// whole ones (a base is read only from a whole copy: a STANDARD delta and a whole GLACIER
/// copy do not make a whole STANDARD one).
#[derive(Clone, Copy)]
struct Written {
    tier: u8,
    whole_tier: Option<u8>,
}

struct Run<'a> {
    src: &'a Repository,
    src_index: &'a MasterIndex,
    target: &'a Target,
    /// Blobs committed to the target by this run.
    done: HashMap<BlobId, Written>,
    /// The data blobs of `done` written in each class, and whether whole: what the
    /// self-contained snapshots after them may reuse.
    done_in: HashMap<String, HashMap<BlobId, bool>>,
    /// Trees whose whole subtree a committed snapshot of this run covers, at that
    /// snapshot's tier.
    walked: HashMap<BlobId, u8>,
}

/// What one snapshot needs written: blobs with their source locations, and what to mark
/// once it is committed.
struct Plan {
    blobs: Vec<(BlobId, Location)>,
    trees: Vec<BlobId>,
    reach: Reach,
}

impl Run<'_> {
    fn have(&self, id: &BlobId, reach: &Reach, whole: bool) -> bool {
        let done = match reach {
            Reach::Tier(t) => self.done.get(id).is_some_and(|w| match whole {
                true => w.whole_tier.is_some_and(|wt| wt <= *t),
                false => w.tier <= *t,
            }),
            Reach::Class(c) => self
                .done_in
                .get(c)
                .and_then(|d| d.get(id))
                .is_some_and(|w| *w || !whole),
        };
        done || self.target.has(id, reach, whole)
    }

    /// The blobs `manifest`'s snapshot needs that the target lacks, with their source
    /// locations: its trees, its files' chunks, and whole copies of the bases of the
    /// chunks whose copy is a delta.
    fn plan(&self, id: &str, manifest: &Manifest) -> Result<Plan> {
        let reach = Reach::of(manifest);
        // A tree another snapshot of this run covered at a tier within ours need not be
        // walked again; a self-contained snapshot walks all of its own.
        let covered = |t: &BlobId| match &reach {
            Reach::Tier(max) => self.walked.get(t).is_some_and(|w| w <= max),
            Reach::Class(_) => false,
        };
        let mut trees = Vec::new();
        let mut chunks = HashSet::new();
        let mut level = vec![manifest.root];
        let mut seen = HashSet::new();
        while !level.is_empty() {
            level.retain(|t| !covered(t) && seen.insert(*t));
            trees.extend(level.iter().copied());
            let mut next = Vec::new();
            for batch in crate::repo::trees::tree_batches(self.src_index, &level) {
                for tree in self.src.load_trees(self.src_index, batch)? {
                    for n in &tree.nodes {
                        chunks.extend(n.chunks.iter().map(|c| c.id));
                        next.extend(n.subtree);
                    }
                }
            }
            level = next;
        }
        // (blob, needed whole, the copies it may be); trees always live in the default class.
        let trees_reach = Reach::Tier(0);
        let mut want: Vec<(BlobId, bool, &Reach)> =
            trees.iter().map(|t| (*t, false, &trees_reach)).collect();
        want.extend(chunks.into_iter().map(|c| (c, false, &reach)));
        let mut out: HashMap<BlobId, (Location, bool)> = HashMap::new();
        while let Some((b, whole, at)) = want.pop() {
            let listed = out.get(&b).map(|(_, w)| *w);
            if listed == Some(true) || (listed.is_some() && !whole) || self.have(&b, at, whole) {
                continue;
            }
            let loc = match whole {
                true => self.src_index.get_whole(&b),
                false => self.src_index.get(&b),
            }
            .ok_or_else(|| {
                Error::corrupt(
                    format!("blob {} of snapshot {id}", b.hex()),
                    match whole {
                        true => "no whole copy of this delta base in the source's index: run `cofre check` on the source",
                        false => "not in the source's index: run `cofre check` on the source",
                    },
                )
            })?;
            want.extend(
                loc.base
                    .iter()
                    .flat_map(|bases| bases.ids())
                    .map(|base| (base, true, at)),
            );
            out.insert(b, (loc, loc.base.is_none()));
        }
        Ok(Plan {
            blobs: out.into_iter().map(|(b, (l, _))| (b, l)).collect(),
            trees: seen.into_iter().collect(),
            reach,
        })
    }

    /// Marks a committed snapshot's blobs and trees, for the snapshots after it.
    fn committed(&mut self, plan: Plan) {
        let tier = plan.reach.tier();
        for (b, l) in plan.blobs {
            let tree = l.kind == BlobKind::Tree;
            let at = if tree { 0 } else { tier };
            let whole = l.base.is_none();
            let e = self.done.entry(b).or_insert(Written {
                tier: at,
                whole_tier: None,
            });
            e.tier = e.tier.min(at);
            if whole {
                e.whole_tier = Some(e.whole_tier.map_or(at, |wt| wt.min(at)));
            }
            if let (Reach::Class(c), false) = (&plan.reach, tree) {
                *self
                    .done_in
                    .entry(c.clone())
                    .or_default()
                    .entry(b)
                    .or_insert(false) |= whole;
            }
        }
        for t in plan.trees {
            let e = self.walked.entry(t).or_insert(tier);
            *e = (*e).min(tier);
        }
    }
}

/// The class the snapshot's data was written in; None for the default.
fn data_class(m: &Manifest) -> Option<&str> {
    m.data_class.as_deref().filter(|c| *c != "STANDARD")
}

/// Writes the blobs a snapshot needs to the target, then commits it with its manifest's
/// own bytes.
fn write_snapshot(
    src: &Repository,
    dst: &Repository,
    lock: &Lock,
    id: &str,
    manifest: &Manifest,
    sealed: Vec<u8>,
    needed: &[(BlobId, Location)],
) -> Result<()> {
    let written = std::thread::scope(|scope| {
        let packer = crate::repo::packer::Packer::start(
            scope,
            dst,
            data_class(manifest).map(str::to_string),
            dst.compression(),
        );
        let moved = move_blobs(src, &packer, needed);
        match (moved, packer.finish()) {
            (Ok(()), Ok(w)) => Ok(w),
            (Err(e), Ok(w)) => {
                crate::repo::commit::discard_if_ours(dst, lock, &w.packs);
                Err(e)
            }
            (r, Err((e, packs))) => {
                crate::repo::commit::discard_if_ours(dst, lock, &packs);
                Err(r.err().unwrap_or(e))
            }
        }
    })?;
    let index = IndexFile {
        packs: written.packs,
    };
    // Only if absent: another copy into the same target may have stored these very bytes
    // meanwhile, and that snapshot is its own, never ours to withdraw.
    let key = FileType::Snapshot.key(id);
    crate::repo::commit::commit(dst, lock, &index, || {
        if dst.put_raw_if_absent(&key, sealed.clone())? {
            return Ok((id.to_string(), true));
        }
        // "Exists" is also what a retried create that had landed, or a refusal of another
        // kind, can look like: the snapshot counts as there only if its bytes are.
        match dst.get_raw(&key, None)? == sealed {
            true => Ok((id.to_string(), false)),
            false => Err(Error::corrupt(
                key.clone(),
                "the target holds other bytes under this snapshot's name: run `cofre check` on the target",
            )),
        }
    })?;
    Ok(())
}

/// Reads the blobs from the source, grouped by pack, a round of requests at a time, and
/// queues each, authenticated, to the target's packer as it is.
fn move_blobs(
    src: &Repository,
    packer: &crate::repo::packer::Packer,
    needed: &[(BlobId, Location)],
) -> Result<()> {
    let reads = plan_reads(needed);
    let mut round: Vec<&Read> = Vec::new();
    let mut bytes = 0;
    for (i, r) in reads.iter().enumerate() {
        bytes += r.range.end - r.range.start;
        round.push(r);
        if bytes < ROUND_BYTES && i + 1 < reads.len() {
            continue;
        }
        let reqs: Vec<_> = round
            .iter()
            .map(|r| (pack_key(&r.pack), Some(r.range.clone())))
            .collect();
        for (r, got) in round.iter().zip(src.get_ranges(&reqs)) {
            let got = got?;
            if got.len() as u64 != r.range.end - r.range.start {
                return Err(Error::corrupt(
                    pack_key(&r.pack),
                    format!("asked for bytes {:?}, got {}", r.range, got.len()),
                ));
            }
            for (id, loc) in &r.blobs {
                let at = (loc.offset - r.range.start) as usize;
                let blob = &got[at..at + loc.length as usize];
                src.authenticate_blob(id, blob).map_err(|e| {
                    Error::corrupt(
                        pack_key(&r.pack),
                        format!("{e}; nothing of it was copied: run `cofre check --read-data` on the source"),
                    )
                })?;
                let base = loc.base;
                packer.add_sealed(*id, blob.to_vec(), loc.kind, loc.raw_len as usize, base)?;
            }
        }
        round.clear();
        bytes = 0;
    }
    Ok(())
}

/// One ranged read of a source pack and the blobs it covers.
#[derive(Debug, PartialEq)]
struct Read {
    pack: BlobId,
    range: Range<u64>,
    blobs: Vec<(BlobId, Location)>,
}

/// Groups blobs by pack, in pack order, merging those less than `MERGE_GAP` apart.
fn plan_reads(needed: &[(BlobId, Location)]) -> Vec<Read> {
    let mut by_pack: HashMap<BlobId, Vec<(BlobId, Location)>> = HashMap::new();
    for (id, loc) in needed {
        by_pack.entry(loc.pack).or_default().push((*id, *loc));
    }
    let mut packs: Vec<_> = by_pack.into_iter().collect();
    packs.sort_by_key(|(p, _)| *p);
    let mut out: Vec<Read> = Vec::new();
    for (pack, mut blobs) in packs {
        blobs.sort_by_key(|(_, l)| l.offset);
        let mut cur: Option<Read> = None;
        for (id, loc) in blobs {
            let end = loc.offset + u64::from(loc.length);
            match &mut cur {
                Some(r) if loc.offset <= r.range.end + MERGE_GAP => {
                    r.range.end = r.range.end.max(end);
                    r.blobs.push((id, loc));
                }
                _ => {
                    out.extend(cur.take());
                    cur = Some(Read {
                        pack,
                        range: loc.offset..end,
                        blobs: vec![(id, loc)],
                    });
                }
            }
        }
        out.extend(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_one_per_stretch_of_a_pack() {
        let mb = 1u64 << 20;
        // (pack, offset, length) of each blob → (pack, range, blob count) of each read.
        type Case = (Vec<(u8, u64, u32)>, Vec<(u8, Range<u64>, usize)>);
        let cases: Vec<Case> = vec![
            (vec![], vec![]),
            (vec![(1, 0, 10)], vec![(1, 0..10, 1)]),
            // Adjacent and out of order: one read.
            (vec![(1, 10, 10), (1, 0, 10)], vec![(1, 0..20, 2)]),
            // A gap of exactly MERGE_GAP is read through; one byte more is not.
            (vec![(1, 0, 10), (1, 10 + mb, 5)], vec![(1, 0..15 + mb, 2)]),
            (
                vec![(1, 0, 10), (1, 11 + mb, 5)],
                vec![(1, 0..10, 1), (1, 11 + mb..16 + mb, 1)],
            ),
            // Two packs: never one read.
            (
                vec![(2, 0, 10), (1, 0, 10)],
                vec![(1, 0..10, 1), (2, 0..10, 1)],
            ),
        ];
        for (blobs, want) in cases {
            let needed: Vec<_> = blobs
                .iter()
                .enumerate()
                .map(|(i, (p, o, l))| (BlobId([i as u8 + 100; 32]), Location::test(*p, *o, *l)))
                .collect();
            let got: Vec<_> = plan_reads(&needed)
                .into_iter()
                .map(|r| (r.pack.0[0], r.range, r.blobs.len()))
                .collect();
            assert_eq!(got, want, "{blobs:?}");
        }
    }
}
