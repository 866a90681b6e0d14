//! The repository: keys, config and typed, encrypted objects on top of a store.
//! Store keys: `config`, `keys/<id>`, `data/<xx>/<pack>`, `index/<id>`, `snapshots/<id>`.

pub mod batches;
pub mod commit;
pub mod compress;
pub mod doomed;
pub mod env;
pub mod file;
pub mod index;
pub mod keyfiles;
pub mod lock;
pub mod pack;
pub mod packer;
pub mod retain;
pub(crate) mod trees;

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;

use parking_lot::Mutex;

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use crate::crypto::{BlobId, KeyFile, Keys};
use crate::error::{Error, Result};
use crate::model::{Manifest, Tree};
use crate::store::{DynStore, ObjectInfo, StoreError};
use file::FileType;
use index::{IndexFile, Location, MasterIndex};
use pack::BlobKind;

/// 2: the chunker's gear table is keyed (`Config::chunk_seed`), index entries carry their
/// pack's storage class. Version 1 repositories are not read (there were no users).
/// 3: delta blobs (compression flag 3, `base` in pack headers and index objects, new AADs
/// for both). Format 2 repositories are read and written in format 2, without deltas.
pub const FORMAT_VERSION: u32 = 3;
/// Concurrent whole-object GETs in `get_many`.
const GET_MANY: usize = 32;
const CONFIG_AAD: &[u8] = b"cofre-config-v1";
const SNAPSHOT_AAD: &[u8] = b"cofre-snapshot-v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    pub id: String,
    pub chunk_min: u32,
    pub chunk_avg: u32,
    pub chunk_max: u32,
    pub pack_size: u32,
    /// Seeds FastCDC's gear table, derived from the id key: chunk boundaries, and so chunk
    /// sizes, are different in every repository and reveal nothing about known files.
    pub chunk_seed: u64,
    /// How new blobs are compressed unless a set or `--compression` says otherwise
    /// (absent in repositories made before zstd: they get the built-in default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<compress::Compression>,
    /// S3 Object Lock on every locked object this repository writes (`init --object-lock`;
    /// absent: none). Older cofre versions ignore the field and would write unlocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<retain::ObjectLock>,
}

#[derive(Default)]
pub struct Indexes {
    pub readable: Vec<(String, IndexFile)>,
    pub damaged: Vec<(String, Error)>,
}

impl Indexes {
    /// The master index of every readable index object; each object's entries are freed
    /// as soon as they are added, so both are never whole in memory at once.
    pub fn into_master(self) -> MasterIndex {
        let mut mi = MasterIndex::default();
        for (_, f) in self.readable {
            mi.add(&f);
        }
        mi.seal();
        mi
    }
}

pub struct Repository {
    store: DynStore,
    rt: Handle,
    keys: Keys,
    pub config: Config,
    /// Name of the key file (`keys/<name>`) the password opened.
    pub key_name: String,
    /// Whole tree packs, recently read: walking a snapshot reads many trees of one pack,
    /// and one GET per tree costs a round trip each on S3.
    tree_packs: Mutex<lru::LruCache<BlobId, Arc<Vec<u8>>>>,
    /// Clocks and identity (the real machine, or a simulated host).
    env: env::DynEnv,
}

