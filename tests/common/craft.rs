//! Library-level access to a test's local repository: read a snapshot's nodes, and store
//! snapshots a clean ingest would not write but a race during ingest, a damaged repository
//! or another program can leave, to test what restore and the mount make of them.

use std::path::Path;
use std::sync::Arc;

use cofre::crypto::BlobId;
use cofre::model::{Node, Tree};
use cofre::repo::Repository;

use super::{Env, PASSWORD};

/// The local repository of `env`, opened with the test password; keep the runtime alive
/// as long as the repository.
pub fn open_local(env: &Env) -> (tokio::runtime::Runtime, Repository) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = Arc::new(cofre::store::local::LocalStore::new(env.repo()));
    let repo = Repository::open(store, rt.handle().clone(), PASSWORD.as_bytes()).expect("open");
    (rt, repo)
}

/// The trees of snapshot `snap` from its root down to the directory holding the entry at
/// `path` (absolute, as ingested), and the names along the way.
fn trees_to(repo: &Repository, snap: &str, path: &Path) -> (Vec<Tree>, Vec<Vec<u8>>) {
    let index = repo.load_master_index().expect("index");
    let root = repo.load_manifest(snap).expect("manifest").root;
    let names: Vec<Vec<u8>> = path
        .iter()
        .skip(1)
        .map(|c| c.as_encoded_bytes().to_vec())
        .collect();
    let mut trees = vec![repo.load_tree(&index, &root).expect("root")];
    for name in &names[..names.len() - 1] {
        let sub = trees
            .last()
            .and_then(|t| t.find(name))
            .and_then(|n| n.subtree);
        let sub = sub.unwrap_or_else(|| panic!("{} is not a directory", path.display()));
        trees.push(repo.load_tree(&index, &sub).expect("tree"));
    }
    (trees, names)
}

/// The node at `path` (absolute, as ingested) in snapshot `snap`.
pub fn snapshot_node(repo: &Repository, snap: &str, path: &Path) -> Node {
    let (trees, names) = trees_to(repo, snap, path);
    let name = names.last().expect("a path below /");
    let tree = trees.last().expect("a tree");
    tree.find(name).cloned().expect("path in snapshot")
}

/// Stores a copy of snapshot `snap`, one second later, in which the node at `path` is
/// changed by `edit`; returns the new snapshot's id.
pub fn edited_snapshot(
    repo: &Repository,
    snap: &str,
    path: &Path,
    edit: impl FnOnce(&mut Node),
) -> String {
    use cofre::repo::pack::BlobKind;
    let (mut trees, names) = trees_to(repo, snap, path);
    let mut edit = Some(edit);
    let mut child: Option<BlobId> = None;
    let written = std::thread::scope(|scope| {
        let packer = cofre::repo::packer::Packer::start(scope, repo, None, repo.compression());
        for (tree, name) in trees.iter_mut().zip(&names).rev() {
            let node = tree
                .nodes
                .iter_mut()
                .find(|n| n.name == *name)
                .expect("node");
            match child {
                Some(id) => node.subtree = Some(id),
                None => (edit.take().expect("once"))(node),
            }
            let raw = cofre::repo::encode_tree(tree).expect("encode");
            let id = repo.keys().blob_id(&raw);
            packer.add(id, raw, BlobKind::Tree).expect("add");
            child = Some(id);
        }
        packer.finish().map_err(|(e, _)| e).expect("packs")
    });
    let index = cofre::repo::index::IndexFile {
        packs: written.packs,
    };
    repo.save_index(&index).expect("index");
    let mut manifest = repo.load_manifest(snap).expect("manifest");
    manifest.root = child.expect("root");
    manifest.time.0 += 1;
    repo.save_manifest(&manifest).expect("manifest")
}
