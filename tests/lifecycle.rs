//! forget, prune, locks, keys and check subsets, through the real binary on a local
//! repository (the racing and SIGKILL tests are in lifecycle_races.rs).

mod common;

use std::path::Path;

use common::{noise, wait_for, Env, Mount};

/// Snapshot ids (full) of the repository, oldest first.
fn snapshot_ids(env: &Env) -> Vec<String> {
    let v = env.json(&["snapshots"]);
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

/// 60 days of 4-hourly snapshot times, starting at `start` (unix seconds), a few minutes
/// off the hour as cron jobs are.
fn times(days: i64) -> Vec<i64> {
    let start = 1_788_220_800; // 2026-09-01T00:00:00Z
    (0..days * 6)
        .map(|i| start + i * 4 * 3600 + 7 * 60)
        .collect()
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

fn parse_time(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .expect("rfc3339")
        .unix_timestamp()
}

/// The times restic keeps with `policy` for snapshots at `ts` (restic's own answer).
fn restic_keeps(dir: &Path, ts: &[i64], policy: &[&str]) -> Vec<i64> {
    let repo = dir.join("restic-repo");
    let restic = |args: &[&str]| {
        let out = std::process::Command::new("restic")
            .args(args)
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_PASSWORD", "pw")
            .env("TZ", "UTC")
            .env("RESTIC_CACHE_DIR", dir.join("restic-cache"))
            .output()
            .expect("restic is installed (integration/install-deps.sh)");
        assert!(
            out.status.success(),
            "restic {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    if !repo.exists() {
        restic(&["init"]);
        let src = dir.join("restic-src");
        std::fs::create_dir_all(&src).expect("mkdir");
        std::fs::write(src.join("f"), b"x").expect("write");
        // One at a time: concurrent restic backups stall on each other's lock files.
        for t in ts {
            let when = time::OffsetDateTime::from_unix_timestamp(*t)
                .expect("time")
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second]"
                ))
                .expect("format");
            restic(&["backup", "-q", "--time", &when, s(&src)]);
        }
    }
    let mut args = vec!["forget", "--dry-run", "--json"];
    args.extend(policy);
    let v: serde_json::Value = serde_json::from_slice(&restic(&args)).expect("restic json");
    let mut kept: Vec<i64> = v
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["keep"].as_array().cloned().unwrap_or_default())
        .map(|s| parse_time(s["time"].as_str().expect("time")))
        .collect();
    kept.sort();
    kept
}

#[test]
fn forget_keeps_exactly_what_restic_keeps() {
    let env = Env::new();
    env.init();
    let ts = times(60);
    // The history through the library's ingest with `time` (what `ingest --time` sets):
    // 360 processes would spend a minute on key derivation alone.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = cofre::store::open(s(&env.repo()), rt.handle()).expect("store");
    let repo =
        cofre::repo::Repository::open(store, rt.handle().clone(), common::PASSWORD.as_bytes())
            .expect("open");
    let mut cat = cofre::catalog::Catalog::open(&env.path("lib-cat.db")).expect("catalog");
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"x").expect("write");
    for t in &ts {
        let opts = cofre::ingest::IngestOptions {
            time: Some((*t, 0)),
            ..common::ingest_opts(&src)
        };
        cofre::ingest::ingest(&repo, &mut cat, opts).expect("ingest");
    }
    // One snapshot through the CLI too, so `--time` itself is covered.
    let extra = ts[ts.len() - 1] + 4 * 3600;
    env.ok(&["ingest", "-q", "--time", &rfc3339(extra), s(&src)]);
    let mut all = ts.clone();
    all.push(extra);

    let policies: [&[&str]; 4] = [
        &["--keep-within", "30d", "--keep-weekly", "52"],
        &[
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--keep-monthly",
            "3",
        ],
        &[
            "--keep-last",
            "5",
            "--keep-hourly",
            "10",
            "--keep-yearly",
            "2",
        ],
        &[
            "--keep-within-daily",
            "10d",
            "--keep-within-weekly",
            "1m",
            "--keep-within-hourly",
            "2d",
        ],
    ];
    for policy in policies {
        let want = restic_keeps(env.dir.path(), &all, policy);
        let mut args = vec!["forget", "--dry-run"];
        args.extend(policy);
        let v = env.json(&args);
        let mut got: Vec<i64> = v["sets"]["default"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["keep"].as_bool() == Some(true))
            .map(|e| parse_time(e["time"].as_str().expect("time")))
            .collect();
        got.sort();
        assert!(
            want.len() > 5 && want.len() < all.len(),
            "{policy:?}: {}",
            want.len()
        );
        assert_eq!(got, want, "{policy:?}");
    }
    assert_eq!(
        snapshot_ids(&env).len(),
        all.len(),
        "--dry-run removed something"
    );

    // The users' plan for real: what stays is what restic keeps.
    let plan = ["--keep-within", "30d", "--keep-weekly", "52"];
    let want = restic_keeps(env.dir.path(), &all, &plan);
    let mut args = vec!["forget"];
    args.extend(plan);
    env.ok(&args);
    let mut left: Vec<i64> = env
        .json(&["snapshots"])
        .as_array()
        .expect("array")
        .iter()
        .map(|s| parse_time(s["time"].as_str().expect("time")))
        .collect();
    left.sort();
    assert_eq!(left, want);
}

