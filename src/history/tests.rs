//! `log`, `find` and `diff` on a generated history: snapshots built straight into a
//! catalog, each from a table of paths, so every kind of change is there on purpose.

use std::collections::BTreeMap;

use super::*;
use crate::crypto::BlobId;
use crate::model::{Manifest, Node, Tree};

/// What a path is in one snapshot: a file's content and mode, a directory, a symlink.
#[derive(Clone, Copy)]
enum E {
    F(&'static str, u32),
    D,
    /// A directory with this mode (D is 0755).
    Dm(u32),
    L(&'static str),
}

fn node(name: &[u8], e: E, subtree: Option<BlobId>) -> Node {
    let (kind, mode, size, blake3, target) = match e {
        E::F(c, m) => (
            Kind::File,
            0o100000 | m,
            c.len() as u64,
            Some(*blake3::hash(c.as_bytes()).as_bytes()),
            Vec::new(),
        ),
        E::D => (Kind::Dir, 0o040755, 0, None, Vec::new()),
        E::Dm(m) => (Kind::Dir, 0o040000 | m, 0, None, Vec::new()),
        E::L(t) => (
            Kind::Symlink,
            0o120777,
            t.len() as u64,
            None,
            t.as_bytes().to_vec(),
        ),
    };
    Node {
        mode,
        user: "root".into(),
        group: "root".into(),
        size,
        mtime: (1_000, 0),
        target,
        blake3,
        subtree,
        ..Node::sample(name, kind)
    }
}

/// Inserts the tree of `paths` below `dir` (bottom-up) and returns its id.
fn insert(tx: &crate::catalog::CatalogTx, paths: &BTreeMap<&str, E>, dir: &str) -> BlobId {
    let mut nodes = Vec::new();
    for (p, e) in paths {
        let Some(name) = p
            .strip_prefix(dir)
            .filter(|n| !n.is_empty() && !n.contains('/'))
        else {
            continue;
        };
        let sub = matches!(e, E::D | E::Dm(_)).then(|| insert(tx, paths, &format!("{p}/")));
        nodes.push(node(name.as_bytes(), *e, sub));
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let tree = Tree { nodes };
    let raw = crate::repo::encode_tree(&tree).expect("encode");
    let id = BlobId(*blake3::hash(&raw).as_bytes());
    tx.insert_tree(&id, &tree).expect("insert tree");
    id
}

/// A snapshot of `set` at `time` with this root tree.
fn manifest(set: &str, time: i64, root: BlobId) -> Manifest {
    Manifest {
        version: 1,
        set: set.to_string(),
        time: (time, 0),
        tags: vec![],
        paths: vec![],
        hostname: String::new(),
        username: String::new(),
        root,
        summary: Default::default(),
        program: String::new(),
        data_class: None,
        self_contained: false,
    }
}

/// A catalog holding one snapshot per table, an hour apart, ids "s0…", "s1…", …, all of
/// set "s".
fn history(snaps: &[&[(&'static str, E)]]) -> (tempfile::TempDir, Catalog) {
    let with_set: Vec<(&str, &[(&'static str, E)])> = snaps.iter().map(|t| ("s", *t)).collect();
    history_of_sets(&with_set)
}

/// As `history`, each snapshot in the set given beside it.
fn history_of_sets(snaps: &[(&str, &[(&'static str, E)])]) -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cat = Catalog::open(&dir.path().join("c.db")).expect("catalog");
    let tx = cat.writer().expect("tx");
    for (i, (set, paths)) in snaps.iter().enumerate() {
        let table: BTreeMap<&str, E> = paths.iter().copied().collect();
        let root = insert(&tx, &table, "/");
        let m = manifest(set, 1_796_378_400 + 3600 * i as i64, root);
        tx.insert_snapshot(&format!("s{i}{}", "0".repeat(62)), &m)
            .expect("snapshot");
    }
    tx.commit().expect("commit");
    (dir, cat)
}

use E::*;

/// Six snapshots of a small tree: /etc/app.conf changes content, then only its mode, goes
/// away, comes back; /data turns from a file into a directory; /link changes target.
fn six() -> (tempfile::TempDir, Catalog) {
    history(&[
        &[
            ("/etc", D),
            ("/etc/app.conf", F("a=1", 0o644)),
            ("/data", F("x", 0o644)),
        ],
        &[
            ("/etc", D),
            ("/etc/app.conf", F("a=1", 0o644)),
            ("/data", F("x", 0o644)),
        ],
        &[
            ("/etc", D),
            ("/etc/app.conf", F("a=2", 0o644)),
            ("/data", F("x", 0o644)),
        ],
        &[
            ("/etc", D),
            ("/etc/app.conf", F("a=2", 0o600)),
            ("/data", D),
            ("/data/new.txt", F("n", 0o644)),
        ],
        &[
            ("/etc", D),
            ("/data", D),
            ("/data/new.txt", F("n", 0o644)),
            ("/link", L("/etc")),
        ],
        &[
            ("/etc", D),
            ("/etc/app.conf", F("a=2", 0o600)),
            ("/data", D),
            ("/data/new.txt", F("n", 0o644)),
            ("/link", L("/data")),
        ],
    ])
}

/// (change, first snapshot index, last, snapshots) of one version.
type Shape = (Change, usize, usize, usize);

/// (from, to, path, the changed paths expected).
type DiffCase = (
    usize,
    usize,
    &'static str,
    &'static [(&'static str, Change)],
);

/// (change, first snapshot index, last, snapshots) per version.
fn shape(v: &[Version]) -> Vec<Shape> {
    let idx = |a: &At| a.id[1..2].parse::<usize>().expect("index");
    v.iter()
        .map(|v| (v.change, idx(&v.first), idx(&v.last), v.snapshots))
        .collect()
}

#[test]
fn log_shows_every_version_of_a_path() {
    let (_d, cat) = six();
    let snaps = cat.snapshots(None).expect("snapshots");
    use Change::*;
    let table: &[(&str, &[Shape])] = &[
        (
            "/etc/app.conf",
            &[
                (Added, 0, 1, 2),
                (Content, 2, 2, 1),
                (Metadata, 3, 3, 1),
                (Removed, 4, 4, 1),
                (Added, 5, 5, 1),
            ],
        ),
        ("/data", &[(Added, 0, 2, 3), (Type, 3, 5, 3)]),
        ("/data/new.txt", &[(Added, 3, 5, 3)]),
        ("/link", &[(Added, 4, 4, 1), (Content, 5, 5, 1)]),
        // A directory's version changes with its entries.
        (
            "/etc",
            &[
                (Added, 0, 1, 2),
                (Content, 2, 2, 1),
                (Content, 3, 3, 1),
                (Content, 4, 4, 1),
                (Content, 5, 5, 1),
            ],
        ),
        ("/nope", &[]),
        ("/etc/app.conf/below-a-file", &[]),
    ];
    for (path, want) in table {
        let got = log(&cat, &snaps, path).expect("log");
        assert_eq!(shape(&got), *want, "{path}");
    }
    assert!(matches!(
        log(&cat, &snaps, "/"),
        Err(crate::error::Error::InvalidArgument(_))
    ));
    let v = log(&cat, &snaps, "/etc/app.conf").expect("log");
    let e = v[1].entry.as_ref().expect("entry");
    assert_eq!((e.path.as_str(), e.size), ("/etc/app.conf", 3));
    assert_eq!(e.blake3, Some(blake3::hash(b"a=2").to_hex().to_string()));
    assert!(v[3].entry.is_none(), "a removed stretch has no entry");
}

#[test]
fn diff_lists_added_removed_and_changed_entries() {
    let (_d, cat) = six();
    let s = cat.snapshots(None).expect("snapshots");
    use Change::*;
    let table: &[DiffCase] = &[
        (0, 1, "/", &[]),
        (1, 2, "/", &[("/etc/app.conf", Content)]),
        (
            2,
            3,
            "/",
            &[
                ("/data", Type),
                ("/data/new.txt", Added),
                ("/etc/app.conf", Metadata),
            ],
        ),
        (3, 4, "/", &[("/etc/app.conf", Removed), ("/link", Added)]),
        (4, 5, "/", &[("/etc/app.conf", Added), ("/link", Content)]),
        // Backwards: a directory's entries go with it.
        (
            3,
            0,
            "/",
            &[
                ("/data", Type),
                ("/data/new.txt", Removed),
                ("/etc/app.conf", Content),
            ],
        ),
        (2, 3, "/etc", &[("/etc/app.conf", Metadata)]),
        (3, 4, "/etc/app.conf", &[("/etc/app.conf", Removed)]),
        (0, 5, "/link", &[("/link", Added)]),
    ];
    for (a, b, path, want) in table {
        let d = diff(&cat, &s[*a], &s[*b], path).expect("diff");
        let got: Vec<(&str, Change)> = d
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.change))
            .collect();
        assert_eq!(got, *want, "{a} -> {b} {path}");
    }
    let d = diff(&cat, &s[3], &s[4], "/").expect("diff");
    assert_eq!(
        (d.added, d.removed, d.changed, d.metadata_only),
        (1, 1, 0, 0)
    );
    assert_eq!(
        (d.bytes_added, d.bytes_removed),
        (0, 3),
        "a symlink's size is not file bytes"
    );
    assert!(matches!(
        diff(&cat, &s[0], &s[1], "/nope"),
        Err(crate::error::Error::NoSuchPath(_))
    ));
}

#[test]
fn find_groups_matches_by_path_and_version() {
    let (_d, cat) = six();
    let snaps = cat.snapshots(None).expect("snapshots");
    use Change::*;
    type Want = &'static [(&'static str, &'static [Shape])];
    let table: &[(&str, Option<&str>, std::ops::Range<usize>, Want)] = &[
        (
            "*.conf",
            None,
            0..6,
            &[(
                "/etc/app.conf",
                &[
                    (Added, 0, 1, 2),
                    (Content, 2, 2, 1),
                    (Metadata, 3, 3, 1),
                    (Removed, 4, 4, 1),
                    (Added, 5, 5, 1),
                ],
            )],
        ),
        (
            "new.*",
            None,
            0..6,
            &[("/data/new.txt", &[(Added, 3, 5, 3)])],
        ),
        (
            "data",
            None,
            0..6,
            &[("/data", &[(Added, 0, 2, 3), (Type, 3, 5, 3)])],
        ),
        (
            "*",
            Some("/data"),
            0..6,
            &[
                ("/data", &[(Added, 0, 2, 3), (Type, 3, 5, 3)]),
                ("/data/new.txt", &[(Added, 3, 5, 3)]),
            ],
        ),
        ("*.conf", Some("/et"), 0..6, &[]),
        // Only the snapshots searched count (`--since`/`--until` choose them).
        (
            "*.conf",
            None,
            4..6,
            &[("/etc/app.conf", &[(Added, 5, 5, 1)])],
        ),
        ("*.none", None, 0..6, &[]),
    ];
    for (pattern, prefix, range, want) in table {
        let got = find(&cat, &snaps[range.clone()], pattern, *prefix).expect("find");
        let got: Vec<(String, Vec<_>)> = got
            .iter()
            .map(|f| (f.path.clone(), shape(&f.versions)))
            .collect();
        let want: Vec<(String, Vec<_>)> = want
            .iter()
            .map(|(p, v)| (p.to_string(), v.to_vec()))
            .collect();
        assert_eq!(got, want, "{pattern} {prefix:?} {range:?}");
    }
}

#[test]
fn each_set_has_its_own_history() {
    // Two sets, interleaved in time: the `files` set's /etc/app.conf never changes.
    let (_d, cat) = history_of_sets(&[
        ("files", &[("/etc", D), ("/etc/app.conf", F("a=1", 0o644))]),
        ("db", &[("/dumps", D), ("/dumps/app.sql", F("v1", 0o600))]),
        ("files", &[("/etc", D), ("/etc/app.conf", F("a=1", 0o644))]),
        ("db", &[("/dumps", D), ("/dumps/app.sql", F("v2", 0o600))]),
    ]);
    let all = cat.snapshots(None).expect("snapshots");
    use Change::*;
    let table: &[(&str, &[Shape])] = &[
        ("/etc/app.conf", &[(Added, 0, 2, 2)]),
        ("/dumps/app.sql", &[(Added, 1, 1, 1), (Content, 3, 3, 1)]),
    ];
    for (path, want) in table {
        let got = per_set(&all, |snaps| log(&cat, snaps, path)).expect("log");
        assert_eq!(shape(&got), *want, "{path}");
    }
    let found = per_set(&all, |snaps| find(&cat, snaps, "*", None)).expect("find");
    let conf = found
        .iter()
        .find(|f| f.path == "/etc/app.conf")
        .expect("found");
    assert_eq!(shape(&conf.versions), [(Added, 0, 2, 2)]);
}

#[test]
fn diff_reports_a_directory_chmod_beside_its_new_entries_and_file_bytes_only() {
    let (_d, cat) = history(&[
        &[
            ("/d", D),
            ("/d/f1", F("one", 0o644)),
            ("/x", F("0123456789", 0o644)),
        ],
        &[
            ("/d", Dm(0o700)),
            ("/d/f1", F("one", 0o644)),
            ("/d/f2", F("two", 0o644)),
            ("/x", D),
        ],
    ]);
    let s = cat.snapshots(None).expect("snapshots");
    let d = diff(&cat, &s[0], &s[1], "/").expect("diff");
    let got: Vec<(&str, Change)> = d
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.change))
        .collect();
    assert_eq!(
        got,
        [
            ("/d", Change::Metadata),
            ("/d/f2", Change::Added),
            ("/x", Change::Type)
        ]
    );
    assert_eq!(d.metadata_only, 1);
    // A 10-byte file became a directory: 10 bytes of files gone, 3 added (f2).
    assert_eq!((d.bytes_added, d.bytes_removed), (3, 10));
}

#[test]
fn a_name_that_is_not_utf8_keeps_its_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cat = Catalog::open(&dir.path().join("c.db")).expect("catalog");
    let tx = cat.writer().expect("tx");
    let name = b"caf\xe9.txt";
    let tree = Tree {
        nodes: vec![node(name, F("x", 0o644), None)],
    };
    let raw = crate::repo::encode_tree(&tree).expect("encode");
    let root = BlobId(*blake3::hash(&raw).as_bytes());
    tx.insert_tree(&root, &tree).expect("tree");
    tx.insert_snapshot(&"a".repeat(64), &manifest("s", 1, root))
        .expect("snapshot");
    tx.commit().expect("commit");
    let snaps = cat.snapshots(None).expect("snapshots");
    let found = find(&cat, &snaps, "*.txt", None).expect("find");
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].path_hex.as_deref(),
        Some(hex::encode(b"/caf\xe9.txt").as_str())
    );
}

/// `nodes_named` through the names table (made at the first call) finds exactly what the
/// scan of every entry finds, before and after more snapshots are added (their names come
/// in through the trigger).
#[test]
fn names_find_what_a_scan_of_every_entry_finds() {
    let (dir, mut cat) = six();
    let scan = |_: &Catalog, pattern: &str| -> Vec<i64> {
        let conn = rusqlite::Connection::open(dir.path().join("c.db")).expect("open");
        let mut st = conn
            .prepare("SELECT id FROM nodes WHERE CAST(name AS TEXT) GLOB ?1 ORDER BY id")
            .expect("prepare");
        let ids = st
            .query_map([pattern], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<Vec<i64>>>()
            .expect("ids");
        ids
    };
    let named = |cat: &Catalog, pattern: &str| -> Vec<i64> {
        let mut ids: Vec<i64> = cat
            .nodes_named(pattern)
            .expect("named")
            .iter()
            .map(|(_, r)| r.rowid)
            .collect();
        ids.sort();
        ids
    };
    let patterns = ["*.conf", "*", "l?nk", "[de]*", "nothing"];
    for p in patterns {
        assert_eq!(named(&cat, p), scan(&cat, p), "{p}, first find");
    }
    let conn = rusqlite::Connection::open(dir.path().join("c.db")).expect("open");
    let made: i64 = conn
        .query_row("SELECT count(*) FROM meta WHERE key = 'names'", [], |r| {
            r.get(0)
        })
        .expect("meta");
    assert_eq!(made, 1, "the first find made the names table");
    // A later snapshot with new names: found through the trigger's names.
    let tx = cat.writer().expect("tx");
    let table: BTreeMap<&str, E> = [
        ("/new.conf", F("n", 0o644)),
        ("/etc", D),
        ("/etc/other.conf", F("o", 0o644)),
    ]
    .into_iter()
    .collect();
    let root = insert(&tx, &table, "/");
    tx.insert_snapshot(
        &format!("t{}", "0".repeat(63)),
        &manifest("s", 1_796_400_000, root),
    )
    .expect("snapshot");
    tx.commit().expect("commit");
    for p in patterns.iter().chain(&["new.*", "other.conf"]) {
        let got = named(&cat, p);
        assert_eq!(got, scan(&cat, p), "{p}, after more entries");
    }
    assert!(!named(&cat, "new.*").is_empty(), "the new name is found");
}
