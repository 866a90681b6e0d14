//! Pack objects: many encrypted blobs followed by an encrypted header that lists them,
//! then the header's length (u32 LE). Self-describing, so the index can be rebuilt
//! from packs alone. The pack's name is the plain blake3 of its bytes.

use serde::{Deserialize, Serialize};

use super::compress::Bases;
use crate::crypto::{BlobId, Keys};
use crate::error::{Error, Result};

/// Format 3 headers (entries with `base`); format 2 headers carry the v1 AAD and no
/// `base`. The AAD says which one a header is, authenticated.
const HEADER_AAD: &[u8] = b"cofre-pack-header-v2";
const HEADER_AAD_V1: &[u8] = b"cofre-pack-header-v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum BlobKind {
    Data = 0,
    Tree = 1,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_len: u32,
    /// The blobs this one is a delta against (format 3); None for a whole blob. Boxed
    /// (serialized the same): most entries are whole, and an inline `Bases` made every
    /// entry 112 bytes instead of 56, in every index an ingest or a prune holds.
    pub base: Option<Box<Bases>>,
}

/// A format 2 entry: no deltas.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PackEntryV2 {
    pub id: BlobId,
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_len: u32,
}

impl From<PackEntryV2> for PackEntry {
    fn from(e: PackEntryV2) -> Self {
        PackEntry {
            id: e.id,
            kind: e.kind,
            offset: e.offset,
            length: e.length,
            raw_len: e.raw_len,
            base: None,
        }
    }
}

impl PackEntry {
    /// The blobs this one is a delta against, by value.
    pub fn bases(&self) -> Option<Bases> {
        self.base.as_deref().copied()
    }

    /// The format 2 spelling; None for a delta, which format 2 cannot hold.
    pub fn to_v2(&self) -> Option<PackEntryV2> {
        self.base.is_none().then_some(PackEntryV2 {
            id: self.id,
            kind: self.kind,
            offset: self.offset,
            length: self.length,
            raw_len: self.raw_len,
        })
    }
}

/// Whether a repository of this format version is written in format 2 (no deltas, v1
/// AADs), so that the cofre that made it can still read it.
pub fn legacy(version: u32) -> bool {
    version < 3
}

pub use super::file::pack_key;

pub struct PackBuilder {
    kind: BlobKind,
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

pub struct FinishedPack {
    pub id: BlobId,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

impl PackBuilder {
    pub fn new(kind: BlobKind) -> Self {
        PackBuilder {
            kind,
            buf: Vec::new(),
            entries: Vec::new(),
        }
    }

    pub fn kind(&self) -> BlobKind {
        self.kind
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.entries.iter().any(|e| &e.id == id)
    }

    pub fn add(&mut self, id: BlobId, encoded: &[u8], raw_len: usize, base: Option<Bases>) {
        self.entries.push(PackEntry {
            id,
            kind: self.kind,
            offset: self.buf.len() as u32,
            length: encoded.len() as u32,
            raw_len: raw_len as u32,
            base: base.map(Box::new),
        });
        self.buf.extend_from_slice(encoded);
    }

