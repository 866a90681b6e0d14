//! `cofre ingest`: read sources, store new chunks and trees, then commit in order
//! (packs → index → manifest) and record the snapshot in the catalog.

pub(crate) mod content;
mod delta;
pub(crate) mod fsmeta;

mod metaahead;
mod readahead;
mod source;
mod spool;
mod walk;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSetBuilder};

pub use fsmeta::{data_extents, kind_of};
pub use metaahead::Prewarm;
pub use source::StreamSource;

use crate::catalog::{sync, Catalog};
use crate::error::{Error, Result};
use crate::model::{Manifest, Summary, Tree};
use crate::repo::index::{IndexFile, Reach};
use crate::repo::lock::Lock;
use crate::repo::Repository;
use content::Chunker;
use fsmeta::node_from_metadata;
use walk::{Excludes, Walker};

#[derive(Clone)]
pub struct IngestOptions {
    pub set: String,
    pub tags: Vec<String>,
    pub time: Option<(i64, u32)>,
    pub excludes: Vec<String>,
    pub paths: Vec<PathBuf>,
    pub stream: Option<StreamSource>,
    /// Where files and bytes are counted as they are read (`None`: nowhere). The total
    /// size is summed on another thread only when there is one.
    pub progress: Option<std::sync::Arc<dyn crate::progress::Progress>>,
    /// S3 storage class for data packs (e.g. STANDARD_IA, GLACIER_IR).
    pub data_class: Option<String>,
    /// Deduplicate only against data already in `data_class` (`repo::index::Reach`);
    /// None: the class's default (archive classes are self-contained).
    pub self_contained: Option<bool>,
    /// Compression of new blobs (default: the repository's).
    pub compression: Option<crate::repo::compress::Compression>,
    /// Record access times (off by default: see `fsmeta::node_from_metadata`).
    pub atime: bool,
    /// Store changed chunks as deltas against similar stored ones (on unless `--no-delta`).
    pub delta: bool,
    /// How long to wait for a conflicting lock (a running prune) to go away.
    pub retry_lock: std::time::Duration,
}

impl IngestOptions {
    /// Which stored copies this snapshot's data may come from.
    pub fn reach(&self) -> Reach {
        let class = self.data_class.as_deref();
        let own = self
            .self_contained
            .unwrap_or_else(|| crate::repo::index::self_contained_by_default(class));
        Reach::new(class, own)
    }

    /// A snapshot of `paths` into `set`, with the defaults of `cofre ingest`.
    pub fn new(set: impl Into<String>, paths: Vec<PathBuf>) -> IngestOptions {
        IngestOptions {
            set: set.into(),
            tags: Vec::new(),
            time: None,
            excludes: Vec::new(),
            paths,
            stream: None,
            progress: None,
            data_class: None,
            self_contained: None,
            compression: None,
            atime: false,
            delta: true,
            retry_lock: std::time::Duration::ZERO,
        }
    }
}

#[derive(Debug, serde::Serialize)]
pub struct IngestReport {
    pub snapshot: String,
    pub set: String,
    pub time: String,
    pub summary: Summary,
    pub duration_secs: f64,
    pub warnings: Vec<String>,
    /// Some sources could not be read: exit code 3.
    pub partial: bool,
}

