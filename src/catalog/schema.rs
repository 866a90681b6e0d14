//! Catalog schema and connection hygiene (WAL, busy_timeout, schema version).
//! Why it looks like this: docs/catalog.md.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// 2: every blob row names the index object that vouches for it (and its pack's tier), so
/// blobs vanish from the catalog with their index object.
/// 3: `packs` records each pack's storage class (metrics report stored bytes per class).
/// 4: `blobs.base`, the blobs a delta copy needs first (repository format 3): their ids
/// back to back.
/// 5: `blobs` keyed by (id, idx, pack): an index object that lists a blob in two packs
/// (prune's, re-listing a GLACIER copy beside a repacked STANDARD one) keeps both rows;
/// before, the first won and a STANDARD snapshot was sent to the GLACIER copy.
/// 6: `blobs` keyed by (id, pack): a pack's rows live while some index object lists the
/// pack (`packs`), not once per index object. A prune re-lists the packs it keeps in new
/// index objects; with rows per index object the catalog deleted and wrote again every
/// row, 44 s of a 59 s prune at a million files (docs/catalog.md). A catalog of schema 5
/// is migrated in place (`migrate_5_to_6`), not rebuilt.
pub const SCHEMA_VERSION: i64 = 6;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trees (
    id   INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS nodes (
    id       INTEGER PRIMARY KEY,
    tree     INTEGER NOT NULL REFERENCES trees(id),
    name     BLOB NOT NULL,
    kind     TEXT NOT NULL,
    mode     INTEGER NOT NULL,
    uid      INTEGER NOT NULL,
    gid      INTEGER NOT NULL,
    user     TEXT NOT NULL,
    grp      TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime_s  INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    atime_s  INTEGER NOT NULL, atime_ns INTEGER NOT NULL,
    ctime_s  INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    dev      INTEGER NOT NULL,
    nlink    INTEGER NOT NULL,
    rdev     INTEGER NOT NULL,
    target   BLOB NOT NULL,
    xattrs   BLOB NOT NULL,
    chunks   BLOB NOT NULL,
    blake3   BLOB,
    subtree  INTEGER REFERENCES trees(id),
    UNIQUE (tree, name)
);
CREATE TABLE IF NOT EXISTS snapshots (
    id       TEXT PRIMARY KEY,
    set_name TEXT NOT NULL,
    time_s   INTEGER NOT NULL,
    time_ns  INTEGER NOT NULL,
    root     INTEGER NOT NULL REFERENCES trees(id),
    manifest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_by_set_time ON snapshots (set_name, time_s, time_ns);
CREATE TABLE IF NOT EXISTS index_files (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS blobs (
    id      BLOB NOT NULL,
    pack    BLOB NOT NULL,
    kind    INTEGER NOT NULL,
    offset  INTEGER NOT NULL,
    length  INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    tier    INTEGER NOT NULL,
    base    BLOB,
    PRIMARY KEY (id, pack)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nodes_by_subtree ON nodes (subtree) WHERE subtree IS NOT NULL;
-- The few nodes with extended attributes (an empty list encodes as one byte): whether any
-- snapshot has them is one probe (every `mount`, at start and at each layout), not a scan.
CREATE INDEX IF NOT EXISTS nodes_with_xattrs ON nodes (tree) WHERE length(xattrs) > 1;
CREATE TABLE IF NOT EXISTS packs (
    pack  BLOB NOT NULL,
    idx   INTEGER NOT NULL REFERENCES index_files(id),
    class TEXT NOT NULL,
    PRIMARY KEY (pack, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS packs_by_index ON packs (idx);
"#;

/// Deletes a catalog file with its WAL and shared-memory files.
pub fn remove(path: &std::path::Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(p, e)),
            _ => {}
        }
    }
    Ok(())
}

pub fn open(path: &std::path::Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            super::private_dir(dir).map_err(|e| Error::io(dir, e))?;
        }
    }
    // Created 0600 before SQLite opens it; its WAL and shm files take the same mode.
    match super::private_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(Error::io(path, e)),
        _ => {}
    }
    let conn = Connection::open(path)?;
    let mut version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 5 {
        match migrate_5_to_6(&conn) {
            Ok(now) => version = now,
            Err(e) => tracing::warn!("catalog {}: schema 5 not migrated ({e})", path.display()),
        }
    }
    if version != 0 && version != SCHEMA_VERSION {
        // Derived data in an older layout: start afresh, the next sync fills it.
        tracing::warn!(
            "catalog {} has schema {version}, not {SCHEMA_VERSION}: rebuilding it",
            path.display()
        );
        drop(conn);
        remove(path)?;
        return open(path);
    }
    conn.busy_timeout(BUSY_WAIT)?;
    // A connection that closes never checkpoints and deletes the WAL and shared-memory
    // files *by name*: after a rebuild renamed a new catalog over this one, those names
    // are the new file's (`sync::rebuild`). Commits still checkpoint as the WAL grows.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        // A random generation tells a running mount that the catalog was replaced (rebuilt,
        // deleted and recreated): its row ids then mean other rows.
        let generation = hex::encode(rand::random::<[u8; 16]>());
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} {BLOBS_BY_PACK_OFFSET} INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '{generation}'); PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    }
    add_later_indexes(&conn, path);
    Ok(conn)
}

