//! Reading a file's content into chunks: data extents only (holes stay holes), FastCDC,
//! keyed chunk ids, a whole-file blake3, and new chunks handed to the packer.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};

use crate::catalog::Catalog;
use crate::crypto::BlobId;
use crate::error::Result;
use crate::model::ChunkRef;
use crate::repo::index::IdSet;
use crate::repo::pack::BlobKind;
use crate::repo::Repository;

use super::delta::Similar;
use crate::progress::Progress;
use crate::repo::packer::Packer;

/// The chunker and the dedup check, shared by files and command output.
pub struct Chunker<'a, 'p> {
    pub repo: &'a Repository,
    pub catalog: &'a Catalog,
    pub packer: &'a Packer<'p>,
    /// What this ingest stored already (a million ids in an initial ingest at a million
    /// files: `IdSet` holds them in half a `HashSet`'s memory).
    pub seen: IdSet,
    pub progress: &'a dyn Progress,
    /// Packs listed in the store when this ingest started: a blob is reused only from a
    /// pack that is there, as an index object the catalog synced says.
    pub packs: &'a HashSet<BlobId>,
    /// The packs of `packs` data may be reused from: all of them, or for a self-contained
    /// snapshot those of its own class (`repo::index::Reach`).
    pub data_packs: &'a HashSet<BlobId>,
    /// `tier` of this snapshot's data class: data is never reused from a colder copy.
    pub data_tier: u8,
    /// Delta bases for the file being read (set per file by the walker).
    pub similar: Option<Similar>,
    /// Chunks stored as deltas are allowed (not `--no-delta`, not a format 2 repository).
    pub deltas: bool,
    /// The read window of `chunk_stream`, kept from file to file (empty until first used).
    pub window: Vec<u8>,
}

pub struct Content {
    pub chunks: Vec<ChunkRef>,
    pub blake3: [u8; 32],
    pub bytes: u64,
}

/// A failure reading the source (a warning) versus a failure storing (fatal).
pub enum ReadError {
    Source(std::io::Error),
    Fatal(crate::error::Error),
}

impl From<crate::error::Error> for ReadError {
    fn from(e: crate::error::Error) -> Self {
        ReadError::Fatal(e)
    }
}

static ZEROS: [u8; 64 * 1024] = [0u8; 64 * 1024];

/// Bytes read at a time by the chunker (at least twice `chunk_max`): large enough that
/// moving the unfinished tail (under `chunk_max`) to the front costs little.
const WINDOW: usize = 4 << 20;

/// Feeds `n` zero bytes (a hole) into a whole-file hash; restore checks with the same.
pub(crate) fn hash_zeros(h: &mut blake3::Hasher, mut n: u64) {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        h.update(&ZEROS[..k]);
        n -= k as u64;
    }
}

/// FastCDC's parameters (the repository's `chunk_*` and its keyed seed).
#[derive(Clone, Copy)]
pub(crate) struct Cdc {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
    pub seed: u64,
}

/// Reads `reader` to its end through `window` (resized to `size`, at least twice
/// `cdc.max`, zeroed only when its size changes) and calls `emit` with each chunk in order;
/// returns the bytes read. A cut is taken only when at least `cdc.max` bytes follow its
/// start, or the stream ended: exactly the bytes `cut_gear` may look at, so the cuts never
/// depend on where a window ends and equal `StreamCDC`'s.
pub(crate) fn for_each_chunk<R: Read>(
    mut reader: R,
    window: &mut Vec<u8>,
    size: usize,
    cdc: Cdc,
    mut emit: impl FnMut(&[u8]) -> Result<(), ReadError>,
) -> Result<u64, ReadError> {
    let size = size.max(2 * cdc.max as usize);
    if window.len() != size {
        *window = vec![0; size];
    }
    let (mut filled, mut total, mut eof) = (0usize, 0u64, false);
    loop {
        while !eof && filled < size {
            match reader.read(&mut window[filled..]) {
                Ok(0) => eof = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Source(e)),
            }
        }
        let mut used = 0;
        let cuts = fastcdc::v2020::FastCDC::with_level_and_seed(
            &window[..filled],
            cdc.min,
            cdc.avg,
            cdc.max,
            fastcdc::v2020::Normalization::Level1,
            cdc.seed,
        );
        for c in cuts {
            // Fewer than `max` bytes after this start: the cut could move once more data
            // is read, so it waits for the next window.
            if !eof && filled - c.offset < cdc.max as usize {
                break;
            }
            emit(&window[c.offset..c.offset + c.length])?;
            total += c.length as u64;
            used = c.offset + c.length;
        }
        if eof {
            return Ok(total);
        }
        window.copy_within(used..filled, 0);
        filled -= used;
    }
}

