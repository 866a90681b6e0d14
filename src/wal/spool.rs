//! The local spool `wal-push` writes to, and the flush that moves it into the repository.
//!
//! PostgreSQL may recycle a WAL file as soon as `archive_command` exits 0, so `wal-push`
//! exits 0 only once the file is durable: here, copied into the spool, fsynced, renamed
//! into place and the directory fsynced (or, with a flush interval of 0, once it is in the
//! repository). It needs no password and no key derivation, so it is never what limits
//! the archive rate. A flusher (`cofre wal flush --wait`, started by `wal-push` when none
//! runs) packs what waits into one `wal/` object per flush interval — a bounded RPO, and
//! one PUT per interval instead of one per segment — then deletes it from the spool.
//!
//! `archived/<name>` remembers what went into the repository (the hash of its bytes) for
//! a week, so that a file PostgreSQL pushes again after a crash is recognised: the same
//! bytes exit 0, other bytes fail, as PostgreSQL's rules ask.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::index::WalIndex;
use super::names::WalName;
use super::object::{self, File};
use crate::error::{Error, Result};
use crate::repo::file::FileType;
use crate::repo::Repository;

/// Files per object and raw bytes per object: a flush holds one object's files in memory,
/// so a burst of WAL becomes objects of at most 8 segments of 16 MiB (128 MiB raw, far
/// less stored), and the flusher's memory stays near that.
const MAX_FILES: usize = 64;
const MAX_RAW: u64 = 128 << 20;
/// How long `archived/` remembers a file (PostgreSQL pushes again only recent ones).
const REMEMBER_SECS: u64 = 7 * 86400;

pub struct Spool {
    dir: PathBuf,
}