#[test]
fn forget_judges_each_set_on_its_own_and_by_id() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"x").expect("write");
    for (set, day) in [("db", 1), ("db", 2), ("db", 3), ("files", 1), ("files", 2)] {
        let t = format!("2026-10-0{day}T04:00:00Z");
        env.ok(&["ingest", "-q", "--set", set, "--time", &t, s(&src)]);
    }
    let v = env.json(&["forget", "--keep-last", "1", "--set", "db"]);
    let db = v["sets"]["db"].as_array().expect("db");
    assert_eq!(db.len(), 3);
    assert!(v["sets"].get("files").is_none(), "{v}");
    assert_eq!(db[0]["reasons"][0], "last snapshot");
    assert_eq!(snapshot_ids(&env).len(), 3); // 1 db + 2 files
    env.ok(&["forget", "--keep-last", "1"]);
    let ids = snapshot_ids(&env);
    assert_eq!(ids.len(), 2, "one per set");
    env.ok(&["forget", &ids[0][..8]]);
    assert_eq!(snapshot_ids(&env), vec![ids[1].clone()]);
    // Ids and a policy together are a usage error.
    let out = env.run(&["forget", &ids[1][..8], "--keep-last", "1"]);
    assert_eq!(out.status.code(), Some(2));
}

/// 20 snapshots, each with 200 KB of data no other has; forget all but the newest and
/// prune: the repository is about the size of that one snapshot on its own.
#[test]
fn prune_frees_what_no_snapshot_uses() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..20 {
        std::fs::write(src.join("unique"), noise(200_000, 100 + i)).expect("write");
        env.ok(&["ingest", "-q", s(&src)]);
    }
    // --prune --dry-run --json: one JSON document with both reports, nothing changed.
    let both = env.json(&["forget", "--keep-last", "1", "--prune", "--dry-run"]);
    assert_eq!(
        both["forget"]["sets"]["default"]
            .as_array()
            .expect("set")
            .len(),
        20
    );
    assert!(
        both["prune"]["plan"]["packs_total"].as_u64().expect("n") > 20,
        "{both}"
    );
    assert_eq!(snapshot_ids(&env).len(), 20);
    env.ok(&["forget", "--keep-last", "1"]);
    let before = env.repo_size();
    let dry = env.json(&["prune", "--dry-run"]);
    assert_eq!(env.repo_size(), before, "--dry-run changed the repository");
    assert!(
        dry["plan"]["packs_delete"].as_u64().expect("n") >= 19,
        "{dry}"
    );
    let done = env.json(&["prune"]);
    assert!(
        done["done"]["bytes_deleted"].as_u64().expect("n") > 19 * 200_000,
        "{done}"
    );

    let fresh = Env::new();
    fresh.init();
    fresh.ok(&["ingest", "-q", s(&src)]);
    let (after, alone) = (env.repo_size(), fresh.repo_size());
    assert!(
        after as f64 <= alone as f64 * 1.10,
        "after prune {after} bytes, a fresh repository of the kept snapshot {alone}"
    );
    env.ok(&["check", "--read-data"]);
    env.restore_matches(&["latest"], "restored", &src);
}

