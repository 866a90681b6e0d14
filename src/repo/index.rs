//! Index objects: which pack holds each blob. Written after the packs they describe are
//! durable and before any manifest that needs them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::pack::{BlobKind, PackEntry, PackEntryV2};
use crate::crypto::{BlobId, Keys};
use crate::error::{Error, Result};

mod idset;
mod positions;
pub use idset::IdSet;
use positions::Positions;

/// Format 3 index objects (entries with `base`); format 2 ones carry the v1 AAD.
const INDEX_AAD: &[u8] = b"cofre-index-v2";
const INDEX_AAD_V1: &[u8] = b"cofre-index-v1";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: BlobId,
    pub size: u64,
    /// The S3 storage class the pack was written in (None: the bucket's default).
    pub class: Option<String>,
    pub entries: Vec<PackEntry>,
}

#[derive(Serialize, Deserialize)]
struct IndexFileV2 {
    packs: Vec<IndexPackV2>,
}

#[derive(Serialize, Deserialize)]
struct IndexPackV2 {
    id: BlobId,
    size: u64,
    class: Option<String>,
    entries: Vec<PackEntryV2>,
}

impl IndexFile {
    /// Sealed in the repository's format (`legacy`: format 2, which cannot hold deltas).
    pub fn seal(&self, keys: &Keys, legacy: bool) -> Result<Vec<u8>> {
        if !legacy {
            return seal_serialized(keys, self, INDEX_AAD);
        }
        let mut packs = Vec::with_capacity(self.packs.len());
        for p in &self.packs {
            let entries = p.entries.iter().map(|e| e.to_v2()).collect::<Option<_>>();
            packs.push(IndexPackV2 {
                id: p.id,
                size: p.size,
                class: p.class.clone(),
                entries: entries
                    .ok_or_else(|| Error::corrupt("index", "a delta in a format 2 index"))?,
            });
        }
        seal_serialized(keys, &IndexFileV2 { packs }, INDEX_AAD_V1)
    }

    /// Opens a sealed index object of either format (told apart by the AAD).
    pub fn open(keys: &Keys, sealed: &[u8], key: &str) -> Result<IndexFile> {
        let bad = |e: postcard::Error| Error::corrupt(key, e.to_string());
        if let Ok(plain) = keys.open(sealed, INDEX_AAD, key) {
            return postcard::from_bytes(&plain).map_err(bad);
        }
        let plain = keys.open(sealed, INDEX_AAD_V1, key)?;
        let v2: IndexFileV2 = postcard::from_bytes(&plain).map_err(bad)?;
        Ok(IndexFile {
            packs: v2
                .packs
                .into_iter()
                .map(|p| IndexPack {
                    id: p.id,
                    size: p.size,
                    class: p.class,
                    entries: p.entries.into_iter().map(PackEntry::from).collect(),
                })
                .collect(),
        })
    }
}

/// `value` serialized and sealed in one buffer of its final size. An initial ingest of a
/// million files writes a 41 MB index object: serialized into a growing vector and
/// sealed into two more, it took 150 MB at the ingest's peak (docs/benchmarks.md, "The
/// initial ingest's memory at a million files"). Measuring first costs a second pass of
/// the serializer, which writes nothing (not timed apart; the ingest's time did not move).
fn seal_serialized(keys: &Keys, value: &impl Serialize, aad: &[u8]) -> Result<Vec<u8>> {
    let bad = |e: postcard::Error| Error::corrupt("index", e.to_string());
    let size = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_err(bad)?;
    let mut buf = Vec::with_capacity(crate::crypto::SEAL_OVERHEAD + size);
    buf.resize(crate::crypto::SEAL_ROOM, 0);
    let buf = postcard::to_extend(value, buf).map_err(bad)?;
    Ok(keys.seal_in_place(buf, aad))
}

/// How far a storage class is from being readable: 0 at once (STANDARD, *_IA,
/// INTELLIGENT_TIERING, GLACIER_IR), 1 after a restore from the archive tier (GLACIER,
/// minutes to hours), 2 the slowest (DEEP_ARCHIVE, hours). Dedup never makes a snapshot
/// depend on a blob whose only copies are further away than its own class.
pub fn tier(class: Option<&str>) -> u8 {
    match class {
        Some("GLACIER") => 1,
        Some("DEEP_ARCHIVE") => 2,
        _ => 0,
    }
}

