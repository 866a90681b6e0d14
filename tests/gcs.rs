//! Google Cloud Storage (`gs://`) on fake-gcs-server: the store conformance suite, then the
//! end-to-end case the S3 tests run on Garage (ingest, check, mount, restore, a bare
//! machine's catalog rebuild); and the 3-2-1 chain of copies local → Garage → GCS → Azure,
//! each restoring exactly, a second round copying nothing.

mod common;
use common::*;

use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

#[test]
fn gcs_conforms_and_backs_up_mounts_and_restores_on_fake_gcs_server() {
    let gcs = FakeGcs::start();
    // GCS's pages are 1,000 names.
    conformance_on("gs", &gcs.bucket, &gcs.vars, 1100);
    let (env, _) = end_to_end_on(&format!("gs://{}", gcs.bucket), &gcs.vars);

    // A class is written as a GCS storage class (asked of the emulator's JSON API).
    let cold = env.path("cold");
    std::fs::create_dir_all(&cold).expect("mkdir");
    std::fs::write(cold.join("f"), noise(1 << 20, 7)).expect("write");
    env.ok(&[
        "ingest",
        "--set",
        "cold",
        "--data-storage-class",
        "STANDARD_IA",
        s(&cold),
    ]);
    let url = env.url.clone().expect("url");
    let prefix = url.splitn(4, '/').nth(3).expect("prefix");
    let listing = http_get(&format!(
        "{}/storage/v1/b/{}/o?prefix={prefix}/data/",
        gcs.var("STORAGE_EMULATOR_HOST"),
        gcs.bucket
    ));
    // Data in the class; the trees (and the first snapshot's data) in STANDARD.
    assert!(listing.contains("\"NEARLINE\""), "{listing}");
    assert!(listing.contains("\"STANDARD\""), "{listing}");
    env.restore_matches(&["latest", "--set", "cold"], "cold-out", &cold);
}

/// A GET through Python's standard library (the tests have no HTTP client of their own).
fn http_get(url: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
            url,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ids(env: &Env) -> Vec<String> {
    let mut v = env.snapshot_ids();
    v.sort();
    v
}

/// `cofre copy --to` from `from` into `to` (both with the tests' password): its report, and
/// the store calls it made that wrote something other than a lock.
fn copy(from: &Env, to: &Env) -> (serde_json::Value, Vec<String>) {
    let log = from.path(&format!("copy-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let out = from
        .cmd()
        .envs(to.vars.iter().map(|(k, v)| (k, v)))
        .env("COFRE_TO_PASSWORD", PASSWORD)
        .env("COFRE_TEST_CALL_LOG", &log)
        .args(["copy", "--json", "--to", to.url.as_deref().expect("url")])
        .output()
        .expect("copy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No log would make "wrote nothing" true of anything.
    assert!(log.exists(), "no call log: a build without test hooks?");
    let writes = logged_writes(&log);
    (serde_json::from_slice(&out.stdout).expect("json"), writes)
}

#[test]
fn copies_chain_from_local_through_garage_and_gcs_to_azure_and_restore_from_the_last() {
    let (garage, gcs, azurite) = (Garage::start(), FakeGcs::start(), Azurite::start());
    let local = Env::new();
    local.init();
    let src = local.path("src");
    make_awkward_tree(&src);
    let mut expected = Vec::new();
    for g in 0..2u64 {
        std::fs::write(src.join("generation"), noise(300_000, g)).expect("write");
        local.ok(&["ingest", "--set", "files", s(&src)]);
        let keep = local.path(&format!("expect-{g}"));
        copy_dir(&src, &keep);
        expected.push(keep);
    }
    let hops = [
        Env::s3(&garage),
        Env::remote_at(&format!("gs://{}", gcs.bucket), &gcs.vars),
        Env::remote_at(&format!("az://{}", azurite.bucket), &azurite.vars),
    ];
    let mut from = &local;
    for to in &hops {
        to.init_copying_from(from);
        let (r, _) = copy(from, to);
        assert_eq!(r["copied"].as_array().expect("list").len(), 2, "{r}");
        assert_eq!(ids(to), ids(&local), "{}", to.url.as_deref().unwrap_or(""));
        from = to;
    }
    // Every snapshot restores exactly from the last copy, and a bare machine with only
    // that container and the password rebuilds its catalog from it.
    let last = hops[2].other_host("bare-machine");
    last.ok(&["catalog", "rebuild"]);
    let snaps = last.json(&["snapshots"]);
    for (i, expect) in expected.iter().enumerate() {
        let id = snaps[i]["id"].as_str().expect("id");
        let spec = format!("{id}:{}", s(&src));
        let target = last.path(&format!("r-{i}"));
        last.ok(&["restore", &spec, "--target", s(&target)]);
        assert_eq!(
            compare_trees(expect, &restored(&target, &src)),
            Vec::<String>::new(),
            "snapshot {i} from the last copy"
        );
    }
    last.ok(&["check", "--read-data"]);
    // A second round copies nothing, and writes no object anywhere.
    let mut from = &local;
    for to in &hops {
        let (r, writes) = copy(from, to);
        assert_eq!(r["copied"], serde_json::json!([]), "{r}");
        assert_eq!(
            writes,
            Vec::<String>::new(),
            "{}",
            to.url.as_deref().unwrap_or("")
        );
        from = to;
    }
}
