//! `wal-fetch`: one WAL file for PostgreSQL's `restore_command`, and the next few ahead.
//!
//! Replay asks for files one at a time, each through a new process. Asking the store for
//! each would cost a key derivation and a listing per 16 MiB, so each visit to the store
//! also fetches the next `ahead` files of the timeline (their objects' ranges, in
//! parallel) into a prefetch directory; the next calls take them from there without
//! opening the repository. Every file is checked against its hash before it lands
//! anywhere. A file still in this machine's spool (pushed, not yet flushed) is served
//! from there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::index::{Located, WalIndex};
use super::names::{Kind, WalName};
use super::object;
use crate::error::{Error, Result};
use crate::repo::Repository;

/// Where it came from.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub enum Source {
    Prefetched,
    Spool,
    /// From the store, with this many files fetched ahead.
    Store {
        ahead: usize,
    },
}

/// The prefetch directory of `set` in the repository at `location` (one per repository
/// and set, so two archives' files with the same names never mix): beside the catalog
/// when one is named, else in the cache directory.
pub fn prefetch_dir(location: &str, set: &str, catalog: Option<&Path>) -> PathBuf {
    let tag = &blake3::hash(location.as_bytes()).to_hex()[..16];
    let name = format!("wal-prefetch/{tag}-{set}");
    match catalog.and_then(Path::parent) {
        Some(dir) => dir.join(name),
        None => crate::catalog::cache_dir(&name),
    }
}

fn checked(name: &str) -> Result<WalName> {
    WalName::parse(name).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{name:?}: not a WAL file name (restore_command = 'cofre wal-fetch %f %p')"
        ))
    })
}

/// Copies `from` to `dest` (the file PostgreSQL reads); a temporary file beside `dest`
/// renamed into place, so a killed fetch never leaves a short file under that name.
/// A local file (prefetched or spooled) is copied by the kernel, as `wal-push` copies.
fn land(from: &Path, dest: &Path) -> Result<()> {
    let mut src = std::fs::File::open(from).map_err(|e| Error::io(from, e))?;
    write_with(dest, |f| std::io::copy(&mut src, f).map(drop))
}

fn write(dest: &Path, data: &[u8]) -> Result<()> {
    write_with(dest, |f| std::io::Write::write_all(f, data))
}

