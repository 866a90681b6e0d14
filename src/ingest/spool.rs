//! The trees of a snapshot being ingested, kept for the catalog, which records them only
//! once the snapshot is committed. They were held in memory: a million-file tree made
//! ingest peak at 837 MB (docs/benchmarks.md, "A million files"). They go to an unnamed
//! temporary file instead (encoded as stored, children before parents), and are read back
//! one at a time. It is made beside the catalog (a cache directory on disk, where /tmp may
//! be memory). Recording trees in the catalog is best effort (`catalog sync` repairs it), so
//! a spool that cannot be written fails the catalog update, never the backup.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::model::Tree;
use crate::repo::decode_tree;

pub struct TreeSpool {
    dir: PathBuf,
    /// Opened at the first tree: an ingest that fails before has nothing to clean up.
    file: Option<BufWriter<File>>,
    count: u64,
    /// Why the spool stopped taking trees, if it did.
    failed: Option<String>,
}

fn io(e: std::io::Error) -> Error {
    Error::io("the ingest's temporary tree file", e)
}

impl TreeSpool {
    /// A spool whose file will be made in `dir`.
    pub fn new(dir: &Path) -> Self {
        TreeSpool {
            dir: dir.to_path_buf(),
            file: None,
            count: 0,
            failed: None,
        }
    }

    /// Appends a tree, `raw` being its encoding (`encode_tree`). A failure is kept for
    /// `for_each` (and said once), not returned: the backup goes on.
    pub fn push(&mut self, id: &BlobId, raw: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.append(id, raw) {
            tracing::warn!("the catalog will not get this snapshot's trees ({e}); `cofre catalog sync` adds them");
            self.failed = Some(e.to_string());
            self.file = None;
        }
    }

    fn append(&mut self, id: &BlobId, raw: &[u8]) -> Result<()> {
        let f = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(BufWriter::new(
                tempfile::tempfile_in(&self.dir).map_err(io)?,
            )),
        };
        let len = u32::try_from(raw.len()).map_err(|_| Error::corrupt("tree", "over 4 GiB"))?;
        f.write_all(&id.0).map_err(io)?;
        f.write_all(&len.to_le_bytes()).map_err(io)?;
        f.write_all(raw).map_err(io)?;
        self.count += 1;
        Ok(())
    }

    /// Fails if a tree could not be kept: then nothing of the snapshot should be recorded.
    pub fn check(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(Error::corrupt(
                "the ingest's temporary tree file",
                why.clone(),
            )),
            None => Ok(()),
        }
    }

    /// Calls `each` with every tree, in the order they were pushed.
    pub fn for_each(self, mut each: impl FnMut(&BlobId, &Tree) -> Result<()>) -> Result<()> {
        self.check()?;
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
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = TreeSpool::new(dir.path());
        let mut want = Vec::new();
        for i in 0..300u32 {
            let tree = Tree {
                nodes: (0..i % 7)
                    .map(|j| node(format!("f{i}-{j}"), u64::from(i * j)))
                    .collect(),
            };
            let id = BlobId([i as u8; 32]);
            spool.push(&id, &encode_tree(&tree).expect("encode"));
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
        TreeSpool::new(dir.path())
            .for_each(|_, _| panic!("an empty spool has no trees"))
            .expect("empty");
        // A spool that cannot make its file fails the catalog update, not the push.
        let mut broken = TreeSpool::new(&dir.path().join("missing"));
        broken.push(&BlobId([1; 32]), b"x");
        assert!(broken.check().is_err());
        assert!(broken.for_each(|_, _| Ok(())).is_err());
    }
}
