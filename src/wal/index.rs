//! This machine's index of the repository's WAL: which `wal/` object holds which file.
//! A local SQLite file beside the catalog, derived from the store like the catalog is
//! (deleting it loses nothing): `sync` lists `wal/`, reads the header of each object it
//! does not know, and forgets the objects the listing no longer has. A failed listing is
//! an error, never an empty archive.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::object::{self, Entry, Header};
use crate::error::{Error, Result};
use crate::repo::file::FileType;
use crate::repo::Repository;

pub struct WalIndex {
    db: Connection,
}

/// Where one WAL file is stored.
#[derive(Debug, Clone)]
pub struct Located {
    pub object: String,
    pub object_size: u64,
    /// Where the header ends (bodies' offsets count from here).
    pub body_start: u64,
    pub entry: Entry,
}

impl Located {
    pub fn key(&self) -> String {
        FileType::Wal.key(&self.object)
    }

    /// The byte range of this file's body in its object.
    pub fn range(&self) -> std::ops::Range<u64> {
        let start = self.body_start + self.entry.offset;
        start..start + self.entry.len
    }
}

/// What one set's WAL costs to keep: objects and bytes, stored and as PostgreSQL wrote them.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct WalUsage {
    pub objects: u64,
    pub stored_bytes: u64,
    pub files: u64,
    pub raw_bytes: u64,
    /// Objects (each one PUT) written in the period asked for.
    pub objects_since: u64,
}

/// The index file for a catalog at `catalog`.
pub fn path_for(catalog: &Path) -> std::path::PathBuf {
    catalog.with_extension("wal.db")
}

const SCHEMA: &str = "
create table if not exists objects (
    name text primary key, size integer not null, body_start integer not null,
    set_name text not null, created text not null);
create table if not exists files (
    set_name text not null, name text not null, object text not null,
    offset integer not null, len integer not null, raw_len integer not null,
    id text not null, pushed integer not null,
    primary key (set_name, name, object));
create table if not exists meta (key text primary key, value integer not null);
";

impl WalIndex {
    pub fn open(path: &Path) -> Result<WalIndex> {
        if let Some(dir) = path.parent() {
            crate::catalog::private_dir(dir).map_err(|e| Error::io(dir, e))?;
        }
        let db = Connection::open(path)?;
        db.busy_timeout(std::time::Duration::from_secs(30))?;
        db.execute_batch(SCHEMA)?;
        Ok(WalIndex { db })
    }