fn write_with(
    dest: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = dest.with_file_name(format!(
        ".{}.cofre-{}",
        dest.file_name()
            .map_or("wal".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    std::fs::File::create(&tmp)
        .and_then(|mut f| fill(&mut f))
        .and_then(|()| std::fs::rename(&tmp, dest))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(dest, e)
        })
}

/// Serves `name` from the prefetch directory or the spool, without the repository.
/// Prefetched files of the same timeline older than `name` are dropped (replay has
/// passed them).
pub fn from_local(
    name: &str,
    dest: &Path,
    prefetch: &Path,
    spool: Option<&Path>,
) -> Result<Option<Source>> {
    let wanted = checked(name)?;
    if let Ok(rd) = std::fs::read_dir(prefetch) {
        for e in rd.flatten() {
            let Some(n) = e.file_name().to_str().and_then(WalName::parse) else {
                continue;
            };
            let same_line = n.kind() == Kind::Segment && n.timeline() == wanted.timeline();
            if same_line && n < wanted && wanted.kind() == Kind::Segment {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let p = prefetch.join(name);
    if p.is_file() {
        land(&p, dest)?;
        let _ = std::fs::remove_file(&p);
        return Ok(Some(Source::Prefetched));
    }
    if let Some(dir) = spool {
        // The flusher may store and remove it meanwhile: then it is in the repository.
        match land(&dir.join(name), dest) {
            Ok(()) => return Ok(Some(Source::Spool)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// What `wal-fetch` asks for: `name` of `set` into `dest`, and up to `ahead` following
/// segments of its timeline into `prefetch`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub set: &'a str,
    pub name: &'a str,
    pub dest: &'a Path,
    pub prefetch: &'a Path,
    pub ahead: usize,
}

/// Fetches what `req` asks for from the repository. `WalNotFound` when the archive has no
/// such file.
pub fn from_store(repo: &Repository, index: &mut WalIndex, req: &Request) -> Result<Source> {
    let (set, name) = (req.set, req.name);
    checked(name)?;
    // The index first; the store's listing only when the index does not know the name (a
    // listing grows with the archive), or a read fails (an object pruned since).
    let known = !index.lookup(set, name)?.is_empty();
    if !known {
        index.sync(repo)?;
    }
    match fetch_once(repo, index, req) {
        Err(e @ (Error::WalNotFound(_) | Error::WalConflict(_))) => Err(e),
        Err(e) => {
            tracing::warn!("{e}; listing the archive again");
            index.sync(repo)?;
            match fetch_once(repo, index, req) {
                // It was there when this fetch began: "not found" now would end the
                // replay early (exit 1), so it is a failure (exit 126).
                Err(Error::WalNotFound(_)) if known => Err(Error::corrupt(
                    name,
                    "deleted from the archive during the replay (wal prune?)",
                )),
                r => r,
            }
        }
        ok => ok,
    }
}

fn fetch_once(repo: &Repository, index: &mut WalIndex, req: &Request) -> Result<Source> {
    let Request {
        set,
        name,
        dest,
        prefetch,
        ahead,
    } = *req;
    let copies = index.lookup(set, name)?;
    if copies.is_empty() {
        return Err(Error::WalNotFound(name.to_string()));
    }
    if copies.windows(2).any(|w| w[0].entry.id != w[1].entry.id) {
        return Err(Error::WalConflict(format!(
            "{name} is archived more than once with different bytes: cofre will not guess \
             which one replay needs (cofre check lists them; docs/pitr.md)"
        )));
    }
    let next: Vec<Located> = if WalName::parse(name).map(|n| n.kind()) == Some(Kind::Segment) {
        index
            .following(set, name, ahead)?
            .into_iter()
            .filter(|l| !prefetch.join(&l.entry.name).is_file())
            .collect()
    } else {
        Vec::new()
    };
    // One ranged GET per object, covering the bodies wanted from it.
    let mut per_object: BTreeMap<String, Vec<&Located>> = BTreeMap::new();
    for l in copies.iter().take(1).chain(&next) {
        per_object.entry(l.object.clone()).or_default().push(l);
    }
    let reqs: Vec<_> = per_object
        .values()
        .map(|ls| {
            let start = ls.iter().map(|l| l.range().start).min().unwrap_or(0);
            let end = ls.iter().map(|l| l.range().end).max().unwrap_or(0);
            (ls[0].key(), Some(start..end))
        })
        .collect();
    let got = repo.get_ranges(&reqs);
    let mut first_err = None;
    let mut served = false;
    let mut fetched = 0;
    for ((ls, (key, range)), bytes) in per_object.values().zip(&reqs).zip(got) {
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                first_err.get_or_insert(e);
                continue;
            }
        };
        let base = range.as_ref().map_or(0, |r| r.start);
        for l in ls {
            let r = l.range();
            let body = bytes.get((r.start - base) as usize..(r.end - base) as usize);
            let decoded = body
                .ok_or_else(|| Error::corrupt(key, "short read"))
                .and_then(|b| object::decode_body(repo.keys(), key, &l.entry, b));
            match decoded {
                Ok(raw) if l.entry.name == name => {
                    write(dest, &raw)?;
                    served = true;
                }
                Ok(raw) => {
                    // Ahead of need: a full disk here must not stop the replay.
                    let stored = crate::catalog::private_dir(prefetch)
                        .map_err(|e| Error::io(prefetch, e))
                        .and_then(|()| write(&prefetch.join(&l.entry.name), &raw));
                    match stored {
                        Ok(()) => fetched += 1,
                        Err(e) => tracing::warn!("not prefetched: {e}"),
                    }
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    if served {
        return Ok(Source::Store { ahead: fetched });
    }
    // The first copy failed: any other stored copy of the same bytes will do.
    for l in copies.iter().skip(1) {
        let b = repo.get_raw(&l.key(), Some(l.range()))?;
        if let Ok(raw) = object::decode_body(repo.keys(), &l.key(), &l.entry, &b) {
            write(dest, &raw)?;
            return Ok(Source::Store { ahead: fetched });
        }
    }
    Err(first_err.unwrap_or_else(|| Error::corrupt(name, "no readable copy")))
}
