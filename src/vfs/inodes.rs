//! The inode table: stable numbers derived from where an entry is (hash of parent inode
//! and name, or of snapshot and source inode for hardlinks), so a remount of the same
//! catalog gives the same numbers.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::layout::SnapRef;
use crate::model::{Kind, Node};

pub const ROOT: u64 = 1;

#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory of the virtual layout (`""` is the mount root).
    Virtual { path: String },
    /// A symlink of the virtual layout (`latest`, `ids/…`).
    Link { target: String },
    /// A snapshot's root: the original `/`.
    SnapRoot { snap: Arc<SnapRef> },
    /// A node inside a snapshot.
    Node {
        snap: Arc<SnapRef>,
        rowid: i64,
        meta: Arc<Meta>,
        subtree: Option<i64>,
    },
}

impl Entry {
    /// Whether `self` and `other` name the same thing. For a node: the same file of the
    /// same snapshot (device, inode and attributes), under the same name, or under any
    /// name when hard-linked (they share one inode).
    pub(crate) fn identifies(&self, other: &Entry) -> bool {
        match (self, other) {
            (Entry::Virtual { path: a }, Entry::Virtual { path: b }) => a == b,
            (Entry::Link { target: a }, Entry::Link { target: b }) => a == b,
            (Entry::SnapRoot { snap: a }, Entry::SnapRoot { snap: b }) => a.id == b.id,
            (
                Entry::Node {
                    snap: a, meta: m, ..
                },
                Entry::Node {
                    snap: b, meta: n, ..
                },
            ) => {
                a.id == b.id
                    && m.inode == n.inode
                    && m.dev == n.dev
                    && (m.size, m.mtime, m.ctime) == (n.size, n.mtime, n.ctime)
                    && (m.nlink > 1 || m.name == n.name)
            }
            _ => false,
        }
    }
}

/// What the inode table keeps of a node: its name and attributes, about a third of a
/// whole `Node` (a `find` over a year of snapshots holds millions). Symlink targets, xattrs,
/// the content hash and chunk lists are read from the catalog by row id when asked.
#[derive(Debug)]
pub struct Meta {
    pub name: Box<[u8]>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, u32),
    pub atime: (i64, u32),
    pub ctime: (i64, u32),
    pub inode: u64,
    pub dev: u64,
    pub nlink: u64,
    pub rdev: u64,
    /// Bytes of stored data (size minus holes), for st_blocks.
    pub data_bytes: u64,
    /// Symlink target length (st_size of a symlink).
    pub target_len: u32,
    /// Whether there are xattrs to read from the catalog (most nodes have none).
    pub has_xattrs: bool,
}