/// The class name a pack or snapshot without one is in: the bucket's default.
pub const DEFAULT_CLASS: &str = "STANDARD";

/// Which copies of a data blob a snapshot may depend on (docs/format.md "Dedup and storage
/// classes"). Trees are always in the default class, whatever the snapshot's reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Any copy no further from readable than this tier: a snapshot that shares data with
    /// hotter classes (its class's packs hold only what no hotter pack had).
    Tier(u8),
    /// Only copies in packs of this class: a self-contained snapshot, which deduplicates
    /// within its class's own generations so that it outlives every hotter pack (a weekly
    /// full in DEEP_ARCHIVE that no longer keeps 4-hourly STANDARD packs alive).
    Class(String),
}

impl Reach {
    /// `self_contained` takes effect only for a class other than the default: a
    /// self-contained STANDARD snapshot is an ordinary one.
    pub fn new(class: Option<&str>, self_contained: bool) -> Reach {
        let class = class.unwrap_or(DEFAULT_CLASS);
        match self_contained && class != DEFAULT_CLASS {
            true => Reach::Class(class.to_string()),
            false => Reach::Tier(tier(Some(class))),
        }
    }

    pub fn of(m: &crate::model::Manifest) -> Reach {
        Reach::new(m.data_class.as_deref(), m.self_contained)
    }

    /// Whether a copy in a pack of `class` may serve the snapshot.
    pub fn admits(&self, class: Option<&str>) -> bool {
        match self {
            Reach::Tier(t) => tier(class) <= *t,
            Reach::Class(c) => class.unwrap_or(DEFAULT_CLASS) == c,
        }
    }

    /// Whether every copy `other` admits, this admits too: a snapshot of reach `other`
    /// names only chunks a snapshot of this reach may take as they are.
    pub fn covers(&self, other: &Reach) -> bool {
        match (self, other) {
            (Reach::Tier(t), o) => o.tier() <= *t,
            (Reach::Class(c), Reach::Class(o)) => c == o,
            (Reach::Class(_), Reach::Tier(_)) => false,
        }
    }

    /// The tier of the copies it admits at most.
    pub fn tier(&self) -> u8 {
        match self {
            Reach::Tier(t) => *t,
            Reach::Class(c) => tier(Some(c)),
        }
    }
}

/// Whether snapshots in `class` are self-contained unless told otherwise: the archive
/// classes, whose point is to outlive the hot data (issue 25; docs/s3.md "Storage classes").
pub fn self_contained_by_default(class: Option<&str>) -> bool {
    tier(class) > 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub pack: BlobId,
    pub kind: BlobKind,
    pub offset: u64,
    pub length: u32,
    pub raw_len: u32,
    /// `tier` of the pack's storage class: readers prefer the copy nearest to readable.
    pub tier: u8,
    /// The blobs this copy is a delta against: they must be read first.
    pub base: Option<super::compress::Bases>,
}

