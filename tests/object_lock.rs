//! S3 Object Lock (docs/object-lock.md) on moto with IAM enforced
//! (integration/moto-iam.sh): a ransomware drill with the ingest role and with the admin
//! credential, recovery, and prune and forget leaving locked objects alone.

mod common;

use std::path::Path;
use std::process::Command;

use common::{copy_into, noise, Env, MotoIam};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// integration/s3-attack.py with `env`'s endpoint and credential: its JSON counts.
fn attack(env: &Env, args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/s3-attack.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path(""))
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "s3-attack.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The store key of one pack of the repository at `prefix`.
fn first_pack(admin: &Env, moto: &common::Emulator, prefix: &str) -> String {
    let counts = attack(admin, &["list", &moto.bucket, prefix]);
    let keys = counts["keys"].as_array().expect("keys");
    let pack = keys
        .iter()
        .filter_map(|k| k.as_str())
        .find(|k| k.contains("/data/"));
    pack.expect("a pack").to_string()
}

/// `date -u -d WHEN +FORMAT`: GNU date reads both the times cofre prints and "+1 minute".
fn date(when: &str, format: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", when, format])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Unix seconds a minute from now.
fn soon_seconds() -> i64 {
    date("+1 minute", "+%s").parse().expect("seconds")
}

/// Exchanges two directories' names (a snapshot is compared at the path it was taken from).
fn swap(a: &Path, b: &Path) {
    let tmp = a.with_extension("swap");
    std::fs::rename(a, &tmp).expect("rename");
    std::fs::rename(b, a).expect("rename");
    std::fs::rename(&tmp, b).expect("rename");
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .args(["-a", s(from), s(to)])
        .status()
        .expect("cp");
    assert!(st.success());
}

/// A minute from now, in whole seconds: `run --now` after an ingest in the same second
/// would otherwise date its snapshot before the ingest's.
fn soon_rfc3339() -> String {
    date("+1 minute", "+%Y-%m-%dT%H:%M:%SZ")
}

/// Snapshots written by the ingest role are locked. Ransomware with that role cannot delete
/// anything (S3 refuses), and its overwrites only add versions; with the admin credential
/// (no bypass) it cannot delete a locked version either: it only removes the index objects,
/// which are not locked. `lock recover` then brings back every snapshot,
/// byte for byte. `forget` and `prune` leave locked objects alone and say until when.
#[test]
fn ransomware_with_either_credential_loses_no_snapshot() {
    let moto = MotoIam::start();
    let admin = Env::s3_at(&moto.bucket, &moto.vars);
    let url = admin.url.clone().expect("url");
    let prefix = format!(
        "{}/",
        url.trim_start_matches(&format!("s3://{}/", moto.bucket))
    );
    let mut ingest = admin.other_host("ingest");
    for (k, v) in ingest.vars.iter_mut() {
        match k.as_str() {
            "AWS_ACCESS_KEY_ID" => *v = moto.var("COFRE_TEST_INGEST_KEY_ID"),
            "AWS_SECRET_ACCESS_KEY" => *v = moto.var("COFRE_TEST_INGEST_SECRET"),
            _ => {}
        }
    }

    // A bucket made without Object Lock is refused, saying how to make one.
    let plain = Env::s3_at(&moto.var("COFRE_TEST_PLAIN_BUCKET"), &moto.vars);
    let out = plain.run(&["init", "--object-lock", "governance"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--object-lock-enabled-for-bucket"), "{err}");

    admin.ok(&["init", "--object-lock", "governance", "--lock-days", "2"]);
    // Locked as written: nothing has extended anything yet.
    let config = format!("{prefix}config");
    let until = attack(&admin, &["retention", &moto.bucket, &config]);
    let in_two_days = soon_seconds() - 60 + 2 * 86_400;
    assert!(until[&config].as_i64() >= Some(in_two_days), "{until}");
    let src = admin.path("src");
    std::fs::create_dir_all(src.join("app")).expect("mkdir");
    std::fs::write(src.join("orders.csv"), noise(600_000, 1)).expect("write");
    std::fs::write(src.join("app/gone-later.bin"), noise(900_000, 2)).expect("write");
    ingest.ok(&["ingest", "--set", "files", s(&src)]);
    // The first snapshot's tree stays as it was, in `a`, until it is compared.
    std::fs::rename(&src, admin.path("a")).expect("rename");
    copy_tree(&admin.path("a"), &src);
    // The second snapshot by `cofre run`, whose policy keeps weeklies 2 weeks.
    std::fs::remove_file(src.join("app/gone-later.bin")).expect("rm");
    std::fs::write(src.join("orders.csv"), noise(600_000, 3)).expect("write");
    let cfg = admin.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sets.files]\npaths = [{:?}]\nevery = \"4h\"\nkeep = {{ weekly = 2 }}\n",
            s(&src)
        ),
    )
    .expect("write");
    let (code, ran) = ingest.run_at(&cfg, &soon_rfc3339());
    assert_eq!(code, 0, "{ran}");
    let ids = admin.snapshot_ids();
    assert_eq!(ids.len(), 2);

    // An offsite copy in compliance mode: what `copy` writes there is locked too.
    let offsite = Env::s3_at(&moto.bucket, &moto.vars);
    let out = offsite
        .cmd()
        .env("COFRE_FROM_PASSWORD", common::PASSWORD)
        .args(["init", "--copy-params-from", &url])
        .args(["--object-lock", "compliance", "--lock-days", "3"])
        .output()
        .expect("init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    copy_into(&admin, &offsite, &[]);
    let off_url = offsite.url.clone().expect("url");
    let off_prefix = off_url.trim_start_matches(&format!("s3://{}/", moto.bucket));
    let copied = format!("{off_prefix}/snapshots/{}", ids[1]);
    let until = attack(&admin, &["retention", &moto.bucket, &copied]);
    assert!(
        until[&copied].as_i64() >= Some(soon_seconds() - 60 + 3 * 86_400),
        "{until}"
    );

    // Retention: every object the lock covers is locked for the lock days at least, and
    // the policy's snapshot for its horizon (2 weeklies: 21 days).
    let listed = admin.json(&["snapshots"]);
    let keys: Vec<String> = ids
        .iter()
        .map(|id| format!("{prefix}snapshots/{id}"))
        .collect();
    let mut args = vec!["retention", moto.bucket.as_str()];
    args.extend(keys.iter().map(String::as_str));
    let until = attack(&admin, &args);
    let day = 86_400;
    let time_of = |id: &str| -> i64 {
        let t = listed
            .as_array()
            .expect("list")
            .iter()
            .find(|x| x["id"] == id)
            .expect("listed")["time"]
            .as_str()
            .expect("time")
            .to_string();
        date(&t, "+%s").parse::<i64>().expect("seconds")
    };
    let first = until[&keys[0]].as_i64().expect("locked");
    assert!(first >= time_of(&ids[0]) + 2 * day, "{until}");
    let second = until[&keys[1]].as_i64().expect("locked");
    assert!(second >= time_of(&ids[1]) + 21 * day, "{until}");

    // The same bytes written twice (a retried PUT) are not an attack.
    let pack = first_pack(&admin, &moto, &prefix);
    let hit = attack(&ingest, &["rewrite", &moto.bucket, &pack]);
    assert_eq!(hit["rewrite_done"], 1, "{hit}");
    admin.ok(&["lock", "extend"]);

    // One pack overwritten by the ingest role: `lock extend` says so, and names the way out.
    let hit = attack(&ingest, &["overwrite", &moto.bucket, &pack]);
    assert_eq!(hit["overwrite_done"], 1, "{hit}");
    let out = admin.run(&["lock", "extend"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("run `cofre lock recover`"), "{err}");
    // Recover deletes the foreign version (extend left it unlocked): no trace is left.
    let recovered = admin.ok(&["lock", "recover"]);
    assert!(
        recovered.contains(", 1 restored, 0 unrecoverable, 0 failed"),
        "{recovered}"
    );
    admin.ok(&["lock", "extend"]);

    // The admin credential, without the bypass header: no locked version goes.
    let hit = attack(&admin, &["delete-versions", &moto.bucket, &prefix]);
    for kind in ["config", "keys", "data", "snapshots"] {
        assert!(hit.get(format!("{kind}_done")).is_none(), "{kind}: {hit}");
        assert!(
            hit[format!("{kind}_AccessDenied")].as_u64() > Some(0),
            "{kind}: {hit}"
        );
    }
    assert!(hit["index_done"].as_u64() > Some(0), "{hit}");
    // The ingest role: every delete refused; overwrites land as new versions.
    let hit = attack(&ingest, &["delete-and-overwrite", &moto.bucket, &prefix]);
    assert!(hit.get("delete_done").is_none(), "{hit}");
    assert!(hit.get("delete_version_done").is_none(), "{hit}");
    assert!(hit["overwrite_done"].as_u64() > Some(5), "{hit}");
    assert!(!admin.run(&["snapshots"]).status.success());

    let recovered = admin.ok(&["lock", "recover"]);
    assert!(recovered.contains("0 unrecoverable"), "{recovered}");
    assert!(recovered.contains("re-indexed"), "{recovered}");
    admin.ok(&["check", "--read-data"]);
    swap(&src, &admin.path("a"));
    admin.restore_matches(&[&ids[0]], "out-a", &src);
    swap(&src, &admin.path("a"));
    admin.restore_matches(&[&ids[1]], "out-b", &src);

    // A key file cannot go before its lock ends: said before anything is written.
    let pw2 = admin.path("pw2");
    std::fs::write(&pw2, "second password").expect("write");
    admin.ok(&["key", "add", "--new-password-file", s(&pw2)]);
    let out = admin.run(&["key", "passwd", "--new-password-file", s(&pw2)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("under S3 Object Lock until"), "{err}");
    assert_eq!(
        admin.json(&["key", "list"]).as_array().map(Vec::len),
        Some(2)
    );

    // Forget leaves a locked snapshot, and says until when.
    let out = admin.ok(&["forget", &ids[0]]);
    assert!(out.contains("under S3 Object Lock until"), "{out}");
    assert_eq!(admin.snapshot_ids(), ids);
    // The governance bypass (an admin's right) removes it; prune keeps its locked data.
    let key = format!("{prefix}snapshots/{}", ids[0]);
    let gone = attack(&admin, &["bypass-delete", &moto.bucket, &key]);
    assert!(gone["bypass_delete_done"].as_u64() > Some(0), "{gone}");
    let pruned = admin.json(&["prune"]);
    assert!(
        pruned["plan"]["held_object_lock"]["packs"].as_u64() > Some(0),
        "{pruned}"
    );
    assert!(
        pruned["done"]["packs_deleted"].as_u64().unwrap_or(0) == 0,
        "{pruned}"
    );
    admin.restore_matches(&[&ids[1]], "out-b2", &src);
}
