//! The inode table: stable numbers derived from where an entry is (hash of parent inode
//! and name, or of snapshot and source inode for hardlinks), so a remount of the same
//! catalog gives the same numbers.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::layout::SnapRef;
use crate::model::Node;

pub const ROOT: u64 = 1;

#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory of the virtual layout (`""` is the mount root).
    Virtual { path: String },
    /// A symlink of the virtual layout (`latest`, `ids/…`).
    Link { target: String },
    /// A snapshot's root: the original `/`.
    SnapRoot { snap: Arc<SnapRef> },
    /// A node inside a snapshot (`node.chunks` is left empty; read at open).
    Node {
        snap: Arc<SnapRef>,
        rowid: i64,
        node: Arc<Node>,
        subtree: Option<i64>,
        /// Bytes of stored data (size minus holes), for st_blocks.
        data_bytes: u64,
    },
}

#[derive(Default)]
pub struct Inodes {
    map: RwLock<HashMap<u64, (u64, Entry)>>,
}

fn hash(parts: &[&[u8]]) -> u64 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let b = h.finalize();
    let mut n = [0u8; 8];
    n.copy_from_slice(&b.as_bytes()[..8]);
    // Keep clear of the root and of 0 (invalid); stay in 63 bits for tools that sign-extend.
    (u64::from_le_bytes(n) >> 1).max(2)
}

pub fn key_child(parent: u64, name: &[u8]) -> u64 {
    hash(&[b"child", &parent.to_le_bytes(), name])
}

pub fn key_hardlink(snapshot: &str, dev: u64, inode: u64) -> u64 {
    hash(&[
        b"hardlink",
        snapshot.as_bytes(),
        &dev.to_le_bytes(),
        &inode.to_le_bytes(),
    ])
}

impl Inodes {
    pub fn new() -> Inodes {
        let i = Inodes::default();
        i.map.write().insert(
            ROOT,
            (
                ROOT,
                Entry::Virtual {
                    path: String::new(),
                },
            ),
        );
        i
    }

    pub fn get(&self, ino: u64) -> Option<(u64, Entry)> {
        self.map.read().get(&ino).cloned()
    }

    /// Registers `entry` under `key` (probing past collisions with a different entry);
    /// returns its inode number.
    pub fn insert(
        &self,
        key: u64,
        parent: u64,
        entry: Entry,
        same: impl Fn(&Entry) -> bool,
    ) -> u64 {
        let mut map = self.map.write();
        let mut ino = key;
        loop {
            match map.get(&ino) {
                None => {
                    map.insert(ino, (parent, entry));
                    return ino;
                }
                Some((_, e)) if same(e) => {
                    // Refresh virtual entries (their targets move as snapshots arrive).
                    map.insert(ino, (parent, entry));
                    return ino;
                }
                Some(_) => ino = ino.wrapping_add(1).max(2),
            }
        }
    }
}
