//! The trees of a snapshot being ingested, kept for the catalog, which records them only
//! once the snapshot is committed. They were held in memory: a million-file tree made
//! ingest peak at 650 MB (docs/benchmarks.md, "A million files"). They go to an unnamed
//! temporary file instead (encoded as stored, children before parents), and are read back
//! one at a time.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::model::Tree;
use crate::repo::decode_tree;

pub struct TreeSpool {
    /// Opened at the first tree: an ingest that fails before has nothing to clean up.
    file: Option<BufWriter<File>>,
    count: u64,
}

fn io(e: std::io::Error) -> Error {
    Error::io("the ingest's temporary tree file", e)
}

impl TreeSpool {
    pub fn new() -> Self {
        TreeSpool {
            file: None,
            count: 0,
        }
    }

    /// Appends a tree, `raw` being its encoding (`encode_tree`).
    pub fn push(&mut self, id: &BlobId, raw: &[u8]) -> Result<()> {
        let f = match &mut self.file {
            Some(f) => f,
            None => self
                .file
                .insert(BufWriter::new(tempfile::tempfile().map_err(io)?)),
        };
        let len = u32::try_from(raw.len()).map_err(|_| Error::corrupt("tree", "over 4 GiB"))?;
        f.write_all(&id.0).map_err(io)?;
        f.write_all(&len.to_le_bytes()).map_err(io)?;
        f.write_all(raw).map_err(io)?;
        self.count += 1;
        Ok(())
    }

    /// Calls `each` with every tree, in the order they were pushed.
    pub fn for_each(self, mut each: impl FnMut(&BlobId, &Tree) -> Result<()>) -> Result<()> {
        let Some(f) = self.file else { return Ok(()) };
        let mut f = f.into_inner().map_err(|e| io(e.into_error()))?;
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut r = BufReader::new(f);
        let mut raw = Vec::new();
        for _ in 0..self.count {
            let mut head = [0u8; 36];
            r.read_exact(&mut head).map_err(io)?;
            let mut id = BlobId([0; 32]);
            id.0.copy_from_slice(&head[..32]);
            let mut len = [0u8; 4];
            len.copy_from_slice(&head[32..]);
            raw.resize(u32::from_le_bytes(len) as usize, 0);
            r.read_exact(&mut raw).map_err(io)?;
            each(&id, &decode_tree(&raw, &id)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Node};
    use crate::repo::encode_tree;

    fn node(name: String, size: u64) -> Node {
        Node {
            name: name.into_bytes(),
            kind: Kind::File,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            size,
            mtime: (1, 2),
            atime: (3, 4),
            ctime: (5, 6),
            inode: size,
            dev: 1,
            nlink: 1,
            rdev: 0,
            target: Vec::new(),
            xattrs: Vec::new(),
            chunks: Vec::new(),
            blake3: Some([7; 32]),
            subtree: None,
        }
    }

    #[test]
    fn trees_come_back_in_order() {
        let mut spool = TreeSpool::new();
        let mut want = Vec::new();
        for i in 0..300u32 {
            let tree = Tree {
                nodes: (0..i % 7)
                    .map(|j| node(format!("f{i}-{j}"), u64::from(i * j)))
                    .collect(),
            };
            let id = BlobId([i as u8; 32]);
            spool
                .push(&id, &encode_tree(&tree).expect("encode"))
                .expect("push");
            want.push((id, tree));
        }
        let mut got = Vec::new();
        spool
            .for_each(|id, t| {
                got.push((*id, t.clone()));
                Ok(())
            })
            .expect("read back");
        assert_eq!(got, want);
        TreeSpool::new()
            .for_each(|_, _| panic!("an empty spool has no trees"))
            .expect("empty");
    }
}