#[cfg(test)]
impl Location {
    /// A whole data blob at `offset` in pack `[pack; 32]`, for tests.
    pub fn test(pack: u8, offset: u64, length: u32) -> Location {
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
}

/// One copy of a blob as the master index keeps it: 24 bytes, where its `Location` takes
/// 136 (the pack's 32-byte id and 65 bytes of optional bases in every entry). At a million
/// files prune holds two master indexes of every copy (docs/benchmarks.md, "A million
/// files"), so the pack is a number in `MasterIndex::packs` and the bases a number in
/// `MasterIndex::bases` (deltas are the exception).
#[derive(Clone, Copy)]
struct Slot {
    pack: u32,
    offset: u32,
    length: u32,
    raw_len: u32,
    /// Position in `MasterIndex::bases`, or `WHOLE`.
    base: u32,
    kind: BlobKind,
    tier: u8,
}

const WHOLE: u32 = u32::MAX;

/// All blob locations, in memory (restore, check and prune use it; the catalog holds the
/// same for the mount).
#[derive(Default)]
pub struct MasterIndex {
    /// Every pack seen; `Slot::pack` is a position here.
    packs: Vec<BlobId>,
    pack_no: HashMap<BlobId, u32>,
    bases: Vec<super::compress::Bases>,
    /// Every copy of every blob, in the order added.
    copies: Vec<(BlobId, Slot)>,
    /// The copy readers use, per blob (a position in `copies`).
    map: Positions,
    /// Positions in `copies` by pack, each pack's sorted by offset (for pack-order
    /// read-ahead), and each pack's range in it; both filled by `seal`.
    by_pack: Vec<u32>,
    pack_ranges: Vec<std::ops::Range<u32>>,
    /// Per position in `copies`, whether it is the copy readers use (`map`'s), for
    /// `pack_blobs`, which a restore calls at every miss: a flag, not a hash lookup per
    /// blob of the segment (filled by `seal`).
    readers: Vec<bool>,
    /// For a blob whose nearest copy is a delta: its nearest whole copy, where it is read
    /// as another delta's base (filled by `seal`).
    whole: HashMap<BlobId, u32>,
}

/// A position in one of the master index's tables. Four billion blob copies would need
/// 200 GiB of memory for the index first.
fn pos(len: usize) -> u32 {
    u32::try_from(len).expect("fewer than 4 billion blob copies")
}

impl MasterIndex {
    pub fn add(&mut self, file: &IndexFile) {
        self.add_packs(&file.packs, |_| true);
    }

    /// Adds the entries of `packs` that `keep` accepts. Of two copies of a blob the
    /// nearest wins; of two equally near, a whole one (no base to read), then the first
    /// added.
    pub fn add_packs<'a>(
        &mut self,
        packs: impl IntoIterator<Item = &'a IndexPack>,
        keep: impl Fn(&PackEntry) -> bool,
    ) {
        for p in packs {
            let tier = tier(p.class.as_deref());
            let next = pos(self.packs.len());
            let pack = *self.pack_no.entry(p.id).or_insert(next);
            if pack == next {
                self.packs.push(p.id);
            }
            for e in p.entries.iter().filter(|e| keep(e)) {
                let base = match e.bases() {
                    None => WHOLE,
                    Some(b) => {
                        self.bases.push(b);
                        pos(self.bases.len() - 1)
                    }
                };
                let at = pos(self.copies.len());
                let slot = Slot {
                    pack,
                    offset: e.offset,
                    length: e.length,
                    raw_len: e.raw_len,
                    base,
                    kind: e.kind,
                    tier,
                };
                self.copies.push((e.id, slot));
                match self.map.get(&self.copies, &e.id).map(|i| self.slot(i)) {
                    Some(old) if (old.tier, old.base != WHOLE) <= (tier, base != WHOLE) => {}
                    _ => self.map.set(&self.copies, at),
                }
            }
        }
    }

    fn slot(&self, i: u32) -> Slot {
        self.copies[i as usize].1
    }

    fn location(&self, i: u32) -> Location {
        let s = self.slot(i);
        Location {
            pack: self.packs[s.pack as usize],
            kind: s.kind,
            offset: u64::from(s.offset),
            length: s.length,
            raw_len: s.raw_len,
            tier: s.tier,
            base: (s.base != WHOLE).then(|| self.bases[s.base as usize]),
        }
    }

    /// Sorts the per-pack lists, finds whole copies for `get_whole`, and moves readers off
    /// delta copies whose base has no whole copy (`reader_copies_have_bases`); call after
    /// the last `add`.
    pub fn seal(&mut self) {
        self.copies.shrink_to_fit();
        self.bases.shrink_to_fit();
        let mut by_pack: Vec<u32> = (0..pos(self.copies.len())).collect();
        // Stable: equal offsets (one pack listed twice) stay in the order added.
        by_pack.sort_by_key(|&i| (self.slot(i).pack, self.slot(i).offset));
        let mut ranges = vec![0..0; self.packs.len()];
        let mut start = 0;
        for w in by_pack.chunk_by(|a, b| self.slot(*a).pack == self.slot(*b).pack) {
            let end = start + pos(w.len());
            ranges[self.slot(w[0]).pack as usize] = start..end;
            start = end;
        }
        self.by_pack = by_pack;
        self.pack_ranges = ranges;
        self.seal_wholes();
        self.reader_copies_have_bases();
        self.readers = vec![false; self.copies.len()];
        for i in self.map.iter() {
            self.readers[i as usize] = true;
        }
    }