impl Chunker<'_, '_> {
    /// Whether the blob is stored already, in a place this snapshot may depend on: a copy
    /// in a pack that is in the store, and for a delta copy, its base the same way.
    pub fn known(&self, id: &BlobId, kind: BlobKind) -> Result<bool> {
        if self.seen.contains(id) {
            return Ok(true);
        }
        // Trees always live in the default class; data may follow the snapshot's class.
        let (max_tier, packs) = match kind {
            BlobKind::Tree => (0, self.packs),
            _ => (self.data_tier, self.data_packs),
        };
        for (pack, base) in self.catalog.blob_packs(id, max_tier)? {
            if !packs.contains(&pack) {
                continue;
            }
            let Some(bases) = base else { return Ok(true) };
            let mut all_here = true;
            for b in bases.ids() {
                all_here &= self
                    .catalog
                    .blob_packs(&b, max_tier)?
                    .iter()
                    .any(|(p, b)| b.is_none() && packs.contains(p));
            }
            if all_here {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Prepares delta bases for a changed file whose previous version had `prev` chunks.
    pub fn set_previous(&mut self, prev: Option<&[ChunkRef]>, size: u64) -> Result<()> {
        self.similar = match prev {
            Some(p) if self.deltas && size >= super::delta::MIN_FILE && !p.is_empty() => {
                Some(Similar::new(self.catalog, p, self.data_tier)?)
            }
            _ => None,
        };
        Ok(())
    }

    /// The chunk's reference; its bytes are copied out of the read window only when the
    /// packer needs them (a chunk stored already costs its hash and no copy).
    fn store_chunk(&mut self, data: &[u8], offset: u64) -> Result<ChunkRef> {
        let id = self.repo.keys().blob_id(data);
        let len = data.len() as u32;
        if self.known(&id, BlobKind::Data)? {
            if let Some(s) = self.similar.as_mut() {
                s.same(&id, offset);
            }
        } else {
            self.seen.insert(id);
            let base = match self.similar.as_mut() {
                Some(s) => s.base_for(self.repo, self.catalog, self.data_packs, data, offset),
                None => None,
            };
            self.packer
                .add_with_base(id, data.to_vec(), BlobKind::Data, base)?;
        }
        Ok(ChunkRef { offset, len, id })
    }

    /// Chunks `reader` (the bytes starting at `base`), feeding the whole-file hash.
    ///
    /// The same cut points as fastcdc's `StreamCDC`, without its cost per file and per
    /// chunk: StreamCDC allocates a zeroed `chunk_max` buffer for every stream (a fresh
    /// mmap and 64 page faults for every small file) and moves up to `chunk_max` bytes
    /// after every chunk. Here one window, kept from file to file, is read into and cut in
    /// memory (`for_each_chunk`; `tests::window_cuts_match_the_stream_chunker`).
    pub fn chunk_stream<R: Read>(
        &mut self,
        reader: R,
        base: u64,
        hasher: &mut blake3::Hasher,
        out: &mut Vec<ChunkRef>,
    ) -> Result<u64, ReadError> {
        let cfg = &self.repo.config;
        let cdc = Cdc {
            min: cfg.chunk_min,
            avg: cfg.chunk_avg,
            max: cfg.chunk_max,
            seed: cfg.chunk_seed,
        };
        let mut window = std::mem::take(&mut self.window);
        let mut total = 0;
        let r = for_each_chunk(reader, &mut window, WINDOW, cdc, |chunk| {
            hasher.update(chunk);
            self.progress.add_bytes(chunk.len() as u64);
            let len = chunk.len() as u64;
            out.push(self.store_chunk(chunk, base + total)?);
            total += len;
            Ok(())
        });
        self.window = window;
        r
    }

    /// Reads a regular file's data extents; holes are hashed as zeros but not stored.
    pub fn chunk_file(
        &mut self,
        file: &mut std::fs::File,
        md: &std::fs::Metadata,
    ) -> Result<Content, ReadError> {
        use std::os::unix::fs::MetadataExt;
        let size = md.len();
        // A file with as many blocks as bytes has no hole: its one extent needs no
        // SEEK_DATA/SEEK_HOLE (two lseeks per file) and, the file being just opened, no
        // seek to its start. Fewer blocks may mean holes, or a filesystem that compresses
        // or inlines data: then ask, which moves the file offset. (Preallocated, unwritten
        // space — fallocate: VM images, journald, PostgreSQL relations — also counts as
        // blocks; it is then read as zeros rather than skipped as a hole: same content
        // and blake3, but restored as written zeros, and cut differently near those
        // extents than by a version that asked.)
        let (extents, mut offset) = if md.blocks().saturating_mul(512) >= size {
            (vec![(0, size)], Some(0))
        } else {
            let e = super::fsmeta::data_extents(file, size).map_err(ReadError::Source)?;
            (e, None)
        };
        let mut hasher = blake3::Hasher::new();
        let mut chunks = Vec::new();
        let (mut pos, mut bytes) = (0u64, 0u64);
        for (start, len) in extents {
            hash_zeros(&mut hasher, start - pos);
            if offset != Some(start) {
                file.seek(SeekFrom::Start(start))
                    .map_err(ReadError::Source)?;
            }
            let got = self.chunk_stream((&mut *file).take(len), start, &mut hasher, &mut chunks)?;
            bytes += got;
            pos = start + got;
            offset = Some(pos);
            if pos >= size {
                break;
            }
        }
        if pos < size {
            hash_zeros(&mut hasher, size - pos);
        }
        Ok(Content {
            chunks,
            blake3: *hasher.finalize().as_bytes(),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes in pieces of varying size, as pipes and short reads do.
    struct Uneven<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Uneven<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.step = (self.step * 7 + 13) % 300_000 + 1;
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn window_cuts_match_the_stream_chunker() {
        let cdc = Cdc {
            min: 16 * 1024,
            avg: 64 * 1024,
            max: 256 * 1024,
            seed: 0x5eed,
        };
        // Pseudo-random bytes with runs (cuts both by content and at `max`).
        let mut x: u64 = 1;
        let data: Vec<u8> = (0..6_000_000u32)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (i / 700_000) % 3 == 2 {
                    0
                } else {
                    (x >> 33) as u8
                }
            })
            .collect();
        // (length, window size, whole reads or uneven ones)
        let cases = [
            (0, WINDOW, false),
            (100, WINDOW, false),
            (16 * 1024, WINDOW, false),
            (300_000, WINDOW, true),
            (6_000_000, WINDOW, false),
            (6_000_000, WINDOW, true),
            (6_000_000, 512 * 1024, true),
            (1_234_567, 600_000, false),
        ];
        for (len, size, uneven) in cases {
            let src = &data[..len];
            let expected: Vec<usize> = fastcdc::v2020::StreamCDC::with_level_and_seed(
                src,
                cdc.min,
                cdc.avg,
                cdc.max,
                fastcdc::v2020::Normalization::Level1,
                cdc.seed,
            )
            .map(|c| c.expect("chunk").length)
            .collect();
            let mut got = Vec::new();
            let mut window = Vec::new();
            let emit = |c: &[u8]| {
                got.push(c.len());
                Ok(())
            };
            let total = if uneven {
                for_each_chunk(Uneven { data: src, step: 1 }, &mut window, size, cdc, emit)
            } else {
                for_each_chunk(src, &mut window, size, cdc, emit)
            };
            assert_eq!(total.ok(), Some(len as u64), "len {len} size {size}");
            assert_eq!(got, expected, "len {len} size {size} uneven {uneven}");
        }
    }
}
