//! `cofre check`: every snapshot's trees decode, every referenced chunk is indexed and its
//! pack exists with the indexed size; `--read-data` also downloads every pack and verifies
//! its name, header and every blob. A delta is verified by rebuilding it on its base, and
//! a damaged base is reported with every file whose chunks are deltas against it.

pub mod against;
mod contained;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;

use crate::crypto::BlobId;
use crate::error::Result;
use crate::model::Manifest;
use crate::repo::index::MasterIndex;
use crate::repo::pack::{pack_key, parse_pack};
use crate::repo::Repository;

#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub trees: usize,
    pub chunks: usize,
    pub packs: usize,
    pub packs_read: usize,
    /// Which packs were downloaded and verified (so subset runs can be audited).
    pub packs_read_keys: Vec<String>,
    /// Packs that no index lists (a crashed ingest's leftovers; prune collects them).
    pub unindexed_packs: usize,
    /// Blobs read (`--read-data`), by how they are stored: raw, lz4, zstd, delta.
    pub blobs_read_by_compression: BTreeMap<&'static str, u64>,
    /// Deltas read whose base is in no index: no snapshot uses them (prune dropped their
    /// base; a used one is an error of the walk), so they are garbage waiting for a repack.
    pub unused_deltas_without_base: u64,
    /// Packs found missing, short, or damaged when read.
    pub damaged_packs: usize,
    pub errors: Vec<String>,
    /// PostgreSQL WAL archived in the repository, when there is any (`wal::check`); its
    /// problems are also in `errors`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<crate::wal::check::WalCheck>,
}

struct Walk<'a> {
    repo: &'a Repository,
    index: MasterIndex,
    packs: HashMap<String, u64>,
    seen_trees: HashSet<BlobId>,
    seen_chunks: HashSet<BlobId>,
    /// Per damaged pack (missing or short), the paths it affects: one line per pack.
    bad_packs: BTreeMap<String, (&'static str, BTreeSet<String>)>,
    /// Decoded delta bases, recently used (`--read-data`): a base serves many generations.
    bases: parking_lot::Mutex<lru::LruCache<BlobId, Arc<Vec<u8>>>>,
    report: CheckReport,
}

/// Bases kept decoded while reading packs (each at most 256 KiB).
const BASE_CACHE: usize = 256;