/// A pack holding data of a kept and of a forgotten snapshot is rewritten with only what
/// is kept; with --max-unused 100% it is left alone.
#[test]
fn prune_repacks_partly_used_packs() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    // `drop` half the size of `keep`: the unused bytes (its chunks) stay well under the
    // used ones for --max-unused 100%. Equal sizes left it to the (per-repository random)
    // chunk cuts: with more chunks, hence more per-blob overhead, in `drop` than in
    // `keep`, unused exceeded used by 54 bytes and the lax prune rightly repacked.
    std::fs::write(src.join("keep"), noise(1_000_000, 1)).expect("write");
    std::fs::write(src.join("drop"), noise(500_000, 2)).expect("write");
    env.ok(&["ingest", "-q", s(&src)]);
    std::fs::remove_file(src.join("drop")).expect("rm");
    env.ok(&["ingest", "-q", s(&src)]);
    let first = snapshot_ids(&env)[0].clone();
    env.ok(&["forget", &first]);
    let lax = env.json(&["prune", "--dry-run", "--max-unused", "100%"]);
    assert_eq!(lax["plan"]["packs_repack"], 0, "{lax}");
    let v = env.json(&["prune"]);
    assert!(v["plan"]["packs_repack"].as_u64().expect("n") >= 1, "{v}");
    assert!(v["done"]["packs_written"].as_u64().expect("n") >= 1, "{v}");
    assert!(
        env.repo_size() < 1_300_000,
        "{} bytes left",
        env.repo_size()
    );
    env.ok(&["check", "--read-data"]);
    env.restore_matches(&["latest"], "restored", &src);
    // A second prune finds nothing left to do.
    let again = env.json(&["prune"]);
    assert!(again["done"].is_null(), "{again}");
}

#[test]
fn keys_add_list_remove_and_passwd() {
    let env = Env::new();
    env.init();
    let pw2 = env.path("pw2");
    std::fs::write(&pw2, "second password\n").expect("write");
    env.ok(&["key", "add", "--new-password-file", s(&pw2)]);
    let keys = env.json(&["key", "list"]);
    let keys = keys.as_array().expect("array");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k["current"] == true).count(), 1);
    // The second password opens the repository too.
    let with2 = |args: &[&str]| {
        env.cmd()
            .env_remove("COFRE_PASSWORD")
            .env("COFRE_PASSWORD_FILE", &pw2)
            .args(args)
            .output()
            .expect("run")
    };
    assert!(with2(&["snapshots"]).status.success());
    let current = keys.iter().find(|k| k["current"] == true).expect("current");
    let other = keys.iter().find(|k| k["current"] != true).expect("other");
    let cur_id = current["id"].as_str().expect("id");
    // The key in use cannot remove itself.
    assert_eq!(
        env.run(&["key", "remove", &cur_id[..12]]).status.code(),
        Some(2)
    );
    // The second password removes the first key; then its own (the last) is refused.
    assert!(with2(&["key", "remove", &cur_id[..12]]).status.success());
    assert_eq!(
        env.run(&["snapshots"]).status.code(),
        Some(12),
        "old password still opens"
    );
    let other_id = other["id"].as_str().expect("id");
    let out = with2(&["key", "remove", &other_id[..12]]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("last key"));
    // passwd: the new password opens, the old one no longer does.
    let pw3 = env.path("pw3");
    std::fs::write(&pw3, "third").expect("write");
    assert!(with2(&["key", "passwd", "--new-password-file", s(&pw3)])
        .status
        .success());
    assert_eq!(with2(&["snapshots"]).status.code(), Some(12));
    let out = env
        .cmd()
        .env("COFRE_PASSWORD", "third")
        .args(["key", "list", "--json"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v.as_array().expect("array").len(), 1);
}

