//! What a snapshot is made of: manifests, trees (one blob per directory) and nodes.
//! Serialized with postcard inside encrypted blobs; see docs/format.md.

use serde::{Deserialize, Serialize};

use crate::crypto::BlobId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDev,
    BlockDev,
    Socket,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::CharDev => "chardev",
            Kind::BlockDev => "blockdev",
            Kind::Socket => "socket",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::File,
            Kind::Dir,
            Kind::Symlink,
            Kind::Fifo,
            Kind::CharDev,
            Kind::BlockDev,
            Kind::Socket,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One data chunk of a file, placed at `offset`. Gaps between chunks are holes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub offset: u64,
    pub len: u32,
    pub id: BlobId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: Kind,
    /// Full st_mode (type and permission bits, setuid/setgid/sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub size: u64,
    pub mtime: (i64, u32),
    pub atime: (i64, u32),
    pub ctime: (i64, u32),
    pub inode: u64,
    pub dev: u64,
    pub nlink: u64,
    pub rdev: u64,
    #[serde(with = "serde_bytes")]
    pub target: Vec<u8>,
    pub xattrs: Vec<Xattr>,
    pub chunks: Vec<ChunkRef>,
    /// blake3 (unkeyed) of the whole content, for files; lets a copy be verified.
    pub blake3: Option<[u8; 32]>,
    pub subtree: Option<BlobId>,
}

impl Node {
    /// An entry for tests: `name` of `kind`, mode 0644, owned by uid 0, everything else
    /// zero or empty; tests change the fields they are about.
    #[cfg(test)]
    pub(crate) fn sample(name: &[u8], kind: Kind) -> Node {
        Node {
            name: name.to_vec(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            size: 0,
            mtime: (0, 0),
            atime: (0, 0),
            ctime: (0, 0),
            inode: 0,
            dev: 0,
            nlink: 1,
            rdev: 0,
            target: Vec::new(),
            xattrs: Vec::new(),
            chunks: Vec::new(),
            blake3: None,
            subtree: None,
        }
    }

    /// What the inode behind this entry holds: the node without its name and access time.
    /// Ingest gives every name of a hard-linked file this same value, so two entries with
    /// one (dev, inode) and different identities were not one file when read (an inode
    /// number freed and reused during the walk, a file rewritten between the reads of its
    /// names, a repository written by something else). Restore links names, and the mount
    /// gives them one inode number, only when this is equal.
    pub fn link_identity(&self) -> Node {
        Node {
            name: Vec::new(),
            atime: (0, 0),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// A directory's entries, sorted by name bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub new_files: u64,
    pub changed_files: u64,
    pub unchanged_files: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub warnings: u64,
    /// New chunks stored as deltas, and their size before delta compression (absent in
    /// manifests written before deltas).
    #[serde(default)]
    pub delta_chunks: u64,
    #[serde(default)]
    pub delta_chunk_bytes: u64,
}

/// The snapshot manifest, stored last: a snapshot exists once this is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub set: String,
    /// Unix seconds and nanoseconds, UTC.
    pub time: (i64, u32),
    pub tags: Vec<String>,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub root: BlobId,
    pub summary: Summary,
    pub program: String,
    /// The storage class the snapshot's data was written in (None: the default). `check`
    /// reports a snapshot that needs data colder than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_class: Option<String>,
    /// Its data depends on copies in `data_class` only (`repo::index::Reach`): prune keeps
    /// a copy of every chunk there, and ingest never deduplicates it against hotter packs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub self_contained: bool,
}
