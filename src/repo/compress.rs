//! Blob compression: the flag byte inside every sealed blob says how its payload is stored,
//! so a repository may hold blobs of every kind and every reader reads them all.
//! `0` raw, `1` lz4 block with its size prepended, `2` a zstd frame (with its content size),
//! `3` a delta: the ids of its one or two base blobs, then a zstd frame compressed with the
//! bases' plaintexts (concatenated) as its reference prefix (docs/format.md "Deltas").
//! The writer's choice (`--compression`, a set's `compression`, the repository's default)
//! only affects new blobs; dedup never re-encodes what is stored.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::crypto::BlobId;

pub const RAW: u8 = 0;
pub const LZ4: u8 = 1;
pub const ZSTD: u8 = 2;
pub const DELTA: u8 = 3;

/// Largest blob a reader decompresses: far above any chunk (256 KiB) or tree, and a bound on
/// what a damaged or hostile size field can make us allocate.
const MAX_RAW: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
    /// zstd at this level (1..=22; negative levels are zstd's fast modes).
    Zstd(i32),
}

impl Compression {
    /// The default for new repositories and for repositories that name none; chosen from
    /// the measurements in docs/benchmarks.md ("Compression", and "zstd level 2 by
    /// default": 13% less ingest CPU than level 3 for 0.8% more stored).
    pub const DEFAULT: Compression = Compression::Zstd(2);

    /// `none`, `lz4`, `zstd` (level 3) or `zstd:N`.
    pub fn parse(s: &str) -> Result<Compression, String> {
        let bad = || format!("compression {s:?}: expected none, lz4, zstd or zstd:LEVEL (1-19)");
        match s.split_once(':') {
            None => match s {
                "none" => Ok(Compression::None),
                "lz4" => Ok(Compression::Lz4),
                "zstd" => Ok(Compression::Zstd(3)),
                _ => Err(bad()),
            },
            Some(("zstd", level)) => {
                let l: i32 = level.parse().map_err(|_| bad())?;
                if !(-7..=19).contains(&l) || l == 0 {
                    return Err(bad());
                }
                Ok(Compression::Zstd(l))
            }
            Some(_) => Err(bad()),
        }
    }

    /// `flag ‖ payload` for `raw`: stored raw when compression saves less than 3%, since
    /// then every read would pay for decompressing it and almost nothing is saved; and
    /// not even tried on data that looks incompressible (`looks_incompressible`), as
    /// borg's `auto` judges by lz4 first (393 MB of such data: 14% less user CPU).
    pub fn encode(self, raw: &[u8]) -> Vec<u8> {
        let packed = match self {
            Compression::None => None,
            Compression::Lz4 => Some((LZ4, lz4_flex::compress_prepend_size(raw))),
            Compression::Zstd(_) if looks_incompressible(raw) => None,
            // Compressing into memory cannot fail short of allocation failure; a failure
            // stores the blob raw, which every reader reads.
            Compression::Zstd(level) => zstd_compress(raw, level).map(|z| (ZSTD, z)),
        };
        let mut out = Vec::with_capacity(raw.len() + 1);
        match packed {
            Some((flag, p)) if worth_it(p.len(), raw.len()) => {
                out.push(flag);
                out.extend_from_slice(&p);
            }
            _ => {
                out.push(RAW);
                out.extend_from_slice(raw);
            }
        }
        out
    }
}

/// Whether `packed` bytes for `raw` bytes save at least 3%.
fn worth_it(packed: usize, raw: usize) -> bool {
    packed < raw - raw / 33
}

/// Samples that decide whether a chunk is worth compressing: three of them cost a tenth of
/// an average (64 KiB) chunk's bytes through lz4. A chunk under four samples is simply
/// compressed.
const SAMPLE: usize = 2 * 1024;