impl Meta {
    pub fn of(n: &Node) -> Meta {
        Meta {
            name: n.name.clone().into_boxed_slice(),
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            size: n.size,
            mtime: n.mtime,
            atime: n.atime,
            ctime: n.ctime,
            inode: n.inode,
            dev: n.dev,
            nlink: n.nlink,
            rdev: n.rdev,
            data_bytes: n.chunks.iter().map(|c| c.len as u64).sum(),
            target_len: n.target.len() as u32,
            has_xattrs: !n.xattrs.is_empty(),
        }
    }
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

/// Bits of an entry's inode number (`key_position`) that hold its place in its directory.
const POS_BITS: u32 = 24;

/// The inode number of the entry at `pos` in directory `parent`'s listing (its place in the
/// catalog's rows of that tree, which follow the listing, by name): the parent's hash
/// above, `pos` below, so one directory's entries number upwards in listing order.
///
/// `cp -a` copies a directory's files in inode-number order (coreutils sorts each listing
/// by `d_ino`), and ingest stores them in the packs in listing order (it walks by name).
/// With hashed numbers a copy read each directory in random order, jumping between packs
/// (602 segment misses in a `cp -a` of the bench corpus over S3); numbered in order, it
/// reads the packs front to back and read-ahead has what comes next.
pub fn key_position(parent: u64, pos: u64, name: &[u8]) -> u64 {
    if pos >= 1 << POS_BITS {
        // Past the block (a directory of over 16M entries): hashed, as before.
        return key_child(parent, name);
    }
    let dir = hash(&[b"dir", &parent.to_le_bytes()]) >> POS_BITS;
    ((dir << POS_BITS) | pos).max(2)
}

/// Whether two numbers are of one directory's block (`key_position`).
pub fn same_block(a: u64, b: u64) -> bool {
    a >> POS_BITS == b >> POS_BITS
}

/// The next inode number to try when `ino` is taken by another entry: the same place in
/// the next directory block, so two directories whose hashes collide do not probe
/// through each other's entries one by one.
fn next_probe(ino: u64) -> u64 {
    (ino.wrapping_add(1 << POS_BITS) & (u64::MAX >> 1)).max(2)
}

pub fn key_child(parent: u64, name: &[u8]) -> u64 {
    hash(&[b"child", &parent.to_le_bytes(), name])
}

/// One inode number for every name of a hard-linked file in a snapshot: by its (dev,
/// inode) and `Node::link_identity`, so two entries that share an inode number but not
/// what it holds get two inodes (one would show one name the other's size and, from the
/// page cache, content).
pub fn key_hardlink(snapshot: &str, n: &Node) -> u64 {
    // Encoding a node in memory cannot fail; were it to, (dev, inode) alone still key it.
    let identity = postcard::to_allocvec(&n.link_identity()).unwrap_or_default();
    hash(&[
        b"hardlink",
        snapshot.as_bytes(),
        &n.dev.to_le_bytes(),
        &n.inode.to_le_bytes(),
        &identity,
    ])
}

/// One inode: its parent, what it is, and how many lookups the kernel holds on it.
struct Slot {
    parent: u64,
    entry: Entry,
    lookups: u64,
}

/// The inode table is this many maps, by the top bits of the inode number (a hash, so
/// evenly spread). A map that grows moves to a table twice its size and holds both for the
/// move: as one map, at a million entries that was 68 MB of old table beside 136 MB of new,
/// and the mount's peak 53 MiB above its size after a `find` (docs/benchmarks.md, "The
/// mount's peak at a million entries"). Sixteen maps grow one at a time.
const SHARDS: usize = 16;

fn shard_of(ino: u64) -> usize {
    // Inode numbers are 63-bit hashes (`hash`): bits 62..59 pick the map.
    (ino >> 59) as usize % SHARDS
}

/// The inodes the kernel knows. An entry lives while the kernel holds lookups on it (FUSE
/// `forget` gives them back) or while an open directory listing names it, so `find` over a
/// year of snapshots does not grow the mount without bound.
pub struct Inodes {
    shards: [RwLock<HashMap<u64, Slot>>; SHARDS],
}

impl Default for Inodes {
    fn default() -> Self {
        Inodes {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
        }
    }
}

impl Inodes {
    pub fn new() -> Inodes {
        let i = Inodes::default();
        let root = Slot {
            parent: ROOT,
            entry: Entry::Virtual {
                path: String::new(),
            },
            lookups: 1,
        };
        i.shard(ROOT).write().insert(ROOT, root);
        i
    }

    fn shard(&self, ino: u64) -> &RwLock<HashMap<u64, Slot>> {
        &self.shards[shard_of(ino)]
    }

    pub fn get(&self, ino: u64) -> Option<(u64, Entry)> {
        self.shard(ino)
            .read()
            .get(&ino)
            .map(|s| (s.parent, s.entry.clone()))
    }

