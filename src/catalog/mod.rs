//! The local SQLite catalog: a derived index of every snapshot, tree, node and blob
//! location. Deleting it loses nothing: `sync` rebuilds it from the store.

mod listings;
pub mod pool;
pub(crate) mod schema;
pub mod sync;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::model::{ChunkRef, Kind, Manifest, Node, Tree, Xattr};
use crate::repo::compress::Bases;
use crate::repo::index::Location;
use crate::repo::pack::BlobKind;

pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

/// A snapshot as listed by the catalog.
#[derive(Debug, Clone)]
pub struct SnapshotRow {
    pub id: String,
    pub root_rowid: i64,
    pub manifest: Manifest,
}

/// A node row plus the catalog ids the mount needs.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub rowid: i64,
    pub node: Node,
    pub subtree_rowid: Option<i64>,
}

/// The class name of packs stored without an explicit storage class.
pub use crate::repo::index::DEFAULT_CLASS;

/// `$XDG_CACHE_HOME/cofre/<repo id>/`, or `~/.cache/cofre/<repo id>/`: catalog and caches.
pub fn cache_dir(repo_id: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("cofre").join(repo_id)
}

/// Creates `dir` and its missing parents readable by the owner only: the catalog names
/// every backed-up file. Existing directories are left as they are (they may be the
/// user's own, e.g. `--catalog /srv/cofre.db`).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Opens a new file readable and writable by the owner only.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

pub fn default_path(repo_id: &str) -> PathBuf {
    cache_dir(repo_id).join("catalog.db")
}

fn enc<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| Error::corrupt("catalog row", e.to_string()))
}

fn dec<T: serde::de::DeserializeOwned>(b: &[u8]) -> rusqlite::Result<T> {
    postcard::from_bytes(b).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

const NODE_COLS: &str = "n.id, n.name, n.kind, n.mode, n.uid, n.gid, n.user, n.grp, n.size, \
    n.mtime_s, n.mtime_ns, n.atime_s, n.atime_ns, n.ctime_s, n.ctime_ns, n.inode, n.dev, \
    n.nlink, n.rdev, n.target, n.xattrs, n.chunks, n.blake3, n.subtree, t.hash";

fn node_from_row(r: &Row) -> rusqlite::Result<NodeRow> {
    let kind: String = r.get(2)?;
    let blake: Option<Vec<u8>> = r.get(22)?;
    let sub_hash: Option<Vec<u8>> = r.get(24)?;
    let node = Node {
        name: r.get(1)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::File),
        mode: r.get(3)?,
        uid: r.get(4)?,
        gid: r.get(5)?,
        user: r.get(6)?,
        group: r.get(7)?,
        size: r.get::<_, i64>(8)? as u64,
        mtime: (r.get(9)?, r.get(10)?),
        atime: (r.get(11)?, r.get(12)?),
        ctime: (r.get(13)?, r.get(14)?),
        inode: r.get::<_, i64>(15)? as u64,
        dev: r.get::<_, i64>(16)? as u64,
        nlink: r.get::<_, i64>(17)? as u64,
        rdev: r.get::<_, i64>(18)? as u64,
        target: r.get(19)?,
        xattrs: dec::<Vec<Xattr>>(&r.get::<_, Vec<u8>>(20)?)?,
        chunks: dec::<Vec<ChunkRef>>(&r.get::<_, Vec<u8>>(21)?)?,
        blake3: blake.and_then(|b| b.try_into().ok()),
        subtree: sub_hash.and_then(|b| BlobId::from_slice(&b)),
    };
    Ok(NodeRow {
        rowid: r.get(0)?,
        node,
        subtree_rowid: r.get(23)?,
    })
}

fn q_tree_rowid(conn: &Connection, hash: &BlobId) -> Result<Option<i64>> {
    let mut st = conn.prepare_cached("SELECT id FROM trees WHERE hash = ?1")?;
    Ok(st
        .query_row(params![hash.0.as_slice()], |r| r.get(0))
        .optional()?)
}

