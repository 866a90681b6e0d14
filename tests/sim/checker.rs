//! The invariants, checked after every step of a simulation: every committed snapshot that
//! was not forgotten is in the store and restores byte for byte to what its source held;
//! each of its chunks (and a delta's base) is readable at the snapshot's own storage
//! class; and `cofre check` agrees.

use std::collections::BTreeMap;
use std::sync::Arc;

use cofre::crypto::BlobId;
use cofre::model::Kind;
use cofre::repo::index::{tier, IndexFile, MasterIndex};
use cofre::repo::pack::pack_key;
use cofre::repo::Repository;

/// A snapshot's files: absolute path → content.
pub type Files = BTreeMap<String, Vec<u8>>;

/// The source as an ingest of it should record it.
pub fn read_source(dir: &std::path::Path) -> Files {
    let mut out = Files::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.to_string_lossy().into_owned(),
                    std::fs::read(&p).expect("read"),
                );
            }
        }
    }
    out
}

fn read_chunk(repo: &Repository, mi: &MasterIndex, id: &BlobId) -> Result<Vec<u8>, String> {
    let loc = mi
        .get(id)
        .ok_or_else(|| format!("chunk {} in no index", id.hex()))?;
    let enc = repo
        .get_raw(
            &pack_key(&loc.pack),
            Some(loc.offset..loc.offset + loc.length as u64),
        )
        .map_err(|e| e.to_string())?;
    let base = |b: &BlobId| -> cofre::error::Result<Arc<Vec<u8>>> {
        // Where readers read a base: its nearest whole copy (never a delta copy).
        let l = mi
            .get_whole(b)
            .ok_or_else(|| cofre::error::Error::corrupt("base", "no whole copy in any index"))?;
        let enc = repo.get_raw(
            &pack_key(&l.pack),
            Some(l.offset..l.offset + l.length as u64),
        )?;
        Ok(Arc::new(repo.decode_blob(b, &enc)?))
    };
    repo.decode_blob_with(id, &enc, &base)
        .map(|d| d.raw)
        .map_err(|e| e.to_string())
}

/// The master index of the packs in `indexes` whose class `class` accepts.
pub fn master(
    indexes: &[(String, IndexFile)],
    class: impl Fn(Option<&str>) -> bool,
) -> MasterIndex {
    let mut mi = MasterIndex::default();
    for (_, f) in indexes {
        mi.add_packs(f.packs.iter().filter(|p| class(p.class.as_deref())), |_| {
            true
        });
    }
    mi.seal();
    mi
}

/// The files of snapshot `id` as the store has them (read through a thaw), and the first
/// chunk that is not readable at the snapshot's own class.
pub fn restore(
    repo: &Repository,
    mi: &MasterIndex,
    id: &str,
) -> Result<(Files, Option<String>), String> {
    restore_with(repo, mi, mi, id)
}

/// `restore`, reading trees through `mi` and file contents (chunks and delta bases) through
/// `chunks` only.
pub fn restore_with(
    repo: &Repository,
    mi: &MasterIndex,
    chunks: &MasterIndex,
    id: &str,
) -> Result<(Files, Option<String>), String> {
    let m = repo.load_manifest(id).map_err(|e| e.to_string())?;
    let own = tier(m.data_class.as_deref());
    let mut files = Files::new();
    let mut colder = None;
    let mut stack = vec![(String::new(), m.root)];
    while let Some((path, tree)) = stack.pop() {
        let t = repo
            .load_tree(mi, &tree)
            .map_err(|e| format!("{path}: {e}"))?;
        for n in &t.nodes {
            let p = format!("{path}/{}", String::from_utf8_lossy(&n.name));
            if let Some(sub) = n.subtree {
                stack.push((p, sub));
                continue;
            }
            if n.kind != Kind::File {
                continue;
            }
            let mut content = vec![0u8; n.size as usize];
            for c in &n.chunks {
                let raw = read_chunk(repo, chunks, &c.id).map_err(|e| format!("{p}: {e}"))?;
                let at = c.offset as usize;
                content
                    .get_mut(at..at + raw.len())
                    .ok_or_else(|| format!("{p}: chunk past the end"))?
                    .copy_from_slice(&raw);
                let loc = mi.get(&c.id).map(|l| (l.tier, l.base));
                let base_tier = loc
                    .and_then(|(_, b)| b)
                    .into_iter()
                    .flat_map(|b| b.ids())
                    .map(|b| mi.get_whole(&b).map_or(0, |l| l.tier))
                    .max()
                    .unwrap_or(0);
                if loc.map_or(0, |l| l.0).max(base_tier) > own && colder.is_none() {
                    colder = Some(format!("{p} needs data colder than {:?}", m.data_class));
                }
            }
            files.insert(p, content);
        }
    }
    Ok((files, colder))
}