/// Pack part of `check --read-data-subset n/m` (as check.rs: first four bytes of the id).
fn part_of(pack: &Path, m: u32) -> u32 {
    let name = pack.file_name().expect("name").to_string_lossy();
    let b = hex::decode(&name[..8]).expect("hex");
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % m + 1
}

#[test]
fn check_subsets_read_every_pack_once_and_find_a_flipped_bit() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..12 {
        std::fs::write(src.join(format!("f{i}")), noise(300_000, i)).expect("write");
        env.ok(&["ingest", "-q", s(&src)]);
    }
    let packs: Vec<_> = common::walk(&env.repo().join("data"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    let mut read = Vec::new();
    for k in 1..=12 {
        let v = env.json(&["check", "--read-data-subset", &format!("{k}/12")]);
        for p in v["packs_read_keys"].as_array().expect("keys") {
            read.push(p.as_str().expect("key").to_string());
        }
    }
    read.sort();
    let mut all: Vec<String> = packs
        .iter()
        .map(|p| {
            p.strip_prefix(env.repo())
                .expect("in repo")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    all.sort();
    assert_eq!(read, all, "12 subsets must read every pack exactly once");

    // Damage the pack that holds f3's data: only its subset sees it, and names f3.
    let victim = packs
        .iter()
        .filter(|p| std::fs::metadata(p).expect("stat").len() > 250_000)
        .find(|p| {
            let out = env.run(&[
                "check",
                "--read-data-subset",
                &format!("{}/12", part_of(p, 12)),
            ]);
            out.status.success()
        })
        .expect("a data pack")
        .clone();
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[1000] ^= 0x04;
    std::fs::write(&victim, &bytes).expect("write");
    let k = part_of(&victim, 12);
    for j in 1..=12 {
        let out = env.run(&["check", "--read-data-subset", &format!("{j}/12")]);
        if j == k {
            assert_eq!(out.status.code(), Some(1));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("affected: snapshot"), "{err}");
            assert!(err.contains(&format!("{}/f", s(&src))), "{err}");
        } else {
            assert!(
                out.status.success(),
                "subset {j}/12 must not read the damaged pack"
            );
        }
    }
    let out = env.run(&["check", "--read-data-subset", "100%", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("only JSON on stdout");
    assert!(!v["errors"].as_array().expect("errors").is_empty());
}

#[test]
fn a_held_lock_stops_prune_and_ingest_and_unlock_removes_stale_ones() {
    let env = Env::new();
    let src = common::ingest_one_file(&env, &noise(100_000, 1));
    // A mount keeps nothing locked; a slow prune holds the exclusive lock.
    let mut slow = env
        .cmd()
        .env("COFRE_TEST_STORE_DELAY_MS", "300")
        .args(["prune"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prune");
    let locks = env.repo().join("locks");
    // Lock objects, not the local store's temporary files before their rename (a process
    // killed then leaves no lock, and a `.tmp-` file no listing shows).
    let lock_objects = || {
        std::fs::read_dir(&locks).map_or(0, |d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with(".tmp-"))
                .count()
        })
    };
    assert!(wait_for(
        std::time::Duration::from_secs(20),
        || lock_objects() > 0
    ));
    let out = env.run(&["ingest", "-q", s(&src)]);
    assert_eq!(
        out.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("exclusive lock for prune"));
    // --retry-lock waits for it instead.
    env.ok(&["ingest", "-q", "--retry-lock", "2m", s(&src)]);
    assert!(slow.wait().expect("wait").success());

    // A lock left by a killed process on this host is stale: ignored, and removed by unlock.
    let mut child = env
        .cmd()
        .env("COFRE_TEST_STORE_DELAY_MS", "300")
        .args(["ingest", "-q", s(&src)])
        .spawn()
        .expect("ingest");
    assert!(wait_for(
        std::time::Duration::from_secs(20),
        || lock_objects() > 0
    ));
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert_eq!(lock_objects(), 1);
    env.ok(&["prune"]);
    let v = env.json(&["unlock"]);
    assert_eq!(
        v.as_array().expect("removed").len(),
        0,
        "prune removed the stale lock"
    );
    assert_eq!(lock_objects(), 0);
}

/// An ingest whose lock was removed (judged stale by another host's prune) must not
/// commit: the prune may be deleting what it reuses.
#[test]
fn an_ingest_that_lost_its_lock_commits_nothing() {
    let env = Env::new();
    let src = common::ingest_one_file(&env, &noise(100_000, 1));
    std::fs::write(src.join("more"), noise(3_000_000, 2)).expect("write");
    let before = snapshot_ids(&env);
    let child = env
        .cmd()
        .env("COFRE_TEST_STORE_DELAY_MS", "100")
        .args(["ingest", "-q", s(&src)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ingest");
    let locks = env.repo().join("locks");
    assert!(wait_for(std::time::Duration::from_secs(20), || {
        std::fs::read_dir(&locks)
            .map(|d| d.count() > 0)
            .unwrap_or(false)
    }));
    env.ok(&["unlock", "--remove-all"]);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lock was lost"));
    assert_eq!(snapshot_ids(&env), before);
    env.ok(&["check"]);
}

/// After another host prunes, an ingest here never reuses the deleted data.
#[test]
fn after_prune_no_host_dedups_against_deleted_data() {
    let a = Env::new();
    a.init();
    let b = a.other_host("host-b");
    let src = a.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let data = noise(2_000_000, 9);
    std::fs::write(src.join("f"), &data).expect("write");
    a.ok(&["ingest", "-q", s(&src)]);
    b.ok(&["snapshots"]); // b's catalog now knows f's chunks
    let id = snapshot_ids(&a)[0].clone();
    a.ok(&["forget", &id]);
    a.ok(&["prune"]);
    b.ok(&["ingest", "-q", s(&src)]);
    b.ok(&["check", "--read-data"]);
    b.restore_matches(&["latest"], "restored", &src);
}

#[test]
fn a_forgotten_snapshot_leaves_a_running_mount() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"one").expect("write");
    env.ok(&["ingest", "-q", "--time", "2026-10-01T04:00:00Z", s(&src)]);
    std::fs::write(src.join("f"), b"two").expect("write");
    env.ok(&["ingest", "-q", "--time", "2026-10-02T04:00:00Z", s(&src)]);
    let m = Mount::start(&env, "mnt", &[]);
    let day = m.dir.join("default/2026/10/01");
    let listed = || -> Vec<String> {
        std::fs::read_dir(&day)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(listed(), vec!["0400".to_string()]);
    let inside = day.join("0400").join(src.strip_prefix("/").expect("abs"));
    // Cache the directory and the file in the kernel.
    assert_eq!(std::fs::read(inside.join("f")).expect("read"), b"one");
    let first = snapshot_ids(&env)[0].clone();
    env.ok(&["forget", &first]);
    assert!(
        wait_for(std::time::Duration::from_secs(15), || listed().is_empty()),
        "the forgotten snapshot is still listed: {:?}",
        listed()
    );
    let err = std::fs::metadata(inside.join("f")).expect_err("forgotten file still there");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    assert_eq!(
        std::fs::read(m.latest("default", &src).join("f")).expect("latest"),
        b"two"
    );
    drop(m);
}
