//! Azure Blob Storage (`az://`) on Azurite, Microsoft's emulator: the store conformance
//! suite, then the end-to-end case the S3 tests run on Garage (ingest, check, mount,
//! restore, a bare machine's catalog rebuild), then `cofre copy` from a local repository
//! into it. One test: it sets the emulator's environment for the in-process client.

mod common;
use common::*;

use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

#[test]
fn azure_conforms_and_backs_up_mounts_restores_and_takes_copies_on_azurite() {
    let azurite = Azurite::start();
    for (k, v) in &azurite.vars {
        // Single-threaded here: this is the only test in this binary.
        std::env::set_var(k, v);
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("az://{}/conformance", azurite.container);
    let store = cofre::store::open(&url, rt.handle()).expect("open azure store");
    rt.block_on(cofre::store::conformance::run(store))
        .expect("Azure store conforms");

    // End to end, through the CLI.
    let base = format!("az://{}", azurite.container);
    let env = Env::remote_at(&base, &azurite.vars);
    let src = env.path("src");
    make_awkward_tree(&src);
    env.init();
    env.ok(&["ingest", s(&src)]);
    env.ok(&["check", "--read-data"]);
    {
        let m = Mount::start(&env, "mnt", &[]);
        let view = m.latest("default", &src);
        assert_eq!(compare_trees(&src, &view), Vec::<String>::new());
        m.stop();
    }
    let bare = env.other_host("bare-machine");
    bare.ok(&["catalog", "rebuild"]);
    assert_eq!(bare.json(&["snapshots"]).as_array().expect("list").len(), 1);
    bare.restore_matches(&["latest"], "restore", &src);

    // An offsite copy on Azure of a local repository.
    let local = Env::new();
    local.init();
    local.ok(&["ingest", s(&src)]);
    let to = Env::remote_at(&base, &azurite.vars);
    to.init_copying_from(&local);
    let copied = local
        .cmd()
        .envs(azurite.vars.iter().map(|(k, v)| (k, v)))
        .env("COFRE_TO_PASSWORD", PASSWORD)
        .args(["copy", "--to", to.url.as_deref().expect("url")])
        .output()
        .expect("copy");
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    assert_eq!(
        to.json(&["snapshots"])[0]["id"],
        local.json(&["snapshots"])[0]["id"]
    );
    to.restore_matches(&["latest"], "restore", &src);
}
