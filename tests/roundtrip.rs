//! The awkward tree survives ingest → restore exactly, and again after an incremental ingest.

mod common;
use common::*;

#[test]
fn awkward_tree_round_trip() {
    let env = Env::new();
    let src = env.path("src");
    make_awkward_tree(&src);
    env.init();
    let src_s = src.to_str().expect("utf-8 path");
    let report = env.json(&["ingest", src_s]);
    assert!(
        report["summary"]["files"].as_u64().expect("files") >= 17,
        "{report}"
    );

    let target = env.path("restore1");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().expect("utf-8"),
    ]);
    let copy = restored(&target, &src);
    assert_eq!(compare_trees(&src, &copy), Vec::<String>::new());
    assert_eq!(rsync_diff(&src, &copy), "");
    // The sparse file's holes stayed holes.
    let sparse_blocks = || {
        std::os::unix::fs::MetadataExt::blocks(
            &std::fs::metadata(copy.join("sparse.img")).expect("stat"),
        )
    };
    assert!(
        sparse_blocks() * 512 < 10 * 1024 * 1024,
        "sparse file restored with {} blocks",
        sparse_blocks()
    );

    // Unchanged files are not read again.
    let again = env.json(&["ingest", src_s]);
    assert_eq!(again["summary"]["bytes_read"].as_u64(), Some(0), "{again}");
    assert_eq!(again["summary"]["new_files"].as_u64(), Some(0), "{again}");

    // Change one file; the new snapshot has it, the old one does not.
    std::fs::write(src.join("small.txt"), b"changed\n").expect("write");
    let third = env.json(&["ingest", src_s]);
    assert_eq!(
        third["summary"]["changed_files"].as_u64(),
        Some(1),
        "{third}"
    );
    env.restore_matches(&["latest"], "restore2", &src);
    // Over an existing tree (the first restore: every entry is there, so each file is
    // written beside its destination and renamed over it) as exact as into an empty one.
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().expect("utf-8"),
    ]);
    assert_eq!(compare_trees(&src, &copy), Vec::<String>::new());
    assert_eq!(rsync_diff(&src, &copy), "");
    assert!(
        sparse_blocks() * 512 < 10 * 1024 * 1024,
        "sparse file restored over itself with {} blocks",
        sparse_blocks()
    );
    assert_eq!(restore_leftovers(&target), Vec::<std::path::PathBuf>::new());

    let snaps = env.json(&["snapshots"]);
    let first = snaps[0]["id"].as_str().expect("id");
    let target3 = env.path("restore3");
    let spec = format!("{}:{}/small.txt", &first[..8], src_s);
    env.ok(&[
        "restore",
        &spec,
        "--target",
        target3.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        std::fs::read(restored(&target3, &src.join("small.txt"))).expect("read"),
        b"hello, cofre\n"
    );
}

#[test]
fn catalog_rebuild_gives_the_same_listing() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("a/b")).expect("mkdir");
    std::fs::write(src.join("a/b/f"), noise(200_000, 9)).expect("write");
    std::fs::write(src.join("a/g"), b"g").expect("write");
    env.init();
    let s = src.to_str().expect("utf-8");
    env.ok(&["ingest", s, "--set", "files", "--tag", "t1"]);
    std::fs::write(src.join("a/h"), b"h").expect("write");
    env.ok(&[
        "ingest",
        s,
        "--set",
        "files",
        "--time",
        "2026-01-02T03:04:05Z",
    ]);
    let before_snaps = env.json(&["snapshots"]);
    let before_ls = env.json(&["ls", "latest"]);
    env.ok(&["catalog", "rebuild"]);
    assert_eq!(env.json(&["snapshots"]), before_snaps);
    assert_eq!(env.json(&["ls", "latest"]), before_ls);
    // Deleting the catalog loses nothing either.
    std::fs::remove_dir_all(env.path("cache")).expect("rm cache");
    assert_eq!(env.json(&["snapshots"]), before_snaps);
    assert_eq!(before_snaps.as_array().expect("list").len(), 2);
    let first = &before_snaps[0];
    for key in ["id", "set", "time", "tags", "paths", "files", "bytes"] {
        assert!(!first[key].is_null(), "snapshot json lacks {key}: {first}");
    }
    assert_eq!(first["time"], "2026-01-02T03:04:05Z");
}
