//! WAL objects: `wal/<blake3 of the object>`, each holding many WAL files (one PUT per
//! flush, not one per 16 MiB segment). Self-describing like a pack:
//!
//! ```text
//! "CWAL0001" | u32 LE header length | sealed header | sealed body | sealed body | ...
//! ```
//!
//! The header (JSON, sealed with its own associated data) names each file, where its body
//! is (from the end of the header), its size and the keyed hash of its bytes. Each body is
//! the file zstd-compressed and sealed with that hash as associated data, so one body can
//! be fetched with a ranged GET and still be checked: the hash ties it to its header entry,
//! and the header can only have been written with the repository's keys. Names and sizes
//! of WAL files are inside the sealed header, as the invariants ask of every name.

use serde::{Deserialize, Serialize};

use crate::crypto::{BlobId, Keys};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"CWAL0001";
const HEADER_AAD: &[u8] = b"cofre-wal-header-v1";
/// Bytes fetched first when only the header is wanted; most headers fit.
pub const HEADER_PROBE: u64 = 64 << 10;
/// zstd level: WAL is written fast and read rarely; level 1 keeps a flush of a burst of
/// segments at hundreds of MB/s per core (docs/pitr.md has the measurements).
const LEVEL: i32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub name: String,
    /// From the end of the header.
    pub offset: u64,
    pub len: u64,
    pub raw_len: u64,
    /// Keyed blake3 of the file's bytes (the body's associated data).
    pub id: String,
    /// Unix seconds the file was handed to `wal-push` (its spool file's mtime).
    pub pushed: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub set: String,
    pub hostname: String,
    pub created: String,
    pub entries: Vec<Entry>,
}

/// One WAL file to store: its name, bytes, and when it was pushed.
pub struct File {
    pub name: String,
    pub data: Vec<u8>,
    pub pushed: i64,
}

/// Compresses and seals `files` into one object; returns its name and bytes. Compression
/// runs on every core (a burst of segments is CPU-bound on it).
pub fn encode(keys: &Keys, set: &str, hostname: &str, files: &[File]) -> Result<(String, Vec<u8>)> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = files.len().div_ceil(threads).max(1);
    let mut bodies: Vec<(BlobId, Vec<u8>)> = Vec::with_capacity(files.len());
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = files
            .chunks(per)
            .map(|part| {
                s.spawn(move || -> Result<Vec<(BlobId, Vec<u8>)>> {
                    part.iter()
                        .map(|f| {
                            let id = keys.blob_id(&f.data);
                            let z = zstd::bulk::compress(&f.data, LEVEL)
                                .map_err(|e| Error::corrupt(&f.name, format!("zstd: {e}")))?;
                            Ok((id, keys.seal(&z, &id.0)))
                        })
                        .collect()
                })
            })
            .collect();
        for w in workers {
            let part = w
                .join()
                .map_err(|_| Error::corrupt("wal", "a compression thread panicked"))??;
            bodies.extend(part);
        }
        Ok(())
    })?;
    let mut entries = Vec::with_capacity(files.len());
    let mut offset = 0u64;
    for (f, (id, body)) in files.iter().zip(&bodies) {
        entries.push(Entry {
            name: f.name.clone(),
            offset,
            len: body.len() as u64,
            raw_len: f.data.len() as u64,
            id: id.hex(),
            pushed: f.pushed,
        });
        offset += body.len() as u64;
    }
    let header = Header {
        version: 1,
        set: set.to_string(),
        hostname: hostname.to_string(),
        created: crate::repo::now_rfc3339(),
        entries,
    };
    let plain =
        serde_json::to_vec(&header).map_err(|e| Error::corrupt("wal header", e.to_string()))?;
    let sealed = keys.seal(&plain, HEADER_AAD);
    let mut out = Vec::with_capacity(12 + sealed.len() + offset as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    out.extend_from_slice(&sealed);
    for (_, body) in bodies {
        out.extend_from_slice(&body);
    }
    Ok((blake3::hash(&out).to_hex().to_string(), out))
}

/// How many bytes from the start hold the header, read from its first 12 bytes.
pub fn header_end(what: &str, start: &[u8]) -> Result<u64> {
    if start.len() < 12 || &start[..8] != MAGIC {
        return Err(Error::corrupt(what, "not a cofre WAL object"));
    }
    let mut n = [0u8; 4];
    n.copy_from_slice(&start[8..12]);
    Ok(12 + u32::from_le_bytes(n) as u64)
}

/// The header, from the object's first `header_end` bytes (or more).
pub fn decode_header(keys: &Keys, what: &str, start: &[u8]) -> Result<Header> {
    let end = header_end(what, start)? as usize;
    let sealed = start
        .get(12..end)
        .ok_or_else(|| Error::corrupt(what, "header cut short"))?;
    let plain = keys.open(sealed, HEADER_AAD, what)?;
    serde_json::from_slice(&plain).map_err(|e| Error::corrupt(what, format!("header: {e}")))
}

/// One file's bytes from its sealed body, checked against the header's hash.
pub fn decode_body(keys: &Keys, what: &str, e: &Entry, body: &[u8]) -> Result<Vec<u8>> {
    let id = hex::decode(&e.id)
        .ok()
        .and_then(|b| BlobId::from_slice(&b))
        .ok_or_else(|| Error::corrupt(what, "bad id in header"))?;
    let z = keys.open(body, &id.0, what)?;
    let raw = zstd::bulk::decompress(&z, e.raw_len as usize)
        .map_err(|e| Error::corrupt(what, format!("zstd: {e}")))?;
    if raw.len() as u64 != e.raw_len || keys.blob_id(&raw) != id {
        return Err(Error::corrupt(
            what,
            format!("{} does not match its hash", e.name),
        ));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_reject_tampering() {
        let keys = Keys::random();
        let files: Vec<File> = (0..5u8)
            .map(|i| File {
                name: format!("0000000100000000000000{i:02X}"),
                data: vec![i; 1000 + i as usize],
                pushed: i as i64,
            })
            .collect();
        let (name, obj) = encode(&keys, "db", "h", &files).expect("encode");
        assert_eq!(name, blake3::hash(&obj).to_hex().to_string());
        let end = header_end("o", &obj).expect("magic") as usize;
        let h = decode_header(&keys, "o", &obj[..end]).expect("header");
        assert_eq!(h.entries.len(), 5);
        for (f, e) in files.iter().zip(&h.entries) {
            let body = &obj[end + e.offset as usize..end + (e.offset + e.len) as usize];
            assert_eq!(decode_body(&keys, "o", e, body).expect("body"), f.data);
            // A body under another entry's header does not pass.
            let other = &h.entries[(h.entries.iter().position(|x| x == e).unwrap_or(0) + 1) % 5];
            assert!(decode_body(&keys, "o", other, body).is_err());
        }
        let mut bad = obj.clone();
        bad[20] ^= 1;
        assert!(decode_header(&keys, "o", &bad[..end]).is_err());
        assert!(decode_header(&Keys::random(), "o", &obj[..end]).is_err());
        assert!(header_end("o", b"PACK0001xxxx").is_err());
    }
}
