//! What a prune keeps: for every blob the snapshots use, one copy readers can read, and
//! for a delta copy, a whole copy of each base (docs/prune.md "Deltas" and "Doomed lists").
//!
//! A copy is *safe* when no doomed list names its pack and, for a delta, each base has a
//! whole copy in such a pack: a paused prune that wakes deletes only what its list names,
//! so a safe copy outlives it. A used blob with a safe copy keeps the one readers take
//! among the safe ones. One without (possible only when the prune of some list gave up,
//! and then we cannot tell which list is live) keeps every copy it has, and their bases.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::blobset::BlobSet;
use super::Result;
use crate::crypto::BlobId;
use crate::repo::index::{IndexPack, Location, MasterIndex, Reach};
use crate::repo::pack::PackEntry;
use crate::repo::Repository;

/// The two views of the packs a plan has: `all` (every copy, for reading trees and
/// repacked deltas' bases) and `safe` (the copies a kept snapshot may rely on).
pub struct Views {
    pub all: MasterIndex,
    /// None when it would hold exactly what `all` holds: no pack is doomed and every
    /// delta's bases have a whole copy. That is every prune after one that finished, and
    /// a second master index was a third of the plan's memory (docs/benchmarks.md,
    /// "Prune's memory at a million files").
    safe: Option<MasterIndex>,
}

impl Views {
    pub fn safe(&self) -> &MasterIndex {
        self.safe.as_ref().unwrap_or(&self.all)
    }
}

/// Of two equally near copies the first added wins: indexed packs first, in id order,
/// then adopted ones, so the choice is the same on every run and an indexed copy is never
/// given up for an unindexed one.
pub fn views(indexed: &[IndexPack], adopted: &[IndexPack], doomed: &HashSet<BlobId>) -> Views {
    views_with(indexed, adopted, doomed, true)
}

/// `views`; `share` false builds `safe` even when it would equal `all` (tests compare).
fn views_with(
    indexed: &[IndexPack],
    adopted: &[IndexPack],
    doomed: &HashSet<BlobId>,
    share: bool,
) -> Views {
    let mut all = MasterIndex::default();
    all.add_packs(indexed.iter().chain(adopted), |_| true);
    all.seal();
    let free = |p: &&IndexPack| !doomed.contains(&p.id);
    // `safe` takes the free packs, and of their deltas those whose bases are whole in a
    // free pack. With every pack free, that is every delta whose bases are whole in any
    // pack: what `all.get_whole` finds. That rests on two properties of `MasterIndex::seal`:
    // `whole` names a whole copy of every blob whose reader copy is a delta, and no reader
    // is ever moved off a whole copy. The table test below builds both ways.
    let same = share
        && indexed.iter().chain(adopted).all(|p| {
            free(&p)
                && p.entries
                    .iter()
                    .all(|e| bases_in(e, |x| all.get_whole(x).is_some()))
        });
    if same {
        return Views { all, safe: None };
    }
    let whole_here: HashSet<BlobId> = indexed
        .iter()
        .chain(adopted)
        .filter(free)
        .flat_map(|p| p.entries.iter().filter(|e| e.base.is_none()).map(|e| e.id))
        .collect();
    let mut safe = MasterIndex::default();
    safe.add_packs(indexed.iter().chain(adopted).filter(free), |e| {
        bases_in(e, |x| whole_here.contains(x))
    });
    safe.seal();
    Views {
        all,
        safe: Some(safe),
    }
}

/// Whether every base of `e` (none for a whole blob) has a whole copy, by `whole`: the rule
/// for a delta copy to be readable within a set of packs.
fn bases_in(e: &PackEntry, whole: impl Fn(&BlobId) -> bool) -> bool {
    e.base.as_deref().is_none_or(|b| b.ids().all(|x| whole(&x)))
}

/// Every blob the snapshots reference (trees and chunks), walking each tree once, a level
/// of the trees at a time so that the reads of a level run concurrently.
pub fn used_blobs<'a>(
    repo: &Repository,
    index: &'a MasterIndex,
    roots: &[BlobId],
) -> Result<BlobSet<'a>> {
    let (trees, mut used) = walk(repo, index, roots)?;
    used.extend(trees);
    Ok(used)
}

