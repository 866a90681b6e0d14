//! Keys and authenticated encryption. Every stored byte goes through `Keys::seal`
//! (XChaCha20-Poly1305, random 192-bit nonce, so random nonces never collide in practice).
//! Chunk ids are keyed blake3, so they reveal nothing about known files.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const NONCE_LEN: usize = 24;
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 16;
/// The room `Keys::seal_in_place` needs before the plaintext (the nonce's).
pub const SEAL_ROOM: usize = NONCE_LEN;

/// A 32-byte identifier: keyed blake3 of a blob's plaintext.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_slice(b: &[u8]) -> Option<BlobId> {
        b.try_into().ok().map(BlobId)
    }
}

impl std::fmt::Debug for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &self.hex()[..16])
    }
}

/// The master keys: one for encryption, one for chunk ids.
#[derive(Clone)]
pub struct Keys {
    enc: [u8; 32],
    id: [u8; 32],
}

impl Keys {
    /// Both keys equal.
    pub fn same_as(&self, other: &Keys) -> bool {
        self.enc == other.enc && self.id == other.id
    }

    pub fn random() -> Keys {
        let mut k = Keys {
            enc: [0; 32],
            id: [0; 32],
        };
        rand::thread_rng().fill_bytes(&mut k.enc);
        rand::thread_rng().fill_bytes(&mut k.id);
        k
    }

    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.id, data).as_bytes())
    }

    /// The chunker's seed: keyed by the id key, so it is secret and fixed per repository.
    pub fn chunk_seed(&self) -> u64 {
        let h = blake3::keyed_hash(&self.id, b"cofre-chunker-gear-seed-v1");
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        // fastcdc treats 0 as "no seed".
        u64::from_le_bytes(b).max(1)
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        seal_with(&self.enc, plaintext, aad)
    }

    /// `seal` of `buf[SEAL_ROOM..]`, in `buf` itself: give it `SEAL_OVERHEAD` bytes of
    /// capacity beyond the plaintext's, and the first `SEAL_ROOM` bytes of anything.
    pub fn seal_in_place(&self, buf: Vec<u8>, aad: &[u8]) -> Vec<u8> {
        seal_in_place(&self.enc, buf, aad)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8], what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_into(sealed, aad, what, &mut out)?;
        Ok(out)
    }

    /// `open` into `out` (cleared first), a buffer the caller reuses: no allocation per
    /// blob once it is large enough.
    pub fn open_into(
        &self,
        sealed: &[u8],
        aad: &[u8],
        what: &str,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        match open_into(&self.enc, sealed, aad, out) {
            true => Ok(()),
            false => Err(Error::corrupt(
                what,
                "authentication failed (data damaged or tampered)",
            )),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        [self.enc.as_slice(), self.id.as_slice()].concat()
    }

    fn from_bytes(b: &[u8]) -> Option<Keys> {
        if b.len() != 64 {
            return None;
        }
        let mut k = Keys {
            enc: [0; 32],
            id: [0; 32],
        };
        k.enc.copy_from_slice(&b[..32]);
        k.id.copy_from_slice(&b[32..]);
        Some(k)
    }
}

fn seal_with(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    buf.resize(SEAL_ROOM, 0);
    buf.extend_from_slice(plaintext);
    seal_in_place(key, buf, aad)
}

/// Seals `buf[SEAL_ROOM..]` where it is: the nonce goes into the room before it, the tag
/// after it. The same bytes as a copy sealed elsewhere, without a second buffer of the
/// plaintext's size (an initial ingest of a million files writes a 41 MB index object).
fn seal_in_place(key: &[u8; 32], mut buf: Vec<u8>, aad: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    match cipher.encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut buf[SEAL_ROOM..]) {
        Ok(tag) => {
            buf[..SEAL_ROOM].copy_from_slice(&nonce);
            buf.extend_from_slice(&tag);
        }
        // Encryption fails only for messages over 256 GiB; nothing that big is sealed
        // whole, and an empty result never opens.
        Err(_) => buf.clear(),
    }
    buf
}

fn open_with(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    open_into(key, sealed, aad, &mut out).then_some(out)
}

fn open_into(key: &[u8; 32], sealed: &[u8], aad: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    if sealed.len() < SEAL_OVERHEAD {
        return false;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - 16);
    out.extend_from_slice(ct);
    let cipher = XChaCha20Poly1305::new(key.into());
    let ok = cipher
        .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, out, tag.into())
        .is_ok();
    if !ok {
        out.clear();
    }
    ok
}

/// A password-wrapped copy of the master keys, stored as `keys/<id>`.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub kdf: String,
    pub m_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: String,
    pub sealed: String,
    pub created: String,
    /// Who added the key (`key list`); absent in key files written by `init` before 0.2.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
}

const KEY_AAD: &[u8] = b"cofre-keyfile-v1";