/// A file waiting in the spool.
#[derive(Debug, Clone)]
pub struct Pending {
    pub name: String,
    pub size: u64,
    /// Unix seconds it was pushed (the spool file's mtime).
    pub pushed: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Stored,
    /// The same bytes were already in the spool or the repository.
    AlreadyThere,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct FlushReport {
    pub files: usize,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub objects: Vec<String>,
    /// Files already in the repository with the same bytes (a flush retried after a crash).
    pub already_stored: usize,
    /// Files whose name is archived with other bytes: moved to `conflicts/`, not stored.
    pub conflicts: Vec<String>,
}

/// The spool's flock: one flusher at a time.
pub struct FlushLock {
    _file: std::fs::File,
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(p, e)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// blake3 of a file's bytes, in hex (what `archived/` records).
fn hash_file(p: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(p)?)?;
    Ok(h.finalize().to_hex().to_string())
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Spool {
    /// Opens (creates) the spool. Only its owner may use it: files another user (root
    /// running `cofre wal flush` by hand) left in it would stop PostgreSQL's archiving.
    pub fn open(dir: &Path) -> Result<Spool> {
        use std::os::unix::fs::MetadataExt;
        crate::catalog::private_dir(dir).map_err(io(dir))?;
        let owner = std::fs::metadata(dir).map_err(io(dir))?.uid();
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        if owner != me {
            return Err(Error::InvalidArgument(format!(
                "the WAL spool {} belongs to uid {owner}: run cofre as that user (e.g. sudo -u postgres cofre ...)",
                dir.display()
            )));
        }
        crate::catalog::private_dir(&dir.join("archived")).map_err(io(dir))?;
        crate::catalog::private_dir(&dir.join("conflicts")).map_err(io(dir))?;
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    /// Why archiving should fail although the file is in the spool: the last flush failed,
    /// or the oldest file has waited far longer than the flush interval (a flusher that
    /// hangs, or none left running). PostgreSQL then keeps its WAL and reports the failure.
    pub fn stalled(&self, interval: std::time::Duration) -> Result<Option<String>> {
        if let Some(why) = self.last_error() {
            return Ok(Some(format!("the last flush failed: {why}")));
        }
        // Until someone looks: a file set aside keeps archiving failing.
        let conflicts = self.dir.join("conflicts");
        let set_aside = std::fs::read_dir(&conflicts)
            .map_err(io(&conflicts))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>();
        if !set_aside.is_empty() {
            return Ok(Some(format!(
                "{} differ from the archived copies and were set aside in {}: find out which \
                 cluster wrote them, then remove them from there",
                set_aside.join(", "),
                conflicts.display()
            )));
        }
        let limit = 2 * interval.as_secs() as i64 + 300;
        let oldest = self.pending()?.iter().map(|p| p.pushed).min();
        Ok(oldest
            .map(|t| unix_now() - t)
            .filter(|age| *age > limit)
            .map(|age| {
                format!(
                    "a file has waited {age}s in the spool (flush interval {}s): is the flusher stuck? see {}",
                    interval.as_secs(),
                    self.dir.join("flusher.log").display()
                )
            }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of a spooled file (whether or not it is there).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Copies the WAL file at `path` into the spool, durably.
    pub fn push(&self, path: &Path) -> Result<Pushed> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(WalName::parse)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{}: not a WAL file name (archive_command = 'cofre wal-push %p')",
                    path.display()
                ))
            })?;
        let name = name.as_str();
        let spooled = self.file(name);
        // The same name again (PostgreSQL retrying after a crash): compare, never replace.
        let known = match hash_file(&spooled) {
            Ok(h) => Some(h),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.archived_hash(name)?,
            Err(e) => return Err(Error::io(spooled, e)),
        };
        if let Some(h) = known {
            if hash_file(path).map_err(io(path))? == h {
                return Ok(Pushed::AlreadyThere);
            }
            return Err(Error::WalConflict(format!(
                "{name} is already archived with different content: refusing to replace it \
                 (is another cluster archiving into this set?)"
            )));
        }
        // Copied by the kernel (copy_file_range): a 16 MiB segment never passes through
        // this process, and the push costs about what `cp` and `sync` cost.
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut src = std::fs::File::open(path)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            std::io::copy(&mut src, &mut f)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &spooled)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(&spooled, e));
        }
        sync_dir(&self.dir)?;
        Ok(Pushed::Stored)
    }

    fn archived_hash(&self, name: &str) -> Result<Option<String>> {
        let p = self.dir.join("archived").join(name);
        match std::fs::read_to_string(&p) {
            Ok(h) => Ok(Some(h.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    /// What waits to be flushed, oldest name first.
    pub fn pending(&self) -> Result<Vec<Pending>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let e = e.map_err(io(&self.dir))?;
            let Some(name) = e.file_name().to_str().and_then(WalName::parse) else {
                continue;
            };
            let md = e.metadata().map_err(io(&e.path()))?;
            let pushed = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            out.push(Pending {
                name: name.as_str().to_string(),
                size: md.len(),
                pushed,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Why the last flush failed, if it did (cleared by the next one that succeeds).
    pub fn last_error(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(".last-error")).ok()
    }

    fn record(&self, failure: Option<&str>) {
        let p = self.dir.join(".last-error");
        let _ = match failure {
            Some(e) => std::fs::write(p, e),
            None => std::fs::remove_file(p),
        };
    }

    /// The lock of a flush in progress (held while objects are stored and the spool
    /// emptied); None when another process holds it and `wait` is false.
    pub fn lock(&self, wait: bool) -> Result<Option<FlushLock>> {
        self.flock(".flush.lock", wait)
    }

    /// The lock a waiting flusher holds for its whole life: a push that can take it knows
    /// that no flusher runs and starts one.
    pub fn flusher_lock(&self) -> Result<Option<FlushLock>> {
        self.flock(".flusher.lock", false)
    }

    fn flock(&self, file: &str, wait: bool) -> Result<Option<FlushLock>> {
        let p = self.dir.join(file);
        // Released when the file is closed.
        let f = crate::fsutil::lock_file(&p, wait).map_err(io(&p))?;
        Ok(f.map(|f| FlushLock { _file: f }))
    }

    /// Moves everything pending into the repository, in objects of at most `MAX_FILES`
    /// files; each file leaves the spool only once the object holding it is stored.
    /// Holds the flush lock for its duration.
    /// A failure is remembered (`last_error`) until a flush succeeds.
    pub fn flush(&self, repo: &Repository, index: &mut WalIndex, set: &str) -> Result<FlushReport> {
        let _lock = self.lock(true)?;
        let r = self.flush_locked(repo, index, set);
        let failure = match &r {
            Err(e) => Some(e.to_string()),
            Ok(rep) if !rep.conflicts.is_empty() => Some(format!(
                "{} differ from the copies already archived; moved to {}",
                rep.conflicts.join(", "),
                self.dir.join("conflicts").display()
            )),
            Ok(_) => None,
        };
        self.record(failure.as_deref());
        r
    }

    fn flush_locked(
        &self,
        repo: &Repository,
        index: &mut WalIndex,
        set: &str,
    ) -> Result<FlushReport> {
        let mut report = FlushReport::default();
        // What the repository holds, learned at most hourly (a listing grows with the
        // archive): a name another host stored is then a conflict, not a second copy.
        if index.synced_ago()?.is_none_or(|ago| ago > 3600) {
            index.sync(repo)?;
        }
        let pending = self.pending()?;
        let mut batch: Vec<File> = Vec::new();
        let mut raw = 0u64;
        for p in pending {
            let path = self.file(&p.name);
            let data = std::fs::read(&path).map_err(io(&path))?;
            let id = repo.keys().blob_id(&data).hex();
            let stored = index.lookup(set, &p.name)?;
            if stored.iter().any(|l| l.entry.id == id) {
                self.done(&[(p.name.clone(), blake3::hash(&data).to_hex().to_string())])?;
                report.already_stored += 1;
                continue;
            }
            if !stored.is_empty() {
                // Not stored beside the other copy, and not in the way of the rest.
                let to = self.dir.join("conflicts").join(&p.name);
                std::fs::rename(&path, &to).map_err(io(&to))?;
                tracing::error!(
                    "{} differs from the archived copy; moved to {}",
                    p.name,
                    to.display()
                );
                report.conflicts.push(p.name);
                continue;
            }
            raw += data.len() as u64;
            batch.push(File {
                name: p.name,
                data,
                pushed: p.pushed,
            });
            if batch.len() >= MAX_FILES || raw >= MAX_RAW {
                self.store(repo, index, set, &mut batch, &mut report)?;
                raw = 0;
            }
        }
        if !batch.is_empty() {
            self.store(repo, index, set, &mut batch, &mut report)?;
        }
        self.forget_old_archived()?;
        Ok(report)
    }

    fn store(
        &self,
        repo: &Repository,
        index: &mut WalIndex,
        set: &str,
        batch: &mut Vec<File>,
        report: &mut FlushReport,
    ) -> Result<()> {
        let (host, _) = crate::ingest::host_and_user();
        let (name, bytes) = object::encode(repo.keys(), set, &host, batch)?;
        let size = bytes.len() as u64;
        let end = object::header_end(&name, &bytes)?;
        let header = object::decode_header(repo.keys(), &name, &bytes[..end as usize])?;
        repo.put_raw(&FileType::Wal.key(&name), bytes)?;
        index.add(&name, size, end, &header)?;
        let done: Vec<_> = batch
            .iter()
            .map(|f| (f.name.clone(), blake3::hash(&f.data).to_hex().to_string()))
            .collect();
        self.done(&done)?;
        report.files += batch.len();
        report.raw_bytes += batch.iter().map(|f| f.data.len() as u64).sum::<u64>();
        report.stored_bytes += size;
        report.objects.push(name);
        batch.clear();
        Ok(())
    }

    /// Records `files` as archived, then removes them from the spool.
    fn done(&self, files: &[(String, String)]) -> Result<()> {
        let archived = self.dir.join("archived");
        for (name, hash) in files {
            crate::fsutil::write_atomic(&archived.join(name), hash.as_bytes(), 0o600)?;
        }
        sync_dir(&archived)?;
        for (name, _) in files {
            let p = self.file(name);
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(p, e)),
                _ => {}
            }
        }
        sync_dir(&self.dir)
    }

    fn forget_old_archived(&self) -> Result<()> {
        let dir = self.dir.join("archived");
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(REMEMBER_SECS);
        for e in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if old {
                let _ = std::fs::remove_file(e.path());
            }
        }
        // A push killed between its write and its rename leaves `.NAME.tmp-PID`; PostgreSQL
        // pushed the file again (it never got exit 0), so the leftover is garbage.
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for e in std::fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .flatten()
        {
            let tmp = e
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with('.') && n.contains(".tmp-"));
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < hour_ago);
            if tmp && old {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }
}

/// How a flusher started by `wal-push` behaves.
pub struct FlusherOptions {
    /// A file waits at most this long (the archive's RPO beyond the spool).
    pub interval: std::time::Duration,
    /// Or until this many bytes wait.
    pub max_bytes: u64,
}

/// Runs until the spool is empty: waits until the oldest file is `interval` old (or
/// `max_bytes` wait), then flushes, opening the repository on the first flush only.
/// Returns at once when another flusher holds the lock. Failures are retried with a
/// growing pause; after ten in a row it gives up (the next `wal-push` starts a new one).
pub fn run_flusher(
    spool: &Spool,
    set: &str,
    opts: &FlusherOptions,
    open: &dyn Fn() -> Result<(std::sync::Arc<Repository>, WalIndex)>,
) -> Result<FlushReport> {
    let mut total = FlushReport::default();
    let mut opened: Option<(std::sync::Arc<Repository>, WalIndex)> = None;
    let mut failures = 0u32;
    'outer: loop {
        let Some(lock) = spool.flusher_lock()? else {
            return Ok(total);
        };
        loop {
            let pending = spool.pending()?;
            if pending.is_empty() {
                break;
            }
            let oldest = pending.iter().map(|p| p.pushed).min().unwrap_or(0);
            let waiting: u64 = pending.iter().map(|p| p.size).sum();
            let age = unix_now().saturating_sub(oldest).max(0) as u64;
            if age < opts.interval.as_secs() && waiting < opts.max_bytes {
                let left = opts.interval.as_secs() - age;
                std::thread::sleep(std::time::Duration::from_secs(left.clamp(1, 5)));
                continue;
            }
            let result = (|| -> Result<FlushReport> {
                if opened.is_none() {
                    opened = Some(open()?);
                }
                let (repo, index) = opened.as_mut().expect("opened above");
                spool.flush(repo, index, set)
            })();
            match result {
                Ok(r) => {
                    failures = 0;
                    total.files += r.files;
                    total.raw_bytes += r.raw_bytes;
                    total.stored_bytes += r.stored_bytes;
                    total.already_stored += r.already_stored;
                    total.conflicts.extend(r.conflicts);
                    total.objects.extend(r.objects);
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!("WAL flush failed ({failures} in a row): {e}");
                    if failures >= 10 {
                        return Err(e);
                    }
                    std::thread::sleep(std::time::Duration::from_secs(
                        (5 * failures as u64).min(60),
                    ));
                }
            }
        }
        drop(lock);
        // A push that came after the last look found the lock held and started no flusher:
        // look once more now that it is free.
        if spool.pending()?.is_empty() {
            break 'outer;
        }
    }
    Ok(total)
}
