//! Self-contained snapshots (`repo::index::Reach::Class`): every chunk, and every delta's
//! base, has a copy in the snapshot's own class, in a pack the store lists at its indexed
//! size. Such a snapshot promises to outlive every hotter pack (a weekly full in
//! DEEP_ARCHIVE); one that does not is reported, naming its files.

use std::collections::{BTreeSet, HashMap};

use super::Walk;
use crate::crypto::BlobId;
use crate::model::{ChunkRef, Manifest};
use crate::repo::index::{IndexFile, Location, MasterIndex, Reach};
use crate::repo::pack::pack_key;

/// Per class some self-contained snapshot is in: the copies in that class only.
pub(super) fn own_class_indexes(
    readable: &[(String, IndexFile)],
    manifests: &[Manifest],
) -> HashMap<String, MasterIndex> {
    let classes: BTreeSet<String> = manifests
        .iter()
        .filter_map(|m| match Reach::of(m) {
            Reach::Class(c) => Some(c),
            Reach::Tier(_) => None,
        })
        .collect();
    let mut out = HashMap::new();
    for class in classes {
        let reach = Reach::Class(class.clone());
        let mut mi = MasterIndex::default();
        for (_, f) in readable {
            mi.add_packs(
                f.packs.iter().filter(|p| reach.admits(p.class.as_deref())),
                |_| true,
            );
        }
        mi.seal();
        out.insert(class, mi);
    }
    out
}

impl Walk<'_> {
    pub(super) fn self_contained(
        &mut self,
        snapshots: &[(String, Manifest)],
        own: &HashMap<String, MasterIndex>,
    ) {
        // Per (class, tree): whether everything under it is in the class.
        let mut memo: HashMap<(String, BlobId), bool> = HashMap::new();
        for (id, m) in snapshots {
            let Reach::Class(class) = Reach::of(m) else {
                continue;
            };
            let Some(index) = own.get(&class) else {
                continue;
            };
            let mut files = Vec::new();
            self.outside(index, &class, &m.root, "", &mut memo, &mut files);
            if files.is_empty() {
                continue;
            }
            let more = if files.len() > 5 { " and more" } else { "" };
            files.truncate(5);
            self.report.errors.push(format!(
                "snapshot {} ({class}, self-contained) has data with no copy in {class}: {}{more}; it depends on hotter packs (ingest it again to store it whole in {class})",
                &id[..8.min(id.len())],
                files.join(", ")
            ));
        }
    }

    /// Adds to `out` (up to 6) the files under `tree` with a chunk not in `index`'s class.
    fn outside(
        &self,
        index: &MasterIndex,
        class: &str,
        tree: &BlobId,
        path: &str,
        memo: &mut HashMap<(String, BlobId), bool>,
        out: &mut Vec<String>,
    ) {
        let key = (class.to_string(), *tree);
        if memo.get(&key) == Some(&true) || out.len() > 5 {
            return;
        }
        let Ok(t) = self.repo.load_tree(&self.index, tree) else {
            return; // reported by the walk
        };
        let before = out.len();
        for n in &t.nodes {
            let p = format!("{path}/{}", String::from_utf8_lossy(&n.name));
            if !self.in_class(index, &n.chunks) && out.len() <= 5 {
                out.push(p.clone());
            }
            if let Some(sub) = &n.subtree {
                self.outside(index, class, sub, &p, memo, out);
            }
        }
        memo.insert(key, out.len() == before);
    }

    /// Every chunk has a copy in `index` (a delta with a whole copy of each base there),
    /// in a pack the store lists at its indexed size.
    fn in_class(&self, index: &MasterIndex, chunks: &[ChunkRef]) -> bool {
        let listed = |l: &Location| {
            self.packs
                .get(&pack_key(&l.pack))
                .is_some_and(|size| l.offset + l.length as u64 <= *size)
        };
        chunks.iter().all(|c| match index.get(&c.id) {
            Some(l) if listed(&l) => l
                .base
                .iter()
                .flat_map(|b| b.ids())
                .all(|b| index.get_whole(&b).is_some_and(|w| listed(&w))),
            _ => false,
        })
    }
}