/// Whether three samples of `raw` (start, middle, end) stay incompressible under lz4, which
/// gives up on such data at several GB/s. A chunk of one file is mostly of one kind (a
/// JPEG, a gzip member, an encrypted blob), so three samples rarely misjudge it, and a
/// misjudged chunk is only stored raw: nothing is lost but a little space.
fn looks_incompressible(raw: &[u8]) -> bool {
    if raw.len() < 4 * SAMPLE {
        return false;
    }
    let mid = raw.len() / 2 - SAMPLE / 2;
    let starts = [0, mid, raw.len() - SAMPLE];
    let packed: usize = starts
        .iter()
        .map(|&at| lz4_flex::compress(&raw[at..at + SAMPLE]).len())
        .sum();
    !worth_it(packed, 3 * SAMPLE)
}

// One zstd context per thread, reused: creating one per blob cost 4% of a restore's CPU in a
// profile (ZSTD_createDCtx), and compression contexts are larger still.
thread_local! {
    static CCTX: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A scratch buffer kept this large at most between uses (a chunk is at most 256 KiB).
const SCRATCH_KEEP: usize = 1 << 20;

/// Runs `f` with this thread's scratch buffer, empty. A blob's decrypted bytes live only
/// until they are decompressed, and the mount keeps the decompressed ones for long: a
/// fresh buffer for the first, freed between allocations of the second, left holes in
/// glibc's arenas that the chunk cache's memory grew by. A nested call (a delta's base
/// decoded while the delta's bytes are in the scratch) gets a buffer of its own; the
/// larger of the two is kept.
pub fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    let mut buf = crate::spare::take(&SCRATCH, 0);
    let r = f(&mut buf);
    crate::spare::give_back(&SCRATCH, buf, SCRATCH_KEEP);
    r
}

fn zstd_compress(raw: &[u8], level: i32) -> Option<Vec<u8>> {
    CCTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(l, _)| *l) != Some(level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        c.as_mut()?.1.compress(raw).ok()
    })
}

fn zstd_decompress(frame: &[u8], size: usize) -> Result<Vec<u8>, String> {
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?);
        }
        match d.as_mut() {
            Some(d) => d.decompress(frame, size).map_err(|e| format!("zstd: {e}")),
            None => Err("zstd: no context".into()),
        }
    })
}

/// A flag's name, for reports.
pub fn flag_name(flag: u8) -> &'static str {
    match flag {
        RAW => "raw",
        LZ4 => "lz4",
        ZSTD => "zstd",
        DELTA => "delta",
        _ => "unknown",
    }
}

/// The whole blobs a delta is rebuilt on, their plaintexts concatenated in this order as
/// the reference prefix: usually one; two when the chunk straddles two old chunks (a cut
/// point moved), which one base alone would cover only in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bases {
    pub first: BlobId,
    pub second: Option<BlobId>,
}

impl Bases {
    pub fn one(first: BlobId) -> Bases {
        Bases {
            first,
            second: None,
        }
    }

    pub fn ids(&self) -> impl Iterator<Item = BlobId> {
        std::iter::once(self.first).chain(self.second)
    }

    /// The ids back to back (32 or 64 bytes): how the payload and the catalog store them.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.ids().flat_map(|b| b.0).collect()
    }

    pub fn from_bytes(b: &[u8]) -> Option<Bases> {
        let id = BlobId::from_slice;
        match b.len() {
            32 => Some(Bases::one(id(b)?)),
            64 => Some(Bases {
                first: id(&b[..32])?,
                second: Some(id(&b[32..])?),
            }),
            _ => None,
        }
    }
}

/// What an opened blob holds: its bytes, or a delta that needs its bases' bytes.
pub enum Payload<'a> {
    Full(Vec<u8>),
    Delta { bases: Bases, frame: &'a [u8] },
}

/// The content size a zstd frame declares, refused above `MAX_RAW` before allocating.
fn frame_size(frame: &[u8]) -> Result<usize, String> {
    let size = zstd::zstd_safe::get_frame_content_size(frame)
        .map_err(|_| "zstd: not a frame".to_string())?
        .ok_or("zstd: frame without its size")?;
    if size > MAX_RAW as u64 {
        return Err(format!("zstd: {size} bytes is larger than any blob"));
    }
    Ok(size as usize)
}

