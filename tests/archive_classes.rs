//! Item 14 on a second S3 implementation (moto), which enforces AWS archive semantics
//! that Garage lacks: a GET of a GLACIER object fails until it is restored.
mod common;

use common::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8")
}

/// `cofre ingest ARGS --data-storage-class GLACIER SRC`.
fn into_glacier(env: &Env, args: &[&str], src: &std::path::Path) {
    let mut all = vec!["ingest"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-storage-class", "GLACIER", s(src)]);
    env.ok(&all);
}

/// A new repository with one weekly snapshot, in GLACIER, of `src/model.bin` (`len`
/// random bytes); returns `src`.
fn weekly_model_in_glacier(env: &Env, len: usize, seed: u64) -> std::path::PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("model.bin"), noise(len, seed)).expect("write");
    env.init();
    into_glacier(env, &["--set", "weekly"], &src);
    src
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
    into_glacier(&env, &["--set", "weekly"], &src);
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
    weekly_into_glacier(&env, &src);
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
    weekly_model_in_glacier(&env, 1_000_000, 9);
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

/// Runs a boto3 `script` (from moto's own install) on the objects under `prefix` of
/// `env`'s S3 repository, behind cofre's back; returns what it prints.
fn boto3(env: &Env, script: &str, prefix: &str) -> String {
    let url = env.url.as_deref().expect("an S3 repository");
    let (bucket, root) = url
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .expect("s3://bucket/prefix");
    let out = std::process::Command::new("python3")
        .args(["-c", script, bucket, &format!("{root}/{prefix}")])
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Deletes every object under the prefix (an index lost); prints how many.
const DELETE_PY: &str = r#"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=sys.argv[1], Prefix=sys.argv[2]).get("Contents", [])]
for k in keys:
    s3.delete_object(Bucket=sys.argv[1], Key=k)
print(len(keys))
"#;

/// Restores (thaws) every archived object under the prefix, as `aws s3api restore-object`.
const THAW_PY: &str = r#"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for o in s3.list_objects_v2(Bucket=sys.argv[1], Prefix=sys.argv[2]).get("Contents", []):
    if o.get("StorageClass") in ("GLACIER", "DEEP_ARCHIVE"):
        s3.restore_object(Bucket=sys.argv[1], Key=o["Key"], RestoreRequest={"Days": 1})
"#;

/// Issue 20 point 8: a GLACIER pack whose index object is lost comes back through `repair
/// index` (once thawed) with the class the store lists. Before, it came back as instantly
/// readable, and a STANDARD snapshot of the same data reused it — data that is archived
/// again once the thaw expires. Before, too, `repair index` failed outright on the first
/// archived pack.
#[test]
fn a_reindexed_pack_keeps_the_class_the_store_lists() {
    let moto = Moto::start();
    let env = Env::s3_at(&moto.bucket, &moto.vars);
    let src = weekly_model_in_glacier(&env, 2_000_000, 5);
    assert_ne!(
        boto3(&env, DELETE_PY, "index/"),
        "0",
        "no index object deleted"
    );
    // Archived packs' headers cannot be read: left unindexed, said, exit 3.
    let out = env.run(&["repair", "index"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("archive storage class"), "{err}");
    // Thawed (restore-object), they are read and indexed — with the class the store lists.
    boto3(&env, THAW_PY, "data/");
    env.ok(&["repair", "index"]);
    let daily = env.json(&["ingest", "--set", "daily", s(&src)]);
    let added = daily["summary"]["bytes_added"]
        .as_u64()
        .expect("bytes_added");
    assert!(
        added > 2_000_000,
        "the STANDARD snapshot reused re-indexed GLACIER data: added {added}"
    );
    env.restore_matches(&["latest", "--set", "daily"], "out", &src);
    env.ok(&["check"]);
}

/// A weekly snapshot of `src` by hand: set `files`, tag `weekly`, data in GLACIER.
fn weekly_into_glacier(env: &Env, src: &std::path::Path) {
    into_glacier(env, &["--set", "files", "--tag", "weekly"], src);
}

/// Ids of set `files`' snapshots tagged `tag`, oldest first.
fn tagged(env: &Env, tag: &str) -> Vec<String> {
    env.json(&["snapshots", "--set", "files"])
        .as_array()
        .expect("array")
        .iter()
        .filter(|m| {
            m["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == tag))
        })
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

/// Issue 20's first reproduction as the users would meet it: `cofre run` every two hours
/// for a week, one set with a 4-hourly STANDARD class (kept 12, pruned after each run) and
/// a weekly GLACIER class. A file changed just before the weekly and not after it is the
/// trap: the next 4-hourly snapshot must not take its chunks from the GLACIER pack. Every
/// 4-hourly snapshot restores, right after it is taken and again at the end of the week
/// (after every prune), with no thaw (moto refuses a GET of a GLACIER object); `check` is
/// clean; and a dependency forced by hand is reported.
#[test]
fn a_week_of_cofre_run_keeps_every_4h_snapshot_restorable_without_a_thaw() {
    let moto = Moto::start();
    let env = Env::s3_at(&moto.bucket, &moto.vars);
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("uploads")).expect("mkdir");
    std::fs::write(src.join("constant.bin"), noise(1_500_000, 7)).expect("write");
    std::fs::write(src.join("model.bin"), noise(1_500_000, 0)).expect("write");
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sets.files]\npaths = [{:?}]\nevery = \"4h\"\nkeep = {{ last = 12 }}\nprune = true\n\n\
             [sets.files.weekly]\nat = \"Sun 01:00\"\nstorage_class = \"GLACIER\"\nkeep = {{ weekly = 52 }}\n",
            s(&src)
        ),
    )
    .expect("write");
    let run = |now: &str| -> serde_json::Value {
        let out = env
            .cmd()
            .env("COFRE_CONFIG", &cfg)
            .args(["run", "--json", "--now", now])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "run at {now}: {err}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {err}"))
    };
    let taken = |v: &serde_json::Value, class: &str| -> Option<String> {
        v.as_array()
            .expect("array")
            .iter()
            .find(|r| r["class"] == class && r["action"] == "done")
            .map(|r| r["snapshot"].as_str().expect("snapshot id").to_string())
    };
    // The source as each 4-hourly snapshot saw it, for the end-of-week check.
    let mut seen: Vec<(String, std::path::PathBuf)> = Vec::new();
    let (mut hourly, mut weeklies) = (0, 0);
    for step in 0..84u64 {
        // From Monday 2026-11-23 00:00 UTC, every 2 hours.
        let now = format!("2026-11-{}T{:02}:00:00Z", 23 + step / 12, step % 12 * 2);
        // Every run: a new upload. Each day before its 02:00 run (and so before Sunday's
        // weekly), the model changes; on Sunday that is after the 00:00 4-hourly snapshot.
        std::fs::write(
            src.join(format!("uploads/{step}.txt")),
            format!("upload {step}\n"),
        )
        .expect("write");
        if step % 12 == 1 {
            std::fs::write(src.join("model.bin"), noise(1_500_000, step)).expect("write");
        }
        let v = run(&now);
        if taken(&v, "weekly").is_some() {
            weeklies += 1;
        }
        if let Some(id) = taken(&v, "4h") {
            hourly += 1;
            let dir = format!("restore-{step}");
            env.restore_matches(&[&id[..12]], &dir, &src);
            let copy = env.path(&format!("seen-{step}"));
            common::copy_dir(&src, &copy);
            seen.push((id, copy));
        }
    }
    assert_eq!((hourly, weeklies), (42, 2), "a week of runs every 2 hours");
    // Sunday's weekly stored the changed model in GLACIER; the 4-hourly snapshots after it
    // restored above. After a week of forget + prune, the 12 kept ones still do.
    let kept = tagged(&env, "4h");
    assert_eq!(kept.len(), 12, "{kept:?}");
    for (id, copy) in seen.iter().filter(|(id, _)| kept.contains(id)) {
        let target = env.path(&format!("end-{}", &id[..12]));
        env.ok(&["restore", &id[..12], "--target", s(&target)]);
        assert_eq!(
            compare_trees(copy, &restored(&target, &src)),
            Vec::<String>::new(),
            "snapshot {id} after a week of prunes"
        );
    }
    env.ok(&["check"]);

    // A dependency forced by hand: a file only a weekly (GLACIER) snapshot stored, and a
    // copy of that snapshot's manifest that says STANDARD. Check names the snapshot, the
    // file and the class, and fails.
    std::fs::write(src.join("late.bin"), noise(500_000, 99)).expect("write");
    weekly_into_glacier(&env, &src);
    env.ok(&["check"]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let url = env.url.clone().expect("s3 url");
    // The in-process store reads its endpoint and keys from the environment; every other
    // test here passes them to its child processes explicitly.
    for (k, v) in &env.vars {
        std::env::set_var(k, v);
    }
    let store = cofre::store::open(&url, rt.handle()).expect("store");
    let repo = cofre::repo::Repository::open(store, rt.handle().clone(), PASSWORD.as_bytes())
        .expect("open");
    let newest = tagged(&env, "weekly").pop().expect("a weekly snapshot");
    let mut m = repo.load_manifest(&newest).expect("manifest");
    m.data_class = Some("STANDARD".into());
    m.tags = vec!["4h".into()];
    let forced = repo.save_manifest(&m).expect("save");
    let out = env.run(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&forced[..8]) && err.contains("late.bin") && err.contains("STANDARD"),
        "{err}"
    );
}
