use super::Catalog;
use crate::crypto::BlobId;
use crate::repo::index::{IndexFile, IndexPack};
use crate::repo::pack::{BlobKind, PackEntry};

fn pack(id: u8, class: Option<&str>, blob: BlobId) -> IndexPack {
    IndexPack {
        id: BlobId([id; 32]),
        size: 100,
        class: class.map(str::to_string),
        entries: vec![pack_entry(blob)],
    }
}

/// Issue 20 point 7: one index object listing a blob in two packs (prune re-lists a
/// GLACIER copy and writes a repacked STANDARD copy into the same new index object). Every
/// order, every class pair: the catalog keeps both and readers get the nearest.
#[test]
fn an_index_object_listing_two_copies_keeps_both_and_readers_get_the_nearest() {
    let blob = BlobId([9; 32]);
    type Copies = &'static [(u8, Option<&'static str>)];
    let cases: [(Copies, u8); 4] = [
        (&[(1, Some("GLACIER")), (2, None)], 2),
        (&[(2, None), (1, Some("GLACIER"))], 2),
        (&[(1, Some("DEEP_ARCHIVE")), (2, Some("STANDARD_IA"))], 2),
        (&[(1, None), (2, None)], 1),
    ];
    for (copies, nearest) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cat = Catalog::open(&dir.path().join("c.db")).expect("open");
        let file = IndexFile {
            packs: copies.iter().map(|(id, c)| pack(*id, *c, blob)).collect(),
        };
        cat.insert_index("i1", &file).expect("insert");
        let loc = cat.blob_location(&blob).expect("query").expect("located");
        assert_eq!(loc.pack, BlobId([nearest; 32]), "{copies:?}");
        assert_eq!(cat.blob_packs(&blob, 9).expect("packs").len(), copies.len());
    }
}

/// The catalog's reader query skips a delta copy whose base has no whole copy, as
/// `MasterIndex::seal` does.
#[test]
fn readers_skip_a_delta_copy_whose_base_is_gone() {
    use crate::repo::compress::Bases;
    let blob = BlobId([5; 32]);
    let delta = |p: u8, base: u8| IndexPack {
        entries: vec![PackEntry {
            base: Some(Box::new(Bases::one(BlobId([base; 32])))),
            ..pack_entry(blob)
        }],
        ..pack(p, None, blob)
    };
    let base_a = pack(9, None, BlobId([7; 32]));
    // Base 6's only whole copy is in GLACIER: a delta on it reads only after a thaw.
    let base_g = pack(10, Some("GLACIER"), BlobId([6; 32]));
    for (copies, want) in [
        (vec![delta(1, 8), delta(2, 7)], 2u8),
        (vec![delta(2, 7), delta(1, 8)], 2),
        (vec![delta(1, 6), delta(2, 7)], 2),
        (vec![delta(1, 6)], 1),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cat = Catalog::open(&dir.path().join("c.db")).expect("open");
        let mut packs = copies;
        packs.push(base_a.clone());
        packs.push(base_g.clone());
        cat.insert_index("i1", &IndexFile { packs })
            .expect("insert");
        let loc = cat.blob_location(&blob).expect("query").expect("located");
        assert_eq!(loc.pack, BlobId([want; 32]));
    }
}

/// The first column of every row `sql` returns.
fn column<T: rusqlite::types::FromSql>(cat: &Catalog, sql: &str) -> Vec<T> {
    let mut st = cat.conn.prepare(sql).expect("query");
    let rows = st.query_map([], |r| r.get(0)).expect("rows");
    rows.collect::<rusqlite::Result<_>>().expect("rows")
}

fn pack_entry(blob: BlobId) -> PackEntry {
    PackEntry {
        id: blob,
        kind: BlobKind::Data,
        offset: 0,
        length: 50,
        raw_len: 60,
        base: None,
    }
}

/// A pack with `n` blobs (ids `[blob0 + i; 32]`) in `class`.
fn pack_of(id: u8, class: Option<&str>, blob0: u8, n: u8) -> IndexPack {
    IndexPack {
        entries: (0..n)
            .map(|i| PackEntry {
                offset: u32::from(i) * 50,
                ..pack_entry(BlobId([blob0 + i; 32]))
            })
            .collect(),
        ..pack(id, class, BlobId([blob0; 32]))
    }
}