impl Walk<'_> {
    /// A chunk and, for a delta, its base: indexed, in a pack of the right size, and the
    /// base with a whole copy (where readers read it; chains are one step long).
    fn chunk_ok(&mut self, id: &BlobId, what: &str) -> bool {
        let bases = self.index.get(id).and_then(|l| l.base);
        let mut ok = self.blob_ok(id, what, false);
        for base in bases.iter().flat_map(|b| b.ids()) {
            if self.index.get(&base).is_some() && self.index.get_whole(&base).is_none() {
                self.report.errors.push(format!(
                    "{what}: chunk {} is a delta on {}, which has no whole copy (chains are one step long)",
                    id.hex(),
                    base.hex()
                ));
                ok = false;
                continue;
            }
            ok &= self.blob_ok(&base, what, true);
        }
        ok
    }

    /// The copy readers take (`whole`: the whole copy a base read takes) is indexed and
    /// in a pack of the right size.
    fn blob_ok(&mut self, id: &BlobId, what: &str, whole: bool) -> bool {
        let loc = match whole {
            true => self.index.get_whole(id),
            false => self.index.get(id),
        };
        let Some(loc) = loc else {
            self.bad_packs
                .entry("some blobs".into())
                .or_insert_with(|| {
                    (
                        "are in no index object (`cofre repair index` re-indexes surviving packs)",
                        BTreeSet::new(),
                    )
                })
                .1
                .insert(what.to_string());
            return false;
        };
        let key = format!("pack {}", pack_key(&loc.pack));
        let problem = match self.packs.get(&pack_key(&loc.pack)) {
            Some(size) if loc.offset + loc.length as u64 <= *size => return true,
            Some(_) => "is shorter than its index says",
            None => "is missing",
        };
        self.bad_packs
            .entry(key)
            .or_insert_with(|| (problem, BTreeSet::new()))
            .1
            .insert(what.to_string());
        false
    }

    /// One error per damaged pack, naming (some of) the files it affects.
    fn report_bad_packs(&mut self) {
        for (key, (problem, paths)) in std::mem::take(&mut self.bad_packs) {
            if key.starts_with("pack ") {
                self.report.damaged_packs += 1;
            }
            let shown: Vec<&str> = paths.iter().take(5).map(String::as_str).collect();
            let more = paths.len().saturating_sub(shown.len());
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            self.report.errors.push(format!(
                "{key} {problem}; affected: {}{tail}",
                shown.join(", ")
            ));
        }
    }

    fn tree(&mut self, id: &BlobId, path: &str) {
        if !self.seen_trees.insert(*id) || !self.blob_ok(id, path, false) {
            return;
        }
        self.report.trees += 1;
        let tree = match self.repo.load_tree(&self.index, id) {
            Ok(t) => t,
            Err(e) => return self.report.errors.push(format!("{path}: {e}")),
        };
        for n in &tree.nodes {
            let p = format!("{path}/{}", String::from_utf8_lossy(&n.name));
            for c in &n.chunks {
                if self.seen_chunks.insert(c.id) {
                    self.report.chunks += 1;
                    self.chunk_ok(&c.id, &p);
                }
            }
            if let Some(sub) = &n.subtree {
                self.tree(sub, &p);
            }
        }
    }

    /// How far from readable the data under a tree is: the largest `tier` of the copy
    /// readers use of any chunk below it, or of a delta's base (memoized per tree).
    fn tree_tier(&self, id: &BlobId, memo: &mut HashMap<BlobId, u8>) -> u8 {
        if let Some(t) = memo.get(id) {
            return *t;
        }
        let Ok(tree) = self.repo.load_tree(&self.index, id) else {
            return 0; // reported by the walk
        };
        let mut tier = 0;
        for n in &tree.nodes {
            tier = tier.max(self.chunks_tier(&n.chunks));
            if let Some(sub) = &n.subtree {
                tier = tier.max(self.tree_tier(sub, memo));
            }
        }
        memo.insert(*id, tier);
        tier
    }

    fn chunks_tier(&self, chunks: &[crate::model::ChunkRef]) -> u8 {
        let mut tier = 0;
        for c in chunks {
            let Some(loc) = self.index.get(&c.id) else {
                continue;
            };
            tier = tier.max(loc.tier);
            for b in loc.base.iter().flat_map(|b| b.ids()) {
                tier = tier.max(self.index.get_whole(&b).map_or(0, |l| l.tier));
            }
        }
        tier
    }

    /// Files of a tree whose data is colder than `max`, by path (at most `limit`).
    fn colder_files(&self, id: &BlobId, path: &str, max: u8, out: &mut Vec<String>, limit: usize) {
        let Ok(tree) = self.repo.load_tree(&self.index, id) else {
            return;
        };
        for n in &tree.nodes {
            if out.len() >= limit {
                return;
            }
            let p = format!("{path}/{}", String::from_utf8_lossy(&n.name));
            if self.chunks_tier(&n.chunks) > max {
                out.push(p.clone());
            }
            if let Some(sub) = &n.subtree {
                self.colder_files(sub, &p, max, out, limit);
            }
        }
    }

    /// A snapshot must be readable at its own storage class: one whose data (or a delta's
    /// base) is only in a colder class cannot be restored without a thaw, so it is an
    /// error, naming the snapshot, the class and the files. Snapshots written before the
    /// class was recorded are not judged.
    fn class_dependencies(&mut self, snapshots: &[(String, crate::model::Manifest)]) {
        let mut memo = HashMap::new();
        for (id, m) in snapshots {
            let Some(class) = &m.data_class else { continue };
            let own = crate::repo::index::tier(Some(class));
            if self.tree_tier(&m.root, &mut memo) <= own {
                continue;
            }
            let mut files = Vec::new();
            self.colder_files(&m.root, "", own, &mut files, 6);
            let more = if files.len() > 5 { " and more" } else { "" };
            files.truncate(5);
            self.report.errors.push(format!(
                "snapshot {} ({class}) needs data stored only in a colder (archive) class: {}{more}; it cannot be restored without a thaw (ingest again to store it at {class})",
                &id[..8.min(id.len())],
                files.join(", ")
            ));
        }
    }

    /// Downloads a pack and verifies it; returns what is wrong and the blobs it loses
    /// (None: the whole pack, per the index).
    fn read_pack(&mut self, key: &str, size: u64) -> Option<(String, Option<Vec<BlobId>>)> {
        let bytes = match self.repo.get_raw(key, None) {
            Ok(b) => b,
            Err(e) => return Some((e.to_string(), None)),
        };
        self.report.packs_read += 1;
        self.report.packs_read_keys.push(key.to_string());
        let name = key.rsplit('/').next().unwrap_or("");
        if blake3::hash(&bytes).to_hex().as_str() != name || bytes.len() as u64 != size {
            return Some(("content does not match its name".into(), None));
        }
        let entries = match parse_pack(self.repo.keys(), &bytes, key) {
            Ok(e) => e,
            Err(e) => return Some((e.to_string(), None)),
        };
        let mut bad = Vec::new();
        let mut first = None;
        for e in entries {
            let enc = &bytes[e.offset as usize..e.offset as usize + e.length as usize];
            if e.base
                .as_deref()
                .is_some_and(|b| b.ids().any(|b| self.index.get_whole(&b).is_none()))
            {
                self.report.unused_deltas_without_base += 1;
                continue;
            }
            let decoded = {
                let base = |b: &BlobId| self.base(b);
                self.repo.decode_blob_with(&e.id, enc, &base)
            };
            match decoded {
                Ok(d) if d.base != e.bases() => {
                    first.get_or_insert(format!(
                        "blob {} names base {:?}, its pack header {:?}",
                        e.id.hex(),
                        d.base.map(|b| hex::encode(b.to_bytes())),
                        e.base.map(|b| hex::encode(b.to_bytes()))
                    ));
                    bad.push(e.id);
                }
                Ok(d) => {
                    *self
                        .report
                        .blobs_read_by_compression
                        .entry(crate::repo::compress::flag_name(d.flag))
                        .or_default() += 1;
                }
                Err(err) => {
                    first.get_or_insert(err.to_string());
                    bad.push(e.id);
                }
            }
        }
        first.map(|f| (f, Some(bad)))
    }

    /// A delta's base, decoded: from the cache, or read from where the index says.
    fn base(&self, id: &BlobId) -> Result<Arc<Vec<u8>>> {
        if let Some(b) = self.bases.lock().get(id) {
            return Ok(b.clone());
        }
        let loc = self.index.get_whole(id).ok_or_else(|| {
            crate::error::Error::corrupt(
                format!("blob {}", id.hex()),
                "has no whole copy in any index",
            )
        })?;
        let raw = Arc::new(self.repo.read_blob(id, &loc)?);
        self.bases.lock().put(*id, raw.clone());
        Ok(raw)
    }

    /// Paths (with their snapshot) that use any of `blobs`: a second walk, only when
    /// reading found damage.
    fn paths_using(&self, roots: &[(String, BlobId)], blobs: &HashSet<BlobId>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<(BlobId, String)> = roots.iter().map(|(p, r)| (*r, p.clone())).collect();
        while let Some((id, path)) = stack.pop() {
            if blobs.contains(&id) {
                out.insert(path.clone());
            }
            if !seen.insert((id, path.clone())) || out.len() > 1000 {
                continue;
            }
            let Ok(tree) = self.repo.load_tree(&self.index, &id) else {
                continue;
            };
            for n in &tree.nodes {
                let p = format!("{path}/{}", String::from_utf8_lossy(&n.name));
                if n.chunks.iter().any(|c| blobs.contains(&c.id)) {
                    out.insert(p.clone());
                }
                if let Some(sub) = n.subtree {
                    stack.push((sub, p));
                }
            }
        }
        out
    }
}