    /// A delta copy whose base has no whole copy anywhere cannot be read: one left in a
    /// kept pack after prune dropped that base (prune keeps the bases of the copy it
    /// chose, not of every copy). And one whose base's nearest whole copy is colder than
    /// the delta is only as near as that base: after a prune kept a base only in a
    /// self-contained GLACIER snapshot's class, a STANDARD snapshot's reader must not take
    /// the delta on it over another copy that reads without a thaw. Readers take the copy
    /// nearest once its bases are counted, by the same order otherwise; the catalog's query
    /// applies the same rule.
    fn reader_copies_have_bases(&mut self) {
        // The tier a copy reads at, bases included; None if a base has no whole copy.
        let reads_at = |mi: &MasterIndex, s: Slot| -> Option<u8> {
            if s.base == WHOLE {
                return Some(s.tier);
            }
            let mut at = s.tier;
            for x in mi.bases[s.base as usize].ids() {
                at = at.max(mi.get_whole(&x)?.tier);
            }
            Some(at)
        };
        let bad: std::collections::HashSet<BlobId> = self
            .map
            .iter()
            .filter(|&i| reads_at(self, self.slot(i)) != Some(self.slot(i).tier))
            .map(|i| self.copies[i as usize].0)
            .collect();
        if bad.is_empty() {
            return;
        }
        let mut best: HashMap<BlobId, u32> = HashMap::new();
        for &i in &self.by_pack {
            let (id, s) = self.copies[i as usize];
            if !bad.contains(&id) {
                continue;
            }
            let Some(at) = reads_at(self, s) else {
                continue;
            };
            let key = |s: Slot, at: u8| (at, s.base != WHOLE, self.packs[s.pack as usize]);
            match best.get(&id) {
                Some(&old) => {
                    let o = self.slot(old);
                    let o_at = reads_at(self, o).unwrap_or(u8::MAX);
                    if key(o, o_at) > key(s, at) {
                        best.insert(id, i);
                    }
                }
                None => {
                    best.insert(id, i);
                }
            }
        }
        for i in best.into_values() {
            self.map.set(&self.copies, i);
        }
    }

    fn seal_wholes(&mut self) {
        self.whole.clear();
        let by_pack = std::mem::take(&mut self.by_pack);
        for &i in &by_pack {
            let (id, s) = self.copies[i as usize];
            if s.base != WHOLE
                || self
                    .map
                    .get(&self.copies, &id)
                    .is_none_or(|m| self.slot(m).base == WHOLE)
            {
                continue;
            }
            // Nearest first; of two equally near, the lower pack id (the same on every
            // run).
            let key = |s: Slot| (s.tier, self.packs[s.pack as usize]);
            match self.whole.get(&id) {
                Some(&old) if key(self.slot(old)) <= key(s) => {}
                _ => {
                    self.whole.insert(id, i);
                }
            }
        }
        self.by_pack = by_pack;
    }

    /// The blobs of `pack` at offsets `from..to` whose copy there is the one readers use
    /// (`get`), in pack order (after `seal`). Other copies are never read: a pack two index
    /// objects list (a prune that stopped between writing its index and deleting the old
    /// one) would list each blob twice, which breaks every run of adjacent blobs into
    /// single-blob requests; a delta left in a kept pack after prune dropped its base
    /// would fail whoever waits for that blob.
    pub fn pack_blobs(&self, pack: &BlobId, from: u64, to: u64) -> Vec<(BlobId, Location)> {
        let Some(r) = self
            .pack_no
            .get(pack)
            .and_then(|&n| self.pack_ranges.get(n as usize))
        else {
            return Vec::new();
        };
        let v = &self.by_pack[r.start as usize..r.end as usize];
        let offset = |i: u32| u64::from(self.slot(i).offset);
        let start = v.partition_point(|&i| offset(i) < from);
        v[start..]
            .iter()
            .take_while(|&&i| offset(i) < to)
            .filter(|&&i| self.readers.get(i as usize) == Some(&true))
            .map(|&i| (self.copies[i as usize].0, self.location(i)))
            .collect()
    }

