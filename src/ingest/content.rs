//! Reading a file's content into chunks: data extents only (holes stay holes), FastCDC,
//! keyed chunk ids, a whole-file blake3, and new chunks handed to the packer.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};

use crate::catalog::Catalog;
use crate::crypto::BlobId;
use crate::error::Result;
use crate::model::ChunkRef;
use crate::repo::pack::BlobKind;
use crate::repo::Repository;

use super::delta::Similar;
use super::progress::Progress;
use crate::repo::packer::Packer;

/// The chunker and the dedup check, shared by files and command output.
pub struct Chunker<'a, 'p> {
    pub repo: &'a Repository,
    pub catalog: &'a Catalog,
    pub packer: &'a Packer<'p>,
    pub seen: HashSet<BlobId>,
    pub progress: &'a Progress,
    /// Packs listed in the store when this ingest started: a blob is reused only from a
    /// pack that is there, as an index object the catalog synced says.
    pub packs: &'a HashSet<BlobId>,
    /// `tier` of this snapshot's data class: data is never reused from a colder copy.
    pub data_tier: u8,
    /// Delta bases for the file being read (set per file by the walker).
    pub similar: Option<Similar>,
    /// Chunks stored as deltas are allowed (not `--no-delta`, not a format 2 repository).
    pub deltas: bool,
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

/// Feeds `n` zero bytes (a hole) into a whole-file hash; restore checks with the same.
pub(crate) fn hash_zeros(h: &mut blake3::Hasher, mut n: u64) {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        h.update(&ZEROS[..k]);
        n -= k as u64;
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
        let max_tier = if kind == BlobKind::Tree {
            0
        } else {
            self.data_tier
        };
        for (pack, base) in self.catalog.blob_packs(id, max_tier)? {
            if !self.packs.contains(&pack) {
                continue;
            }
            let Some(bases) = base else { return Ok(true) };
            let mut all_here = true;
            for b in bases.ids() {
                all_here &= self
                    .catalog
                    .blob_packs(&b, max_tier)?
                    .iter()
                    .any(|(p, b)| b.is_none() && self.packs.contains(p));
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

    fn store_chunk(&mut self, data: Vec<u8>, offset: u64) -> Result<ChunkRef> {
        let id = self.repo.keys().blob_id(&data);
        let len = data.len() as u32;
        if !self.known(&id, BlobKind::Data)? {
            self.seen.insert(id);
            let base = match self.similar.as_mut() {
                Some(s) => s.base_for(self.repo, self.catalog, self.packs, &data, offset),
                None => None,
            };
            self.packer.add_with_base(id, data, BlobKind::Data, base)?;
        }
        Ok(ChunkRef { offset, len, id })
    }

    /// Chunks `reader` (the bytes starting at `base`), feeding the whole-file hash.
    pub fn chunk_stream<R: Read>(
        &mut self,
        reader: R,
        base: u64,
        hasher: &mut blake3::Hasher,
        out: &mut Vec<ChunkRef>,
    ) -> Result<u64, ReadError> {
        let cfg = &self.repo.config;
        let cdc = fastcdc::v2020::StreamCDC::with_level_and_seed(
            reader,
            cfg.chunk_min,
            cfg.chunk_avg,
            cfg.chunk_max,
            fastcdc::v2020::Normalization::Level1,
            cfg.chunk_seed,
        );
        let mut total = 0;
        for chunk in cdc {
            let chunk = chunk.map_err(|e| match e {
                fastcdc::v2020::Error::IoError(io) => ReadError::Source(io),
                other => ReadError::Source(std::io::Error::other(other.to_string())),
            })?;
            hasher.update(&chunk.data);
            total += chunk.data.len() as u64;
            self.progress.add_bytes(chunk.data.len() as u64);
            out.push(self.store_chunk(chunk.data, base + chunk.offset)?);
        }
        Ok(total)
    }

    /// Reads a regular file's data extents; holes are hashed as zeros but not stored.
    pub fn chunk_file(
        &mut self,
        file: &mut std::fs::File,
        size: u64,
    ) -> Result<Content, ReadError> {
        let extents = super::fsmeta::data_extents(file, size).map_err(ReadError::Source)?;
        let mut hasher = blake3::Hasher::new();
        let mut chunks = Vec::new();
        let (mut pos, mut bytes) = (0u64, 0u64);
        for (start, len) in extents {
            hash_zeros(&mut hasher, start - pos);
            file.seek(SeekFrom::Start(start))
                .map_err(ReadError::Source)?;
            let got = self.chunk_stream((&mut *file).take(len), start, &mut hasher, &mut chunks)?;
            bytes += got;
            pos = start + got;
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
