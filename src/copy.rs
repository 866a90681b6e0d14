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
use crate::repo::index::{tier, IndexFile, Location, MasterIndex};
use crate::repo::lock::Lock;
use crate::repo::pack::pack_key;
use crate::repo::Repository;

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
    let started = Instant::now();
    if !dst.shares_keys_with(src) {
        return Err(Error::InvalidArgument(format!(
            "{} does not share {}'s keys: make the target with `cofre init --copy-params-from {}`",
            dst.store().location(),
            src.store().location(),
            src.store().location()
        )));
    }
    // No prune on the source deletes what we read until we are done.
    let _src_lock = Lock::acquire(src, false, "copy (source)", opts.retry_lock)?;
    let selected = select(src, opts)?;
    let on_target: HashSet<String> = dst.snapshot_ids()?.into_iter().collect();
    let (present, todo): (Vec<_>, Vec<_>) = selected
        .into_iter()
        .partition(|(id, _)| on_target.contains(id));
    let mut report = CopyReport {
        through: present.iter().chain(&todo).map(|(_, m)| m.time.0).max(),
        present: present.len(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    if todo.is_empty() {
        report.duration_secs = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let lock = match opts.dry_run {
        true => None,
        false => Some(Lock::acquire(dst, false, "copy", opts.retry_lock)?),
    };
    let src_index = src.load_master_index()?;
    let target = Target {
        index: dst.load_master_index()?,
        packs: crate::ingest::reusable_packs(dst)?,
    };
    let mut run = Run {
        src,
        src_index: &src_index,
        target: &target,
        done: HashSet::new(),
        walked: HashSet::new(),
    };
    for (id, manifest) in todo {
        let needed = run.needed(&id, &manifest)?;
        let blobs = needed.len() as u64;
        let bytes = needed.iter().map(|(_, l)| u64::from(l.length)).sum();
        if let Some(lock) = &lock {
            write_snapshot(src, dst, lock, &id, &manifest, &needed)?;
        }
        run.done.extend(needed.iter().map(|(b, _)| *b));
        report.blobs += blobs;
        report.bytes += bytes;
        report.copied.push(CopiedSnapshot {
            id,
            set: manifest.set.clone(),
            time: crate::ingest::format_time(manifest.time),
            blobs,
            bytes,
        });
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
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

/// What the target holds that a copy may reuse.
struct Target {
    index: MasterIndex,
    packs: HashSet<BlobId>,
}

impl Target {
    /// Reused only as an ingest would: indexed, in a pack the listing holds (and no doomed
    /// list names), no colder than the snapshot's class.
    fn has(&self, id: &BlobId, max_tier: u8) -> bool {
        self.index
            .get(id)
            .is_some_and(|l| l.tier <= max_tier && self.packs.contains(&l.pack))
    }
}

struct Run<'a> {
    src: &'a Repository,
    src_index: &'a MasterIndex,
    target: &'a Target,
    /// Blobs committed to the target by this run.
    done: HashSet<BlobId>,
    /// Trees whose whole subtree a committed snapshot of this run covers.
    walked: HashSet<BlobId>,
}

impl Run<'_> {
    /// The blobs `manifest`'s snapshot needs that the target lacks, with their source
    /// locations: its trees, its files' chunks, and the bases of the chunks stored as deltas.
    fn needed(&mut self, id: &str, manifest: &Manifest) -> Result<Vec<(BlobId, Location)>> {
        let max_tier = tier(data_class(manifest));
        let mut want: Vec<BlobId> = Vec::new();
        let mut level = vec![manifest.root];
        let mut seen = HashSet::new();
        while !level.is_empty() {
            level.retain(|t| !self.walked.contains(t) && seen.insert(*t));
            want.extend(level.iter().copied());
            let trees = self.src.load_trees(self.src_index, &level)?;
            let mut next = Vec::new();
            for tree in trees {
                for n in &tree.nodes {
                    want.extend(n.chunks.iter().map(|c| c.id));
                    next.extend(n.subtree);
                }
            }
            level = next;
        }
        let mut out = Vec::new();
        let mut listed = HashSet::new();
        while let Some(b) = want.pop() {
            if self.done.contains(&b) || self.target.has(&b, max_tier) || !listed.insert(b) {
                continue;
            }
            let loc = self.src_index.get(&b).ok_or_else(|| {
                Error::corrupt(
                    format!("blob {} of snapshot {id}", b.hex()),
                    "not in the source's index: run `cofre check` on the source",
                )
            })?;
            want.extend(loc.base.iter().flat_map(|bases| bases.ids()));
            out.push((b, loc));
        }
        self.walked.extend(seen);
        Ok(out)
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
    needed: &[(BlobId, Location)],
) -> Result<()> {
    let sealed = src.sealed_manifest(id)?;
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
    crate::repo::commit::commit(dst, lock, &index, || {
        dst.put_raw(&FileType::Snapshot.key(id), sealed)?;
        Ok(id.to_string())
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
                src.authenticate_blob(id, blob)?;
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
    use crate::repo::pack::BlobKind;

    fn loc(pack: u8, offset: u64, length: u32) -> Location {
        Location {
            pack: BlobId([pack; 32]),
            kind: BlobKind::Data,
            offset,
            length,
            raw_len: length,
            tier: 0,
            base: None,
        }
    }

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
                .map(|(i, (p, o, l))| (BlobId([i as u8 + 100; 32]), loc(*p, *o, *l)))
                .collect();
            let got: Vec<_> = plan_reads(&needed)
                .into_iter()
                .map(|r| (r.pack.0[0], r.range, r.blobs.len()))
                .collect();
            assert_eq!(got, want, "{blobs:?}");
        }
    }
}