/// The trees of self-contained snapshots, and the chunks they need in their own class
/// (their deltas' bases are added by `homes_in_class`), by class: `roots` are those
/// snapshots' root trees, by their class.
pub fn pinned_chunks<'a>(
    repo: &Repository,
    index: &'a MasterIndex,
    roots: &BTreeMap<String, Vec<BlobId>>,
) -> Result<BTreeMap<String, TreesAndChunks<'a>>> {
    let mut out = BTreeMap::new();
    for (class, roots) in roots {
        out.insert(class.clone(), walk(repo, index, roots)?);
    }
    Ok(out)
}

/// Keeps, for every blob a self-contained snapshot of `class` uses, a copy in a pack of that
/// class (a delta's bases too, there): a weekly full in DEEP_ARCHIVE outlives the hotter
/// packs that also held its data, and does not keep them alive. Returns the blobs of
/// `pinned` with no such copy (a snapshot written by an older version, or a lost class):
/// the caller keeps them as any snapshot's, where readers read them.
pub fn homes_in_class(
    h: &mut Homes,
    class: &str,
    pinned: impl Iterator<Item = BlobId>,
    packs: &[&IndexPack],
    doomed: &HashSet<BlobId>,
) -> HashSet<BlobId> {
    let reach = Reach::Class(class.to_string());
    // Only copies a paused earlier prune cannot delete (as `views`' safe one).
    let own_packs: Vec<&IndexPack> = packs
        .iter()
        .filter(|p| reach.admits(p.class.as_deref()) && !doomed.contains(&p.id))
        .copied()
        .collect();
    let whole: HashSet<BlobId> = own_packs
        .iter()
        .flat_map(|p| p.entries.iter().filter(|e| e.base.is_none()).map(|e| e.id))
        .collect();
    let mut own = MasterIndex::default();
    own.add_packs(own_packs.iter().copied(), |e| {
        bases_in(e, |x| whole.contains(x))
    });
    own.seal();
    let mut seen: HashSet<(BlobId, bool)> = HashSet::new();
    let mut todo: Vec<(BlobId, bool)> = pinned.map(|b| (b, false)).collect();
    let mut outside = HashSet::new();
    while let Some((id, as_base)) = todo.pop() {
        if !seen.insert((id, as_base)) {
            continue;
        }
        let loc = match as_base {
            true => own.get_whole(&id),
            false => own.get(&id),
        };
        match loc {
            Some(l) => {
                h.keep(&l);
                todo.extend(l.base.iter().flat_map(|b| b.ids()).map(|x| (x, true)));
            }
            // Only ever a chunk: `own` admits a delta only with whole bases in the class.
            None => {
                outside.insert(id);
            }
        }
    }
    outside
}

/// The trees, and the chunks, under some roots.
pub type TreesAndChunks<'a> = (HashSet<BlobId>, BlobSet<'a>);

/// The trees and the chunks under `roots`.
fn walk<'a>(
    repo: &Repository,
    index: &'a MasterIndex,
    roots: &[BlobId],
) -> Result<TreesAndChunks<'a>> {
    let mut trees = HashSet::new();
    let mut used = BlobSet::new(index);
    walk_past(repo, index, roots, &mut trees, |c| {
        used.insert(c);
    })?;
    Ok((trees, used))
}

/// The trees reachable from `roots` that are not in `trees` yet (`trees` gains them); the
/// chunks they reference go to `chunk`, once per reference. Several walks that share
/// `trees` read each tree once.
pub fn walk_past(
    repo: &Repository,
    index: &MasterIndex,
    roots: &[BlobId],
    trees: &mut HashSet<BlobId>,
    mut chunk: impl FnMut(BlobId),
) -> Result<Vec<BlobId>> {
    let mut walked = Vec::new();
    let mut level: Vec<BlobId> = roots
        .iter()
        .filter(|r| trees.insert(**r))
        .copied()
        .collect();
    while !level.is_empty() {
        walked.extend(&level);
        let mut next = Vec::new();
        for batch in crate::repo::trees::tree_batches(index, &level) {
            for tree in repo.load_trees(index, batch)? {
                for n in &tree.nodes {
                    n.chunks.iter().for_each(|c| chunk(c.id));
                    next.extend(n.subtree.iter().filter(|s| trees.insert(**s)));
                }
            }
        }
        level = next;
    }
    Ok(walked)
}

