//! Prune under fire: racing ingests (local and Garage), SIGKILL at many points, and store
//! faults in every phase. Whatever happens, every snapshot that exists restores exactly.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cofre::prune::PruneOptions;
use cofre::repo::Repository;
use cofre::store::fault::{FaultStore, Faults};
use cofre::store::DynStore;
use common::{compare_trees, copy_dir, noise, restored, Env, Garage};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

/// Round `r`'s source: a file every round shares, one of its own, and the one of round
/// r-3, whose snapshot the round's forget has just removed: the ingest reuses exactly the
/// data the racing prune finds unreferenced.
fn source(dir: &Path, r: u64) -> PathBuf {
    let src = dir.join(format!("src-{r}"));
    if src.exists() {
        return src; // as it was backed up, mtimes included
    }
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("common"), noise(300_000, 7)).expect("write");
    std::fs::write(src.join("own"), noise(200_000, 1000 + r)).expect("write");
    if r >= 3 {
        std::fs::write(src.join("older"), noise(200_000, 1000 + r - 3)).expect("write");
    }
    src
}

/// Restores every snapshot (tagged `round-N`) and compares it with round N's source.
fn every_snapshot_restores(env: &Env, tag: &str) {
    let snaps = env.json(&["snapshots"]);
    for snap in snaps.as_array().expect("array") {
        let id = snap["id"].as_str().expect("id");
        let r: u64 = snap["tags"][0]
            .as_str()
            .and_then(|t| t.strip_prefix("round-"))
            .and_then(|n| n.parse().ok())
            .expect("round tag");
        let src = source(&env.path("sources"), r);
        let target = env.path(&format!("restore-{tag}-{id}"));
        env.ok(&["restore", &id[..12], "--target", s(&target)]);
        assert_eq!(
            compare_trees(&src, &restored(&target, &src)),
            Vec::<String>::new(),
            "snapshot {id} (round {r})"
        );
        std::fs::remove_dir_all(&target).expect("cleanup");
    }
}

fn race(env: &Env, rounds: u64) {
    env.init();
    let mut waited = 0;
    for r in 0..rounds {
        env.ok(&["forget", "--keep-last", "2", "--retry-lock", "5m"]);
        let src = source(&env.path("sources"), r);
        let tag = format!("round-{r}");
        let spawn = |args: &[&str]| {
            env.cmd()
                .env("COFRE_TEST_STORE_DELAY_MS", "3")
                .args(args)
                .args(["--retry-lock", "5m", "-v"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        };
        let ingest_args = ["ingest", "-q", "--tag", &tag, s(&src)];
        // Alternate who starts first, so each side meets the other mid-way.
        let (a, b) = if r % 2 == 0 {
            let p = spawn(&["prune"]);
            (p, spawn(&ingest_args))
        } else {
            let i = spawn(&ingest_args);
            (spawn(&["prune"]), i)
        };
        for child in [a, b] {
            let out = child.wait_with_output().expect("wait");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "round {r}: {err}");
            waited += err.matches("waiting for the lock").count();
        }
        env.ok(&["check"]);
    }
    eprintln!("{rounds} rounds; {waited} times one side waited for the other's lock");
    env.ok(&["check", "--read-data"]);
    every_snapshot_restores(env, "final");
}

#[test]
fn ingest_and_prune_race_on_the_local_store() {
    race(&Env::new(), 30);
}

#[test]
fn ingest_and_prune_race_on_garage() {
    let garage = Garage::start();
    race(&Env::s3(&garage), 30);
}

/// The state SIGKILL is tested from: kept snapshots, forgotten ones whose packs go, and a
/// pack shared by a kept and a forgotten file, which is repacked.
fn history(env: &Env) {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("stays"), noise(1_500_000, 1)).expect("write");
    std::fs::write(src.join("goes"), noise(1_500_000, 2)).expect("write");
    env.ok(&["ingest", "-q", "--tag", "v0", s(&src)]);
    std::fs::remove_file(src.join("goes")).expect("rm");
    for i in 1..=5u64 {
        std::fs::write(src.join("changing"), noise(400_000, 10 + i)).expect("write");
        env.ok(&["ingest", "-q", "--tag", &format!("v{i}"), s(&src)]);
        copy_dir(&src, &env.path(&format!("expect-v{i}")));
    }
    env.ok(&["forget", "--keep-last", "2"]);
}

/// The id of the snapshot with tag `tag` (it must exist).
fn snapshot_tagged(env: &Env, tag: &str) -> String {
    env.json(&["snapshots"])
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["tags"][0] == tag)
        .map(|s| s["id"].as_str().expect("id").to_string())
        .unwrap_or_else(|| panic!("snapshot {tag} is gone"))
}

fn listing(dir: &Path) -> Vec<String> {
    common::walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            p.strip_prefix(dir)
                .expect("inside")
                .to_string_lossy()
                .into_owned()
        })
        .filter(|p| !p.starts_with("locks/"))
        .collect()
}

