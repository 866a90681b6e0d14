//! Item 14 on a second S3 implementation (moto), which enforces AWS archive semantics
//! that Garage lacks: a GET of a GLACIER object fails until it is restored.
mod common;

use common::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8")
}

#[test]
fn a_snapshot_never_depends_on_a_colder_class_than_its_own() {
    let moto = Moto::start();
    let env = Env::s3_at(&moto.bucket, &moto.vars);
    let src = env.path("src");
    std::fs::create_dir_all(src.join("models")).expect("mkdir");
    std::fs::write(src.join("models/weights.bin"), noise(3_000_000, 42)).expect("write");
    std::fs::write(src.join("config.toml"), b"threshold = 0.7\n").expect("write");
    env.init();
    // A weekly snapshot straight into the archive tier: its data reads as "archived",
    // in one line, never as corruption.
    env.ok(&[
        "ingest",
        "--set",
        "weekly",
        "--data-storage-class",
        "GLACIER",
        s(&src),
    ]);
    let target = env.path("thawed");
    let out = env.run(&[
        "restore",
        "latest",
        "--set",
        "weekly",
        "--target",
        s(&target),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("archive storage class"), "{stderr}");
    assert!(!stderr.contains("corrupt"), "{stderr}");
    for line in stderr.lines() {
        assert!(line.len() < 600, "S3 errors are one readable line: {line}");
    }
    let check = env.run(&["check", "--read-data"]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("archive storage class") && !stderr.contains("corrupt"),
        "{stderr}"
    );

    // An ordinary snapshot of the same data must not dedup into the archived packs.
    let ordinary = env.json(&["ingest", "--set", "daily", s(&src)]);
    let added = ordinary["summary"]["bytes_added"]
        .as_u64()
        .expect("bytes_added");
    assert!(
        added > 3_000_000,
        "the ordinary snapshot reused archived data: added {added}"
    );
    env.restore_matches(&["latest", "--set", "daily"], "out", &src);
    // Readers take the nearest copy: the weekly snapshot now restores from it too.
    env.restore_matches(&["latest", "--set", "weekly"], "weekly-out", &src);
}

/// Issue 20's first reproduction: a 4-hourly STANDARD snapshot after a weekly GLACIER one
/// of the same set. Before the fix the unchanged-file shortcut copied the weekly's chunk
/// ids, so the 4-hourly snapshot needed archived data: restore failed, check said "no
/// errors".
#[test]
fn an_unchanged_file_is_not_carried_into_a_hotter_class_than_its_data() {
    let moto = Moto::start();
    let env = Env::s3_at(&moto.bucket, &moto.vars);
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("a"), noise(2_000_000, 1)).expect("write");
    std::fs::write(src.join("b"), noise(2_000_000, 2)).expect("write");
    env.init();
    env.ok(&["ingest", "--set", "files", "--tag", "4h", s(&src)]);
    std::fs::write(src.join("a"), noise(2_000_000, 3)).expect("write");
    env.ok(&[
        "ingest",
        "--set",
        "files",
        "--tag",
        "weekly",
        "--data-storage-class",
        "GLACIER",
        s(&src),
    ]);
    let third = env.json(&["ingest", "--set", "files", "--tag", "4h", s(&src)]);
    // `a` changed only in the weekly (GLACIER) snapshot: it is read again, not reused.
    assert_eq!(
        third["summary"]["unchanged_files"].as_u64(),
        Some(1),
        "{third}"
    );
    env.restore_matches(&["latest", "--set", "files"], "out", &src);
    env.ok(&["check"]);
}

/// A snapshot that needs data colder than its own class is an error of `check`, naming
/// the snapshot, the file and the class. Forced by hand: a copy of a GLACIER snapshot's
/// manifest that says STANDARD (the local store keeps the class in the index).
#[test]
fn check_reports_a_snapshot_that_needs_colder_data() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("model.bin"), noise(1_000_000, 9)).expect("write");
    env.init();
    env.ok(&[
        "ingest",
        "--set",
        "weekly",
        "--data-storage-class",
        "GLACIER",
        s(&src),
    ]);
    env.ok(&["check"]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let store = cofre::store::open(s(&env.repo()), rt.handle()).expect("store");
    let repo = cofre::repo::Repository::open(store, rt.handle().clone(), PASSWORD.as_bytes())
        .expect("open");
    let id = repo.snapshot_ids().expect("ids").remove(0);
    let mut m = repo.load_manifest(&id).expect("manifest");
    m.set = "hot".into();
    m.data_class = Some("STANDARD".into());
    let forced = repo.save_manifest(&m).expect("save");
    let out = env.run(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&forced[..8]) && err.contains("model.bin") && err.contains("STANDARD"),
        "{err}"
    );
    assert!(
        !err.contains(&id[..8]),
        "the GLACIER snapshot itself is fine: {err}"
    );
}