fn tree_pack_cache() -> Mutex<lru::LruCache<BlobId, Arc<Vec<u8>>>> {
    Mutex::new(lru::LruCache::new(
        std::num::NonZeroUsize::new(8).unwrap_or(std::num::NonZeroUsize::MIN),
    ))
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Runs store I/O from a plain (non-runtime) thread: the async bridge.
pub fn block<F: Future>(rt: &Handle, f: F) -> F::Output {
    rt.block_on(f)
}

impl Repository {
    pub fn init(store: DynStore, rt: Handle, password: &[u8]) -> Result<Repository> {
        Self::init_with(store, rt, password, compress::Compression::DEFAULT)
    }

    /// A new repository whose blobs are compressed with `compression` unless told otherwise.
    pub fn init_with(
        store: DynStore,
        rt: Handle,
        password: &[u8],
        compression: compress::Compression,
    ) -> Result<Repository> {
        Self::init_locked(store, rt, password, compression, None)
    }

    /// `init_with`, every locked object retained by S3 Object Lock (`repo::retain`). The
    /// bucket must have Object Lock enabled: it can only be turned on when a bucket is made.
    pub fn init_locked(
        store: DynStore,
        rt: Handle,
        password: &[u8],
        compression: compress::Compression,
        object_lock: Option<retain::ObjectLock>,
    ) -> Result<Repository> {
        let keys = Keys::random();
        let config = Config {
            version: FORMAT_VERSION,
            id: hex::encode(rand::random::<[u8; 16]>()),
            // 64 KiB average: small edits in dumps touch few bytes of chunks.
            chunk_min: 16 * 1024,
            chunk_avg: 64 * 1024,
            chunk_max: 256 * 1024,
            pack_size: 8 * 1024 * 1024,
            chunk_seed: keys.chunk_seed(),
            compression: Some(compression),
            object_lock,
        };
        Self::create(store, rt, password, keys, config)
    }

    /// A new repository with `from`'s keys, chunker and pack parameters, and a password of
    /// its own (`init --copy-params-from`): the same file chunks to the same blobs in both,
    /// so `copy` moves blobs and manifests between them as they are (snapshot ids kept),
    /// and either one's ingest dedups against what was copied.
    pub fn init_copying(
        store: DynStore,
        rt: Handle,
        password: &[u8],
        from: &Repository,
        object_lock: Option<retain::ObjectLock>,
    ) -> Result<Repository> {
        let config = Config {
            version: FORMAT_VERSION,
            id: hex::encode(rand::random::<[u8; 16]>()),
            // The copy's own: an offsite copy is often the one locked.
            object_lock,
            ..from.config.clone()
        };
        Self::create(store, rt, password, from.keys.clone(), config)
    }

    /// Whether blobs and manifests sealed by `other` open here, unchanged.
    pub fn shares_keys_with(&self, other: &Repository) -> bool {
        self.keys.same_as(&other.keys) && self.config.chunk_seed == other.config.chunk_seed
    }

    fn create(
        store: DynStore,
        rt: Handle,
        password: &[u8],
        keys: Keys,
        config: Config,
    ) -> Result<Repository> {
        match block(&rt, store.head(&FileType::Config.key(""))) {
            Ok(_) => return Err(Error::RepositoryExists(store.location())),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let store = match config.object_lock {
            Some(lock) => {
                if !block(&rt, store.object_lock_enabled())? {
                    return Err(Error::InvalidArgument(format!(
                        "{} has no S3 Object Lock: make a bucket with it (`aws s3api create-bucket --object-lock-enabled-for-bucket ...`), or init without --object-lock",
                        store.location()
                    )));
                }
                retain::Retaining::wrap(store, lock)
            }
            None => store,
        };
        let kf_bytes = KeyFile::wrap(&keys, password, now_rfc3339())?.to_bytes()?;
        let key_name = blake3::hash(&kf_bytes).to_hex().to_string();
        block(&rt, store.put(&FileType::Key.key(&key_name), kf_bytes))?;
        let cfg =
            serde_json::to_vec(&config).map_err(|e| Error::corrupt("config", e.to_string()))?;
        // config last: a repository exists once its config is stored. Only one of two
        // racing inits may win; the loser's key file opens nothing and `open` skips it.
        let sealed = keys.seal(&cfg, CONFIG_AAD);
        let config_key = FileType::Config.key("");
        match block(&rt, store.put_if_absent(&config_key, sealed.clone())) {
            // A store client that retried our put after its answer was lost finds our own
            // config there: sealed under a fresh nonce, equal bytes can only be ours.
            Err(StoreError::Exists(_))
                if block(&rt, store.get(&config_key, None)).is_ok_and(|b| b == sealed) => {}
            Err(StoreError::Exists(_)) => {
                let _ = block(&rt, store.delete(&FileType::Key.key(&key_name)));
                return Err(Error::RepositoryExists(store.location()));
            }
            r => r?,
        }
        Ok(Repository {
            store,
            rt,
            keys,
            config,
            key_name,
            tree_packs: tree_pack_cache(),
            env: env::system(),
        })
    }

    pub fn open(store: DynStore, rt: Handle, password: &[u8]) -> Result<Repository> {
        let sealed_cfg = match block(&rt, store.get(&FileType::Config.key(""), None)) {
            Err(StoreError::NotFound(_)) => return Err(Error::NoRepository(store.location())),
            r => r?,
        };
        let (keys, cfg, key_name) = open_keys(&store, &rt, password, &sealed_cfg)?;
        let config: Config =
            serde_json::from_slice(&cfg).map_err(|e| Error::corrupt("config", e.to_string()))?;
        if !(2..=FORMAT_VERSION).contains(&config.version) {
            return Err(Error::corrupt(
                "config",
                format!(
                    "format version {} is not supported by this cofre",
                    config.version
                ),
            ));
        }
        let store = match config.object_lock {
            Some(lock) => retain::Retaining::wrap(store, lock),
            None => store,
        };
        Ok(Repository {
            store,
            rt,
            keys,
            config,
            key_name,
            tree_packs: tree_pack_cache(),
            env: env::system(),
        })
    }

    /// The same repository seen by another process: its own store handle, clocks and
    /// identity, the keys already opened (the simulation runs many hosts in one process).
    pub fn reopen(&self, store: DynStore, env: env::DynEnv, rt: Handle) -> Repository {
        Repository {
            store,
            rt,
            keys: self.keys.clone(),
            config: self.config.clone(),
            key_name: self.key_name.clone(),
            tree_packs: tree_pack_cache(),
            env,
        }
    }

    pub fn env(&self) -> &env::DynEnv {
        &self.env
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    pub fn runtime(&self) -> &Handle {
        &self.rt
    }

    pub fn put_raw(&self, key: &str, data: Vec<u8>) -> Result<()> {
        Ok(block(&self.rt, self.store.put(key, data))?)
    }

    /// `put_raw` in a storage class (data packs only; see docs/s3.md).
    pub fn put_raw_class(&self, key: &str, data: Vec<u8>, class: Option<&str>) -> Result<()> {
        match class {
            Some(c) => Ok(block(&self.rt, self.store.put_class(key, data, c))?),
            None => self.put_raw(key, data),
        }
    }

    /// Stores `data` at `key` unless something is there; whether it stored it.
    pub fn put_raw_if_absent(&self, key: &str, data: Vec<u8>) -> Result<bool> {
        match block(&self.rt, self.store.put_if_absent(key, data)) {
            Ok(()) => Ok(true),
            Err(StoreError::Exists(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub fn get_raw(&self, key: &str, range: Option<std::ops::Range<u64>>) -> Result<Vec<u8>> {
        Ok(block(&self.rt, self.store.get(key, range))?)
    }

    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        Ok(block(&self.rt, self.store.list(prefix))?)
    }

    /// Seals and stores an object named by the blake3 of its ciphertext; returns the name.
    pub(crate) fn put_sealed(&self, t: FileType, plain: &[u8], aad: &[u8]) -> Result<String> {
        let sealed = self.keys.seal(plain, aad);
        let id = blake3::hash(&sealed).to_hex().to_string();
        self.put_raw(&t.key(&id), sealed)?;
        Ok(id)
    }

    pub(crate) fn get_sealed(&self, key: &str, aad: &[u8]) -> Result<Vec<u8>> {
        self.open_sealed(key, self.get_raw(key, None)?, aad)
    }

    /// Checks a sealed object against its name and decrypts it.
    fn open_sealed(&self, key: &str, sealed: Vec<u8>, aad: &[u8]) -> Result<Vec<u8>> {
        if blake3::hash(&sealed).to_hex().as_str() != key.rsplit('/').next().unwrap_or("") {
            return Err(Error::corrupt(key, "content does not match its name"));
        }
        self.keys.open(&sealed, aad, key)
    }

    /// Whole objects, fetched up to `GET_MANY` at a time: listing-driven loads (every
    /// index object, every manifest, tree packs) are round-trip bound on S3. Results are in
    /// the order of `keys`.
    pub fn get_many(&self, keys: &[String]) -> Vec<Result<Vec<u8>>> {
        let whole: Vec<_> = keys.iter().map(|k| (k.clone(), None)).collect();
        self.get_ranges(&whole)
    }

    /// `get_many` of (key, range) pairs.
    pub fn get_ranges(&self, reqs: &[(String, Option<Range<u64>>)]) -> Vec<Result<Vec<u8>>> {
        self.run_many(reqs.iter().map(|(key, range)| {
            let (store, key, range) = (self.store.clone(), key.clone(), range.clone());
            async move { store.get(&key, range).await }
        }))
    }

    /// Runs store calls up to `GET_MANY` at a time; one result per call, in order.
    pub(crate) fn run_many<T, F>(&self, calls: impl Iterator<Item = F>) -> Vec<Result<T>>
    where
        T: Send + 'static,
        F: Future<Output = std::result::Result<T, StoreError>> + Send + 'static,
    {
        let limit = Arc::new(tokio::sync::Semaphore::new(GET_MANY));
        let tasks: Vec<_> = calls
            .map(|call| {
                let limit = limit.clone();
                self.rt.spawn(async move {
                    let _permit = limit.acquire().await;
                    call.await
                })
            })
            .collect();
        tasks
            .into_iter()
            .map(|t| match block(&self.rt, t) {
                Ok(r) => r.map_err(Error::from),
                Err(e) => Err(Error::corrupt("store task", e.to_string())),
            })
            .collect()
    }

    /// `get_sealed` for many objects of one type, concurrently.
    pub(crate) fn get_sealed_many(
        &self,
        t: FileType,
        names: &[String],
        aad: &[u8],
    ) -> Vec<Result<Vec<u8>>> {
        let keys: Vec<String> = names.iter().map(|n| t.key(n)).collect();
        self.get_many(&keys)
            .into_iter()
            .zip(&keys)
            .map(|(r, key)| r.and_then(|sealed| self.open_sealed(key, sealed, aad)))
            .collect()
    }

    /// Manifests `ids`, fetched concurrently; one result per id, in order.
    pub fn load_manifests(&self, ids: &[String]) -> Vec<Result<Manifest>> {
        self.get_sealed_many(FileType::Snapshot, ids, SNAPSHOT_AAD)
            .into_iter()
            .zip(ids)
            .map(|(r, id)| {
                r.and_then(|plain| {
                    serde_json::from_slice(&plain)
                        .map_err(|e| Error::corrupt(FileType::Snapshot.key(id), e.to_string()))
                })
            })
            .collect()
    }

    /// Whether this repository is written in format 2 (no deltas; see `pack::legacy`).
    pub fn legacy(&self) -> bool {
        pack::legacy(self.config.version)
    }

    pub fn save_index(&self, index: &IndexFile) -> Result<String> {
        let sealed = index.seal(&self.keys, self.legacy())?;
        let id = blake3::hash(&sealed).to_hex().to_string();
        self.put_raw(&FileType::Index.key(&id), sealed)?;
        Ok(id)
    }

    /// Checks an index object against its name and opens it.
    fn open_index(&self, key: &str, sealed: Vec<u8>) -> Result<IndexFile> {
        if blake3::hash(&sealed).to_hex().as_str() != key.rsplit('/').next().unwrap_or("") {
            return Err(Error::corrupt(key, "content does not match its name"));
        }
        IndexFile::open(&self.keys, &sealed, key)
    }

    /// Index object `name` (its id, without `index/`).
    pub fn load_index_file(&self, name: &str) -> Result<IndexFile> {
        let key = FileType::Index.key(name);
        self.open_index(&key, self.get_raw(&key, None)?)
    }

    /// Every index object: the readable ones, and the damaged ones with why. A store
    /// failure (listing or reading) is an error: nobody may act on half a listing.
    pub fn load_indexes(&self) -> Result<Indexes> {
        let mut out = Indexes::default();
        let names: Vec<String> = self
            .list_type(FileType::Index)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let keys: Vec<String> = names.iter().map(|n| FileType::Index.key(n)).collect();
        let loaded = self.get_many(&keys);
        for ((name, key), r) in names.into_iter().zip(&keys).zip(loaded) {
            let file = r.and_then(|sealed| self.open_index(key, sealed));
            match file {
                Ok(f) => out.readable.push((name, f)),
                Err(e @ Error::Corrupt { .. }) => out.damaged.push((name, e)),
                // Deleted since the listing: a prune replaced it (the replacement was
                // written first, so it is in this listing or the packs stay unindexed and
                // are read from their headers), or an ingest settled its own.
                Err(Error::Store(StoreError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Every readable index object; damaged ones are skipped with a warning (what they
    /// listed is then missing, and reported by whoever needs it).
    pub fn load_master_index(&self) -> Result<MasterIndex> {
        let all = self.load_indexes()?;
        for (name, e) in &all.damaged {
            tracing::warn!("index/{name} skipped: {e}");
        }
        Ok(all.into_master())
    }

    pub fn save_manifest(&self, m: &Manifest) -> Result<String> {
        let plain = serde_json::to_vec(m).map_err(|e| Error::corrupt("manifest", e.to_string()))?;
        self.put_sealed(FileType::Snapshot, &plain, SNAPSHOT_AAD)
    }

    /// A manifest as stored, checked against its name and key: `copy` stores these very
    /// bytes in a repository with the same keys, so the snapshot keeps its id.
    pub fn sealed_manifest(&self, id: &str) -> Result<Vec<u8>> {
        let key = FileType::Snapshot.key(id);
        let sealed = self.get_raw(&key, None)?;
        self.open_sealed(&key, sealed.clone(), SNAPSHOT_AAD)?;
        Ok(sealed)
    }

    /// Whether `sealed` is blob `id` as this repository's keys sealed it (the AEAD, bound
    /// to the id): `copy` moves blobs without decoding them, but never a damaged one.
    pub fn authenticate_blob(&self, id: &BlobId, sealed: &[u8]) -> Result<()> {
        self.keys
            .open(sealed, &id.0, &format!("blob {}", id.hex()))
            .map(|_| ())
    }

    pub fn load_manifest(&self, id: &str) -> Result<Manifest> {
        let key = FileType::Snapshot.key(id);
        let plain = self.get_sealed(&key, SNAPSHOT_AAD)?;
        serde_json::from_slice(&plain).map_err(|e| Error::corrupt(&key, e.to_string()))
    }

    /// A pack's own list of its blobs, read from its header with two ranged reads.
    pub fn pack_header(&self, key: &str, size: u64) -> Result<Vec<pack::PackEntry>> {
        let short = || Error::corrupt(key, "too short for a pack");
        let trailer = size.checked_sub(4).ok_or_else(short)?;
        let hl = pack::header_len(&self.get_raw(key, Some(trailer..size))?)?;
        let start = trailer.checked_sub(hl).ok_or_else(short)?;
        let entries =
            pack::parse_header(&self.keys, &self.get_raw(key, Some(start..trailer))?, key)?;
        pack::check_bounds(&entries, start, key)?;
        Ok(entries)
    }

    /// Every object of one type: (name, size). A failed listing is an error, never empty.
    pub fn list_type(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        Ok(self
            .list(t.prefix())?
            .into_iter()
            .filter_map(|o| Some((t.name_of(&o.key)?.to_string(), o.size)))
            .collect())
    }

    /// Deletes one object. Only prune, forget, unlock, key removal and an uncommitted
    /// ingest's cleanup call this; each states its proof in docs/prune.md.
    pub fn delete(&self, t: FileType, name: &str) -> Result<()> {
        Ok(block(&self.rt, self.store.delete(&t.key(name)))?)
    }

    /// Deletes many objects of one type, up to `GET_MANY` at a time (S3 deletes are round
    /// trips). One result per name, in order; a failure does not stop the others.
    pub fn delete_many(&self, t: FileType, names: &[String]) -> Vec<Result<()>> {
        self.run_many(names.iter().map(|n| {
            let (store, key) = (self.store.clone(), t.key(n));
            async move { store.delete(&key).await }
        }))
    }

    /// Every pack present in the store: its size, write time by the store's clock, and
    /// storage class as the store reports it.
    pub fn pack_listing(&self) -> Result<std::collections::HashMap<BlobId, ObjectInfo>> {
        Ok(self
            .list(FileType::Pack.prefix())?
            .into_iter()
            .filter_map(|o| Some((file::pack_id(&o.key)?, o)))
            .collect())
    }

    /// Every pack present in the store, with its size.
    pub fn pack_sizes(&self) -> Result<std::collections::HashMap<BlobId, u64>> {
        Ok(self
            .list(FileType::Pack.prefix())?
            .iter()
            .filter_map(|o| Some((file::pack_id(&o.key)?, o.size)))
            .collect())
    }

    /// Ids of the packs present in the store.
    pub fn pack_ids(&self) -> Result<std::collections::HashSet<BlobId>> {
        Ok(self.pack_sizes()?.into_keys().collect())
    }

    /// Snapshot ids (full hex) present in the store.
    pub fn snapshot_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .list_type(FileType::Snapshot)?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    /// The repository's compression for new blobs.
    pub fn compression(&self) -> compress::Compression {
        self.config
            .compression
            .unwrap_or(compress::Compression::DEFAULT)
    }

    /// Encrypts one blob's `flag ‖ payload` (`Compression::encode`, `compress::encode_delta`),
    /// bound to its id: `decode_blob_with` opens it only under that id.
    pub fn seal_blob(&self, id: &BlobId, plain: &[u8]) -> Vec<u8> {
        self.keys.seal(plain, &id.0)
    }

    /// Decrypts, decompresses and verifies a whole blob (a tree, or a chunk read where no
    /// delta base can be fetched) against its id.
    pub fn decode_blob(&self, id: &BlobId, encoded: &[u8]) -> Result<Vec<u8>> {
        let no_base = |b: &BlobId| {
            Err(Error::corrupt(
                format!("blob {}", id.hex()),
                format!("is a delta on {}, which cannot be read here", b.hex()),
            ))
        };
        self.decode_blob_with(id, encoded, &no_base).map(|d| d.raw)
    }

    /// Decrypts, decompresses and verifies a blob against its id; a delta's bases come from
    /// `base` (and must be whole blobs: chains are one step long, docs/format.md "Deltas").
    pub fn decode_blob_with(
        &self,
        id: &BlobId,
        encoded: &[u8],
        base: BaseFn<'_>,
    ) -> Result<DecodedBlob> {
        let d = self.open_blob(id, encoded, base)?;
        self.verify_id(id, &d.raw)?;
        Ok(d)
    }

    /// Whether `raw` is the plaintext of blob `id` (its keyed blake3).
    pub fn verify_id(&self, id: &BlobId, raw: &[u8]) -> Result<()> {
        match self.keys.blob_id(raw) == *id {
            true => Ok(()),
            false => Err(Error::corrupt(
                format!("blob {}", id.hex()),
                "content does not match its id",
            )),
        }
    }

    /// `decode_blob_with` without hashing the result against its id: for a caller that
    /// proves the bytes itself (a restore checks every file's whole-content blake3, which
    /// covers each chunk; hashing both costs a tenth of a restore's CPU). The stored bytes
    /// are still authenticated under the id by the AEAD.
    pub fn open_blob(&self, id: &BlobId, encoded: &[u8], base: BaseFn<'_>) -> Result<DecodedBlob> {
        let what = || format!("blob {}", id.hex());
        compress::with_scratch(|plain| {
            self.keys.open_into(encoded, &id.0, &what(), plain)?;
            self.decode_plain(plain, &what, base)
        })
    }

    fn decode_plain(
        &self,
        plain: &[u8],
        what: &dyn Fn() -> String,
        base: BaseFn<'_>,
    ) -> Result<DecodedBlob> {
        let flag = plain.first().copied().unwrap_or(compress::RAW);
        let (raw, base_id) = match compress::decode(plain).map_err(|e| Error::corrupt(what(), e))? {
            compress::Payload::Full(raw) => (raw, None),
            compress::Payload::Delta { bases, frame } => {
                let mut prefix = Vec::new();
                for b in bases.ids() {
                    let raw = base(&b).map_err(|e| {
                        Error::corrupt(
                            what(),
                            format!("its delta base {} is unreadable: {e}", b.hex()),
                        )
                    })?;
                    prefix.extend_from_slice(&raw);
                }
                let raw = compress::decode_delta(frame, &prefix)
                    .map_err(|e| Error::corrupt(what(), e))?;
                (raw, Some(bases))
            }
        };
        Ok(DecodedBlob {
            flag,
            base: base_id,
            raw,
        })
    }

    pub fn read_blob(&self, id: &BlobId, loc: &Location) -> Result<Vec<u8>> {
        let range = loc.offset..loc.offset + loc.length as u64;
        if loc.kind == BlobKind::Tree {
            let pack = self.tree_pack(&loc.pack)?;
            let enc = pack
                .get(range.start as usize..range.end as usize)
                .ok_or_else(|| {
                    Error::corrupt(pack::pack_key(&loc.pack), "blob outside the pack")
                })?;
            return self.decode_blob(id, enc);
        }
        let enc = self.get_raw(&pack::pack_key(&loc.pack), Some(range))?;
        self.decode_blob(id, &enc)
    }

    fn tree_pack(&self, pack: &BlobId) -> Result<Arc<Vec<u8>>> {
        if let Some(p) = self.tree_packs.lock().get(pack) {
            return Ok(p.clone());
        }
        let bytes = Arc::new(self.get_raw(&pack::pack_key(pack), None)?);
        self.tree_packs.lock().put(*pack, bytes.clone());
        Ok(bytes)
    }
}

/// A delta's base, decoded, by id (the reader's cache or a fetch). The base must be a
/// whole blob: a `BaseFn` decodes it with `decode_blob`, never with another `BaseFn`.
pub type BaseFn<'a> = &'a dyn Fn(&BlobId) -> Result<Arc<Vec<u8>>>;

/// A decoded blob and how it was stored.
pub struct DecodedBlob {
    /// `compress::RAW`, `LZ4`, `ZSTD` or `DELTA`.
    pub flag: u8,
    /// The bases it was a delta against.
    pub base: Option<compress::Bases>,
    pub raw: Vec<u8>,
}

/// Tries every key file: the first whose keys the password unwraps *and* that opens the
/// config wins. A damaged key file, or one left by a racing `init` whose keys open nothing,
/// is skipped with a warning instead of making the repository unreadable.
impl Repository {
    /// Whether `bytes` are this repository's config, sealed with its keys.
    pub fn is_own_config(&self, bytes: &[u8]) -> bool {
        self.keys.open(bytes, CONFIG_AAD, "config").is_ok()
    }
}

/// Whether `sealed_cfg` is a config this password opens through one of the store's key
/// files (`lock recover` tells cofre's config from a foreign object at its name).
pub fn config_opens(store: &DynStore, rt: &Handle, password: &[u8], sealed_cfg: &[u8]) -> bool {
    open_keys(store, rt, password, sealed_cfg)
        .is_ok_and(|(_, cfg, _)| serde_json::from_slice::<Config>(&cfg).is_ok())
}

fn open_keys(
    store: &DynStore,
    rt: &Handle,
    password: &[u8],
    sealed_cfg: &[u8],
) -> Result<(Keys, Vec<u8>, String)> {
    let mut unwrapped_but_wrong = false;
    for obj in block(rt, store.list(FileType::Key.prefix()))? {
        // A store failure is an error (never "wrong password"); a damaged file is skipped.
        let bytes = block(rt, store.get(&obj.key, None))?;
        let kf = serde_json::from_slice::<KeyFile>(&bytes)
            .map_err(|e| Error::corrupt(&obj.key, e.to_string()));
        let keys = match kf.and_then(|kf| kf.unwrap_keys(password)) {
            Ok(Some(k)) => k,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("key file {} skipped: {e}", obj.key);
                continue;
            }
        };
        match keys.open(sealed_cfg, CONFIG_AAD, "config") {
            Ok(cfg) => {
                let name = FileType::Key.name_of(&obj.key).unwrap_or_default();
                return Ok((keys, cfg, name.to_string()));
            }
            Err(_) => {
                tracing::warn!("key file {} does not open this repository's config (left by an interrupted init?); skipped", obj.key);
                unwrapped_but_wrong = true;
            }
        }
    }
    if unwrapped_but_wrong {
        return Err(Error::corrupt(
            "config",
            "no key file that the password opens decrypts it",
        ));
    }
    Err(Error::WrongPassword)
}

pub fn encode_tree(tree: &Tree) -> Result<Vec<u8>> {
    postcard::to_allocvec(tree).map_err(|e| Error::corrupt("tree", e.to_string()))
}

pub fn decode_tree(raw: &[u8], id: &BlobId) -> Result<Tree> {
    postcard::from_bytes(raw)
        .map_err(|e| Error::corrupt(format!("tree {}", id.hex()), e.to_string()))
}
