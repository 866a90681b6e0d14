//! Finding a delta base for a changed chunk: the stored whole chunk most like it, among
//! the chunks of the previous version of the same file (docs/format.md "Deltas").
//!
//! Why resemblance and not position: an UPDATE in PostgreSQL writes the new row elsewhere,
//! so a dump's rows shift and a chunk's old content is not at its old offset. Each chunk
//! gets *features*: the values of a rolling gear hash (a hash of the last 32 bytes) at
//! content-defined points, about one per 512 bytes. Two chunks sharing most rows share most
//! features; the candidate with the most votes wins. Only a window of the previous version
//! around the expected position is held in memory (features, and each candidate as stored:
//! compressed and sealed), so memory is bounded whatever the file's size, and candidates
//! are read ahead in batches. Candidates are decoded for their features lazily: first the
//! few around the expected position, and the whole window only when none of those is
//! similar enough (`base_for`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::crypto::BlobId;
use crate::error::Result;
use crate::model::ChunkRef;
use crate::repo::batches::Waste;
use crate::repo::compress::Bases;
use crate::repo::index::Location;
use crate::repo::pack::pack_key;
use crate::repo::Repository;

/// A content-defined point: the top 9 bits of the gear hash are zero (1 in 512 bytes). The
/// top bits depend on all 32 bytes of the window, the low ones only on the last few.
const POINT_SHIFT: u32 = 64 - 9;
/// Candidates are read this far ahead of the expected position in the previous version.
const AHEAD: u64 = 16 << 20;
/// When new chunks resume after a deduplicated stretch, candidates are read from this far
/// behind the expected position.
const BEHIND: u64 = 4 << 20;
/// Candidates' stored bytes are dropped this far behind; features are kept further back.
const KEEP_STORED: u64 = 32 << 20;
const KEEP_FEATURES: u64 = 256 << 20;
/// Bytes of candidates fetched per batch (concurrently, one ranged read per span of a pack).
const BATCH: u64 = 8 << 20;
/// Candidates of one pack this close are read with one request (`fetch_places`): the bytes
/// between them are read for nothing, at most this much per request saved.
const MERGE_GAP: u64 = 256 << 10;
/// A base must share at least this fraction of the chunk's features (1/n)...
const MIN_SHARE: usize = 4;
/// ...and a second base this fraction.
const MIN_SHARE_SECOND: usize = 8;
/// Files smaller than this are not worth reading their previous version for.
pub const MIN_FILE: u64 = 256 << 10;
/// Candidates this close to where a changed chunk is expected in the previous version are
/// tried first (`Similar::near`)...
const NEAR: u64 = 64 << 10;
/// ...and taken if they share at least this fraction (1/n) of the chunk's features (with
/// a second base: a chunk that straddles two old ones); otherwise the whole window is
/// decoded and votes.
const NEAR_SHARE: usize = 3;

/// A fixed gear table: features only need to be the same for the old and the new chunk.
fn gear() -> &'static [u64; 256] {
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for v in t.iter_mut() {
            // splitmix64
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *v = z ^ (z >> 31);
        }
        t
    })
}