/// Which packs `check` downloads and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ReadData {
    #[default]
    None,
    All,
    /// Part n of m (1-based), chosen by pack id: stateless, so runs 1/m..m/m read every
    /// pack exactly once.
    Part(u32, u32),
    /// A random share of the packs, in percent.
    Percent(f64),
    /// Random packs up to this many bytes.
    Bytes(u64),
}

impl ReadData {
    /// What was read, for people: `structure only`, `all data`, `part 3/12`, `10%`, `500 MB`.
    pub fn describe(&self) -> String {
        match self {
            ReadData::None => "structure only".into(),
            ReadData::All => "all data".into(),
            ReadData::Part(n, m) => format!("part {n}/{m} of the data"),
            ReadData::Percent(p) => format!("{p}% of the data"),
            ReadData::Bytes(b) => format!("{} MB of the data", b / 1_000_000),
        }
    }

    /// Parses `n/m`, `X%` or a size (`500M`, `2G`, bytes).
    pub fn parse_subset(s: &str) -> std::result::Result<ReadData, String> {
        let bad = || format!("{s:?}: use n/m (e.g. 3/12), a percentage (10%) or a size (500M)");
        if let Some((n, m)) = s.split_once('/') {
            let (n, m): (u32, u32) = (n.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if n == 0 || m == 0 || n > m {
                return Err(format!("{s:?}: n/m needs 1 <= n <= m"));
            }
            return Ok(ReadData::Part(n, m));
        }
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!("{s:?}: the percentage must be in (0, 100]"));
            }
            return Ok(ReadData::Percent(p));
        }
        let (num, mult) = match s.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let m = match c.to_ascii_uppercase() {
                    'K' => 1 << 10,
                    'M' => 1 << 20,
                    'G' => 1 << 30,
                    'T' => 1u64 << 40,
                    _ => return Err(bad()),
                };
                (&s[..i], m)
            }
            _ => (s, 1),
        };
        Ok(ReadData::Bytes(
            num.parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(mult))
                .ok_or_else(bad)?,
        ))
    }

    /// The packs to read, out of `all` (key, size, id), sorted by key.
    fn select(&self, all: &[(String, u64, Option<BlobId>)]) -> Vec<(String, u64)> {
        use rand::seq::SliceRandom;
        let mut picked: Vec<(String, u64)> = match *self {
            ReadData::None => vec![],
            ReadData::All => all.iter().map(|(k, s, _)| (k.clone(), *s)).collect(),
            ReadData::Part(n, m) => all
                .iter()
                .filter(|(_, _, id)| id.is_some_and(|id| part_of(&id) % m == n - 1))
                .map(|(k, s, _)| (k.clone(), *s))
                .collect(),
            ReadData::Percent(p) => all
                .iter()
                .filter(|_| rand::random::<f64>() * 100.0 < p)
                .map(|(k, s, _)| (k.clone(), *s))
                .collect(),
            ReadData::Bytes(limit) => {
                let mut v: Vec<_> = all.iter().map(|(k, s, _)| (k.clone(), *s)).collect();
                v.shuffle(&mut rand::thread_rng());
                let mut total = 0;
                v.into_iter()
                    .take_while(|(_, s)| {
                        let take = total < limit;
                        total += s;
                        take
                    })
                    .collect()
            }
        };
        picked.sort();
        picked
    }
}