    /// Registers `entry` under `key` (probing past collisions with a different entry);
    /// returns its inode number. `lookup`: the reply gives the kernel a lookup on it
    /// (counted under the same lock, so a concurrent `drop_unreferenced` cannot race it).
    pub fn insert(
        &self,
        key: u64,
        parent: u64,
        entry: Entry,
        same: impl Fn(&Entry) -> bool,
        lookup: bool,
    ) -> u64 {
        let mut ino = key;
        // Probing stays in one map but where it crosses into the next (never in practice:
        // a collision right below a multiple of 2^59); the map of `ino`
        // is locked while it is looked at, so a concurrent insert of the same entry finds it.
        let mut shard = shard_of(ino);
        let mut map = self.shards[shard].write();
        loop {
            if shard_of(ino) != shard {
                drop(map);
                shard = shard_of(ino);
                map = self.shards[shard].write();
            }
            match map.get_mut(&ino) {
                None => {
                    let lookups = u64::from(lookup);
                    map.insert(
                        ino,
                        Slot {
                            parent,
                            entry,
                            lookups,
                        },
                    );
                    return ino;
                }
                Some(slot) if same(&slot.entry) => {
                    // Refresh virtual entries (their targets move as snapshots arrive).
                    slot.parent = parent;
                    slot.entry = entry;
                    slot.lookups += u64::from(lookup);
                    return ino;
                }
                Some(_) => ino = next_probe(ino),
            }
        }
    }

    /// The kernel is about to take a lookup on `ino` from a READDIRPLUS entry: counts it,
    /// and returns the number to send. The entry is put back if a closed listing had
    /// dropped it meanwhile; if another entry took its number in between (two directories
    /// whose hashes collide, `key_position`), it is numbered anew, so the kernel never
    /// pairs one entry's attributes with another's content.
    pub fn add_lookup(&self, ino: u64, parent: u64, entry: &Entry) -> u64 {
        {
            let mut map = self.shard(ino).write();
            match map.get_mut(&ino) {
                Some(slot) if slot.entry.identifies(entry) => {
                    slot.lookups += 1;
                    return ino;
                }
                None => {
                    map.insert(
                        ino,
                        Slot {
                            parent,
                            entry: entry.clone(),
                            lookups: 1,
                        },
                    );
                    return ino;
                }
                Some(_) => {}
            }
        }
        self.insert(
            next_probe(ino),
            parent,
            entry.clone(),
            |e| e.identifies(entry),
            true,
        )
    }

    /// Takes a lookup on `ino` if the kernel holds it (an entry only listed may not have
    /// reached the kernel yet) and it still stands for `entry`: while it is held, the number
    /// cannot be given to another entry. Given back with `release`.
    pub fn hold(&self, ino: u64, entry: &Entry) -> bool {
        match self.shard(ino).write().get_mut(&ino) {
            Some(slot) if slot.lookups > 0 && slot.entry.identifies(entry) => {
                slot.lookups += 1;
                true
            }
            _ => false,
        }
    }

    /// Gives back a `hold`, if `ino` still stands for `entry` (a catalog replaced under the
    /// mount may have dropped it, and the number gone to another entry since).
    pub fn release(&self, ino: u64, entry: &Entry) {
        self.give_back(ino, 1, |e| e.identifies(entry));
    }