/// Columns `pack, kind, offset, length, raw_len, tier, base` → a location.
fn location_from_row(r: &Row, first: usize) -> rusqlite::Result<Option<Location>> {
    let pack: Vec<u8> = r.get(first)?;
    let kind: i64 = r.get(first + 1)?;
    let (offset, length, raw_len, tier): (i64, u32, u32, u8) = (
        r.get(first + 2)?,
        r.get(first + 3)?,
        r.get(first + 4)?,
        r.get(first + 5)?,
    );
    let base: Option<Vec<u8>> = r.get(first + 6)?;
    Ok(BlobId::from_slice(&pack).map(|pack| Location {
        pack,
        kind: if kind == 1 {
            BlobKind::Tree
        } else {
            BlobKind::Data
        },
        offset: offset as u64,
        length,
        raw_len,
        tier,
        base: base.as_deref().and_then(Bases::from_bytes),
    }))
}

/// A thaw asked for from this machine (`Catalog::record_thaw`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThawRow {
    /// The pack's store key.
    pub key: String,
    pub tier: String,
    /// When asked, and when expected readable (Unix seconds).
    pub requested: i64,
    pub expected: i64,
    /// How long the thawed copy stays readable.
    pub days: u32,
}

/// `cofre thaw`'s requests (not derived from the repository: see `Catalog::record_thaw`).
const THAWS: &str = "CREATE TABLE IF NOT EXISTS thaws (key TEXT PRIMARY KEY, tier TEXT NOT NULL, \
    requested INTEGER NOT NULL, expected INTEGER NOT NULL, days INTEGER NOT NULL)";

/// `Catalog::pack_blobs`' query: one range of `blobs_by_pack_offset` (schema.rs), which
/// holds every column it reads (`tests::a_packs_listing_is_one_range_of_a_covering_index`).
const PACK_BLOBS: &str = "SELECT DISTINCT id, pack, kind, offset, length, raw_len, tier, base FROM blobs WHERE pack = ?1 AND offset >= ?2 AND offset < ?3 ORDER BY offset";

/// The copy nearest to readable, a delta counted at its bases' nearest whole copies' tier
/// too, when several packs hold the blob; never a delta copy whose base has no
/// whole copy left (a leftover in a kept pack after prune dropped
/// that base; `MasterIndex::seal` applies the same rule).
fn q_blob_location(conn: &Connection, id: &BlobId) -> Result<Option<Location>> {
    let mut st = conn.prepare_cached(
        "SELECT pack, kind, offset, length, raw_len, tier, base FROM blobs AS c WHERE id = ?1 \
         AND (base IS NULL OR ( \
           EXISTS (SELECT 1 FROM blobs w WHERE w.id = substr(c.base, 1, 32) AND w.base IS NULL) \
           AND (length(c.base) <= 32 OR \
             EXISTS (SELECT 1 FROM blobs w WHERE w.id = substr(c.base, 33, 32) AND w.base IS NULL)))) \
         ORDER BY MAX(tier, \
           COALESCE((SELECT MIN(w.tier) FROM blobs w WHERE w.id = substr(c.base, 1, 32) AND w.base IS NULL), 0), \
           COALESCE((SELECT MIN(w.tier) FROM blobs w WHERE length(c.base) > 32 AND w.id = substr(c.base, 33, 32) AND w.base IS NULL), 0)), \
         base IS NOT NULL, pack LIMIT 1",
    )?;
    Ok(st
        .query_row(params![id.0.as_slice()], |r| location_from_row(r, 0))
        .optional()?
        .flatten())
}