/// Blob rows are per pack (schema 6): a pack listed by several index objects keeps its
/// rows until the last of them goes; a re-listing (what a prune writes for the packs it
/// keeps) writes no blob row; every row's tier is the nearest class the remaining listings
/// give, as readers took it from per-listing rows before; a removal deletes the rows of the
/// packs no one lists any more and only those.
#[test]
fn a_pack_keeps_its_blob_rows_while_some_index_object_lists_it() {
    // Pack 1 (blobs 20-22) is in every listing; pack `2 + i` (blob `40 + i`) only in
    // listing i.
    let tiers = |cat: &Catalog, blobs: std::ops::Range<u8>| -> Vec<Option<u8>> {
        blobs
            .map(|b| {
                let loc = cat.blob_location(&BlobId([b; 32])).expect("query");
                loc.map(|l| l.tier)
            })
            .collect()
    };
    // (listings added in order, by name and class; names removed in order; pack 1's tier
    // after each removal, None once no listing is left).
    type Case = (
        &'static [(&'static str, Option<&'static str>)],
        &'static [&'static str],
        &'static [Option<u8>],
    );
    let cases: [Case; 7] = [
        (&[("a", None), ("b", None)], &["a", "b"], &[Some(0), None]),
        (&[("a", None), ("b", None)], &["b", "a"], &[Some(0), None]),
        (
            &[("a", Some("GLACIER")), ("b", None)],
            &["b", "a"],
            &[Some(1), None],
        ),
        (
            &[("a", Some("GLACIER")), ("b", None)],
            &["a", "b"],
            &[Some(0), None],
        ),
        (
            &[("a", None), ("b", Some("DEEP_ARCHIVE"))],
            &["a", "b"],
            &[Some(2), None],
        ),
        (
            &[
                ("a", Some("DEEP_ARCHIVE")),
                ("b", Some("GLACIER")),
                ("c", None),
            ],
            &["c", "b", "a"],
            &[Some(1), Some(2), None],
        ),
        (
            &[
                ("a", Some("DEEP_ARCHIVE")),
                ("b", Some("GLACIER")),
                ("c", None),
            ],
            &["b", "a", "c"],
            &[Some(0), Some(0), None],
        ),
    ];
    for (adds, removes, want_tiers) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cat = Catalog::open(&dir.path().join("c.db")).expect("open");
        let mut nearest = u8::MAX;
        for (i, (name, class)) in adds.iter().enumerate() {
            let before = cat.conn.total_changes();
            let file = IndexFile {
                packs: vec![
                    pack_of(1, *class, 20, 3),
                    pack_of(2 + i as u8, *class, 40 + i as u8, 1),
                ],
            };
            cat.insert_index(name, &file).expect("insert");
            let written = cat.conn.total_changes() - before;
            // index_files, two packs rows, pack 2+i's blob row; pack 1's three blob rows
            // the first time, and again (an update of their tier) when this class is nearer.
            let t = crate::repo::index::tier(*class);
            let want = if i == 0 || t < nearest { 4 + 3 } else { 4 };
            nearest = nearest.min(t);
            assert_eq!(written, want, "{adds:?}: listing {name}");
            assert_eq!(
                tiers(&cat, 20..23),
                [Some(nearest); 3],
                "{adds:?}: after {name}"
            );
        }
        for (name, want) in removes.iter().zip(want_tiers) {
            cat.remove_index(name).expect("remove");
            assert_eq!(tiers(&cat, 20..23), [*want; 3], "{adds:?}: without {name}");
            // Each listing's own pack went with it, and only that one.
            for (i, (other, class)) in adds.iter().enumerate() {
                let gone = removes[..=removes.iter().position(|r| r == name).expect("named")]
                    .contains(other);
                let t = (!gone).then(|| crate::repo::index::tier(*class));
                assert_eq!(
                    tiers(&cat, 40 + i as u8..41 + i as u8),
                    [t],
                    "{adds:?}: without {name}"
                );
            }
        }
    }
}

/// A listing whose entries differ in number from the rows there (a blob listed twice in
/// one pack) still adds every entry, and a later listing with the rows' count adds none.
#[test]
fn a_listing_with_another_count_of_entries_adds_its_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cat = Catalog::open(&dir.path().join("c.db")).expect("open");
    let mut short = pack_of(1, None, 20, 2);
    short.entries.push(short.entries[0].clone());
    cat.insert_index("a", &IndexFile { packs: vec![short] })
        .expect("insert");
    // Rows written by listing pack 1 with blobs 20-22 under `name`.
    let list_whole = |cat: &mut Catalog, name: &str| {
        let before = cat.conn.total_changes();
        let packs = vec![pack_of(1, None, 20, 3)];
        cat.insert_index(name, &IndexFile { packs })
            .expect("insert");
        cat.conn.total_changes() - before
    };
    // index_files and packs rows, and the one blob the first listing did not have.
    assert_eq!(list_whole(&mut cat, "b"), 3);
    assert!(cat
        .blob_location(&BlobId([22; 32]))
        .expect("query")
        .is_some());
    assert_eq!(list_whole(&mut cat, "c"), 2);
}