/// The subset bucket of a pack: its id's first four bytes (ids are uniform hashes).
fn part_of(id: &BlobId) -> u32 {
    u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]])
}

pub fn check(repo: &Repository, read: ReadData) -> Result<CheckReport> {
    let listed = repo.list(crate::repo::file::FileType::Pack.prefix())?;
    let packs: HashMap<String, u64> = listed.iter().map(|o| (o.key.clone(), o.size)).collect();
    let mut w = Walk {
        repo,
        index: MasterIndex::default(),
        packs,
        seen_trees: HashSet::new(),
        seen_chunks: HashSet::new(),
        bad_packs: BTreeMap::new(),
        bases: parking_lot::Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(BASE_CACHE).unwrap_or(NonZeroUsize::MIN),
        )),
        report: CheckReport::default(),
    };
    let mut indexed = HashSet::new();
    // Snapshots first: one committed meanwhile then has its index object in the listing.
    let ids = repo.snapshot_ids()?;
    let manifests = repo.load_manifests(&ids);
    let all = repo.load_indexes()?;
    let mut blobs_of: HashMap<String, Vec<BlobId>> = HashMap::new();
    // Deltas by their base: a damaged base loses them too.
    let mut dependents: HashMap<BlobId, Vec<BlobId>> = HashMap::new();
    for (_, f) in &all.readable {
        for p in &f.packs {
            indexed.insert(pack_key(&p.id));
            blobs_of
                .entry(pack_key(&p.id))
                .or_default()
                .extend(p.entries.iter().map(|e| e.id));
            for e in &p.entries {
                for b in e.base.iter().flat_map(|b| b.ids()) {
                    dependents.entry(b).or_default().push(e.id);
                }
            }
        }
    }
    for (name, e) in &all.damaged {
        w.report.errors.push(format!("index/{name}: {e}"));
    }
    let readable: Vec<Manifest> = manifests.iter().flatten().cloned().collect();
    let own = contained::own_class_indexes(&all.readable, &readable);
    drop(readable);
    w.index = all.into_master();
    w.report.packs = w.packs.len();
    w.report.unindexed_packs = w.packs.keys().filter(|k| !indexed.contains(*k)).count();
    let mut roots = Vec::new();
    let mut classed = Vec::new();
    for (id, manifest) in ids.iter().zip(manifests) {
        w.report.snapshots += 1;
        match manifest {
            Ok(m) => {
                let name = format!("snapshot {}:", &id[..8]);
                w.tree(&m.root, &name);
                roots.push((name, m.root));
                classed.push((id.clone(), m));
            }
            Err(e) => w.report.errors.push(format!("snapshot {id}: {e}")),
        }
    }
    w.report_bad_packs();
    w.class_dependencies(&classed);
    w.self_contained(&classed, &own);
    let candidates: Vec<(String, u64, Option<BlobId>)> = listed
        .iter()
        .map(|o| (o.key.clone(), o.size, crate::repo::file::pack_id(&o.key)))
        .collect();
    let mut damaged = Vec::new();
    for (key, size) in read.select(&candidates) {
        if let Some((why, blobs)) = w.read_pack(&key, size) {
            let lost = blobs.unwrap_or_else(|| blobs_of.get(&key).cloned().unwrap_or_default());
            damaged.push((key, why, lost));
        }
    }
    w.report.damaged_packs += damaged.len();
    for (key, why, lost) in damaged {
        let mut lost: HashSet<BlobId> = lost.into_iter().collect();
        let deltas: Vec<BlobId> = lost
            .iter()
            .flat_map(|b| dependents.get(b).into_iter().flatten().copied())
            .collect();
        lost.extend(deltas);
        let paths = w.paths_using(&roots, &lost);
        let shown: Vec<&str> = paths.iter().take(5).map(String::as_str).collect();
        let affected = match paths.len() {
            0 => "no snapshot uses the damaged data".to_string(),
            n if n > 5 => format!("affected: {} and {} more", shown.join(", "), n - 5),
            _ => format!("affected: {}", shown.join(", ")),
        };
        w.report.errors.push(format!("{key}: {why}; {affected}"));
    }
    Ok(w.report)
}