#[test]
fn prune_killed_at_fifty_points_loses_nothing_and_a_rerun_completes() {
    let env = Env::new();
    history(&env);
    let pristine = env.path("pristine");
    copy_dir(&env.repo(), &pristine);
    let before = listing(&pristine);

    // Every store call a whole prune makes, one at a time (so each run makes them in the
    // same order), on a copy.
    let log = env.path("calls.log");
    let out = env
        .cmd()
        .env("COFRE_TEST_CALL_LOG", &log)
        .args(["prune", "--json"])
        .output()
        .expect("prune");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["plan"]["packs_repack"].as_u64().expect("n") >= 1, "{v}");
    assert!(v["plan"]["packs_delete"].as_u64().expect("n") >= 3, "{v}");
    let calls: Vec<(u64, String, String)> = std::fs::read_to_string(&log)
        .expect("call log")
        .lines()
        .map(|l| {
            let mut w = l.splitn(3, ' ');
            let n = w.next().and_then(|n| n.parse().ok()).expect("call number");
            let op = w.next().expect("op").to_string();
            (n, op, w.next().unwrap_or("").to_string())
        })
        .collect();
    let first = |op: &str| {
        calls
            .iter()
            .find(|(_, o, k)| o == op && !k.starts_with("locks/"))
            .map(|(n, _, _)| *n)
            .unwrap_or_else(|| panic!("no {op} in {calls:?}"))
    };
    let (total, first_put, first_delete) = (calls.len() as u64, first("put"), first("delete"));
    // Fifty kill points over the whole run, and the calls on each side of its phases' edges:
    // before any change, mid-write, mid-delete.
    let mut points: std::collections::BTreeSet<u64> = (0..50).map(|i| 1 + i * total / 50).collect();
    points.extend([
        first_put,
        first_put + 1,
        first_delete,
        first_delete + 1,
        total,
    ]);

    let mut phases = std::collections::BTreeMap::new();
    for n in points {
        copy_dir(&pristine, &env.repo());
        let st = env
            .cmd()
            .env("COFRE_TEST_KILL_AT_CALL", n.to_string())
            .args(["prune"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("prune");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            st.signal(),
            Some(libc::SIGKILL),
            "killed at call {n} of {total}"
        );
        let now = listing(&env.repo());
        let added = now.iter().filter(|k| !before.contains(k)).count() > 0;
        let removed = before.iter().filter(|k| !now.contains(k)).count() > 0;
        *phases.entry((added, removed)).or_insert(0) += 1;
        for v in ["v4", "v5"] {
            let target = env.path(&format!("r-{n}-{v}"));
            let id = snapshot_tagged(&env, v);
            env.ok(&["restore", &id, "--target", s(&target)]);
            let src = env.path("src");
            assert_eq!(
                compare_trees(&env.path(&format!("expect-{v}")), &restored(&target, &src)),
                Vec::<String>::new(),
                "killed at call {n}: snapshot {v}"
            );
            std::fs::remove_dir_all(&target).expect("cleanup");
        }
        env.ok(&["prune"]);
        env.ok(&["check", "--read-data"]);
    }
    // The kills landed before any change, mid-write and mid-delete.
    assert!(
        phases.len() >= 3,
        "kill points by phase (added, removed): {phases:?}"
    );
}

/// Library-level: one store operation kind fails throughout a prune.
#[test]
fn store_faults_during_prune_lose_nothing() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let env = Env::new();
    history(&env);
    let pristine = env.path("pristine");
    copy_dir(&env.repo(), &pristine);
    let cases: [(&'static str, &str); 7] = [
        ("list", "data/"),
        ("list", "index/"),
        ("list", "snapshots/"),
        ("put", "index/"),
        ("put", "data/"),
        ("delete", "index/"),
        ("delete", "data/"),
    ];
    for (op, prefix) in cases {
        copy_dir(&pristine, &env.repo());
        let inner = cofre::store::open(s(&env.repo()), rt.handle()).expect("store");
        let faulty: DynStore = Arc::new(FaultStore::new(
            inner.clone(),
            Faults {
                fail_op: Some((op, prefix.to_string())),
                ..Faults::default()
            },
        ));
        let repo = Repository::open(faulty, rt.handle().clone(), common::PASSWORD.as_bytes())
            .expect("open");
        let result = cofre::prune::prune(&repo, &PruneOptions::default());
        match (&result, op) {
            // A failed pack deletion is reported, the rest goes on.
            (Ok(r), "delete") if prefix == "data/" => {
                let done = r.done.as_ref().expect("executed");
                assert!(!done.delete_failures.is_empty(), "{op} {prefix}");
                assert_eq!(done.packs_deleted, 0);
            }
            (Err(e), _) => assert!(e.to_string().contains("injected"), "{op} {prefix}: {e}"),
            (Ok(r), _) => panic!("{op} {prefix}: prune succeeded: {r:?}"),
        }
        drop(repo);
        // Nothing a kept snapshot needs is gone; a clean prune finishes the job.
        let clean = Arc::new(
            Repository::open(inner, rt.handle().clone(), common::PASSWORD.as_bytes())
                .expect("open"),
        );
        let r = cofre::check::check(&clean, cofre::check::ReadData::All).expect("check");
        assert!(r.errors.is_empty(), "{op} {prefix}: {:?}", r.errors);
        for v in ["v4", "v5"] {
            let target = env.path(&format!("f-{op}-{v}"));
            let id = snapshot_tagged(&env, v);
            cofre::restore::restore(&clean, &id, "/", &target).expect("restore");
            assert_eq!(
                compare_trees(
                    &env.path(&format!("expect-{v}")),
                    &restored(&target, &env.path("src"))
                ),
                Vec::<String>::new(),
                "{op} {prefix}: {v}"
            );
            std::fs::remove_dir_all(&target).expect("cleanup");
        }
        cofre::prune::prune(&clean, &PruneOptions::default()).expect("clean prune");
        let r = cofre::check::check(&clean, cofre::check::ReadData::All).expect("check");
        assert!(
            r.errors.is_empty(),
            "{op} {prefix} after a clean prune: {:?}",
            r.errors
        );
        assert_eq!(r.snapshots, 2);
    }
}
