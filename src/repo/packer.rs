//! The write pipeline: blobs are compressed and encrypted on worker threads, appended to
//! the open pack of their kind, and full packs are uploaded by the worker that filled them.
//! Data and tree blobs go to separate packs so trees can live in an instant storage class.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender};
use parking_lot::Mutex;

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::repo::compress::{self, Bases, Compression};
use crate::repo::index::IndexPack;
use crate::repo::pack::{pack_key, BlobKind, PackBuilder};
use crate::repo::Repository;

struct Job {
    id: BlobId,
    raw: Vec<u8>,
    kind: BlobKind,
    /// Similar stored whole chunks (ids, their bytes concatenated) to try a delta on.
    base: Option<(Bases, Arc<Vec<u8>>)>,
    /// `raw` is a blob sealed already (`copy`, between repositories sharing keys): its
    /// length before encoding and the bases it needs, as its source index says.
    sealed: Option<(usize, Option<Bases>)>,
}

/// A delta is stored only when it is at most this fraction of the chunk stored whole:
/// each delta's base is kept as long as the delta, and a read costs the base's too.
const DELTA_GAIN: usize = 4;

/// `flag ‖ payload` of a job's blob: a delta against its base when that is much smaller,
/// else the chunk compressed whole. Returns the bases the delta needs.
fn encode(job: &Job, c: Compression) -> (Vec<u8>, Option<Bases>) {
    let whole = c.encode(&job.raw);
    let Some((base, base_raw)) = &job.base else {
        return (whole, None);
    };
    let level = match c {
        Compression::Zstd(l) => l,
        _ => 3,
    };
    match compress::encode_delta(&job.raw, base, base_raw, level) {
        Some(d) if d.len() * DELTA_GAIN <= whole.len() => (d, Some(*base)),
        _ => (whole, None),
    }
}

struct State {
    data: PackBuilder,
    tree: PackBuilder,
    written: Vec<IndexPack>,
    bytes_added: u64,
    deltas: u64,
    delta_raw_bytes: u64,
    error: Option<Error>,
}

/// Blobs go to the workers in batches of about this many bytes (or `BATCH_BLOBS` blobs):
/// one hand-off per small file cost a wake-up each, and the workers' spinning `recv` was
/// most of an ingest's 200k `sched_yield` calls on a tree of small files.
const BATCH_BYTES: usize = 512 * 1024;
const BATCH_BLOBS: usize = 64;

pub struct Packer<'scope> {
    tx: Option<Sender<Vec<Job>>>,
    state: Arc<Mutex<State>>,
    /// Set with `State::error`, read without the lock on every blob queued.
    failed: Arc<AtomicBool>,
    /// Blobs not yet handed to the workers, and their bytes.
    pending: Mutex<(Vec<Job>, usize)>,
    workers: Vec<std::thread::ScopedJoinHandle<'scope, ()>>,
    repo: &'scope Repository,
    data_class: Option<String>,
}

pub struct Written {
    pub packs: Vec<IndexPack>,
    pub bytes_added: u64,
    /// Chunks stored as deltas, and their bytes before compression.
    pub deltas: u64,
    pub delta_raw_bytes: u64,
}

fn upload(
    repo: &Repository,
    builder: PackBuilder,
    state: &Mutex<State>,
    failed: &AtomicBool,
    data_class: Option<&str>,
) {
    // Trees stay in the default class so listing and browsing never hit an archive tier.
    let class = if builder.kind() == BlobKind::Data {
        data_class
    } else {
        None
    };
    let result = builder.finish(repo.keys(), repo.legacy()).and_then(|pack| {
        let size = pack.bytes.len() as u64;
        repo.put_raw_class(&pack_key(&pack.id), pack.bytes, class)?;
        Ok(IndexPack {
            id: pack.id,
            size,
            class: class.map(str::to_string),
            entries: pack.entries,
        })
    });
    let mut st = state.lock();
    match result {
        Ok(p) => {
            st.bytes_added += p.size;
            st.written.push(p);
        }
        Err(e) => {
            st.error.get_or_insert(e);
            failed.store(true, Ordering::Release);
        }
    }
}