/// Absolute, lexically normalized; never follows symlinks.
fn normalize(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The paths to back up, as a tree of components; `target` marks a path given on the command line.
#[derive(Default)]
struct Trie {
    children: BTreeMap<Vec<u8>, Trie>,
    target: bool,
}

impl Trie {
    fn insert(&mut self, path: &Path) {
        let mut t = self;
        for c in path.components() {
            if let Component::Normal(n) = c {
                if t.target {
                    return; // an ancestor is already backed up whole
                }
                t = t.children.entry(n.as_bytes().to_vec()).or_default();
            }
        }
        t.target = true;
        t.children.clear();
    }

    /// Every target, in the order `build_root` walks them.
    fn all_targets(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        self.targets(Path::new("/"), &mut out);
        out
    }

    /// The targets under `prefix`, in the order `build_root` walks them.
    fn targets(&self, prefix: &Path, out: &mut Vec<PathBuf>) {
        if self.target {
            out.push(prefix.to_path_buf());
            return;
        }
        for (name, child) in &self.children {
            child.targets(&prefix.join(OsStr::from_bytes(name)), out);
        }
    }
}

fn build_root(w: &mut Walker, prefix: &Path, trie: &Trie, prev: Option<&Tree>) -> Result<Tree> {
    let mut nodes = Vec::new();
    for (name, child) in &trie.children {
        let path = prefix.join(OsStr::from_bytes(name));
        let prev_node = prev.and_then(|t| t.find(name));
        if child.target {
            if let Some(n) = w.entry(&path, name, prev_node)? {
                w.targets_found += 1;
                nodes.push(n);
            }
            continue;
        }
        // A parent of a backed-up path: recorded as the directory it leads to, even when
        // it is a symlink (`/home -> /data/home`), so the given path restores where it was
        // given and shows in the mount. Only the chosen children are included.
        let md = match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => m,
            Ok(_) => {
                w.warn(&path, "is not a directory", true);
                continue;
            }
            Err(e) => {
                w.warn(&path, format!("cannot stat: {e}"), true);
                continue;
            }
        };
        let mut node = node_from_metadata(name, &md, &mut w.names, w.atime);
        node.xattrs = fsmeta::read_xattrs_deref(&path).unwrap_or_default();
        let prev_tree = w.prev_tree(prev_node)?;
        let sub = build_root(w, &path, child, prev_tree.as_ref())?;
        node.subtree = Some(w.store_tree(sub)?);
        nodes.push(node);
    }
    Ok(Tree { nodes })
}

/// The targets of a walk of `paths`, in its order (`Trie::targets`).
fn walk_targets(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut trie = Trie::default();
    for p in paths {
        trie.insert(&normalize(p)?);
    }
    Ok(trie.all_targets())
}

fn excludes(patterns: &[String]) -> Result<Excludes> {
    let (mut full, mut name) = (GlobSetBuilder::new(), GlobSetBuilder::new());
    for p in patterns {
        let g = Glob::new(p).map_err(|e| Error::InvalidArgument(format!("--exclude {p}: {e}")))?;
        if p.contains('/') {
            full.add(g);
        } else {
            name.add(g);
        }
    }
    let bad = |e: globset::Error| Error::InvalidArgument(e.to_string());
    Ok(Excludes {
        full: full.build().map_err(bad)?,
        name: name.build().map_err(bad)?,
    })
}

pub(crate) fn now() -> (i64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}

pub fn format_time(t: (i64, u32)) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.0)
        .map(|d| d.replace_nanosecond(t.1).unwrap_or(d))
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// This machine's hostname and user, as `repo::env::SystemEnv` read them.
pub(crate) fn host_and_user() -> (String, String) {
    let env = crate::repo::env::system();
    let id = env.identity();
    (id.hostname.clone(), id.username.clone())
}

