//! A snapshot's file contents as bytes a front end streams: a web server's download (whole,
//! or a range to resume), a preview, a tar or zip of a directory. Chunks are found through
//! the catalog and each is checked against its id as it is read (the mount's `ReadMode`),
//! and a file read whole is checked against its blake3 at its end, so a reader never gets
//! bytes the snapshot did not have without an error.

use std::io::Read;
use std::sync::Arc;

use super::{Entry, Session};
use crate::catalog::pool::Pool;
use crate::error::{Error, Result};
use crate::model::Kind;
use crate::vfs::reader::{ChunkCache, OpenFile};

/// Most bytes one `read` asks the cache for: one chunk's worth or so, so a reader's buffer
/// and the cache's decoded chunk are the only copies in memory.
const READ_MAX: usize = 1 << 20;

/// Reads the contents of files in this session's snapshots; shared by every reader (it is
/// `Send + Sync`), with one bounded cache of decoded chunks.
pub struct Contents {
    cache: Arc<ChunkCache>,
    /// Connections to the catalog, kept: a folder download opens thousands of files.
    pool: Pool,
}

impl Session {
    /// A reader of file contents with `cache_mib` MiB of decoded chunks in memory and, for
    /// a remote repository, `disk_cache_mib` MiB of fetched data on disk (0: none) in this
    /// repository's state directory.
    pub fn contents(&self, cache_mib: usize, disk_cache_mib: u64) -> Result<Contents> {
        let disk = if self.opts.is_remote() && disk_cache_mib > 0 {
            let dir = self.state_dir().join("serve-blobs");
            match crate::vfs::diskcache::DiskCache::open(dir.clone(), disk_cache_mib << 20) {
                Ok(disk) => Some(disk),
                // Another server of this repository has it: one count per directory.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    tracing::warn!(
                        "{}: in use by another process; reading without a disk cache",
                        dir.display()
                    );
                    None
                }
                Err(e) => return Err(Error::io(dir, e)),
            }
        } else {
            None
        };
        let cache = crate::vfs::cache_over_catalog(
            self.repo.clone(),
            &self.catalog,
            disk,
            cache_mib.max(1) << 20,
            || {},
        );
        Ok(Contents {
            cache,
            pool: Pool::reader(self.catalog.clone()),
        })
    }
}

impl Contents {
    /// Where `entry`'s chunks are. A chunk the catalog does not know may be one a rebuilt
    /// catalog (a new file) knows: the pooled connections to the old file are dropped and
    /// it is asked once more.
    fn resolve(&self, entry: &Entry) -> Result<OpenFile> {
        let n = &entry.node;
        let once = || {
            let cat = self.pool.get()?;
            crate::vfs::resolve(&cat, entry.path.clone(), n.size, n.chunks.clone())
        };
        let file = once()?;
        if file.locs.iter().all(Option::is_some) {
            return Ok(file);
        }
        self.pool.reset();
        once()
    }

    /// Reads `entry`'s chunks into the cache (each checked against its id) and drops them:
    /// a writer of many small files runs this a little ahead of itself, so their reads wait
    /// on the disk or the network while it writes, not after.
    pub fn prefetch(&self, entry: &Entry) -> Result<()> {
        if entry.node.kind != Kind::File {
            return Ok(());
        }
        let file = self.resolve(entry)?;
        for c in &entry.node.chunks {
            self.cache.read(&file, c.offset, c.len)?;
        }
        Ok(())
    }

    /// The bytes of `entry` (a regular file, from `browse` or `list`) from `start` to `end`
    /// (exclusive; clamped to its size).
    pub fn open(&self, entry: &Entry, start: u64, end: u64) -> Result<FileReader> {
        let n = &entry.node;
        if n.kind != Kind::File {
            return Err(Error::InvalidArgument(format!(
                "{} is a {}, not a file: only files have contents to read",
                entry.path,
                n.kind.as_str()
            )));
        }
        let file = self.resolve(entry)?;
        if let Some(i) = file.locs.iter().position(Option::is_none) {
            return Err(Error::corrupt(
                &entry.path,
                format!(
                    "chunk {} is in no pack the catalog knows",
                    n.chunks[i].id.hex()
                ),
            ));
        }
        let end = end.min(n.size);
        let start = start.min(end);
        let whole = start == 0 && end == n.size;
        Ok(FileReader {
            cache: self.cache.clone(),
            file,
            pos: start,
            end,
            check: whole
                .then_some(n.blake3)
                .flatten()
                .map(|want| (blake3::Hasher::new(), want)),
        })
    }
}

/// One file's bytes over a range, as `std::io::Read`. An error (a chunk that cannot be
/// read, content that does not match) is an `io::Error` naming the file.
pub struct FileReader {
    cache: Arc<ChunkCache>,
    file: OpenFile,
    pos: u64,
    end: u64,
    /// A whole file's running hash and the blake3 recorded at ingest.
    check: Option<(blake3::Hasher, [u8; 32])>,
}

impl FileReader {
    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.end {
            if let Some((hasher, want)) = self.check.take() {
                if *hasher.finalize().as_bytes() != want {
                    return Err(std::io::Error::other(format!(
                        "{}: content does not match the snapshot's blake3",
                        self.file.path
                    )));
                }
            }
            return Ok(0);
        }
        let n = buf.len().min(READ_MAX).min((self.end - self.pos) as usize);
        let data = self
            .cache
            .read(&self.file, self.pos, n as u32)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", self.file.path)))?;
        buf[..data.len()].copy_from_slice(&data);
        if let Some((hasher, _)) = &mut self.check {
            hasher.update(&data);
        }
        self.pos += data.len() as u64;
        Ok(data.len())
    }
}