/// Per pack, the bytes and blobs a plan must keep in it.
#[derive(Default)]
pub struct Homes {
    /// Per pack, the bytes kept and the offsets of the copies kept (a copy is its pack and
    /// offset: 8 bytes a copy where its id took 32; `kept_ids` names them for a repack).
    pub used_in: HashMap<BlobId, (u64, HashSet<u64>)>,
    /// Blobs kept only as a delta's base.
    pub bases: usize,
    /// Used blobs (or bases) with no copy at all: the plan must stop.
    pub missing: usize,
}

impl Homes {
    fn keep(&mut self, loc: &Location) {
        let e = self.used_in.entry(loc.pack).or_default();
        if e.1.insert(loc.offset) {
            e.0 += loc.length as u64;
        }
    }
}

/// The ids of the entries of `p` at the kept `offsets` (what a repack copies).
pub fn kept_ids(p: &IndexPack, offsets: &HashSet<u64>) -> HashSet<BlobId> {
    p.entries
        .iter()
        .filter(|e| offsets.contains(&u64::from(e.offset)))
        .map(|e| e.id)
        .collect()
}

/// Where each used blob is kept. `packs`: every pack the plan knows, with its entries.
#[cfg(test)]
pub fn homes(used: &BlobSet, views: &Views, packs: &[&IndexPack]) -> Homes {
    homes_beside(Homes::default(), used, views, packs)
}

/// `homes`, adding to what `h` keeps already (`homes_in_class`).
pub fn homes_beside(mut h: Homes, used: &BlobSet, views: &Views, packs: &[&IndexPack]) -> Homes {
    // Used blobs are looked up once each (`used` is a set); the bases they need, once
    // each, as they come. Queueing every used blob with a seen-set beside it cost ~80
    // bytes per used blob at the plan's peak (docs/benchmarks.md, "Prune's memory at a
    // million files").
    let mut bases_seen: HashSet<BlobId> = HashSet::new();
    let mut todo: Vec<BlobId> = Vec::new();
    let mut first = Some(used);
    loop {
        // Blobs with no safe copy, to be kept wherever they are (one scan of the packs).
        let mut everywhere: HashMap<BlobId, bool> = HashMap::new();
        for id in first.take().into_iter().flat_map(BlobSet::iter) {
            keep_safe(&mut h, views, id, false, &mut todo, &mut everywhere);
        }
        while let Some(id) = todo.pop() {
            if !bases_seen.insert(id) {
                continue;
            }
            if !used.contains(&id) {
                h.bases += 1;
            }
            keep_safe(&mut h, views, id, true, &mut todo, &mut everywhere);
        }
        if everywhere.is_empty() {
            break;
        }
        // A delta copy whose base has no whole copy anywhere is unreadable: not a home (a
        // leftover in a kept pack), and no reason to stop the prune either.
        let whole_anywhere: HashSet<BlobId> = packs
            .iter()
            .flat_map(|p| p.entries.iter().filter(|e| e.base.is_none()).map(|e| e.id))
            .collect();
        let mut found: HashSet<BlobId> = HashSet::new();
        for p in packs {
            for e in &p.entries {
                let Some(only_whole) = everywhere.get(&e.id) else {
                    continue;
                };
                let unreadable = !bases_in(e, |x| whole_anywhere.contains(x));
                if (*only_whole && e.base.is_some()) || unreadable {
                    continue;
                }
                found.insert(e.id);
                h.keep(&location(p, e));
                todo.extend(e.base.iter().flat_map(|b| b.ids()));
            }
        }
        h.missing += everywhere.keys().filter(|b| !found.contains(b)).count();
    }
    h
}