pub fn ingest(repo: &Repository, cat: &mut Catalog, opts: IngestOptions) -> Result<IngestReport> {
    let started = std::time::Instant::now();
    // A shared lock before anything is read: no prune deletes while we decide what to
    // reuse, until our snapshot is committed (docs/prune.md).
    let lock = Lock::acquire(repo, false, "ingest", opts.retry_lock)?;
    // Other hosts' snapshots and chunks first, so we dedup against them.
    sync::sync(cat, repo)?;
    let time = opts.time.unwrap_or_else(|| repo.env().now());
    let excl = excludes(&opts.excludes)?;
    let prev = cat.snapshots(Some(&opts.set))?.pop();
    let prev_root = match &prev {
        Some(s) => cat.load_tree(&s.manifest.root)?,
        None => None,
    };
    let mut trie = Trie::default();
    let mut paths = Vec::new();
    for p in &opts.paths {
        let n = normalize(p)?;
        paths.push(n.to_string_lossy().into_owned());
        trie.insert(&n);
    }
    if let Some(s) = &opts.stream {
        paths.push(format!("/{}", s.name().trim_start_matches('/')));
    }
    let progress: std::sync::Arc<dyn crate::progress::Progress> = match &opts.progress {
        Some(p) => p.clone(),
        None => std::sync::Arc::new(crate::progress::NoProgress),
    };
    if let (Some(p), None) = (&opts.progress, &opts.stream) {
        // Summed beside the walk, for an ETA: never waited for.
        let (paths, excl, p) = (opts.paths.clone(), opts.excludes.clone(), p.clone());
        std::thread::spawn(move || p.set_total(scan_size(&paths, &excl)));
    }

    // What is really in the store now: dedup never trusts the catalog alone, and never
    // reuses a pack a prune announced it deletes (repo::doomed).
    let packs = reusable_packs(repo)?;
    let reach = opts.reach();
    let data_tier = reach.tier();
    // A self-contained snapshot's data comes only from packs of its own class.
    let own_class_packs;
    let data_packs = match &reach {
        Reach::Tier(_) => &packs,
        Reach::Class(class) => {
            own_class_packs = cat.packs_in_class(class, &packs)?;
            &own_class_packs
        }
    };
    progress.begin();
    let cat_ref: &Catalog = cat;
    let lead = if prev_root.is_none() {
        metaahead::Lead::with_content()
    } else {
        metaahead::Lead::default()
    };
    let ahead_excl = excludes(&opts.excludes)?;
    let walked = std::thread::scope(|scope| {
        // Also on a failed walk or a panic: the scope waits for the thread ahead.
        let _finish = metaahead::FinishOnDrop(&lead);
        if opts.stream.is_none() {
            let targets = trie.all_targets();
            let (excl, lead) = (&ahead_excl, &lead);
            scope.spawn(move || metaahead::run(&targets, excl, lead));
        }
        let packer = crate::repo::packer::Packer::start(
            scope,
            repo,
            opts.data_class.clone(),
            opts.compression.unwrap_or_else(|| repo.compression()),
        );
        let chunker = Chunker {
            repo,
            catalog: cat_ref,
            packer: &packer,
            seen: crate::repo::index::IdSet::default(),
            progress: &*progress,
            packs: &packs,
            data_packs,
            data_tier,
            similar: None,
            deltas: opts.delta && !repo.legacy(),
            window: Vec::new(),
        };
        let mut w = Walker::new(chunker, cat_ref, excl);
        w.atime = opts.atime;
        w.lead = Some(&lead);
        w.trust_prev = trust_previous(cat_ref, prev.as_ref(), &reach, &packs)?;
        // The walk only reads the catalog: one read transaction for all of it.
        let reading = cat_ref.read_batch()?;
        let root = match &opts.stream {
            Some(src) => source::stream_root(&mut w, src, time, prev_root.as_ref()),
            None if trie.target => w
                .dir(Path::new("/"), prev_root.as_ref())
                .map(|_| w.last_tree.take().unwrap_or_default()),
            None => build_root(&mut w, Path::new("/"), &trie, prev_root.as_ref()),
        };
        // The walk is over: the thread ahead stops now, not after the uploads.
        lead.finish();
        let root_id = root.and_then(|t| {
            let found = w.targets_found > 0 || trie.target;
            if !found && !opts.paths.is_empty() {
                return Err(Error::NoSource(
                    w.warnings.first().cloned().unwrap_or_default(),
                ));
            }
            w.store_tree(t)
        });
        drop(reading);
        let Walker {
            summary,
            warnings,
            unreadable,
            trees,
            ..
        } = w;
        // Always drain the pipeline; a source error wins over what the packer says. Packs of
        // an ingest that does not commit are removed, so that a failure for lack of space
        // does not make the next ingest fail too — but only while our lock is certainly
        // still ours: once it was lost, a prune may have indexed them (docs/prune.md).
        match (root_id, packer.finish()) {
            (Ok(root_id), Ok(written)) => {
                Ok((root_id, summary, warnings, unreadable, trees, written))
            }
            (Err(e), Ok(written)) => {
                crate::repo::commit::discard_if_ours(repo, &lock, &written.packs);
                Err(e)
            }
            (r, Err((e, packs))) => {
                crate::repo::commit::discard_if_ours(repo, &lock, &packs);
                Err(r.err().unwrap_or(e))
            }
        }
    });
    progress.end();
    let (root_id, summary, warnings, unreadable, trees, written) = walked?;

    let mut summary = summary;
    summary.bytes_added = written.bytes_added;
    summary.delta_chunks = written.deltas;
    summary.delta_chunk_bytes = written.delta_raw_bytes;
    let index = IndexFile {
        packs: written.packs,
    };
    let id_ = repo.env().identity();
    let (hostname, username) = (id_.hostname.clone(), id_.username.clone());
    let manifest = Manifest {
        version: 1,
        set: opts.set.clone(),
        time,
        tags: opts.tags.clone(),
        paths,
        hostname,
        username,
        root: root_id,
        summary: summary.clone(),
        program: format!("cofre {}", env!("CARGO_PKG_VERSION")),
        // Recorded even for the default, so `check` can tell "STANDARD" from "not known"
        // (manifests of earlier versions).
        data_class: Some(
            opts.data_class
                .clone()
                .unwrap_or_else(|| "STANDARD".to_string()),
        ),
        self_contained: matches!(reach, Reach::Class(_)),
    };
    let committed = crate::repo::commit::commit(repo, &lock, &index, || {
        // A manifest's name is the hash of bytes with a random nonce: always ours.
        repo.save_manifest(&manifest).map(|id| (id, true))
    })?;
    let (index_name, id) = (committed.index, committed.snapshot);
    drop(lock);
    // The snapshot is committed. A catalog failure now is repaired by the next sync.
    if let Err(e) = record(cat, index_name.as_deref(), &index, trees, &id, &manifest) {
        tracing::warn!("snapshot {id} saved, but the catalog was not updated ({e}); `cofre catalog sync` repairs it");
    }
    Ok(IngestReport {
        snapshot: id,
        set: opts.set,
        time: format_time(time),
        summary,
        duration_secs: started.elapsed().as_secs_f64(),
        warnings,
        partial: unreadable > 0,
    })
}