/// A schema 5 catalog (a row per blob per index object listing it) is migrated in place: one
/// row per blob and pack, at the nearest tier of its listings, and everything else kept.
#[test]
fn a_schema_5_catalog_is_migrated_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.db");
    {
        let cat = Catalog::open(&path).expect("open");
        cat.conn
            .execute_batch(
                "DROP TABLE blobs;
                 CREATE TABLE blobs (id BLOB NOT NULL, idx INTEGER NOT NULL, pack BLOB NOT NULL,
                    kind INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
                    raw_len INTEGER NOT NULL, tier INTEGER NOT NULL, base BLOB,
                    PRIMARY KEY (id, idx, pack)) WITHOUT ROWID;
                 CREATE INDEX blobs_by_index ON blobs (idx);
                 INSERT INTO index_files (id, name) VALUES (1, 'a'), (2, 'b');
                 INSERT INTO packs VALUES (x'01', 1, 'GLACIER'), (x'01', 2, 'STANDARD'),
                    (x'02', 2, 'STANDARD');
                 INSERT INTO blobs VALUES (x'09', 1, x'01', 0, 0, 50, 60, 1, NULL),
                    (x'09', 2, x'01', 0, 0, 50, 60, 0, NULL),
                    (x'09', 2, x'02', 0, 100, 50, 60, 0, NULL);
                 INSERT INTO meta VALUES ('names', 'complete');
                 PRAGMA user_version = 5;",
            )
            .expect("make a schema 5 catalog");
    }
    let cat = Catalog::open(&path).expect("open");
    let version: i64 = cat
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, super::schema::SCHEMA_VERSION);
    let rows: Vec<(Vec<u8>, i64, i64)> = {
        let mut st = cat
            .conn
            .prepare("SELECT pack, offset, tier FROM blobs ORDER BY pack")
            .expect("query");
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows");
        rows.collect::<rusqlite::Result<_>>().expect("rows")
    };
    assert_eq!(rows, [(vec![1], 0, 0), (vec![2], 100, 0)]);
    let kept: String = cat
        .conn
        .query_row("SELECT value FROM meta WHERE key = 'names'", [], |r| {
            r.get(0)
        })
        .expect("meta kept");
    assert_eq!(kept, "complete");
    assert_eq!(cat.known_index_files().expect("names").len(), 2);
}

/// A prune's sync (new index objects re-listing kept packs, old ones gone) leaves the kept
/// packs' rows alone: `sync` adds before it removes. Removing first, as it once did,
/// deleted every kept row and wrote it again.
#[test]
fn a_sync_after_a_re_listing_deletes_no_row_of_a_kept_pack() {
    use crate::repo::file::FileType;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = std::sync::Arc::new(crate::store::memory::MemoryStore::new());
    let repo = crate::repo::Repository::init(store, rt.handle().clone(), b"pw").expect("init");
    let kept = pack_of(1, None, 20, 3);
    let old = repo
        .save_index(&IndexFile {
            packs: vec![kept.clone(), pack_of(2, None, 30, 2)],
        })
        .expect("save");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cat = Catalog::open(&dir.path().join("c.db")).expect("open");
    super::sync::sync(&mut cat, &repo).expect("sync");
    repo.save_index(&IndexFile { packs: vec![kept] })
        .expect("save");
    repo.delete(FileType::Index, &old).expect("delete");
    cat.conn
        .execute_batch(
            "CREATE TEMP TABLE gone (pack BLOB);
             CREATE TEMP TRIGGER count_gone AFTER DELETE ON main.blobs
                BEGIN INSERT INTO gone VALUES (OLD.pack); END;",
        )
        .expect("trigger");
    super::sync::sync(&mut cat, &repo).expect("sync");
    let gone: Vec<Vec<u8>> = column(&cat, "SELECT pack FROM gone");
    // Pack 2's two rows went with the only index object that listed it; pack 1's stayed.
    assert_eq!(gone, [vec![2u8; 32], vec![2u8; 32]]);
    assert!(cat
        .blob_location(&BlobId([22; 32]))
        .expect("query")
        .is_some());
    assert!(cat
        .blob_location(&BlobId([31; 32]))
        .expect("query")
        .is_none());
}

/// A pack's listing reads one index and no `blobs` row (docs/benchmarks.md, "The mount at a
/// million files, 25 snapshots"): in a new catalog, and in one of the same schema made
/// before, with only `blobs_by_pack (pack, offset)`, once it is opened again.
#[test]
fn a_packs_listing_is_one_range_of_a_covering_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.db");
    let plan = |cat: &Catalog| -> String {
        let mut st = cat
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", super::PACK_BLOBS))
            .expect("plan");
        let rows = st
            .query_map(rusqlite::params![vec![1u8], 0, 10], |r| {
                r.get::<_, String>(3)
            })
            .expect("rows");
        let steps: Vec<String> = rows.collect::<rusqlite::Result<_>>().expect("rows");
        steps.join("; ")
    };
    let indexes = |cat: &Catalog| -> Vec<String> {
        column(cat, "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'blobs_by%' ORDER BY name")
    };
    let covering =
        "SEARCH blobs USING COVERING INDEX blobs_by_pack_offset (pack=? AND offset>? AND offset<?)";
    {
        let cat = Catalog::open(&path).expect("open");
        assert_eq!(plan(&cat), covering, "a new catalog");
        assert_eq!(indexes(&cat), ["blobs_by_pack_offset"]);
        cat.conn
            .execute_batch(
                "DROP INDEX blobs_by_pack_offset; CREATE INDEX blobs_by_pack ON blobs (pack, offset);",
            )
            .expect("the index of a catalog made before");
        assert_ne!(plan(&cat), covering, "the catalog made before");
    }
    let cat = Catalog::open(&path).expect("open again");
    assert_eq!(
        plan(&cat),
        covering,
        "the catalog made before, opened again"
    );
    assert_eq!(indexes(&cat), ["blobs_by_pack_offset"]);
}