/// The last `check` run on this machine, kept in the repository's state directory: what
/// `cofre serve`'s overview shows beside the drills.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckRecord {
    /// RFC 3339, UTC.
    pub time: String,
    /// What was read (`ReadData::describe`).
    pub read: String,
    pub snapshots: usize,
    pub packs_read: usize,
    pub problems: usize,
    pub first_problem: Option<String>,
}

impl CheckRecord {
    pub fn new(report: &CheckReport, read: &ReadData, time: (i64, u32)) -> CheckRecord {
        CheckRecord {
            time: crate::ingest::format_time(time),
            read: read.describe(),
            snapshots: report.snapshots,
            packs_read: report.packs_read,
            problems: report.errors.len(),
            first_problem: report.errors.first().cloned(),
        }
    }

    fn path(state_dir: &std::path::Path) -> std::path::PathBuf {
        state_dir.join("last-check.json")
    }

    /// Saves it (0600: a problem names a file).
    pub fn save(&self, state_dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(state_dir).map_err(|e| crate::error::Error::io(state_dir, e))?;
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| crate::error::Error::corrupt("check record", e.to_string()))?;
        crate::fsutil::write_atomic(&Self::path(state_dir), &json, 0o600)
    }

    /// The last one saved, if any can be read.
    pub fn load(state_dir: &std::path::Path) -> Option<CheckRecord> {
        let bytes = std::fs::read(Self::path(state_dir)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
