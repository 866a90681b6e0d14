//! What every remote store's tests run: the conformance suite (with sibling prefixes and a
//! listing of several pages), then the end-to-end case (ingest, check, mount, restore, a
//! bare machine's catalog rebuild) through the CLI.

use std::path::{Path, PathBuf};

use super::{compare_trees, make_awkward_tree, Env, Mount, PASSWORD};

/// The conformance suite on `scheme://bucket/…`, with `vars` set in this process for the
/// in-process client: call it from the only test of its binary that sets them.
pub fn conformance_on(scheme: &str, bucket: &str, vars: &[(String, String)], keys: usize) {
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let open = |p: &str| {
        let url = format!("{scheme}://{bucket}/{p}");
        cofre::store::open(&url, rt.handle()).unwrap_or_else(|e| panic!("open {url}: {e}"))
    };
    let suite = cofre::store::conformance::run(open("conformance"));
    rt.block_on(suite).expect("the store conforms");
    let siblings = cofre::store::conformance::sibling_prefixes(
        open("siblings/host1"),
        open("siblings/host10"),
    );
    rt.block_on(siblings).expect("sibling prefixes kept apart");
    let pages = cofre::store::conformance::listing_pages(open("pages"), keys);
    rt.block_on(pages).expect("listings of several pages");
}

/// A repository under `base` (reached with `vars`) backs up the awkward tree, passes
/// `check --read-data`, shows it exactly in a mount, and a bare machine rebuilds its
/// catalog and restores it exactly. Returns the repository and the tree.
pub fn end_to_end_on(base: &str, vars: &[(String, String)]) -> (Env, PathBuf) {
    let env = Env::remote_at(base, vars);
    let src = env.path("src");
    make_awkward_tree(&src);
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
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
    (env, src)
}

/// The writes in a `COFRE_TEST_CALL_LOG` file (`N op key` lines) other than locks: what a
/// run that should change nothing must not have made.
pub fn logged_writes(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let mut w = l.split(' ').skip(1);
            let (op, key) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            op == "put" && !key.starts_with("locks/")
        })
        .map(str::to_string)
        .collect()
}

/// `cofre copy --to TO ARGS` from `from`, with the target's store settings and the common
/// password on both; insists it succeeds.
pub fn copy_into(from: &Env, to: &Env, args: &[&str]) {
    let out = from
        .cmd()
        .envs(
            to.vars
                .iter()
                .filter(|(k, _)| k != "COFRE_PASSWORD")
                .map(|(k, v)| (k, v)),
        )
        .env("COFRE_TO_PASSWORD", PASSWORD)
        .args(["copy", "--to", to.url.as_deref().expect("url")])
        .args(args)
        .output()
        .expect("copy");
    assert!(
        out.status.success(),
        "copy {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
