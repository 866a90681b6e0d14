//! Crash safety: SIGKILL `cofre ingest` at many moments. Never a partial snapshot; the
//! catalog agrees with a rebuild from the store; the next ingest succeeds and restores.

mod common;
use common::*;

use std::path::Path;
use std::time::{Duration, Instant};

const KILLS: usize = 50;

fn add_file(src: &Path, i: usize) {
    std::fs::write(
        src.join(format!("new/{i:03}")),
        noise(3 * 1024 * 1024, 1000 + i as u64),
    )
    .expect("write");
}

/// The snapshot lists exactly base files plus new/000..new/k, with the right hashes.
fn check_listing(env: &Env, snap: &str, src: &Path) {
    let ls = env.json(&["ls", &format!("{snap}:{}", src.display())]);
    for entry in ls.as_array().expect("list") {
        if entry["type"] != "file" {
            continue;
        }
        let path = entry["path"].as_str().expect("path");
        let data = std::fs::read(path).expect("source file still exists");
        assert_eq!(
            entry["blake3"].as_str(),
            Some(blake3::hash(&data).to_hex().as_str()),
            "{path} in {snap}"
        );
        assert_eq!(
            entry["size"].as_u64(),
            Some(data.len() as u64),
            "{path} in {snap}"
        );
    }
}

#[test]
fn sigkill_during_ingest_never_leaves_a_partial_snapshot() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("new")).expect("mkdir");
    for i in 0..8 {
        std::fs::write(src.join(format!("base{i}")), noise(1024 * 1024, i)).expect("write");
    }
    env.init();
    let s = src.to_str().expect("utf-8");
    env.ok(&["ingest", s]);
    // Kill moments spread over the length of an ingest like the ones killed below (one new
    // file): the median of three, so one slow run does not stretch the window.
    let mut took: Vec<u64> = (0..3)
        .map(|k| {
            add_file(&src, 1000 + k);
            let t0 = Instant::now();
            env.ok(&["ingest", s]);
            t0.elapsed().as_micros() as u64
        })
        .collect();
    took.sort_unstable();
    let window = took[1] * 6 / 5 + 1;

    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut completed_by_kill_time = 0;
    for i in 0..KILLS {
        add_file(&src, i);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_micros(rng % window);
        let mut child = env
            .cmd()
            .args(["ingest", "--quiet", s])
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay); // the moment to kill at, not a wait for a result
        if child.try_wait().expect("try_wait").is_some() {
            completed_by_kill_time += 1;
        }
        let _ = child.kill();
        child.wait().expect("wait");

        // Catalog (synced) and a rebuild from the store alone agree.
        let snaps = env.json(&["snapshots"]);
        let rebuilt = env.path(&format!("rebuilt-{i}.db"));
        env.ok(&[
            "--catalog",
            rebuilt.to_str().expect("utf-8"),
            "catalog",
            "rebuild",
        ]);
        let from_store = env.json(&["--catalog", rebuilt.to_str().expect("utf-8"), "snapshots"]);
        assert_eq!(snaps, from_store, "after kill {i} at {delay:?}");
        // Whatever snapshot exists is complete.
        let last = snaps.as_array().expect("list").last().expect("a snapshot")["id"]
            .as_str()
            .expect("id")
            .to_string();
        check_listing(&env, &last, &src);
    }
    assert!(
        completed_by_kill_time < KILLS / 2,
        "most kills must interrupt a running ingest"
    );

    // Every snapshot restores; the next ingest succeeds and restores exactly.
    env.ok(&["ingest", s]);
    let snaps = env.json(&["snapshots"]);
    for snap in snaps.as_array().expect("list") {
        let id = &snap["id"].as_str().expect("id")[..12];
        let target = env.path(&format!("r-{id}"));
        env.ok(&["restore", id, "--target", target.to_str().expect("utf-8")]);
        for f in walk(&restored(&target, &src)) {
            if f.is_file() {
                let rel = f.strip_prefix(restored(&target, &src)).expect("prefix");
                assert_eq!(
                    std::fs::read(&f).expect("read"),
                    std::fs::read(src.join(rel)).expect("read"),
                    "{}",
                    rel.display()
                );
            }
        }
        std::fs::remove_dir_all(&target).expect("cleanup");
    }
    env.restore_matches(&["latest"], "final", &src);
}