    /// Every copy of every blob, in the order added: (blob, where).
    pub fn copies(&self) -> impl Iterator<Item = (BlobId, Location)> + '_ {
        (0..self.copies.len()).map(|i| (self.copies[i].0, self.location(pos(i))))
    }

    /// The copy readers use: nearest tier, then a whole copy over a delta.
    pub fn get(&self, id: &BlobId) -> Option<Location> {
        self.map.get(&self.copies, id).map(|i| self.location(i))
    }

    /// The nearest *whole* copy (after `seal`): where a delta's base is read. A base may
    /// also have a nearer delta copy (stored later, at another class); a base read must
    /// never land there (docs/prune.md "Deltas").
    pub fn get_whole(&self, id: &BlobId) -> Option<Location> {
        match self.map.get(&self.copies, id) {
            Some(i) if self.slot(i).base == WHOLE => Some(self.location(i)),
            Some(_) => self.whole.get(id).map(|&i| self.location(i)),
            None => None,
        }
    }

    /// Whether the reader's choice for `id` is `get_whole`'s (no second copy to keep).
    pub fn get_is_whole(&self, id: &BlobId) -> bool {
        self.map
            .get(&self.copies, id)
            .is_some_and(|i| self.slot(i).base == WHOLE)
    }

    /// The position of `id`'s reader copy: below `positions()`, and no other blob's (after
    /// `seal`, which may move readers). A set of blobs can be a bit per position.
    pub fn position(&self, id: &BlobId) -> Option<u32> {
        self.map.get(&self.copies, id)
    }

    /// Whether `seal` ran after the last `add` (it sizes `readers` to the copies).
    pub fn is_sealed(&self) -> bool {
        self.readers.len() == self.copies.len()
    }

    /// How many positions there are (every copy has one; blobs use one each).
    pub fn positions(&self) -> usize {
        self.copies.len()
    }

    /// The blob at `position`.
    pub fn id_at(&self, position: u32) -> BlobId {
        self.copies[position as usize].0
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::compress::Bases;
    use super::*;

    fn entry(n: u8, base: Option<Bases>) -> PackEntry {
        PackEntry {
            id: BlobId([n; 32]),
            kind: BlobKind::Data,
            offset: n as u32 * 100,
            length: 100,
            raw_len: 300,
            base: base.map(Box::new),
        }
    }

    fn file(entries: Vec<PackEntry>) -> IndexFile {
        IndexFile {
            packs: vec![IndexPack {
                id: BlobId([9; 32]),
                size: 1234,
                class: Some("STANDARD_IA".into()),
                entries,
            }],
        }
    }

    #[test]
    fn both_formats_open_and_format_2_refuses_deltas() {
        let keys = Keys::random();
        let with_delta = file(vec![
            entry(1, None),
            entry(2, Some(Bases::one(BlobId([1; 32])))),
        ]);
        let sealed = with_delta.seal(&keys, false).expect("seal");
        let back = IndexFile::open(&keys, &sealed, "index/x").expect("open");
        assert_eq!(back.packs[0].entries, with_delta.packs[0].entries);
        // Format 2: no base field, its own AAD, read back as whole blobs.
        let whole = file(vec![entry(1, None), entry(3, None)]);
        let sealed = whole.seal(&keys, true).expect("seal v2");
        let back = IndexFile::open(&keys, &sealed, "index/y").expect("open v2");
        assert_eq!(back.packs[0].entries, whole.packs[0].entries);
        assert_eq!(back.packs[0].class.as_deref(), Some("STANDARD_IA"));
        assert!(with_delta.seal(&keys, true).is_err());
        // Another key opens neither.
        assert!(IndexFile::open(&Keys::random(), &sealed, "index/y").is_err());
    }

    #[test]
    fn readers_take_the_nearest_copy_and_a_whole_one_over_a_delta() {
        let id = BlobId([5; 32]);
        let copy = |pack: u8, class: Option<&str>, base: Option<Bases>| IndexFile {
            packs: vec![IndexPack {
                id: BlobId([pack; 32]),
                size: 1000,
                class: class.map(str::to_string),
                entries: vec![PackEntry {
                    id,
                    ..entry(5, base)
                }],
            }],
        };
        let delta = Some(Bases::one(BlobId([6; 32])));
        // (copies, the reader's copy, the copy a base read takes: never a delta)
        let cases = [
            (vec![copy(1, None, delta), copy(2, None, None)], 2, Some(2)),
            (vec![copy(2, None, None), copy(1, None, delta)], 2, Some(2)),
            (
                vec![copy(1, None, delta), copy(2, Some("GLACIER"), None)],
                1,
                Some(2),
            ),
            (
                vec![
                    copy(4, Some("DEEP_ARCHIVE"), None),
                    copy(1, None, delta),
                    copy(3, Some("GLACIER"), None),
                ],
                1,
                Some(3),
            ),
            (vec![copy(1, None, delta)], 1, None),
        ];
        // Blob 6, the delta copies' base, whole in an instant pack.
        let base = IndexFile {
            packs: vec![IndexPack {
                id: BlobId([8; 32]),
                size: 1000,
                class: None,
                entries: vec![entry(6, None)],
            }],
        };
        for (files, want, whole) in cases {
            let mut mi = MasterIndex::default();
            for f in files.iter().chain([&base]) {
                mi.add(f);
            }
            mi.seal();
            assert_eq!(mi.get(&id).map(|l| l.pack), Some(BlobId([want; 32])));
            assert_eq!(
                mi.get_whole(&id).map(|l| l.pack),
                whole.map(|w| BlobId([w; 32]))
            );
        }
    }

    /// Review of issue 20: a delta copy left in a kept pack after prune dropped its base
    /// must not be the readers' copy while a readable copy exists.
    #[test]
    fn readers_skip_a_delta_copy_whose_base_is_gone() {
        let id = BlobId([5; 32]);
        let on = |b: u8| Some(Bases::one(BlobId([b; 32])));
        let copy = |pack: u8, base: Option<Bases>| IndexPack {
            id: BlobId([pack; 32]),
            size: 1000,
            class: None,
            entries: vec![PackEntry {
                id,
                ..entry(5, base)
            }],
        };
        let base_a = IndexPack {
            id: BlobId([9; 32]),
            size: 1000,
            class: None,
            entries: vec![entry(7, None)],
        };
        // Base 6's only whole copy is in GLACIER (a self-contained weekly's class).
        let base_g = IndexPack {
            id: BlobId([10; 32]),
            size: 1000,
            class: Some("GLACIER".into()),
            entries: vec![entry(6, None)],
        };
        // (copies of blob 5, the copy readers take)
        let cases = [
            (vec![copy(1, on(8)), copy(2, on(7))], Some(2)),
            (vec![copy(2, on(7)), copy(1, on(8))], Some(2)),
            (vec![copy(1, on(8)), copy(3, None)], Some(3)),
            // No readable copy: the reader's copy stays (and fails, naming its base).
            (vec![copy(1, on(8))], Some(1)),
            // A delta on a base that reads only after a thaw loses to one that does not.
            (vec![copy(1, on(6)), copy(2, on(7))], Some(2)),
            (vec![copy(2, on(7)), copy(1, on(6))], Some(2)),
            // Alone, it is still the copy (a thaw of its base reads it).
            (vec![copy(1, on(6))], Some(1)),
        ];
        for (copies, want) in cases {
            let mut mi = MasterIndex::default();
            mi.add(&IndexFile { packs: copies });
            mi.add(&IndexFile {
                packs: vec![base_a.clone(), base_g.clone()],
            });
            mi.seal();
            assert_eq!(mi.get(&id).map(|l| l.pack), want.map(|w| BlobId([w; 32])));
        }
    }

    #[test]
    fn a_copy_stays_small() {
        assert_eq!(std::mem::size_of::<(BlobId, Slot)>(), 56);
    }

    #[test]
    fn pack_blobs_lists_a_packs_blobs_in_offset_order() {
        let pack = |n: u8, blobs: &[u8]| IndexPack {
            id: BlobId([n; 32]),
            size: 1000,
            class: None,
            entries: blobs.iter().map(|&b| entry(b, None)).collect(),
        };
        let mut mi = MasterIndex::default();
        // Entries out of order in the index object; pack 2 interleaved between two of 1's.
        mi.add(&IndexFile {
            packs: vec![pack(1, &[3, 1]), pack(2, &[2, 4])],
        });
        mi.add(&IndexFile {
            packs: vec![pack(1, &[5])],
        });
        // Pack 2 listed again by another index object: its blobs are listed once. Pack 3
        // holds a second copy of blob 1 (readers use pack 1's) and blob 6: only 6 is listed.
        mi.add(&IndexFile {
            packs: vec![pack(2, &[2, 4]), pack(3, &[1, 6])],
        });
        mi.seal();
        // (pack, from, to, blobs listed); `entry(n)` is at offset n * 100.
        let cases: [(u8, u64, u64, &[u8]); 8] = [
            (3, 0, u64::MAX, &[6]),
            (1, 0, u64::MAX, &[1, 3, 5]),
            (1, 101, 500, &[3]),
            (1, 100, 501, &[1, 3, 5]),
            (1, 600, 700, &[]),
            (2, 0, 400, &[2]),
            (2, 0, 401, &[2, 4]),
            (7, 0, u64::MAX, &[]),
        ];
        for (p, from, to, want) in cases {
            let got: Vec<_> = mi.pack_blobs(&BlobId([p; 32]), from, to);
            let ids: Vec<u8> = got.iter().map(|(id, _)| id.0[0]).collect();
            assert_eq!(ids, want, "pack {p} {from}..{to}");
            for (id, loc) in got {
                assert_eq!(
                    (loc.pack, loc.offset),
                    (BlobId([p; 32]), id.0[0] as u64 * 100)
                );
            }
        }
    }

    #[test]
    fn a_self_contained_snapshot_reaches_its_own_class_only() {
        // (snapshot class, self-contained, pack class, admitted)
        let cases = [
            (None, false, None, true),
            (None, true, None, true),
            (None, false, Some("GLACIER"), false),
            (Some("STANDARD"), true, None, true),
            (Some("STANDARD"), true, Some("STANDARD_IA"), true),
            (Some("GLACIER"), false, None, true),
            (Some("GLACIER"), false, Some("STANDARD_IA"), true),
            (Some("GLACIER"), false, Some("GLACIER"), true),
            (Some("GLACIER"), false, Some("DEEP_ARCHIVE"), false),
            (Some("GLACIER"), true, None, false),
            (Some("GLACIER"), true, Some("STANDARD"), false),
            (Some("GLACIER"), true, Some("GLACIER"), true),
            (Some("GLACIER"), true, Some("DEEP_ARCHIVE"), false),
            (Some("DEEP_ARCHIVE"), true, Some("GLACIER"), false),
            (Some("STANDARD_IA"), true, Some("STANDARD_IA"), true),
            (Some("STANDARD_IA"), true, None, false),
        ];
        for (class, sc, pack, want) in cases {
            let reach = Reach::new(class, sc);
            assert_eq!(reach.admits(pack), want, "{class:?} {sc} {pack:?}");
        }
        // (this, other, this covers other)
        let g = || Reach::Class("GLACIER".into());
        let covers = [
            (Reach::Tier(1), Reach::Tier(0), true),
            (Reach::Tier(0), Reach::Tier(1), false),
            (Reach::Tier(1), g(), true),
            (Reach::Tier(0), g(), false),
            (g(), g(), true),
            (g(), Reach::Class("DEEP_ARCHIVE".into()), false),
            (g(), Reach::Tier(0), false),
            (g(), Reach::Tier(1), false),
        ];
        for (this, other, want) in covers {
            assert_eq!(this.covers(&other), want, "{this:?} {other:?}");
        }
        assert!(self_contained_by_default(Some("DEEP_ARCHIVE")));
        assert!(self_contained_by_default(Some("GLACIER")));
        assert!(!self_contained_by_default(Some("GLACIER_IR")));
        assert!(!self_contained_by_default(None));
    }

    #[test]
    fn archive_classes_are_further_than_instant_ones() {
        let cases = [
            (None, 0),
            (Some("STANDARD"), 0),
            (Some("STANDARD_IA"), 0),
            (Some("ONEZONE_IA"), 0),
            (Some("INTELLIGENT_TIERING"), 0),
            (Some("GLACIER_IR"), 0),
            (Some("GLACIER"), 1),
            (Some("DEEP_ARCHIVE"), 2),
        ];
        for (class, want) in cases {
            assert_eq!(tier(class), want, "{class:?}");
        }
    }
}
