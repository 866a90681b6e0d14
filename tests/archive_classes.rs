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