/// Schema 5 to 6 in place: one `blobs` row per (blob, pack) where schema 5 had one per index
/// object listing it, each with the tier of its listing's class, so the nearest of them is
/// kept. Nothing else changed, so the snapshots, trees, `names` and thaws stay and no store
/// is read (a rebuild at a million files re-reads every tree). In one write transaction
/// that looks at the version again: two processes opening the old file at once migrate it
/// once. WAL mode first, as `open` sets it, so readers of the old file never block on it.
/// Returns the version the file has after it (another process may have changed it first).
fn migrate_5_to_6(conn: &Connection) -> rusqlite::Result<i64> {
    conn.busy_timeout(BUSY_WAIT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let steps = || -> rusqlite::Result<i64> {
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != 5 {
            return Ok(version);
        }
        conn.execute_batch(
            "CREATE TABLE blobs6 (
                id BLOB NOT NULL, pack BLOB NOT NULL, kind INTEGER NOT NULL,
                offset INTEGER NOT NULL, length INTEGER NOT NULL, raw_len INTEGER NOT NULL,
                tier INTEGER NOT NULL, base BLOB, PRIMARY KEY (id, pack)) WITHOUT ROWID;
             INSERT INTO blobs6 SELECT id, pack, kind, offset, length, raw_len, MIN(tier), base
                FROM blobs GROUP BY id, pack;
             DROP TABLE blobs;
             ALTER TABLE blobs6 RENAME TO blobs;",
        )?;
        conn.execute_batch(BLOBS_BY_PACK_OFFSET)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(SCHEMA_VERSION)
    };
    match steps() {
        Ok(version) => conn.execute_batch("COMMIT").map(|()| version),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// `find` matches a pattern against each distinct name once (`names`, a few MB where
/// `nodes` has millions of rows for the same hundred thousand names), then reads the
/// entries of the names that match (`nodes_by_name`). A trigger keeps `names` complete
/// whoever inserts into `nodes`, this binary or another version. Names of entries since
/// deleted stay: they match no entry. A catalog gets them at its first `find` (`add_names`),
/// not before: the index and the trigger cost each inserted entry about 2.6 µs (+85% on a
/// bare insert, docs/catalog.md), which an ingest should pay only where `find` is used.
const NAMES_AND_TRIGGER: &str = "
CREATE TABLE IF NOT EXISTS names (name BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS nodes_name_known AFTER INSERT ON nodes
    BEGIN INSERT OR IGNORE INTO names (name) VALUES (NEW.name); END;
";

/// Entries whose names one backfill statement adds: other writers wait for one batch, not
/// for the whole table.
const NAMES_BATCH: i64 = 200_000;

/// Whether the catalog's names are complete (`meta` says so); if not, completes them when
/// it can, in steps that each hold the write lock briefly, except the index build (one
/// statement; the whole first `find` took 16 s on 10M entries, docs/catalog.md):
/// 1. the table and the trigger together: every entry inserted from then on is named;
/// 2. the names of the entries already there (every id up to the largest one after step
///    1), in batches; repeating it is harmless;
/// 3. the index; 4. the mark in `meta`.
///
/// Best effort as `add_later_indexes` (no waiting for other writers): an attempt that
/// stops part-way leaves a catalog that `find` scans as before, and the next `find` goes
/// on. Never inside the caller's transaction.
pub fn add_names(conn: &Connection, path: &std::path::Path) -> bool {
    let complete = || {
        conn.query_row("SELECT 1 FROM meta WHERE key = 'names'", [], |_| Ok(()))
            .is_ok()
    };
    if complete() {
        return true;
    }
    if !conn.is_autocommit() {
        return false;
    }
    tracing::info!("catalog {}: indexing names for find (once)", path.display());
    let steps = || -> rusqlite::Result<()> {
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {NAMES_AND_TRIGGER} COMMIT;"))?;
        let max: i64 =
            conn.query_row("SELECT COALESCE(MAX(id), 0) FROM nodes", [], |r| r.get(0))?;
        let mut from = 0;
        while from < max {
            conn.execute(
                "INSERT OR IGNORE INTO names (name) SELECT name FROM nodes WHERE id > ?1 AND id <= ?2",
                rusqlite::params![from, from + NAMES_BATCH],
            )?;
            from += NAMES_BATCH;
        }
        conn.execute_batch("CREATE INDEX IF NOT EXISTS nodes_by_name ON nodes (name);")?;
        conn.execute_batch("INSERT OR REPLACE INTO meta (key, value) VALUES ('names', 'complete');")
    };
    if let Err(e) = without_waiting(conn, steps) {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK;");
        }
        tracing::debug!("catalog {}: names not indexed now: {e}", path.display());
    }
    complete()
}

/// A pack's blobs by offset, with every column a segment's listing reads
/// (`Catalog::pack_blobs`), so that a listing is one range of this index. `blobs_by_pack`
/// (pack, offset) before it sent each row of the range to a search of `blobs` by its key:
/// a 4 MiB segment of small files is 34,500 rows, 1.5 s with the catalog cold, and `cp -a`
/// of one 10,000-file directory of the million-file tree at 25 snapshots spent 63% of the
/// mount's CPU there (docs/benchmarks.md, "The mount at a million files, 25 snapshots").
const BLOBS_BY_PACK_OFFSET: &str = "CREATE INDEX IF NOT EXISTS blobs_by_pack_offset ON blobs (pack, offset, kind, length, raw_len, tier, base);";

/// Indexes that came after schema 5 was out: `find` climbs from a tree to the directories
/// holding it (`nodes_by_subtree`), the mount asks whether any node has xattrs
/// (`nodes_with_xattrs`), and lists a pack's blobs from one index (`blobs_by_pack_offset`,
/// which replaces `blobs_by_pack`). Catalogs without them get them here, once, when they
/// can. It is best effort: a catalog this process cannot write (read-only), or one another
/// process is writing (the build needs the write lock, and a mount or an ingest must not
/// wait on it), is used as it is; the next open tries again. Every query works with either
/// index, in this binary and in older ones of schema 6, so the version stays.
fn add_later_indexes(conn: &Connection, path: &std::path::Path) {
    const LATER: &[(&str, &str)] = &[
        ("blobs_by_pack_offset", BLOBS_BY_PACK_OFFSET),
        (
            "nodes_by_subtree",
            "CREATE INDEX IF NOT EXISTS nodes_by_subtree ON nodes (subtree) WHERE subtree IS NOT NULL;",
        ),
        (
            "nodes_with_xattrs",
            "CREATE INDEX IF NOT EXISTS nodes_with_xattrs ON nodes (tree) WHERE length(xattrs) > 1;",
        ),
    ];
    let try_now = |what: &str, sql: &str| {
        if let Err(e) = without_waiting(conn, || conn.execute_batch(sql)) {
            tracing::debug!("catalog {}: {what} not done now: {e}", path.display());
        }
    };
    for (name, sql) in LATER {
        if !index_exists(conn, name) {
            try_now(name, sql);
        }
    }
    // The index it replaces goes only once it is there, so a pack's rows always have one.
    if index_exists(conn, "blobs_by_pack_offset") && index_exists(conn, "blobs_by_pack") {
        try_now("drop blobs_by_pack", "DROP INDEX IF EXISTS blobs_by_pack;");
    }
}

/// How long a connection waits for another process's write lock.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `f` with a connection that does not wait for the write lock (an index built when
/// nobody writes, never holding up a mount or an ingest), then waits as usual again.
fn without_waiting<R>(conn: &Connection, f: impl FnOnce() -> R) -> R {
    let _ = conn.busy_timeout(std::time::Duration::ZERO);
    let r = f();
    let _ = conn.busy_timeout(BUSY_WAIT);
    r
}

fn index_exists(conn: &Connection, name: &str) -> bool {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .is_ok()
}