impl<'scope> Packer<'scope> {
    pub fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        repo: &'scope Repository,
        data_class: Option<String>,
        compression: Compression,
    ) -> Self {
        let (tx, rx) = bounded::<Vec<Job>>(4);
        let failed = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State {
            data: PackBuilder::new(BlobKind::Data),
            tree: PackBuilder::new(BlobKind::Tree),
            written: Vec::new(),
            bytes_added: 0,
            deltas: 0,
            delta_raw_bytes: 0,
            error: None,
        }));
        let threads = repo.env().workers().unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(4)
        });
        let pack_size = repo.config.pack_size as usize;
        let workers = (0..threads)
            .map(|_| {
                let (rx, state, data_class) = (rx.clone(), state.clone(), data_class.clone());
                let failed = failed.clone();
                scope.spawn(move || {
                    for job in rx.iter().flatten() {
                        let (encoded, raw_len, base) = match job.sealed {
                            Some((raw_len, base)) => (job.raw, raw_len, base),
                            None => {
                                let (plain, base) = encode(&job, compression);
                                (repo.seal_blob(&job.id, &plain), job.raw.len(), base)
                            }
                        };
                        let full = {
                            let mut st = state.lock();
                            if st.error.is_some() {
                                continue;
                            }
                            if base.is_some() {
                                st.deltas += 1;
                                st.delta_raw_bytes += raw_len as u64;
                            }
                            let b = if job.kind == BlobKind::Data {
                                &mut st.data
                            } else {
                                &mut st.tree
                            };
                            b.add(job.id, &encoded, raw_len, base);
                            (b.len() >= pack_size)
                                .then(|| std::mem::replace(b, PackBuilder::new(job.kind)))
                        };
                        if let Some(builder) = full {
                            upload(repo, builder, &state, &failed, data_class.as_deref());
                        }
                    }
                })
            })
            .collect();
        Packer {
            tx: Some(tx),
            state,
            failed,
            pending: Mutex::new((Vec::new(), 0)),
            workers,
            repo,
            data_class,
        }
    }

    /// Queues a blob; fails fast once any upload has failed.
    pub fn add(&self, id: BlobId, raw: Vec<u8>, kind: BlobKind) -> Result<()> {
        self.add_with_base(id, raw, kind, None)
    }

    /// `add`, trying a delta on `base` (whole stored chunks and their bytes) first.
    pub fn add_with_base(
        &self,
        id: BlobId,
        raw: Vec<u8>,
        kind: BlobKind,
        base: Option<(Bases, Arc<Vec<u8>>)>,
    ) -> Result<()> {
        self.check()?;
        // A format 2 repository cannot hold deltas.
        let base = base.filter(|_| !self.repo.legacy());
        self.queue(Job {
            id,
            raw,
            kind,
            base,
            sealed: None,
        })
    }

    /// Queues a blob sealed by a repository with the same keys (`copy`), as it is: no
    /// compression, no encryption. `raw_len` and `base` are its source index entry's.
    pub fn add_sealed(
        &self,
        id: BlobId,
        sealed: Vec<u8>,
        kind: BlobKind,
        raw_len: usize,
        base: Option<Bases>,
    ) -> Result<()> {
        self.check()?;
        if base.is_some() && self.repo.legacy() {
            return Err(Error::InvalidArgument(
                "the target repository is in format 2, which cannot hold the source's delta blobs: make it with this cofre".into(),
            ));
        }
        self.queue(Job {
            id,
            raw: sealed,
            kind,
            base: None,
            sealed: Some((raw_len, base)),
        })
    }

    fn queue(&self, job: Job) -> Result<()> {
        let batch = {
            let mut p = self.pending.lock();
            p.1 += job.raw.len();
            p.0.push(job);
            (p.1 >= BATCH_BYTES || p.0.len() >= BATCH_BLOBS).then(|| std::mem::take(&mut *p))
        };
        match batch {
            Some((jobs, _)) => self.send(jobs),
            None => Ok(()),
        }
    }

    fn send(&self, jobs: Vec<Job>) -> Result<()> {
        if let Some(tx) = &self.tx {
            tx.send(jobs)
                .map_err(|_| Error::corrupt("packer", "workers stopped"))?;
        }
        Ok(())
    }

    pub fn check(&self) -> Result<()> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.state.lock().error.as_ref() {
            Some(e) => Err(Error::WriteFailed(e.to_string())),
            None => Ok(()),
        }
    }

    /// Waits for every queued blob, uploads the partial packs, and returns what was written.
    /// On failure the packs already uploaded come with the error, for `discard`.
    pub fn finish(mut self) -> Result<Written, (Error, Vec<IndexPack>)> {
        let (rest, _) = std::mem::take(&mut *self.pending.lock());
        if let Err(e) = self.send(rest) {
            self.state.lock().error.get_or_insert(e);
        }
        self.tx = None;
        let mut panicked = false;
        for w in self.workers.drain(..) {
            panicked |= w.join().is_err();
        }
        if panicked {
            let mut st = self.state.lock();
            st.error
                .get_or_insert(Error::corrupt("packer", "a worker thread panicked"));
        }
        let (data, tree) = {
            let mut st = self.state.lock();
            (
                std::mem::replace(&mut st.data, PackBuilder::new(BlobKind::Data)),
                std::mem::replace(&mut st.tree, PackBuilder::new(BlobKind::Tree)),
            )
        };
        for b in [data, tree] {
            if !b.is_empty() {
                upload(
                    self.repo,
                    b,
                    &self.state,
                    &self.failed,
                    self.data_class.as_deref(),
                );
            }
        }
        let mut st = self.state.lock();
        if let Some(e) = st.error.take() {
            return Err((
                Error::WriteFailed(e.to_string()),
                std::mem::take(&mut st.written),
            ));
        }
        Ok(Written {
            packs: std::mem::take(&mut st.written),
            bytes_added: st.bytes_added,
            deltas: st.deltas,
            delta_raw_bytes: st.delta_raw_bytes,
        })
    }
}

/// Deletes the packs of an ingest that will not commit. They are in no index object (the
/// index is written only after every pack, and only by a committing ingest), and pack
/// names are the hash of bytes that include random nonces, so no other writer can have
/// stored or referenced the same pack: nothing can depend on them (docs/format.md).
pub fn discard(repo: &Repository, packs: &[IndexPack]) {
    for p in packs {
        let key = pack_key(&p.id);
        if let Err(e) = repo.delete(crate::repo::file::FileType::Pack, &p.id.hex()) {
            tracing::warn!("{key} left behind ({e}); prune removes it");
        }
    }
}