    /// FUSE forget: the kernel gives back `n` lookups; at zero the inode is gone.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino != ROOT {
            self.give_back(ino, n, |_| true);
        }
    }

    /// Takes `n` lookups from `ino` if it stands for an entry `same` accepts; at zero the
    /// inode is gone.
    fn give_back(&self, ino: u64, n: u64, same: impl Fn(&Entry) -> bool) {
        let mut map = self.shard(ino).write();
        if let Some(slot) = map.get_mut(&ino).filter(|s| same(&s.entry)) {
            slot.lookups = slot.lookups.saturating_sub(n);
            if slot.lookups == 0 {
                map.remove(&ino);
            }
        }
    }

    /// Drops the entries of a closed listing that the kernel never looked up.
    pub fn drop_unreferenced(&self, inos: impl Iterator<Item = u64>) {
        for ino in inos {
            let mut map = self.shard(ino).write();
            if ino != ROOT && map.get(&ino).is_some_and(|s| s.lookups == 0) {
                map.remove(&ino);
            }
        }
    }

    /// Rewrites every entry, parents before children: `f(entry, its parent's new entry)`
    /// gives the new entry, or None to drop it (and, with it, everything below it).
    pub fn remap(&self, mut f: impl FnMut(&Entry, &Entry) -> Option<Entry>) {
        // Every map at once, locked in order (nothing else holds two): a consistent table.
        let mut maps: Vec<_> = self.shards.iter().map(|s| s.write()).collect();
        let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
        for (ino, slot) in maps.iter().flat_map(|m| m.iter()) {
            if *ino != ROOT {
                children.entry(slot.parent).or_default().push(*ino);
            }
        }
        let mut keep = std::collections::HashSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(parent) = todo.pop() {
            let parent_entry = maps[shard_of(parent)].get(&parent).map(|s| s.entry.clone());
            let Some(parent_entry) = parent_entry else {
                continue;
            };
            for child in children.remove(&parent).unwrap_or_default() {
                let Some(slot) = maps[shard_of(child)].get_mut(&child) else {
                    continue;
                };
                if let Some(e) = f(&slot.entry, &parent_entry) {
                    slot.entry = e;
                    keep.insert(child);
                    todo.push(child);
                }
            }
        }
        for map in &mut maps {
            map.retain(|ino, _| keep.contains(ino));
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.read().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str) -> Entry {
        Entry::Virtual { path: path.into() }
    }

    /// `insert`'s test of sameness for the virtual directory `n`.
    fn named(n: &'static str) -> impl Fn(&Entry) -> bool {
        move |e| matches!(e, Entry::Virtual { path } if path == n)
    }

    #[test]
    fn probing_past_a_collision_crosses_into_the_next_map() {
        let t = Inodes::new();
        let key = (1u64 << 59) - 1; // the last number of the first map
        let a = t.insert(key, ROOT, dir("a"), named("a"), true);
        assert_eq!(a, key);
        // Another entry with the same key goes to the next block, in the next map.
        let b = t.insert(key, ROOT, dir("b"), named("b"), true);
        assert_eq!(b, key + (1 << POS_BITS));
        assert_ne!(shard_of(a), shard_of(b));
        assert_eq!(
            t.insert(key, ROOT, dir("b"), named("b"), false),
            b,
            "found again"
        );
        assert!(matches!(t.get(b), Some((ROOT, Entry::Virtual { path })) if path == "b"));
        assert_eq!(t.len(), 3);
        t.forget(b, 1);
        assert!(t.get(b).is_none() && t.get(a).is_some());
        // Every map is remapped: b's entry, put back, is renamed with the rest.
        t.add_lookup(b, ROOT, &dir("b"));
        t.remap(|e, _| match e {
            Entry::Virtual { path } => Some(dir(&format!("{path}2"))),
            _ => None,
        });
        assert!(matches!(t.get(b), Some((_, Entry::Virtual { path })) if path == "b2"));
        assert!(matches!(t.get(a), Some((_, Entry::Virtual { path })) if path == "a2"));
    }

    #[test]
    fn entries_live_while_the_kernel_holds_lookups() {
        let t = Inodes::new();
        let same = |e: &Entry| matches!(e, Entry::Virtual { .. });
        let a = t.insert(key_child(ROOT, b"a"), ROOT, dir("a"), same, true);
        let b = t.insert(key_child(ROOT, b"b"), ROOT, dir("b"), same, false);
        assert_eq!(
            t.insert(key_child(ROOT, b"a"), ROOT, dir("a"), same, true),
            a
        );
        assert_eq!(t.len(), 3);
        // b was only listed: gone when its listing closes; a has two lookups.
        t.drop_unreferenced([a, b, ROOT].into_iter());
        assert!(t.get(b).is_none() && t.get(a).is_some());
        t.forget(a, 1);
        assert!(t.get(a).is_some(), "one lookup left");
        t.forget(a, 1);
        assert!(t.get(a).is_none());
        // READDIRPLUS revives an entry a closed listing dropped; root is never forgotten.
        t.add_lookup(b, ROOT, &dir("b"));
        assert!(t.get(b).is_some());
        t.forget(ROOT, 5);
        assert!(t.get(ROOT).is_some());
        assert_eq!(t.len(), 2);
    }
    #[test]
    fn a_directorys_entries_number_upwards_and_collisions_move_to_another_block() {
        // (parent, positions): numbers rise with the position, in one block per parent.
        for parent in [ROOT, 7, u64::MAX >> 1] {
            let inos: Vec<u64> = [0u64, 1, 2, 500, (1 << POS_BITS) - 1]
                .iter()
                .map(|&p| key_position(parent, p, b"x"))
                .collect();
            assert!(inos.windows(2).all(|w| w[0] < w[1]), "{parent}: {inos:?}");
            assert!(inos.iter().all(|&i| i >= 2 && i >> 63 == 0), "{inos:?}");
            assert!(inos.iter().all(|&i| i >> POS_BITS == inos[0] >> POS_BITS));
        }
        assert_ne!(
            key_position(ROOT, 3, b"x") >> POS_BITS,
            key_position(9, 3, b"x") >> POS_BITS
        );
        // Past the block: hashed by name.
        assert_eq!(
            key_position(ROOT, 1 << POS_BITS, b"x"),
            key_child(ROOT, b"x")
        );
        // Another entry at a taken number goes to the same place in the next block.
        let t = Inodes::new();
        let key = key_position(ROOT, 5, b"x");
        let same_a = |e: &Entry| matches!(e, Entry::Virtual { path } if path == "a");
        let same_b = |e: &Entry| matches!(e, Entry::Virtual { path } if path == "b");
        assert_eq!(t.insert(key, ROOT, dir("a"), same_a, true), key);
        let b = t.insert(key, ROOT, dir("b"), same_b, true);
        assert_eq!(b, next_probe(key));
        assert_eq!(b & ((1 << POS_BITS) - 1), 5);
        assert_eq!(t.insert(key, ROOT, dir("b"), same_b, true), b);
    }
    #[test]
    fn a_listed_entry_whose_number_was_taken_meanwhile_is_numbered_anew() {
        let t = Inodes::new();
        let key = key_position(ROOT, 3, b"x");
        // Listed (no lookup yet), then dropped when another listing of it closed.
        assert_eq!(t.insert(key, ROOT, dir("a"), named("a"), false), key);
        t.drop_unreferenced([key].into_iter());
        // An entry of a colliding directory takes the number.
        assert_eq!(t.insert(key, ROOT, dir("c"), named("c"), true), key);
        // The listing hands out "a": not under c's number.
        let a = t.add_lookup(key, ROOT, &dir("a"));
        assert_ne!(a, key);
        assert!(matches!(t.get(a), Some((_, Entry::Virtual { path })) if path == "a"));
        assert!(matches!(t.get(key), Some((_, Entry::Virtual { path })) if path == "c"));
        // Its own number, still held: counted there.
        assert_eq!(t.add_lookup(a, ROOT, &dir("a")), a);
    }

    /// The mount pushes a file's content under its number (`mount/push.rs`) while it holds
    /// the number: it is not given to another entry meanwhile, and not held at all once
    /// it stands for another entry, or while the kernel does not hold it.
    #[test]
    fn a_held_number_stays_with_its_entry() {
        let t = Inodes::new();
        let key = key_position(ROOT, 5, b"x");
        // Listed only: the kernel may not have it yet.
        assert_eq!(t.insert(key, ROOT, dir("a"), named("a"), false), key);
        assert!(!t.hold(key, &dir("a")), "listed, not looked up");
        assert_eq!(t.add_lookup(key, ROOT, &dir("a")), key);
        assert!(t.hold(key, &dir("a")));
        // The kernel forgets "a" while it is held: the number stays "a"'s, and an entry
        // of a colliding directory goes elsewhere.
        t.forget(key, 1);
        assert_ne!(t.insert(key, ROOT, dir("c"), named("c"), true), key);
        t.release(key, &dir("a"));
        assert!(t.get(key).is_none(), "let go once no longer held");
        // The number now stands for "c": a hold for "a" is refused, and a late release
        // for "a" takes nothing from "c".
        assert_eq!(t.insert(key, ROOT, dir("c"), named("c"), true), key);
        assert!(!t.hold(key, &dir("a")));
        t.release(key, &dir("a"));
        assert!(t.get(key).is_some(), "c keeps its lookup");
        assert!(!t.hold(key_position(ROOT, 6, b"y"), &dir("a")), "no entry");
    }
}