impl Catalog {
    pub fn open(path: &Path) -> Result<Catalog> {
        Ok(Catalog {
            conn: schema::open(path)?,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SQLite's page cache for this connection, in KiB (`Pool::reader`).
    pub fn set_page_cache_kib(&self, kib: u32) -> Result<()> {
        Ok(self
            .conn
            .pragma_update(None, "cache_size", -i64::from(kib))?)
    }

    /// Copies of the blob no further from readable than `max_tier`, as the stored index
    /// objects the catalog has synced say: (pack, the bases it is a delta against).
    pub fn blob_packs(&self, id: &BlobId, max_tier: u8) -> Result<Vec<(BlobId, Option<Bases>)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT pack, base FROM blobs WHERE id = ?1 AND tier <= ?2")?;
        let rows = st.query_map(params![id.0.as_slice(), max_tier], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (pack, base) = r?;
            if let Some(pack) = BlobId::from_slice(&pack) {
                out.push((pack, base.as_deref().and_then(Bases::from_bytes)));
            }
        }
        Ok(out)
    }

    pub fn blob_location(&self, id: &BlobId) -> Result<Option<Location>> {
        q_blob_location(&self.conn, id)
    }

    /// The nearest *whole* copy: where a delta's base is read (`MasterIndex::get_whole`).
    pub fn base_location(&self, id: &BlobId) -> Result<Option<Location>> {
        let mut st = self.conn.prepare_cached(
            "SELECT pack, kind, offset, length, raw_len, tier, base FROM blobs WHERE id = ?1 AND base IS NULL ORDER BY tier, pack LIMIT 1",
        )?;
        Ok(st
            .query_row(params![id.0.as_slice()], |r| location_from_row(r, 0))
            .optional()?
            .flatten())
    }

    /// Blobs of `pack` at offsets `from..to`, in pack order.
    pub fn pack_blobs(&self, pack: &BlobId, from: u64, to: u64) -> Result<Vec<(BlobId, Location)>> {
        let mut st = self.conn.prepare_cached(PACK_BLOBS)?;
        let rows = st.query_map(params![pack.0.as_slice(), from as i64, to as i64], |r| {
            let id: Vec<u8> = r.get(0)?;
            Ok((BlobId::from_slice(&id), location_from_row(r, 1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            if let (Some(id), Some(loc)) = row? {
                out.push((id, loc));
            }
        }
        Ok(out)
    }

    /// Holds one read transaction until the guard is dropped. Each query outside a
    /// transaction takes and releases SQLite's shared-memory read lock (two `fcntl`s); an
    /// ingest asks about every new chunk, which was 100k `fcntl` calls for 45k files.
    /// Only for reading: a write in between would hold the write lock until the drop.
    pub fn read_batch(&self) -> Result<ReadBatch<'_>> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        Ok(ReadBatch { conn: &self.conn })
    }

    /// Every pack some synced index object names.
    pub fn packs(&self) -> Result<HashSet<BlobId>> {
        let mut st = self.conn.prepare("SELECT DISTINCT pack FROM packs")?;
        let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = HashSet::new();
        for r in rows {
            out.extend(BlobId::from_slice(&r?));
        }
        Ok(out)
    }

    /// The class an index object puts `pack` in (the default when none lists it).
    pub fn pack_class(&self, pack: &BlobId) -> Result<String> {
        let mut st = self
            .conn
            .prepare_cached("SELECT class FROM packs WHERE pack = ?1 ORDER BY class LIMIT 1")?;
        let class: Option<String> = st
            .query_row(params![pack.0.as_slice()], |r| r.get(0))
            .optional()?;
        Ok(class.unwrap_or_else(|| DEFAULT_CLASS.to_string()))
    }

    /// Records a thaw asked for (`cofre thaw`): pack key, tier, when asked, when expected
    /// ready, for how many days. Local bookkeeping, made on first use: a rebuilt catalog
    /// forgets it, and `thaw` asks the store again anyway.
    pub fn record_thaw(
        &self,
        key: &str,
        tier: &str,
        requested: i64,
        expected: i64,
        days: u32,
    ) -> Result<()> {
        self.conn.execute_batch(THAWS)?;
        self.conn.execute(
            "INSERT OR REPLACE INTO thaws (key, tier, requested, expected, days) VALUES (?1,?2,?3,?4,?5)",
            params![key, tier, requested, expected, days],
        )?;
        Ok(())
    }

    /// The thaws recorded whose copies may still be readable at `now`, by key.
    pub fn thaws(&self, now: i64) -> Result<Vec<ThawRow>> {
        self.conn.execute_batch(THAWS)?;
        let mut st = self.conn.prepare(
            "SELECT key, tier, requested, expected, days FROM thaws \
             WHERE expected + days * 86400 > ?1 ORDER BY key",
        )?;
        let rows = st.query_map(params![now], |r| {
            Ok(ThawRow {
                key: r.get(0)?,
                tier: r.get(1)?,
                requested: r.get(2)?,
                expected: r.get(3)?,
                days: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The packs of `among` that every index object listing them puts in `class`.
    pub fn packs_in_class(&self, class: &str, among: &HashSet<BlobId>) -> Result<HashSet<BlobId>> {
        let mut st = self.conn.prepare(
            "SELECT pack FROM packs GROUP BY pack HAVING MIN(class) = ?1 AND MAX(class) = ?1",
        )?;
        let rows = st.query_map(params![class], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = HashSet::new();
        for r in rows {
            out.extend(BlobId::from_slice(&r?).filter(|p| among.contains(p)));
        }
        Ok(out)
    }

    pub fn known_index_files(&self) -> Result<HashSet<String>> {
        let mut st = self.conn.prepare("SELECT name FROM index_files")?;
        let names = st.query_map([], |r| r.get(0))?;
        Ok(names.collect::<rusqlite::Result<_>>()?)
    }

    pub fn known_snapshots(&self) -> Result<HashSet<String>> {
        let mut st = self.conn.prepare("SELECT id FROM snapshots")?;
        let ids = st.query_map([], |r| r.get(0))?;
        Ok(ids.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether any node of any snapshot has extended attributes (or ACLs, which are
    /// stored as such).
    pub fn any_xattrs(&self) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM nodes WHERE length(xattrs) > 1)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Bytes of blobs in packs, per storage class (pack headers not counted): what the
    /// repository stores, as the index objects describe it.
    pub fn stored_bytes_by_class(&self) -> Result<Vec<(String, u64)>> {
        let mut st = self.conn.prepare(
            "SELECT p.class, SUM(b.length) FROM (SELECT DISTINCT pack, offset, length FROM blobs) b \
             JOIN (SELECT DISTINCT pack, class FROM packs) p ON p.pack = b.pack \
             GROUP BY p.class ORDER BY p.class",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Per class other than the default, the stored bytes of its blobs that another class
    /// holds too: what self-contained snapshots pay to stand alone (docs/s3.md).
    pub fn bytes_also_in_other_classes(&self) -> Result<Vec<(String, u64)>> {
        let mut st = self.conn.prepare(
            "SELECT q.class, SUM(q.length) FROM (                SELECT DISTINCT b.id, b.pack, b.length, p.class FROM blobs b                JOIN packs p ON p.pack = b.pack WHERE p.class != ?1) q              WHERE EXISTS (SELECT 1 FROM blobs o JOIN packs r ON r.pack = o.pack                            WHERE o.id = q.id AND r.class != q.class)              GROUP BY q.class ORDER BY q.class",
        )?;
        let rows = st.query_map(params![DEFAULT_CLASS], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Blob copies in packs, (bytes before compression, bytes stored): whole blobs, then
    /// deltas (whose "before" is the chunk they rebuild).
    pub fn stored_by_encoding(&self) -> Result<((u64, u64), (u64, u64))> {
        let mut st = self.conn.prepare(
            "SELECT base IS NOT NULL, SUM(raw_len), SUM(length) FROM \
             (SELECT DISTINCT pack, offset, length, raw_len, base FROM blobs) GROUP BY 1",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, bool>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        let (mut whole, mut delta) = ((0, 0), (0, 0));
        for row in rows {
            match row? {
                (false, raw, stored) => whole = (raw, stored),
                (true, raw, stored) => delta = (raw, stored),
            }
        }
        Ok((whole, delta))
    }

    /// Distinct blobs' bytes before compression: (data chunks, trees).
    pub fn unique_raw_bytes(&self) -> Result<(u64, u64)> {
        let sum = |kind: u8| -> Result<u64> {
            let v: Option<i64> = self.conn.query_row(
                "SELECT SUM(r) FROM (SELECT MAX(raw_len) AS r FROM blobs WHERE kind = ?1 GROUP BY id)",
                params![kind],
                |r| r.get(0),
            )?;
            Ok(v.unwrap_or(0) as u64)
        };
        Ok((sum(BlobKind::Data as u8)?, sum(BlobKind::Tree as u8)?))
    }

    pub fn tree_rowid(&self, hash: &BlobId) -> Result<Option<i64>> {
        q_tree_rowid(&self.conn, hash)
    }

    /// Starts a write transaction; trees and the snapshot go in together.
    pub fn writer(&mut self) -> Result<CatalogTx<'_>> {
        Ok(CatalogTx {
            tx: self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
        })
    }

    /// The tree with this hash, if the catalog has it.
    pub fn load_tree(&self, hash: &BlobId) -> Result<Option<Tree>> {
        let Some(rowid) = self.tree_rowid(hash)? else {
            return Ok(None);
        };
        let nodes = self.children(rowid)?.into_iter().map(|n| n.node).collect();
        Ok(Some(Tree { nodes }))
    }

    /// Entries of the tree with this rowid, sorted by name.
    pub fn children(&self, tree_rowid: i64) -> Result<Vec<NodeRow>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {NODE_COLS} FROM nodes n LEFT JOIN trees t ON t.id = n.subtree WHERE n.tree = ?1 ORDER BY n.name"
        ))?;
        let rows = st.query_map(params![tree_rowid], node_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The row id of the first entry (by name) of the tree with this rowid: a tree's rows
    /// are inserted together in name order, so the mount numbers entries by their place
    /// after it (`vfs::inodes::key_position`). One step down the (tree, name) index.
    pub fn first_child_rowid(&self, tree_rowid: i64) -> Result<Option<i64>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id FROM nodes WHERE tree = ?1 ORDER BY name LIMIT 1")?;
        Ok(st.query_row(params![tree_rowid], |r| r.get(0)).optional()?)
    }

    pub fn node(&self, rowid: i64) -> Result<Option<NodeRow>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {NODE_COLS} FROM nodes n LEFT JOIN trees t ON t.id = n.subtree WHERE n.id = ?1"
        ))?;
        Ok(st.query_row(params![rowid], node_from_row).optional()?)
    }

    pub fn child(&self, tree_rowid: i64, name: &[u8]) -> Result<Option<NodeRow>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {NODE_COLS} FROM nodes n LEFT JOIN trees t ON t.id = n.subtree WHERE n.tree = ?1 AND n.name = ?2"
        ))?;
        Ok(st
            .query_row(params![tree_rowid, name], node_from_row)
            .optional()?)
    }

    /// The directories whose content is the tree `tree_rowid`: (their tree, their name).
    pub fn parents(&self, tree_rowid: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT tree, name FROM nodes WHERE subtree = ?1")?;
        let rows = st.query_map(params![tree_rowid], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every stored entry whose name matches the SQLite GLOB `pattern` (`*`, `?`, `[...]`,
    /// case-sensitive), with the tree it is in. Each distinct entry once, however many
    /// snapshots hold it.
    /// Their chunk lists are left empty (history does not use them; they are most of a
    /// row), so `chunks` of the rows returned are not the entries' own.
    pub fn nodes_named(&self, pattern: &str) -> Result<Vec<(i64, NodeRow)>> {
        // X'00': an empty list, encoded.
        let cols = NODE_COLS.replace("n.chunks", "X'00'");
        // The distinct names first when the catalog has them (schema::NAMES), else every row.
        let matching = match schema::add_names(&self.conn, &self.path) {
            true => "n.name IN (SELECT name FROM names WHERE CAST(name AS TEXT) GLOB ?1)",
            false => "CAST(n.name AS TEXT) GLOB ?1",
        };
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {cols}, n.tree FROM nodes n LEFT JOIN trees t ON t.id = n.subtree \
             WHERE {matching}"
        ))?;
        let rows = st.query_map(params![pattern], |r| Ok((r.get(25)?, node_from_row(r)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Snapshots, oldest first, optionally of one set.
    pub fn snapshots(&self, set: Option<&str>) -> Result<Vec<SnapshotRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, root, manifest FROM snapshots WHERE (?1 IS NULL OR set_name = ?1) ORDER BY time_s, time_ns, id",
        )?;
        let rows = st.query_map(params![set], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, root_rowid, m) = row?;
            let manifest = serde_json::from_str(&m)
                .map_err(|e| Error::corrupt("catalog snapshot", e.to_string()))?;
            out.push(SnapshotRow {
                id,
                root_rowid,
                manifest,
            });
        }
        Ok(out)
    }

    /// `latest` (newest, in `set` if given) or a unique id prefix.
    pub fn resolve(&self, spec: &str, set: Option<&str>) -> Result<SnapshotRow> {
        let all = self.snapshots(set)?;
        if spec == "latest" {
            return all
                .into_iter()
                .last()
                .ok_or_else(|| Error::NoSnapshot(spec.into()));
        }
        let mut matches = all.into_iter().filter(|s| s.id.starts_with(spec));
        let first = matches
            .next()
            .ok_or_else(|| Error::NoSnapshot(spec.into()))?;
        if matches.next().is_some() {
            return Err(Error::AmbiguousSnapshot(spec.into()));
        }
        Ok(first)
    }

    pub fn remove_snapshot(&mut self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM snapshots WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Data version: changes whenever another connection commits (for live mounts).
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Random per catalog file, set when it is created (see schema.rs).
    pub fn generation(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or_default())
    }

    pub fn snapshot_count(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM snapshots", [], |r| r.get(0))?)
    }
}

/// See `Catalog::read_batch`.
pub struct ReadBatch<'a> {
    conn: &'a Connection,
}

impl Drop for ReadBatch<'_> {
    fn drop(&mut self) {
        // A read transaction has nothing to lose; ending it can only fail if none is open.
        let _ = self.conn.execute_batch("COMMIT");
    }
}

pub struct CatalogTx<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl CatalogTx<'_> {
    pub fn tree_rowid(&self, hash: &BlobId) -> Result<Option<i64>> {
        q_tree_rowid(&self.tx, hash)
    }

    pub fn blob_location(&self, id: &BlobId) -> Result<Option<Location>> {
        q_blob_location(&self.tx, id)
    }

    /// Inserts a tree whose subtrees are already present; returns its rowid.
    pub fn insert_tree(&self, hash: &BlobId, tree: &Tree) -> Result<i64> {
        if let Some(id) = self.tree_rowid(hash)? {
            return Ok(id);
        }
        self.tx.execute(
            "INSERT INTO trees (hash) VALUES (?1)",
            params![hash.0.as_slice()],
        )?;
        let tree_id = self.tx.last_insert_rowid();
        let mut st = self.tx.prepare_cached(
            "INSERT INTO nodes (tree, name, kind, mode, uid, gid, user, grp, size, mtime_s, mtime_ns, \
             atime_s, atime_ns, ctime_s, ctime_ns, inode, dev, nlink, rdev, target, xattrs, chunks, blake3, subtree) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24)",
        )?;
        for n in &tree.nodes {
            let subtree = match &n.subtree {
                Some(h) => Some(self.tree_rowid(h)?.ok_or_else(|| {
                    Error::corrupt(
                        "catalog",
                        format!("subtree {} inserted out of order", h.hex()),
                    )
                })?),
                None => None,
            };
            st.execute(params![
                tree_id,
                n.name,
                n.kind.as_str(),
                n.mode,
                n.uid,
                n.gid,
                n.user,
                n.group,
                n.size as i64,
                n.mtime.0,
                n.mtime.1,
                n.atime.0,
                n.atime.1,
                n.ctime.0,
                n.ctime.1,
                n.inode as i64,
                n.dev as i64,
                n.nlink as i64,
                n.rdev as i64,
                n.target,
                enc(&n.xattrs)?,
                enc(&n.chunks)?,
                n.blake3.map(|b| b.to_vec()),
                subtree
            ])?;
        }
        Ok(tree_id)
    }

    pub fn insert_snapshot(&self, id: &str, m: &Manifest) -> Result<()> {
        let root = self
            .tree_rowid(&m.root)?
            .ok_or_else(|| Error::corrupt("catalog", "snapshot root tree missing"))?;
        let json =
            serde_json::to_string(m).map_err(|e| Error::corrupt("manifest", e.to_string()))?;
        self.tx.execute(
            "INSERT OR REPLACE INTO snapshots (id, set_name, time_s, time_ns, root, manifest) VALUES (?1,?2,?3,?4,?5,?6)",
            params![id, m.set, m.time.0, m.time.1, root, json],
        )?;
        Ok(())
    }

    pub fn commit(self) -> Result<()> {
        Ok(self.tx.commit()?)
    }
}