/// The raw bytes of an opened blob (`flag ‖ payload`), or the delta to apply to its base;
/// the caller checks the result against the id (`Repository::decode_blob_with`), or the
/// whole file's blake3 (a restore, `Repository::open_blob`).
pub fn decode(plain: &[u8]) -> Result<Payload<'_>, String> {
    match plain.split_first() {
        Some((&RAW, rest)) => Ok(Payload::Full(rest.to_vec())),
        Some((&LZ4, rest)) => lz4_flex::decompress_size_prepended(rest)
            .map(Payload::Full)
            .map_err(|e| format!("lz4: {e}")),
        Some((&ZSTD, rest)) => {
            let size = frame_size(rest)?;
            let raw = zstd_decompress(rest, size)?;
            if raw.len() != size {
                return Err("zstd: frame shorter than its size".into());
            }
            Ok(Payload::Full(raw))
        }
        Some((&DELTA, rest)) => {
            let n = *rest.first().ok_or("delta: too short")? as usize;
            let ids = rest.get(1..1 + 32 * n).ok_or("delta: too short")?;
            let bases = Bases::from_bytes(ids).ok_or("delta: bad base count")?;
            Ok(Payload::Delta {
                bases,
                frame: &rest[1 + 32 * n..],
            })
        }
        Some((flag, _)) => Err(format!("unknown compression {flag}")),
        None => Err("empty blob".into()),
    }
}

/// `DELTA ‖ base count ‖ base ids ‖ zstd frame of raw with prefix (the bases' bytes,
/// concatenated) as the reference prefix`. None when zstd fails (the caller stores the blob
/// whole). A fresh context per delta: a reference prefix borrows the bases, which a
/// long-lived thread-local context cannot.
pub fn encode_delta(raw: &[u8], bases: &Bases, prefix: &[u8], level: i32) -> Option<Vec<u8>> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let mut cctx = CCtx::try_create()?;
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .ok()?;
    cctx.ref_prefix(prefix).ok()?;
    let ids = bases.to_bytes();
    let mut out = Vec::with_capacity(2 + ids.len() + zstd::zstd_safe::compress_bound(raw.len()));
    out.push(DELTA);
    out.push((ids.len() / 32) as u8);
    out.extend_from_slice(&ids);
    let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
    cctx.compress2(&mut frame, raw).ok()?;
    out.extend_from_slice(&frame);
    Some(out)
}

/// Rebuilds a delta's bytes from its frame and its bases' bytes, concatenated.
pub fn decode_delta(frame: &[u8], base_raw: &[u8]) -> Result<Vec<u8>, String> {
    use zstd::zstd_safe::DCtx;
    let size = frame_size(frame)?;
    let mut dctx = DCtx::try_create().ok_or("zstd: no context")?;
    dctx.ref_prefix(base_raw)
        .map_err(|c| format!("delta: {}", zstd::zstd_safe::get_error_name(c)))?;
    let mut raw = Vec::with_capacity(size);
    dctx.decompress(&mut raw, frame)
        .map_err(|c| format!("delta: {}", zstd::zstd_safe::get_error_name(c)))?;
    if raw.len() != size {
        return Err("delta: frame shorter than its size".into());
    }
    Ok(raw)
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => write!(f, "none"),
            Compression::Lz4 => write!(f, "lz4"),
            Compression::Zstd(l) => write!(f, "zstd:{l}"),
        }
    }
}