/// The features of a chunk, deduplicated.
pub fn features(data: &[u8]) -> Vec<u64> {
    let g = gear();
    let mut h: u64 = 0;
    let mut out = Vec::with_capacity(data.len() / 400);
    for &b in data {
        // Shifting by 2 makes h depend on the last 32 bytes only.
        h = (h << 2).wrapping_add(g[b as usize]);
        if h >> POINT_SHIFT == 0 {
            out.push(h);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Where a changed chunk's old version is expected in the previous version: its offset in
/// the new one plus `value`. Set by each base found, and by chunks found stored: a dump with
/// rows inserted before a change would otherwise have that change looked for the rows'
/// size away from its old chunks (and the window decoded there).
struct Drift {
    /// The previous version's chunks that occur once in it (by the first 8 bytes of their
    /// id), sorted, with their offsets: 16 bytes a chunk.
    once: Vec<(u64, u64)>,
    value: i64,
    /// What the last chunk found stored said, when it differed from `value`: a chunk that
    /// moved alone (a tar member, a dump section) must not move where the next changes are
    /// looked for, so a new drift takes two stored chunks in agreement.
    pending: Option<i64>,
}

impl Drift {
    fn new(prev: &[ChunkRef]) -> Drift {
        let key = |c: &ChunkRef| (prefix(&c.id), c.offset);
        let mut all: Vec<(u64, u64)> = prev.iter().map(key).collect();
        all.sort_unstable();
        let once = all
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|same| same.len() == 1)
            .map(|same| same[0])
            .collect();
        Drift {
            once,
            value: 0,
            pending: None,
        }
    }

    /// The chunk at `offset` in the new version is stored already as `id`.
    fn stored(&mut self, id: &BlobId, offset: u64) {
        let Ok(k) = self.once.binary_search_by_key(&prefix(id), |e| e.0) else {
            return;
        };
        let d = self.once[k].1 as i64 - offset as i64;
        if d == self.value {
            self.pending = None;
        } else if self.pending == Some(d) {
            self.value = d;
            self.pending = None;
        } else {
            self.pending = Some(d);
        }
    }

    /// A base was found `d` away.
    fn matched(&mut self, d: i64) {
        self.value = d;
        self.pending = None;
    }
}

fn prefix(id: &BlobId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_le_bytes(b)
}

/// The outcome of a vote among candidates.
struct Vote {
    best: usize,
    /// A second base, when it covers much of the rest (a chunk that straddles two old ones).
    second: Option<usize>,
    /// The best one's votes: features it shares with the chunk.
    votes: usize,
    second_votes: usize,
}

impl Vote {
    /// Features of the chunk its bases share.
    fn covered(&self) -> usize {
        self.votes + self.second_votes
    }
}

struct Candidate {
    id: BlobId,
    /// Offset of the chunk it stands for in the previous version.
    offset: u64,
    len: u64,
}

/// Delta bases for one file, from its previous version.
pub struct Similar {
    cands: Vec<Candidate>,
    /// Candidates `..loaded` have been read (or skipped).
    loaded: usize,
    /// Candidates as stored (compressed and sealed), decoded when their features are needed
    /// and again when picked as a base: kept decoded, the window of a dump's previous
    /// version was 61 MB of the 85 MB heap at an incremental ingest's peak, and its RSS
    /// 105 MiB against 100 MB (docs/benchmarks.md, "The incremental ingest's memory").
    /// Few candidates are picked.
    stored: HashMap<usize, Vec<u8>>,
    features: HashMap<u64, u32>,
    /// Candidates whose features are in `features`.
    featured: Vec<bool>,
    /// Where in the previous version a changed chunk is expected.
    drift: Drift,
    /// Candidates decoded for their features, and chunks given bases: logged when dropped.
    decoded: usize,
    based: usize,
    /// Candidates whose stored bytes and features were dropped: `..stored_from`, `..feat_from`.
    stored_from: usize,
    feat_from: usize,
    /// Packs present in the store when the ingest started, and the data tier (as dedup).
    max_tier: u8,
}

impl Similar {
    /// Candidates for a new version of a file whose previous version is `prev`: each chunk's
    /// whole base (a chunk stored as a delta stands for its base; chains stay one step long).
    pub fn new(cat: &Catalog, prev: &[ChunkRef], max_tier: u8) -> Result<Similar> {
        let mut seen = HashSet::new();
        let mut cands = Vec::new();
        for c in prev {
            let ids: Vec<BlobId> = match cat.blob_location(&c.id)? {
                Some(Location { base: Some(b), .. }) => b.ids().collect(),
                Some(_) => vec![c.id],
                None => continue,
            };
            for id in ids {
                if seen.insert(id) {
                    cands.push(Candidate {
                        id,
                        offset: c.offset,
                        len: c.len as u64,
                    });
                }
            }
        }
        Ok(Similar {
            featured: vec![false; cands.len()],
            cands,
            loaded: 0,
            stored: HashMap::new(),
            features: HashMap::new(),
            drift: Drift::new(prev),
            decoded: 0,
            based: 0,
            stored_from: 0,
            feat_from: 0,
            max_tier,
        })
    }

    /// The chunk at `offset` in the new version is stored already as `id` (`Drift::stored`).
    pub fn same(&mut self, id: &BlobId, offset: u64) {
        self.drift.stored(id, offset);
    }

    /// The stored whole chunks most like `data` (at `offset` in the new version) with their
    /// bytes, concatenated: the best one, and a second when it covers much of the rest (a
    /// chunk that straddles two old ones); None when nothing is similar enough. Read errors
    /// only cost the delta.
    pub fn base_for(
        &mut self,
        repo: &Repository,
        cat: &Catalog,
        packs: &HashSet<BlobId>,
        data: &[u8],
        offset: u64,
    ) -> Option<(Bases, Arc<Vec<u8>>)> {
        let expected = (offset as i64 + self.drift.value).max(0) as u64;
        // Regions of the file that deduplicated need no bases: skip their candidates rather
        // than read them (a log with 1 MB appended to 1 GB reads ~1 MB of bases, not 1 GB).
        let skip_to = self
            .cands
            .partition_point(|c| c.offset + c.len + BEHIND < expected);
        self.loaded = self.loaded.max(skip_to);
        self.load_until(repo, cat, packs, expected + AHEAD);
        self.forget_before(expected);
        let feats = features(data);
        if feats.is_empty() {
            return None;
        }
        // A chunk changed in place (the common case: rows updated where they were) is most
        // like the chunks that were where it is. Decoding those first, bench/run.sh's
        // incremental ingest (its dump changed in 50 places, 1% of rows appended) spends
        // 130-175 ms on candidates instead of 256-278 ms, with the same deltas: it decoded
        // the whole previous version (119 MB) for its features.
        let mut plain = self.near(repo, expected, data.len() as u64);
        let vote = match self.vote(&feats, expected) {
            Some(v)
                if v.covered() * NEAR_SHARE >= feats.len()
                    && v.votes * MIN_SHARE >= feats.len() =>
            {
                v
            }
            _ => {
                tracing::debug!("delta: nothing similar near {expected}; its window decoded");
                self.feature_window(repo);
                self.vote(&feats, expected)?
            }
        };
        if vote.votes * MIN_SHARE < feats.len() {
            return None;
        }
        self.drift
            .matched(self.cands[vote.best].offset as i64 - offset as i64);
        // In the previous version's order, so the prefix reads as that text did.
        let mut order: Vec<usize> = std::iter::once(vote.best).chain(vote.second).collect();
        order.sort_by_key(|c| self.cands[*c].offset);
        let mut prefix = Vec::new();
        for c in &order {
            let id = &self.cands[*c].id;
            let whole = match (plain.remove(c), self.stored.get(c)) {
                (Some(p), _) => Ok(p),
                (None, Some(enc)) => repo.decode_blob(id, enc),
                (None, None) => read_whole(repo, cat, id),
            };
            prefix.extend(whole.ok()?);
        }
        self.based += 1;
        let bases = Bases {
            first: self.cands[order[0]].id,
            second: order.get(1).map(|c| self.cands[*c].id),
        };
        Some((bases, Arc::new(prefix)))
    }

    /// The candidates with the most votes for `feats`.
    fn vote(&self, feats: &[u64], expected: u64) -> Option<Vote> {
        let mut votes: HashMap<u32, usize> = HashMap::new();
        for f in feats {
            if let Some(&c) = self.features.get(f) {
                if c as usize >= self.feat_from {
                    *votes.entry(c).or_default() += 1;
                }
            }
        }
        // Most votes; of equals, the one nearest where we expect it.
        let rank = |&(c, n): &(u32, usize)| {
            let dist = self.cands[c as usize].offset.abs_diff(expected);
            (n, std::cmp::Reverse(dist))
        };
        let mut ranked: Vec<(u32, usize)> = votes.into_iter().collect();
        ranked.sort_by_key(|v| std::cmp::Reverse(rank(v)));
        let (best, n) = *ranked.first()?;
        let second = ranked
            .get(1)
            .filter(|(_, n2)| n2 * MIN_SHARE_SECOND >= feats.len())
            .map(|&(c, n2)| (c as usize, n2));
        Some(Vote {
            best: best as usize,
            second: second.map(|s| s.0),
            votes: n,
            second_votes: second.map_or(0, |s| s.1),
        })
    }

    /// Takes the features of the stored candidates within `NEAR` of a chunk of `len` bytes
    /// expected at `expected`; returns them decoded (one of them is likely the base).
    fn near(&mut self, repo: &Repository, expected: u64, len: u64) -> HashMap<usize, Vec<u8>> {
        let (lo, hi) = (expected.saturating_sub(NEAR), expected + len + NEAR);
        let first = self.cands.partition_point(|c| c.offset + c.len <= lo);
        let mut plain = HashMap::new();
        for i in first.max(self.stored_from)..self.loaded {
            if self.cands[i].offset >= hi {
                break;
            }
            if self.featured[i] {
                continue;
            }
            let Some(enc) = self.stored.get(&i) else {
                continue;
            };
            self.decoded += 1;
            match repo.decode_blob(&self.cands[i].id, enc) {
                Ok(p) => {
                    self.add_features(i, features(&p));
                    plain.insert(i, p);
                }
                // Not a base, nor tried again.
                Err(_) => self.drop_candidate(i),
            }
        }
        plain
    }

    /// Takes the features of every stored candidate (`KEEP_STORED` behind `expected` to
    /// `AHEAD` past it), on two threads: each is decoded once, so a file costs at most one
    /// decoding of its previous version, as when every candidate was decoded on loading.
    fn feature_window(&mut self, repo: &Repository) {
        let todo: Vec<(usize, &[u8])> = (self.stored_from..self.loaded)
            .filter(|i| !self.featured[*i])
            .filter_map(|i| Some((i, self.stored.get(&i)?.as_slice())))
            .collect();
        self.decoded += todo.len();
        let tried: Vec<usize> = todo.iter().map(|t| t.0).collect();
        for (i, feats) in decode_batch(repo, &self.cands, todo) {
            self.add_features(i, feats);
        }
        for i in tried {
            if !self.featured[i] {
                self.drop_candidate(i);
            }
        }
    }

    /// Of candidates sharing a feature, the later one gets its votes (as when candidates
    /// were decoded in their order).
    fn add_features(&mut self, i: usize, feats: Vec<u64>) {
        for f in feats {
            self.features
                .entry(f)
                .and_modify(|c| *c = (*c).max(i as u32))
                .or_insert(i as u32);
        }
        self.featured[i] = true;
    }

    /// A candidate that failed to decode: no base.
    fn drop_candidate(&mut self, i: usize) {
        self.stored.remove(&i);
        self.featured[i] = true;
    }

    /// Reads candidates up to previous-version offset `until`, in batches.
    fn load_until(
        &mut self,
        repo: &Repository,
        cat: &Catalog,
        packs: &HashSet<BlobId>,
        until: u64,
    ) {
        while self.loaded < self.cands.len() && self.cands[self.loaded].offset < until {
            let mut places = Vec::new();
            let mut which = Vec::new();
            let mut bytes = 0;
            while self.loaded < self.cands.len() && bytes < BATCH {
                let i = self.loaded;
                self.loaded += 1;
                let Some(loc) = usable(cat, packs, &self.cands[i].id, self.max_tier) else {
                    continue;
                };
                bytes += self.cands[i].len;
                places.push((loc.pack, loc.offset..loc.offset + loc.length as u64));
                which.push(i);
            }
            for (i, raw) in which.into_iter().zip(fetch_places(repo, &places)) {
                if let Some(raw) = raw {
                    self.stored.insert(i, raw);
                }
            }
        }
    }

    /// Drops stored bytes and features of candidates far behind `expected`.
    fn forget_before(&mut self, expected: u64) {
        let behind = |limit: u64, from: usize, cands: &[Candidate]| {
            let mut i = from;
            while i < cands.len() && cands[i].offset + limit < expected {
                i += 1;
            }
            i
        };
        let stored_from = behind(KEEP_STORED, self.stored_from, &self.cands);
        for i in self.stored_from..stored_from {
            self.stored.remove(&i);
        }
        self.stored_from = stored_from;
        let feat_from = behind(KEEP_FEATURES, self.feat_from, &self.cands);
        // Stale entries are ignored by `feat_from`; sweep them now and then.
        if feat_from > self.feat_from && self.features.len() > 1 << 20 {
            self.features.retain(|_, c| *c as usize >= feat_from);
        }
        self.feat_from = feat_from;
    }
}

impl Drop for Similar {
    fn drop(&mut self) {
        tracing::debug!(
            "delta bases: {} candidates, {} decoded for their features, {} chunks based",
            self.cands.len(),
            self.decoded,
            self.based
        );
    }
}

/// The stored bytes at `places`, in order (None where the read failed or came back short:
/// that only costs the delta), one request per span of a pack (`repo::batches::spans`). A
/// changed dump's candidates are the previous version's chunks, mostly one after the other
/// in their packs: one ranged GET each made an incremental ingest of a changed 119 MB dump
/// over Garage take 4.6-5.1 s (restic: 1.5-1.8 s), 1,522 requests for 33 MB; by span,
/// 84-111 requests and 1.1-1.2 s.
fn fetch_places(
    repo: &Repository,
    places: &[(BlobId, std::ops::Range<u64>)],
) -> Vec<Option<Vec<u8>>> {
    // At most twice the candidates' bytes read, however sparse they lie in their packs.
    let spans = crate::repo::batches::spans(places, MERGE_GAP, Waste::AtMostUsed);
    let reqs: Vec<_> = spans
        .iter()
        .map(|(p, r, _)| (pack_key(p), Some(r.clone())))
        .collect();
    let mut out = vec![None; places.len()];
    for ((_, span, members), got) in spans.iter().zip(repo.get_ranges(&reqs)) {
        let Ok(bytes) = got else { continue };
        for &i in members {
            let r = &places[i].1;
            let from = (r.start - span.start) as usize;
            let to = (r.end - span.start) as usize;
            out[i] = bytes.get(from..to).map(<[u8]>::to_vec);
        }
    }
    out
}

/// The features of candidates as stored, decoded on two threads. Two threads because the
/// walker waits for this, and when a changed dump's chunks are not like those where they
/// were, the whole window of its previous version is decoded (16 MiB ahead), while the
/// packer's threads have little to do. A candidate that fails to decode only costs the delta.
fn decode_batch(
    repo: &Repository,
    cands: &[Candidate],
    todo: Vec<(usize, &[u8])>,
) -> Vec<(usize, Vec<u64>)> {
    let decode = |part: Vec<(usize, &[u8])>| -> Vec<(usize, Vec<u64>)> {
        part.into_iter()
            .filter_map(|(i, enc)| Some((i, features(&repo.decode_blob(&cands[i].id, enc).ok()?))))
            .collect()
    };
    if todo.len() < 2 {
        return decode(todo);
    }
    let mut first = todo;
    let second = first.split_off(first.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| decode(second));
        let mut out = decode(first);
        // In index order, as decoded on one thread: a later candidate's feature wins.
        match other.join() {
            Ok(more) => out.extend(more),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        out
    })
}

/// Where to read a candidate, if it may be a base: it has a whole copy in a pack that is in
/// the store and that this snapshot may depend on (`packs`, no colder than its data: the
/// rules dedup follows, docs/format.md); read from the nearest whole copy, which for a
/// self-contained snapshot may be a hotter one holding the same bytes.
fn usable(cat: &Catalog, packs: &HashSet<BlobId>, id: &BlobId, max_tier: u8) -> Option<Location> {
    let allowed = cat
        .blob_packs(id, max_tier)
        .ok()?
        .iter()
        .any(|(p, base)| base.is_none() && packs.contains(p));
    let loc = cat.base_location(id).ok()??;
    allowed.then_some(loc)
}

/// A candidate whose stored bytes were dropped, read again from its whole copy (the one
/// `usable` chose: the nearest copy may be a delta, which cannot serve as a base).
fn read_whole(repo: &Repository, cat: &Catalog, id: &BlobId) -> Result<Vec<u8>> {
    let loc = cat
        .base_location(id)?
        .ok_or_else(|| crate::error::Error::corrupt(format!("blob {}", id.hex()), "in no index"))?;
    repo.read_blob(id, &loc)
}

#[cfg(test)]
mod tests {
    use super::{features, Drift};
    use crate::crypto::BlobId;
    use crate::model::ChunkRef;

    fn rows(from: u32, to: u32) -> Vec<u8> {
        (from..to)
            .flat_map(|i| format!("{i}\tname-{}\t{}\n", i * 31 % 1000, i * 7).into_bytes())
            .collect()
    }

    fn shared(a: &[u64], b: &[u64]) -> usize {
        a.iter().filter(|f| b.binary_search(f).is_ok()).count()
    }

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    #[test]
    fn drift_follows_stored_chunks_that_agree() {
        // The previous version: chunks 1..=6 of 100 bytes; chunk 9 twice.
        let prev: Vec<ChunkRef> = [1, 2, 3, 9, 4, 5, 9, 6]
            .iter()
            .enumerate()
            .map(|(i, &n)| ChunkRef {
                offset: i as u64 * 100,
                len: 100,
                id: id(n),
            })
            .collect();
        // (stored chunks as (id, new offset), drift after them)
        let cases: &[(&[(u8, u64)], i64)] = &[
            // Unchanged places: no drift.
            (&[(1, 0), (2, 100)], 0),
            // 1,000 bytes inserted before chunk 4: two chunks agree.
            (&[(4, 1_400), (5, 1_500)], -1_000),
            // One chunk moved alone: not followed.
            (&[(6, 100)], 0),
            (&[(1, 0), (6, 100), (2, 100)], 0),
            // A repeated chunk says nothing.
            (&[(9, 5_000), (9, 5_100)], 0),
            // Unknown ids say nothing.
            (&[(42, 7), (43, 8)], 0),
            // Agreement is of two in a row.
            (&[(4, 900), (6, 900), (5, 1_000)], 0),
            (&[(6, 900), (4, 900), (5, 1_000)], -500),
        ];
        for (stored, want) in cases {
            let mut d = Drift::new(&prev);
            for &(n, at) in *stored {
                d.stored(&id(n), at);
            }
            assert_eq!(d.value, *want, "{stored:?}");
        }
        // A base found sets it at once, and forgets a pending one.
        let mut d = Drift::new(&prev);
        d.stored(&id(4), 1_400);
        d.matched(-7);
        d.stored(&id(5), 1_500);
        assert_eq!(d.value, -7);
    }

    #[test]
    fn similar_chunks_share_most_features_and_others_few() {
        let base = rows(0, 3000);
        let fb = features(&base);
        assert!(fb.len() > 40, "{} features", fb.len());
        // A few rows changed and some moved: most features survive.
        let mut edited = base.clone();
        edited[10_000..10_006].copy_from_slice(b"XXXXXX");
        edited.drain(30_000..30_400);
        edited.extend_from_slice(&rows(5000, 5010));
        let fe = features(&edited);
        assert!(
            shared(&fe, &fb) * 10 > fe.len() * 8,
            "{} of {}",
            shared(&fe, &fb),
            fe.len()
        );
        // Different rows share (almost) nothing.
        let other = features(&rows(100_000, 103_000));
        assert!(
            shared(&other, &fb) * 20 < other.len(),
            "{}",
            shared(&other, &fb)
        );
        assert!(features(&[0u8; 70_000]).len() <= 1);
    }
}