fn derive(password: &[u8], salt: &[u8], m_kib: u32, t: u32, p: u32) -> Result<[u8; 32]> {
    let params = Params::new(m_kib, t, p, Some(32))
        .map_err(|e| Error::corrupt("key file", format!("bad argon2 parameters: {e}")))?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password, salt, &mut out)
        .map_err(|e| Error::corrupt("key file", format!("argon2: {e}")))?;
    Ok(out)
}

impl KeyFile {
    /// Argon2id with 64 MiB and 3 passes: ~0.2 s here, costly for a guesser.
    pub fn wrap(keys: &Keys, password: &[u8], created: String) -> Result<KeyFile> {
        let (m_kib, t_cost, p_cost) = (64 * 1024, 3, 1);
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let kek = derive(password, &salt, m_kib, t_cost, p_cost)?;
        Ok(KeyFile {
            version: 1,
            kdf: "argon2id".into(),
            m_kib,
            t_cost,
            p_cost,
            salt: hex::encode(salt),
            sealed: hex::encode(seal_with(&kek, &keys.to_bytes(), KEY_AAD)),
            created,
            hostname: String::new(),
            username: String::new(),
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::corrupt("key file", e.to_string()))
    }

    /// None when the password is wrong.
    pub fn unwrap_keys(&self, password: &[u8]) -> Result<Option<Keys>> {
        let bad = |_| Error::corrupt("key file", "not hex");
        let salt = hex::decode(&self.salt).map_err(bad)?;
        let sealed = hex::decode(&self.sealed).map_err(bad)?;
        let kek = derive(password, &salt, self.m_kib, self.t_cost, self.p_cost)?;
        Ok(open_with(&kek, &sealed, KEY_AAD).and_then(|b| Keys::from_bytes(&b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::{Aead, Payload};

    #[test]
    fn seal_open_and_tamper() {
        let k = Keys::random();
        let s = k.seal(b"hello", b"aad");
        assert_eq!(k.open(&s, b"aad", "t").unwrap(), b"hello");
        assert!(k.open(&s, b"other", "t").is_err());
        let mut t = s.clone();
        t[30] ^= 1;
        assert!(k.open(&t, b"aad", "t").is_err());
    }

    /// Sealed in place: what the cipher makes of the plaintext elsewhere (opened by the
    /// cipher itself, not by our `open`), in the buffer it was given, never grown.
    #[test]
    fn sealing_in_place_is_the_cipher_s_output_in_the_same_buffer() {
        let k = Keys::random();
        for len in [0usize, 1, 5, 4096, 100_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut buf = Vec::with_capacity(SEAL_OVERHEAD + len);
            buf.resize(SEAL_ROOM, 0xaa);
            buf.extend_from_slice(&plain);
            let at = buf.as_ptr();
            let sealed = k.seal_in_place(buf, b"aad");
            assert_eq!(sealed.len(), SEAL_OVERHEAD + len, "{len}");
            assert_eq!(sealed.as_ptr(), at, "{len}: a second buffer");
            let (nonce, ct) = sealed.split_at(NONCE_LEN);
            let cipher = XChaCha20Poly1305::new((&k.enc).into());
            let msg = Payload {
                msg: ct,
                aad: b"aad",
            };
            let opened = cipher.decrypt(XNonce::from_slice(nonce), msg);
            assert_eq!(opened.ok(), Some(plain.clone()), "{len}");
            assert_eq!(
                k.open(&k.seal(&plain, b"aad"), b"aad", "t").ok(),
                Some(plain)
            );
        }
    }

    /// Opened into a reused buffer: the same bytes as `open`, whatever the buffer held
    /// before, and a tampered, truncated or misaddressed blob leaves it empty.
    #[test]
    fn opening_into_a_reused_buffer_is_open() {
        let k = Keys::random();
        let mut buf = vec![7u8; 300_000];
        for len in [0usize, 1, 5, 4096, 100_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let sealed = k.seal(&plain, b"aad");
            k.open_into(&sealed, b"aad", "t", &mut buf).unwrap();
            assert_eq!(buf, plain, "{len}");
            assert!(k.open_into(&sealed, b"other", "t", &mut buf).is_err());
            assert!(buf.is_empty(), "{len}: a failed open left bytes");
            let mut t = sealed.clone();
            t[NONCE_LEN] ^= 1;
            assert!(k.open_into(&t, b"aad", "t", &mut buf).is_err());
            assert!(k
                .open_into(&sealed[..SEAL_OVERHEAD - 1], b"aad", "t", &mut buf)
                .is_err());
        }
    }

    #[test]
    fn keyfile_roundtrip_and_wrong_password() {
        let k = Keys::random();
        let kf = KeyFile::wrap(&k, b"pw", "now".into()).unwrap();
        let back = kf.unwrap_keys(b"pw").unwrap().unwrap();
        assert_eq!(back.blob_id(b"x"), k.blob_id(b"x"));
        assert!(kf.unwrap_keys(b"wrong").unwrap().is_none());
    }
}
