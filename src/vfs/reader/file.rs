//! A file being read: its chunks, where they are stored, and its content hash; holes and
//! SEEK_DATA/SEEK_HOLE come from the chunk list.

use std::sync::atomic::AtomicU64;

use crate::model::ChunkRef;
use crate::repo::index::Location;

pub struct OpenFile {
    pub path: String,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
    pub locs: Vec<Option<Location>>,
    /// blake3 of the whole content, recorded at ingest (None in older snapshots): the key
    /// of the mount's file cache (`filecache.rs`).
    pub blake3: Option<[u8; 32]>,
    /// The mount's inode of the directory the file was listed in: a pack segment where
    /// that directory's listing needs few of many blobs is read for those only
    /// (`ChunkCache::take_segment`).
    pub dir: Option<u64>,
    pub(super) next_offset: AtomicU64,
}

impl OpenFile {
    pub fn new(
        path: String,
        size: u64,
        chunks: Vec<ChunkRef>,
        locs: Vec<Option<Location>>,
    ) -> Self {
        OpenFile {
            path,
            size,
            chunks,
            locs,
            blake3: None,
            dir: None,
            next_offset: AtomicU64::new(0),
        }
    }

    pub fn with_blake3(mut self, blake3: Option<[u8; 32]>) -> Self {
        self.blake3 = blake3;
        self
    }

    pub fn with_dir(mut self, dir: u64) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Index of the first chunk ending after `offset`.
    pub(super) fn first_chunk(&self, offset: u64) -> usize {
        self.chunks
            .partition_point(|c| c.offset + c.len as u64 <= offset)
    }

    /// The byte ranges no chunk covers: the holes of a sparse file.
    pub fn holes(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = 0;
        for c in &self.chunks {
            if c.offset > at {
                out.push((at, c.offset));
            }
            at = at.max(c.offset + c.len as u64);
        }
        if at < self.size {
            out.push((at, self.size));
        }
        out
    }

    /// SEEK_DATA / SEEK_HOLE over the chunk list (gaps are holes).
    pub fn seek(&self, offset: u64, data: bool) -> Option<u64> {
        if offset >= self.size {
            return None;
        }
        let i = self.first_chunk(offset);
        if data {
            return self.chunks.get(i).map(|c| c.offset.max(offset));
        }
        let mut end = offset;
        for c in &self.chunks[i..] {
            if c.offset > end {
                break;
            }
            end = c.offset + c.len as u64;
        }
        Some(end.min(self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlobId;

    #[test]
    fn holes_are_the_ranges_no_chunk_covers() {
        // (size, chunks as (offset, len), expected holes)
        type Case = (u64, Vec<(u64, u32)>, Vec<(u64, u64)>);
        let cases: Vec<Case> = vec![
            (0, vec![], vec![]),
            (100, vec![], vec![(0, 100)]),
            (100, vec![(0, 100)], vec![]),
            (
                100,
                vec![(10, 20), (50, 10)],
                vec![(0, 10), (30, 50), (60, 100)],
            ),
            (100, vec![(0, 50), (50, 50)], vec![]),
        ];
        for (size, chunks, want) in cases {
            let chunks = chunks
                .iter()
                .map(|&(offset, len)| ChunkRef {
                    offset,
                    len,
                    id: BlobId([1; 32]),
                })
                .collect();
            let f = OpenFile::new(String::new(), size, chunks, Vec::new());
            assert_eq!(f.holes(), want, "{size} {:?}", f.chunks);
        }
    }
}