    /// Seals the header in the repository's format (`legacy`: format 2).
    pub fn finish(self, keys: &Keys, legacy: bool) -> Result<FinishedPack> {
        let bad = |e: postcard::Error| Error::corrupt("pack header", e.to_string());
        let sealed = if legacy {
            let v2 = self
                .entries
                .iter()
                .map(|e| e.to_v2())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::corrupt("pack header", "a delta in a format 2 pack"))?;
            keys.seal(&postcard::to_allocvec(&v2).map_err(bad)?, HEADER_AAD_V1)
        } else {
            keys.seal(
                &postcard::to_allocvec(&self.entries).map_err(bad)?,
                HEADER_AAD,
            )
        };
        let mut bytes = self.buf;
        bytes.extend_from_slice(&sealed);
        bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let id = BlobId(*blake3::hash(&bytes).as_bytes());
        // The entries outlive the pack until the commit writes the index (a million blobs
        // in an initial ingest): their vector's spare half was 40 MB of its peak
        // (docs/benchmarks.md, "The initial ingest's memory at a million files").
        let mut entries = self.entries;
        entries.shrink_to_fit();
        Ok(FinishedPack { id, bytes, entries })
    }
}

/// Length of the sealed header, from the pack's last 4 bytes.
pub fn header_len(trailer: &[u8]) -> Result<u64> {
    let b: [u8; 4] = trailer
        .try_into()
        .map_err(|_| Error::corrupt("pack", "truncated trailer"))?;
    Ok(u32::from_le_bytes(b) as u64)
}

/// A pack's entries, from a format 3 header or a format 2 one (told apart by their AAD).
pub fn parse_header(keys: &Keys, sealed: &[u8], pack: &str) -> Result<Vec<PackEntry>> {
    let bad = |e: postcard::Error| Error::corrupt(pack, format!("header: {e}"));
    if let Ok(plain) = keys.open(sealed, HEADER_AAD, pack) {
        return postcard::from_bytes(&plain).map_err(bad);
    }
    let plain = keys.open(sealed, HEADER_AAD_V1, pack)?;
    let v2: Vec<PackEntryV2> = postcard::from_bytes(&plain).map_err(bad)?;
    Ok(v2.into_iter().map(PackEntry::from).collect())
}

/// The entries of a whole pack held in memory (check, prune's repack), with every entry
/// checked to lie inside the pack's data.
pub fn parse_pack(keys: &Keys, bytes: &[u8], key: &str) -> Result<Vec<PackEntry>> {
    let trailer = bytes
        .len()
        .checked_sub(4)
        .ok_or_else(|| Error::corrupt(key, "too short for a pack"))?;
    let hl = header_len(&bytes[trailer..])? as usize;
    let start = trailer
        .checked_sub(hl)
        .ok_or_else(|| Error::corrupt(key, "bad header length"))?;
    let entries = parse_header(keys, &bytes[start..trailer], key)?;
    check_bounds(&entries, start as u64, key)?;
    Ok(entries)
}

/// Every entry must end before the header starts (`data_end`).
pub fn check_bounds(entries: &[PackEntry], data_end: u64, key: &str) -> Result<()> {
    match entries
        .iter()
        .find(|e| e.offset as u64 + e.length as u64 > data_end)
    {
        Some(e) => Err(Error::corrupt(
            key,
            format!("blob {} lies outside the pack's data", e.id.hex()),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every index an ingest or prune holds has one per blob (docs/benchmarks.md, "A
    /// million files"): a field that grows it should be a decision, not an accident.
    #[test]
    fn index_entries_stay_small() {
        assert_eq!(std::mem::size_of::<PackEntry>(), 56);
    }

    #[test]
    fn headers_of_both_formats_parse_and_format_2_refuses_a_delta() {
        let keys = Keys::random();
        for legacy in [false, true] {
            let mut b = PackBuilder::new(BlobKind::Data);
            b.add(BlobId([1; 32]), &[7u8; 50], 80, None);
            b.add(BlobId([2; 32]), &[8u8; 30], 90, None);
            let pack = b.finish(&keys, legacy).expect("finish");
            let entries = parse_pack(&keys, &pack.bytes, "data/x").expect("parse");
            assert_eq!(entries, pack.entries, "legacy {legacy}");
        }
        let mut b = PackBuilder::new(BlobKind::Data);
        let two = Bases {
            first: BlobId([1; 32]),
            second: Some(BlobId([3; 32])),
        };
        b.add(BlobId([2; 32]), &[8u8; 30], 90, Some(two));
        assert!(b.finish(&keys, true).is_err());
        let mut b = PackBuilder::new(BlobKind::Data);
        b.add(BlobId([2; 32]), &[8u8; 30], 90, Some(two));
        let pack = b.finish(&keys, false).expect("finish");
        let entries = parse_pack(&keys, &pack.bytes, "data/y").expect("parse");
        assert_eq!(entries[0].bases(), Some(two));
    }
}
