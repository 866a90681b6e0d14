//! Compression choices: a repository holding raw, lz4 and zstd blobs side by side reads every
//! snapshot back exact (restore and the mount), `check --read-data` verifies and counts them,
//! and a set's `compression` in the configuration decides how its new blobs are stored.

mod common;

use common::*;

fn counts(env: &Env) -> serde_json::Value {
    let out = env.run(&["--json", "check", "--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["blobs_read_by_compression"].clone()
}

#[test]
fn lz4_zstd_and_raw_blobs_in_one_repository_read_back_exact() {
    let env = Env::new();
    env.ok(&["init", "--compression", "lz4"]);
    let src = env.path("src");
    make_awkward_tree(&src);
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    env.ok(&["ingest", "-q", "--tag", "lz4", &s(&src)]);
    let c = counts(&env);
    assert!(c["lz4"].as_u64() > Some(0), "{c}");
    assert_eq!(c.get("zstd"), None, "{c}");

    // New content in zstd, then stored raw: the older blobs stay as they are.
    let more = |name: &str, seed: u64| {
        let text: String = (0..50_000)
            .map(|i| format!("{name} row {i} {}\n", i * seed % 9973))
            .collect();
        std::fs::write(src.join(format!("{name}.sql")), text).expect("write");
    };
    more("zstd", 7);
    env.ok(&[
        "ingest",
        "-q",
        "--compression",
        "zstd:5",
        "--tag",
        "zstd",
        &s(&src),
    ]);
    more("none", 11);
    env.ok(&[
        "ingest",
        "-q",
        "--compression",
        "none",
        "--tag",
        "none",
        &s(&src),
    ]);
    let c = counts(&env);
    for kind in ["lz4", "zstd", "raw"] {
        assert!(c[kind].as_u64() > Some(0), "{kind} in {c}");
    }

    // Every snapshot restores exact, and the mount reads the mixed latest one exact.
    env.restore_matches(&["latest"], "r-latest", &src);
    let m = Mount::start(&env, "mnt", &[]);
    assert_eq!(
        compare_trees(&src, &m.latest("default", &src)),
        Vec::<String>::new()
    );
    m.stop();
    std::fs::remove_file(src.join("none.sql")).expect("rm");
    let snaps = env.json(&["snapshots"]);
    let zstd_snap = snaps
        .as_array()
        .expect("a")
        .iter()
        .find(|s| s["tags"][0] == "zstd")
        .expect("zstd snapshot");
    env.restore_matches(&[zstd_snap["id"].as_str().expect("id")], "r-zstd", &src);
    // A bad choice is named.
    let out = env.run(&["ingest", "--compression", "gzip", &s(&src)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lz4, zstd"),
        "{out:?}"
    );
}

#[test]
fn a_sets_compression_decides_its_new_blobs() {
    let env = Env::new();
    env.init(); // the default: zstd
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let text: String = (0..100_000)
        .map(|i| format!("account-{i} {}\n", i % 97))
        .collect();
    std::fs::write(src.join("a.txt"), &text).expect("write");
    let other = env.path("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("b.txt"), text.replace("account", "client")).expect("write");
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sets.fast]\npaths = [{:?}]\ncompression = \"lz4\"\nevery = \"1h\"\n",
            src.display().to_string()
        ),
    )
    .expect("write");
    let run = || {
        env.cmd()
            .env("COFRE_CONFIG", &cfg)
            .args(["run", "--now", "2026-11-23T00:00:00Z"])
            .output()
            .expect("run")
    };
    assert!(run().status.success());
    let c = counts(&env);
    assert!(c["lz4"].as_u64() > Some(0), "{c}");
    assert_eq!(
        c.get("zstd"),
        None,
        "the set's lz4, not the repository's zstd: {c}"
    );
    env.ok(&[
        "ingest",
        "-q",
        "--set",
        "plain",
        other.to_str().expect("utf-8"),
    ]);
    let c = counts(&env);
    assert!(
        c["zstd"].as_u64() > Some(0),
        "the repository default for other sets: {c}"
    );
}