/// Keeps the copy of `id` readers take among the safe ones (a whole one for a base) and
/// queues its bases; notes `id` in `everywhere` if it has none (`true` while it was only
/// ever wanted as a base, which only a whole copy serves).
fn keep_safe(
    h: &mut Homes,
    views: &Views,
    id: BlobId,
    as_base: bool,
    todo: &mut Vec<BlobId>,
    everywhere: &mut HashMap<BlobId, bool>,
) {
    let loc = match as_base {
        true => views.safe().get_whole(&id),
        false => views.safe().get(&id),
    };
    match loc {
        Some(l) => {
            h.keep(&l);
            todo.extend(l.base.iter().flat_map(|b| b.ids()));
        }
        None => {
            let only_whole = everywhere.get(&id).copied().unwrap_or(true) && as_base;
            everywhere.insert(id, only_whole);
        }
    }
}

fn location(p: &IndexPack, e: &crate::repo::pack::PackEntry) -> Location {
    Location {
        pack: p.id,
        kind: e.kind,
        offset: e.offset as u64,
        length: e.length,
        raw_len: e.raw_len,
        tier: crate::repo::index::tier(p.class.as_deref()),
        base: e.bases(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::compress::Bases;
    use crate::repo::pack::{BlobKind, PackEntry};

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    /// Pack `n` of `class` holding (blob, base) entries.
    fn pack(n: u8, class: Option<&str>, blobs: &[(u8, Option<u8>)]) -> IndexPack {
        IndexPack {
            id: id(n),
            size: 1000,
            class: class.map(str::to_string),
            entries: blobs
                .iter()
                .enumerate()
                .map(|(i, (b, base))| PackEntry {
                    id: id(*b),
                    kind: BlobKind::Data,
                    offset: i as u32 * 100,
                    length: 100,
                    raw_len: 300,
                    base: base.map(|x| Box::new(Bases::one(id(x)))),
                })
                .collect(),
        }
    }

    const G: Option<&str> = Some("GLACIER");

    /// Blob ids: 10 = d, 11 = B (a base), 12 = A. Pack ids 1..=9.
    #[test]
    fn every_used_blob_keeps_a_readable_copy_and_its_bases_a_whole_one() {
        struct Case {
            what: &'static str,
            packs: Vec<IndexPack>,
            doomed: &'static [u8],
            used: &'static [u8],
            kept: &'static [u8],
            missing: usize,
        }
        let cases = [
            Case {
                what: "issue 20 point 6: a GLACIER delta's base later stored as a STANDARD delta; \
                       the base is read (and kept) from its whole GLACIER copy",
                packs: vec![
                    pack(1, G, &[(11, None)]),
                    pack(2, None, &[(11, Some(12))]),
                    pack(3, None, &[(12, None)]),
                    pack(4, G, &[(10, Some(11))]),
                ],
                doomed: &[],
                used: &[10],
                kept: &[1, 4],
                missing: 0,
            },
            Case {
                what: "a whole copy in a doomed pack gives way to a free one",
                packs: vec![pack(1, None, &[(10, None)]), pack(2, None, &[(10, None)])],
                doomed: &[1],
                used: &[10],
                kept: &[2],
                missing: 0,
            },
            Case {
                what: "a delta whose base is whole in a free pack and in a doomed one",
                packs: vec![
                    pack(1, None, &[(10, Some(11))]),
                    pack(2, None, &[(11, None)]),
                    pack(3, None, &[(11, None)]),
                ],
                doomed: &[2],
                used: &[10],
                kept: &[1, 3],
                missing: 0,
            },
            Case {
                what: "review: d whole in doomed Z, as a delta in free Y on B, B only in doomed \
                       X: no safe copy, so every copy stays",
                packs: vec![
                    pack(1, None, &[(10, None)]),
                    pack(2, None, &[(10, Some(11))]),
                    pack(3, None, &[(11, None)]),
                ],
                doomed: &[1, 3],
                used: &[10],
                kept: &[1, 2, 3],
                missing: 0,
            },
            Case {
                what: "a delta whose base has no whole copy at all",
                packs: vec![
                    pack(1, None, &[(10, Some(11))]),
                    pack(2, None, &[(11, Some(12))]),
                ],
                doomed: &[],
                used: &[10],
                kept: &[],
                missing: 1,
            },
            Case {
                what: "review: no safe copy, and a leftover delta copy whose base is gone \
                       is neither kept nor counted missing",
                packs: vec![
                    pack(1, None, &[(10, None)]),
                    pack(2, None, &[(10, Some(12))]),
                ],
                doomed: &[1],
                used: &[10],
                kept: &[1],
                missing: 0,
            },
            Case {
                what: "a used blob in no pack",
                packs: vec![pack(1, None, &[(10, None)])],
                doomed: &[],
                used: &[10, 12],
                kept: &[1],
                missing: 1,
            },
        ];
        for c in cases {
            let doomed: HashSet<BlobId> = c.doomed.iter().map(|n| id(*n)).collect();
            let refs: Vec<&IndexPack> = c.packs.iter().collect();
            // With `safe` shared with `all` where they hold the same, and built apart.
            for share in [true, false] {
                let v = views_with(&c.packs, &[], &doomed, share);
                let mut used = BlobSet::new(&v.all);
                used.extend(c.used.iter().map(|n| id(*n)));
                let h = homes(&used, &v, &refs);
                let mut kept: Vec<BlobId> = h.used_in.keys().copied().collect();
                kept.sort();
                let want: Vec<BlobId> = c.kept.iter().map(|n| id(*n)).collect();
                assert_eq!(kept, want, "{} (share {share})", c.what);
                assert_eq!(h.missing, c.missing, "{} (share {share})", c.what);
            }
        }
    }

    #[test]
    fn a_self_contained_snapshot_keeps_its_chunks_in_its_own_class() {
        // 1 STANDARD: 10, 11. 2 GLACIER: 10. 3 GLACIER: 12 as a delta on 10.
        // 4 GLACIER, doomed by a paused prune: 11. 5 DEEP_ARCHIVE: 13. 6 GLACIER: 14 as a
        // delta on 15, whose only whole copy is STANDARD (pack 7).
        let packs = [
            pack(1, None, &[(10, None), (11, None)]),
            pack(2, Some("GLACIER"), &[(10, None)]),
            pack(3, Some("GLACIER"), &[(12, Some(10))]),
            pack(4, Some("GLACIER"), &[(11, None)]),
            pack(5, Some("DEEP_ARCHIVE"), &[(13, None)]),
            pack(6, Some("GLACIER"), &[(14, Some(15))]),
            pack(7, None, &[(15, None)]),
        ];
        let refs: Vec<&IndexPack> = packs.iter().collect();
        let doomed: HashSet<BlobId> = [id(4)].into_iter().collect();
        // (pinned chunks, packs kept, chunks left outside the class)
        let cases: [(&[u8], &[u8], &[u8]); 6] = [
            (&[10], &[2], &[]),
            (&[12], &[2, 3], &[]),
            (&[10, 12], &[2, 3], &[]),
            (&[11], &[], &[11]),
            (&[13], &[], &[13]),
            (&[14], &[], &[14]),
        ];
        for (pinned, kept, outside) in cases {
            let mut h = Homes::default();
            let pinned: HashSet<BlobId> = pinned.iter().map(|n| id(*n)).collect();
            let out = homes_in_class(&mut h, "GLACIER", pinned.iter().copied(), &refs, &doomed);
            let mut got: Vec<BlobId> = h.used_in.keys().copied().collect();
            got.sort();
            let want: Vec<BlobId> = kept.iter().map(|n| id(*n)).collect();
            assert_eq!(got, want, "{pinned:?}");
            let want: HashSet<BlobId> = outside.iter().map(|n| id(*n)).collect();
            assert_eq!(out, want, "{pinned:?}");
        }
    }
}
