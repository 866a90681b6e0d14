//! Azure Blob Storage (`az://`) on Azurite, Microsoft's emulator: the store conformance
//! suite, then the end-to-end case the S3 tests run on Garage (ingest, check, mount,
//! restore, a bare machine's catalog rebuild), then `cofre copy` from a local repository
//! into it; then storage classes as Azure access tiers. The first test sets the emulator's
//! environment for the in-process client; the others use only the CLI, with their own
//! Azurite.

mod common;
use common::*;

use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

#[test]
fn azure_conforms_and_backs_up_mounts_restores_and_takes_copies_on_azurite() {
    let azurite = Azurite::start();
    // Azure's pages are 5,000 names.
    conformance_on("az", &azurite.bucket, &azurite.vars, 5100);
    let base = format!("az://{}", azurite.bucket);
    // Kept: its directory holds the tree the copy below backs up.
    let (_e2e, src) = end_to_end_on(&base, &azurite.vars);

    // An offsite copy on Azure of a local repository.
    let local = Env::new();
    local.init();
    local.ok(&["ingest", s(&src)]);
    let to = Env::remote_at(&base, &azurite.vars);
    to.init_copying_from(&local);
    copy_into(&local, &to, &[]);
    assert_eq!(
        to.json(&["snapshots"])[0]["id"],
        local.json(&["snapshots"])[0]["id"]
    );
    to.restore_matches(&["latest"], "restore", &src);
}

/// Azurite's view through Azure's own SDK (installed by integration/install-deps.sh):
/// every blob under `prefix` as `name tier`, after setting each blob in tier `from` to
/// tier `to` when both are given (as one rehydrates archived blobs).
fn blob_tiers(
    azurite: &Emulator,
    prefix: &str,
    retier: Option<(&str, &str)>,
) -> Vec<(String, String)> {
    let var = |k: &str| azurite.var(k);
    let (from, to) = retier.unwrap_or(("", ""));
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            r#"
import sys
from azure.storage.blob import BlobServiceClient
url, key, container, prefix, frm, to = sys.argv[1:7]
conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={key};BlobEndpoint={url}/devstoreaccount1;")
c = BlobServiceClient.from_connection_string(conn).get_container_client(container)
for b in c.list_blobs(name_starts_with=prefix):
    tier = b.blob_tier or ""
    if frm and tier == frm:
        c.get_blob_client(b.name).set_standard_blob_tier(to)
        tier = to
    print(b.name, tier)
"#,
        ])
        .args([
            var("AZURITE_BLOB_STORAGE_URL"),
            var("AZURE_STORAGE_KEY"),
            azurite.bucket.clone(),
            prefix.to_string(),
            from.to_string(),
            to.to_string(),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

#[test]
fn classes_go_to_access_tiers_and_an_archived_pack_says_how_to_rehydrate_it() {
    let azurite = Azurite::start();
    let env = Env::remote_at(&format!("az://{}/tiers", azurite.bucket), &azurite.vars);
    env.init();
    // The repository's prefix in the container.
    let url = env.url.clone().expect("url");
    let root = url.splitn(4, '/').nth(3).expect("prefix").to_string();
    let data = format!("{root}/data/");
    let tiers_of_data = || -> std::collections::BTreeSet<String> {
        blob_tiers(&azurite, &data, None)
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    };
    let mut sources = Vec::new();
    for (class, tier) in [("STANDARD_IA", "Cool"), ("DEEP_ARCHIVE", "Archive")] {
        let src = env.path(class);
        std::fs::create_dir_all(&src).expect("mkdir");
        std::fs::write(src.join("data"), noise(2 << 20, sources.len() as u64)).expect("write");
        env.ok(&[
            "ingest",
            "--set",
            class,
            "--data-storage-class",
            class,
            s(&src),
        ]);
        let tiers = tiers_of_data();
        assert!(tiers.contains(tier), "{class}: {tiers:?}");
        sources.push((class, src));
    }
    // Trees and the index stay in the container's default tier, readable at once.
    assert!(
        blob_tiers(&azurite, &format!("{root}/index/"), None)
            .iter()
            .all(|(_, t)| t != "Archive" && t != "Cool"),
        "the index was written in a colder tier"
    );
    let (archived_set, archived_src) = &sources[1];
    let target = env.path("out");
    let out = env.run(&[
        "restore",
        "latest",
        "--set",
        archived_set,
        "--target",
        s(&target),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("archive storage class") && stderr.contains("on Azure set its access tier"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("corrupt") && !stderr.contains("already exists"),
        "{stderr}"
    );
    // Rehydrated, the snapshot restores exactly; the Cool one reads at once.
    blob_tiers(&azurite, &data, Some(("Archive", "Hot")));
    std::fs::remove_dir_all(&target).ok();
    env.restore_matches(
        &["latest", "--set", archived_set],
        "rehydrated",
        archived_src,
    );
    let (cool_set, cool_src) = &sources[0];
    env.restore_matches(&["latest", "--set", cool_set], "cool", cool_src);
}