impl Serialize for Compression {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Compression::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `n` incompressible bytes from a xorshift generator seeded with `x` (not 0), for tests.
#[cfg(test)]
pub(crate) fn noise(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        let ok = [
            ("none", Compression::None, "none"),
            ("lz4", Compression::Lz4, "lz4"),
            ("zstd", Compression::Zstd(3), "zstd:3"),
            ("zstd:19", Compression::Zstd(19), "zstd:19"),
            ("zstd:-3", Compression::Zstd(-3), "zstd:-3"),
        ];
        for (s, c, shown) in ok {
            assert_eq!(Compression::parse(s), Ok(c), "{s}");
            assert_eq!(c.to_string(), shown);
            assert_eq!(Compression::parse(shown), Ok(c));
        }
        for bad in ["", "gzip", "zstd:", "zstd:0", "zstd:20", "zstd:x", "lz4:1"] {
            assert!(Compression::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_kind_round_trips_and_incompressible_data_stays_raw() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{i}\taccount-{}\t{}\n", i % 97, i * 37 % 1000).into_bytes())
            .collect();
        let noise: Vec<u8> = (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for c in [
            Compression::None,
            Compression::Lz4,
            Compression::Zstd(3),
            Compression::Zstd(-1),
        ] {
            for data in [&text[..], &noise[..], &[][..]] {
                let enc = c.encode(data);
                assert_eq!(full(&enc).as_deref(), Ok(data), "{c}");
            }
            let flag = c.encode(&text)[0];
            let want = match c {
                Compression::None => RAW,
                Compression::Lz4 => LZ4,
                Compression::Zstd(_) => ZSTD,
            };
            assert_eq!(flag, want, "{c}");
        }
        // zstd -3 beats lz4 on dump-like text.
        assert!(Compression::Zstd(3).encode(&text).len() < Compression::Lz4.encode(&text).len());
    }

    #[test]
    fn zstd_is_skipped_where_it_would_save_under_3_percent() {
        let text = rows(1, 8000);
        let mut text_with_noisy_samples = text.clone();
        let n = text.len();
        for at in [0, n / 2 - SAMPLE / 2, n - SAMPLE] {
            text_with_noisy_samples[at..at + SAMPLE].copy_from_slice(&noise(SAMPLE, 9));
        }
        let mut noise_with_text_middle = noise(256 * 1024, 3);
        noise_with_text_middle[100_000..160_000].copy_from_slice(&text[..60_000]);
        // 98% noise, 2% zeros: zstd saves about 2%.
        let mut almost_noise = noise(256 * 1024, 4);
        almost_noise[..5_000].fill(0);
        let cases: [(&str, Vec<u8>, u8); 6] = [
            ("text", text.clone(), ZSTD),
            ("noise", noise(256 * 1024, 1), RAW),
            (
                "small noise, compressed and kept raw",
                noise(20_000, 2),
                RAW,
            ),
            (
                "noise with text between the samples",
                noise_with_text_middle,
                ZSTD,
            ),
            // The documented misjudgement: stored raw, still read back exactly.
            (
                "text with noise where sampled",
                text_with_noisy_samples,
                RAW,
            ),
            ("saves under 3%", almost_noise, RAW),
        ];
        for (what, data, flag) in cases {
            let enc = Compression::Zstd(3).encode(&data);
            assert_eq!(enc[0], flag, "{what}");
            assert_eq!(full(&enc).as_deref(), Ok(&data[..]), "{what}");
        }
    }

    fn full(enc: &[u8]) -> Result<Vec<u8>, String> {
        match decode(enc)? {
            Payload::Full(raw) => Ok(raw),
            Payload::Delta { .. } => Err("a delta".into()),
        }
    }

    fn rows(seed: u32, n: u32) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("{i}\tcustomer-{}\t{}\n", (i ^ seed) % 89, i * 7).into_bytes())
            .collect()
    }

    #[test]
    fn a_delta_needs_its_base_and_is_much_smaller_than_the_chunk() {
        let base = rows(0, 3000);
        let mut changed = base.clone();
        changed[5000..5010].copy_from_slice(b"CHANGED!!!");
        changed.drain(20_000..20_100);
        changed.extend_from_slice(b"appended row\n");
        let bid = Bases::one(BlobId([7; 32]));
        let d = encode_delta(&changed, &bid, &base, 3).expect("delta");
        let whole = Compression::Zstd(3).encode(&changed);
        assert!(d.len() * 20 < whole.len(), "{} vs {}", d.len(), whole.len());
        let Ok(Payload::Delta { bases: got, frame }) = decode(&d) else {
            panic!("not a delta");
        };
        assert_eq!(got, bid);
        assert_eq!(decode_delta(frame, &base).as_deref(), Ok(&changed[..]));
        // Another base rebuilds other bytes (or fails): the caller's id check catches it.
        assert_ne!(
            decode_delta(frame, &rows(1, 3000)).ok(),
            Some(changed.clone())
        );
        assert!(decode(&d[..20]).is_err());
        assert!(decode_delta(&frame[..frame.len() / 2], &base).is_err());

        // A chunk that straddles two old chunks: both as the prefix.
        let (a, b) = (rows(0, 1500), rows(2, 1500));
        let mut straddle = a[a.len() / 2..].to_vec();
        straddle.extend_from_slice(&b[..b.len() / 2]);
        straddle[100..104].copy_from_slice(b"EDIT");
        let two = Bases {
            first: BlobId([1; 32]),
            second: Some(BlobId([2; 32])),
        };
        let prefix = [&a[..], &b[..]].concat();
        let d2 = encode_delta(&straddle, &two, &prefix, 3).expect("delta");
        let one = encode_delta(&straddle, &Bases::one(two.first), &a, 3).expect("delta");
        assert!(d2.len() * 4 < one.len(), "{} vs {}", d2.len(), one.len());
        let Ok(Payload::Delta { bases, frame }) = decode(&d2) else {
            panic!("not a delta");
        };
        assert_eq!(bases, two);
        assert_eq!(decode_delta(frame, &prefix).as_deref(), Ok(&straddle[..]));
        assert_eq!(Bases::from_bytes(&two.to_bytes()), Some(two));
        assert_eq!(Bases::from_bytes(&[0; 40]), None);
    }

    #[test]
    fn damaged_payloads_are_errors_not_panics() {
        let enc = Compression::Zstd(3).encode(&[7u8; 100_000]);
        for cut in [1, 2, 5, enc.len() / 2, enc.len() - 1] {
            assert!(full(&enc[..cut]).is_err(), "cut at {cut}");
        }
        // A frame claiming a huge size is refused before allocating it.
        let mut big = vec![ZSTD];
        big.extend(zstd::bulk::compress(&[0u8; 16], 3).unwrap_or_default());
        assert!(full(&big).is_ok());
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(decode(&[]).is_err());
    }

    /// A nested use (a delta's base decoded while the delta's bytes are in the scratch)
    /// gets a buffer of its own; the larger one is kept, emptied; one larger than
    /// `SCRATCH_KEEP` is not.
    #[test]
    fn scratch_is_reused_and_nested_uses_get_their_own() {
        for (outer_cap, inner_cap) in [(100_000, 10), (10, 100_000)] {
            drop(SCRATCH.take());
            let (outer, inner) = with_scratch(|a| {
                a.reserve(outer_cap);
                a.extend_from_slice(b"outer");
                let inner = with_scratch(|b| {
                    assert!(b.is_empty());
                    b.reserve(inner_cap);
                    b.extend_from_slice(b"inner");
                    b.as_ptr()
                });
                assert_eq!(a, b"outer");
                (a.as_ptr(), inner)
            });
            let kept = if outer_cap > inner_cap { outer } else { inner };
            with_scratch(|c| {
                assert!(c.is_empty());
                assert_eq!(c.as_ptr(), kept, "({outer_cap}, {inner_cap})");
            });
        }
        with_scratch(|c| c.reserve(2 * SCRATCH_KEEP));
        with_scratch(|c| assert!(c.capacity() < 2 * SCRATCH_KEEP));
    }
}