/// The packs this ingest may reuse data from: those in the store listing that no doomed
/// list names. Read under our lock: a prune that removes it later writes its list first.
pub(crate) fn reusable_packs(repo: &Repository) -> Result<HashSet<crate::crypto::BlobId>> {
    let doomed = crate::repo::doomed::load(repo)?;
    let mut packs = repo.pack_ids()?;
    if let Some(why) = doomed.reuse_blocked() {
        tracing::warn!("storing everything again, reusing nothing: {why}");
        packs.clear();
    }
    for p in doomed.packs() {
        packs.remove(&p);
    }
    Ok(packs)
}

/// Whether unchanged files may take the previous snapshot's chunks without a catalog query
/// each: its reach is within ours (so, written by this version, every chunk it names had a
/// copy we may depend on), and no pack the catalog knows is missing from the store
/// listing. Saves one query per file on a no-change run (0.45 s of 0.8 s for 45k files).
fn trust_previous(
    cat: &Catalog,
    prev: Option<&crate::catalog::SnapshotRow>,
    reach: &Reach,
    listed: &HashSet<crate::crypto::BlobId>,
) -> Result<bool> {
    // Manifests of earlier versions record no class: their reach is not known. A
    // self-contained snapshot checks every chunk: one its predecessor had to take from a
    // hotter pack (its class copy lost to an abandoned prune) must not be carried on.
    let within = prev
        .filter(|p| p.manifest.data_class.is_some())
        .is_some_and(|p| reach.covers(&Reach::of(&p.manifest)))
        && matches!(reach, Reach::Tier(_));
    Ok(within && cat.packs()?.is_subset(listed))
}

fn record(
    cat: &mut Catalog,
    index_name: Option<&str>,
    index: &IndexFile,
    trees: spool::TreeSpool,
    id: &str,
    manifest: &Manifest,
) -> Result<()> {
    trees.check()?;
    if let Some(name) = index_name {
        cat.insert_index(name, index)?;
    }
    let tx = cat.writer()?;
    trees.for_each(|hash, tree| tx.insert_tree(hash, tree).map(|_| ()))?;
    tx.insert_snapshot(id, manifest)?;
    tx.commit()
}

/// Total size of regular files under `paths`, for the ETA. Best effort.
fn scan_size(paths: &[PathBuf], patterns: &[String]) -> u64 {
    let Ok(excl) = excludes(patterns) else {
        return 0;
    };
    let mut stack: Vec<PathBuf> = paths.to_vec();
    let mut total = 0;
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()).filter(|p| !excl.matches(p)));
            }
        } else if md.is_file() {
            total += md.len();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_come_out_merged_and_in_the_order_the_walk_takes_them() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["/b", "/a"], &["/a", "/b"]),
            // A nested target is part of its ancestor's walk.
            (&["/a/b", "/a", "/b"], &["/a", "/b"]),
            // Component by component, not byte by byte: `a` before `a-b`.
            (&["/x/a-b", "/x/a/c"], &["/x/a/c", "/x/a-b"]),
            (&["/"], &["/"]),
            (&["/srv", "/srv"], &["/srv"]),
        ];
        for (given, want) in cases {
            let mut trie = Trie::default();
            for p in given.iter() {
                trie.insert(Path::new(p));
            }
            let mut got = Vec::new();
            trie.targets(Path::new("/"), &mut got);
            let want: Vec<PathBuf> = want.iter().map(PathBuf::from).collect();
            assert_eq!(got, want, "{given:?}");
        }
    }
}
