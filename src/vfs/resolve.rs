//! Chunk locations of the files being read, resolved once, and ahead of their reads.

use std::sync::Arc;

use crossbeam_channel::{unbounded, Sender};
use lru::LruCache;
use parking_lot::Mutex;

use super::reader::OpenFile;
use crate::catalog::pool::Pool;
use crate::catalog::Catalog;
use crate::error::Result;
use crate::model::ChunkRef;

/// Resolved files by inode number, with the catalog row they were resolved from: a number
/// can come to stand for another entry (`Inodes::add_lookup`), or the row for another
/// node after the catalog was replaced, and a file is used only for the row it was
/// resolved from (`Vfs::file`).
pub(super) type Files = Arc<Mutex<LruCache<u64, (i64, Arc<OpenFile>)>>>;

/// A listed file whose chunk locations can be resolved before it is read.
pub(super) struct Pending {
    pub(super) ino: u64,
    pub(super) rowid: i64,
    pub(super) path: String,
    pub(super) size: u64,
    pub(super) chunks: Vec<ChunkRef>,
    pub(super) blake3: Option<[u8; 32]>,
    /// The directory it was listed in.
    pub(super) dir: u64,
}

pub(crate) fn resolve(
    cat: &Catalog,
    path: String,
    size: u64,
    chunks: Vec<ChunkRef>,
) -> Result<OpenFile> {
    let locs = chunks
        .iter()
        .map(|c| cat.blob_location(&c.id))
        .collect::<Result<Vec<_>>>()?;
    Ok(OpenFile::new(path, size, chunks, locs))
}

/// Resolves listed files on its own thread (until the Vfs is dropped), so a reader going
/// through a directory finds its files' chunk locations ready.
pub(super) fn resolver(pool: Pool, files: Files) -> Sender<Pending> {
    let (tx, rx) = unbounded::<Pending>();
    std::thread::spawn(move || {
        for p in rx {
            if files.lock().contains(&p.ino) {
                continue;
            }
            match pool
                .get()
                .and_then(|c| resolve(&c, p.path, p.size, p.chunks))
            {
                Ok(f) => {
                    let f = f.with_blake3(p.blake3).with_dir(p.dir);
                    files.lock().put(p.ino, (p.rowid, Arc::new(f)));
                }
                Err(e) => tracing::debug!("resolve ahead: {e}"),
            }
        }
    });
    tx
}