    /// Brings the index up to date with the store's `wal/` listing.
    pub fn sync(&mut self, repo: &Repository) -> Result<()> {
        let listed = repo.list(FileType::Wal.prefix())?;
        let known: std::collections::HashSet<String> = {
            let mut st = self.db.prepare("select name from objects")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut present = std::collections::HashSet::new();
        let mut new = Vec::new();
        for o in &listed {
            let Some(name) = FileType::Wal.name_of(&o.key) else {
                continue;
            };
            present.insert(name.to_string());
            if !known.contains(name) {
                new.push((name.to_string(), o.size));
            }
        }
        let reqs: Vec<_> = new
            .iter()
            .map(|(n, size)| {
                (
                    FileType::Wal.key(n),
                    Some(0..object::HEADER_PROBE.min(*size)),
                )
            })
            .collect();
        for ((name, size), got) in new.iter().zip(repo.get_ranges(&reqs)) {
            let key = FileType::Wal.key(name);
            let mut start: Vec<u8> = got?;
            let end = object::header_end(&key, &start)?;
            if end > start.len() as u64 {
                start = repo.get_raw(&key, Some(0..end))?;
            }
            let h = object::decode_header(repo.keys(), &key, &start)?;
            self.add(name, *size, end, &h)?;
        }
        let tx = self.db.transaction()?;
        for gone in known.difference(&present) {
            tx.execute("delete from files where object = ?1", [gone])?;
            tx.execute("delete from objects where name = ?1", [gone])?;
        }
        tx.execute(
            "insert or replace into meta values ('synced', ?1)",
            [time::OffsetDateTime::now_utc().unix_timestamp()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Seconds since the last full sync with the store's listing (None: never).
    pub fn synced_ago(&self) -> Result<Option<i64>> {
        let at: Option<i64> = self
            .db
            .query_row("select value from meta where key = 'synced'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(at.map(|t| time::OffsetDateTime::now_utc().unix_timestamp() - t))
    }

    /// Records an object this process just stored (or read the header of).
    pub fn add(&mut self, name: &str, size: u64, body_start: u64, h: &Header) -> Result<()> {
        let tx = self.db.transaction()?;
        tx.execute(
            "insert or replace into objects values (?1, ?2, ?3, ?4, ?5)",
            params![name, size as i64, body_start as i64, h.set, h.created],
        )?;
        for e in &h.entries {
            tx.execute(
                "insert or replace into files values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    h.set,
                    e.name,
                    name,
                    e.offset as i64,
                    e.len as i64,
                    e.raw_len as i64,
                    e.id,
                    e.pushed
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn query(&self, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<Located>> {
        let full = format!(
            "select f.object, o.size, o.body_start, f.name, f.offset, f.len, f.raw_len, f.id, \
             f.pushed from files f join objects o on o.name = f.object {sql}"
        );
        let mut st = self.db.prepare(&full)?;
        let rows = st.query_map(p, |r| {
            Ok(Located {
                object: r.get(0)?,
                object_size: r.get::<_, i64>(1)? as u64,
                body_start: r.get::<_, i64>(2)? as u64,
                entry: Entry {
                    name: r.get(3)?,
                    offset: r.get::<_, i64>(4)? as u64,
                    len: r.get::<_, i64>(5)? as u64,
                    raw_len: r.get::<_, i64>(6)? as u64,
                    id: r.get(7)?,
                    pushed: r.get(8)?,
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every stored copy of `name` in `set` (more than one after a flush that was retried).
    pub fn lookup(&self, set: &str, name: &str) -> Result<Vec<Located>> {
        self.query(
            "where f.set_name = ?1 and f.name = ?2 order by f.object",
            &[&set, &name],
        )
    }

    /// The next `n` segments after `name` of the same timeline, in order (what replay will
    /// ask for next). A segment stored twice with different bytes is left out (fetching it
    /// fails, as it must).
    pub fn following(&self, set: &str, name: &str, n: usize) -> Result<Vec<Located>> {
        let tli = name.get(..8).unwrap_or("");
        let upper = format!("{tli}~");
        let v = self.query(
            "where f.set_name = ?1 and f.name > ?2 and f.name < ?3 and length(f.name) = 24 \
             order by f.name, f.object",
            &[&set, &name, &upper],
        )?;
        let mut out: Vec<Located> = Vec::new();
        let mut conflicted = std::collections::HashSet::new();
        for l in v {
            match out.last() {
                Some(prev) if prev.entry.name == l.entry.name => {
                    if prev.entry.id != l.entry.id {
                        conflicted.insert(l.entry.name.clone());
                    }
                }
                _ => out.push(l),
            }
        }
        out.retain(|l| !conflicted.contains(&l.entry.name));
        out.truncate(n);
        Ok(out)
    }

    /// Every file of `set`, by name.
    pub fn all(&self, set: &str) -> Result<Vec<Located>> {
        self.query("where f.set_name = ?1 order by f.name", &[&set])
    }

    /// Every object with the sets it holds files of, and its size.
    pub fn objects(&self) -> Result<Vec<(String, u64, String)>> {
        let mut st = self
            .db
            .prepare("select name, size, set_name from objects order by name")?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Per set: what its WAL objects store, and how many of them were written since
    /// `since` (Unix seconds): the PUTs of that period.
    pub fn usage(&self, since: i64) -> Result<std::collections::BTreeMap<String, WalUsage>> {
        let mut out: std::collections::BTreeMap<String, WalUsage> = Default::default();
        let mut st = self
            .db
            .prepare("select set_name, size, created from objects")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (set, size, created) = row?;
            let u = out.entry(set).or_default();
            u.objects += 1;
            u.stored_bytes += size as u64;
            let at = time::OffsetDateTime::parse(
                &created,
                &time::format_description::well_known::Rfc3339,
            );
            if at.is_ok_and(|t| t.unix_timestamp() >= since) {
                u.objects_since += 1;
            }
        }
        let mut st = self
            .db
            .prepare("select set_name, count(*), sum(raw_len) from files group by set_name")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (set, files, raw) = row?;
            let u = out.entry(set).or_default();
            u.files = files as u64;
            u.raw_bytes = raw as u64;
        }
        Ok(out)
    }

    /// Whether the index knows `object` at all.
    pub fn has_object(&self, object: &str) -> Result<bool> {
        Ok(self
            .db
            .query_row(
                "select 1 from objects where name = ?1",
                [object],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}
