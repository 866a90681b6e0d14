//! `cofre check`: every snapshot's trees decode, every referenced chunk is indexed and its
//! pack exists with the indexed size; `--read-data` also downloads every pack and verifies
//! its name, header and every blob.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::crypto::BlobId;
use crate::error::Result;
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
    /// Packs that no index lists (a crashed ingest's leftovers; prune collects them).
    pub unindexed_packs: usize,
    pub errors: Vec<String>,
}

struct Walk<'a> {
    repo: &'a Repository,
    index: MasterIndex,
    packs: HashMap<String, u64>,
    seen_trees: HashSet<BlobId>,
    seen_chunks: HashSet<BlobId>,
    /// Per damaged pack (missing or short), the paths it affects: one line per pack.
    bad_packs: BTreeMap<String, (&'static str, BTreeSet<String>)>,
    report: CheckReport,
}

impl Walk<'_> {
    fn blob_ok(&mut self, id: &BlobId, what: &str) -> bool {
        let Some(loc) = self.index.get(id) else {
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
        if !self.seen_trees.insert(*id) || !self.blob_ok(id, path) {
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
                    self.blob_ok(&c.id, &p);
                }
            }
            if let Some(sub) = &n.subtree {
                self.tree(sub, &p);
            }
        }
    }

    fn read_pack(&mut self, key: &str, size: u64) {
        let bytes = match self.repo.get_raw(key, None) {
            Ok(b) => b,
            Err(e) => return self.report.errors.push(format!("{key}: {e}")),
        };
        self.report.packs_read += 1;
        let name = key.rsplit('/').next().unwrap_or("");
        if blake3::hash(&bytes).to_hex().as_str() != name || bytes.len() as u64 != size {
            return self
                .report
                .errors
                .push(format!("{key}: content does not match its name"));
        }
        match parse_pack(self.repo.keys(), &bytes, key) {
            Ok(entries) => {
                for e in entries {
                    let (a, b) = (e.offset as usize, e.offset as usize + e.length as usize);
                    if let Err(err) = bytes
                        .get(a..b)
                        .ok_or_else(|| crate::error::Error::corrupt(key, "entry outside pack"))
                        .and_then(|enc| self.repo.decode_blob(&e.id, enc))
                    {
                        self.report.errors.push(format!("{key}: {err}"));
                    }
                }
            }
            Err(e) => self.report.errors.push(format!("{key}: {e}")),
        }
    }
}

pub fn check(repo: &Repository, read_data: bool) -> Result<CheckReport> {
    let packs: HashMap<String, u64> = repo
        .list("data/")?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    let mut w = Walk {
        repo,
        index: MasterIndex::default(),
        packs,
        seen_trees: HashSet::new(),
        seen_chunks: HashSet::new(),
        bad_packs: BTreeMap::new(),
        report: CheckReport::default(),
    };
    let mut indexed = HashSet::new();
    let all = repo.load_indexes()?;
    for (_, f) in &all.readable {
        indexed.extend(f.packs.iter().map(|p| pack_key(&p.id)));
    }
    for (name, e) in &all.damaged {
        w.report.errors.push(format!("index/{name}: {e}"));
    }
    w.index = all.master();
    w.report.packs = w.packs.len();
    w.report.unindexed_packs = w.packs.keys().filter(|k| !indexed.contains(*k)).count();
    for id in repo.snapshot_ids()? {
        w.report.snapshots += 1;
        match repo.load_manifest(&id) {
            Ok(m) => w.tree(&m.root, &format!("snapshot {}:", &id[..8])),
            Err(e) => w.report.errors.push(format!("snapshot {id}: {e}")),
        }
    }
    w.report_bad_packs();
    if read_data {
        let mut all: Vec<_> = w.packs.iter().map(|(k, s)| (k.clone(), *s)).collect();
        all.sort();
        for (key, size) in all {
            w.read_pack(&key, size);
        }
    }
    Ok(w.report)
}
