//! `cofre copy` into a second repository made with `init --copy-params-from`: every
//! snapshot keeps its id and restores exactly from the copy (trees, chunks, delta bases),
//! a second copy writes nothing, a copy killed anywhere resumes and never shows a partial
//! snapshot, a target with other keys is refused, and each side keeps and prunes by its own
//! retention.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

const TARGET_PASSWORD: &str = "another password for the offsite copy";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

/// A table dump of `rows` rows where every 97th row reads `version` (a dump that changed a
/// little: the next snapshot stores its changed chunks as deltas).
fn dump(rows: usize, version: u32) -> Vec<u8> {
    let mut out = String::from("COPY public.orders (id, customer, note) FROM stdin;\n");
    for i in 0..rows {
        let v = if i % 97 == 0 { version } else { 0 };
        let n = noise(16, (i as u64) << 8 | u64::from(v));
        out.push_str(&format!(
            "{i}\tcustomer-{}\t{}\tv{v}\n",
            i % 7919,
            hex::encode(n)
        ));
    }
    out.into_bytes()
}

/// Three snapshots in two sets; the source tree of each is kept beside, for comparison.
/// Returns (set, expected tree) per snapshot, oldest first.
fn history(env: &Env) -> Vec<(&'static str, std::path::PathBuf)> {
    let src = env.path("src");
    make_awkward_tree(&src.join("files"));
    std::fs::create_dir_all(src.join("db")).expect("mkdir");
    let mut out = Vec::new();
    for (g, set) in [(1, "db"), (2, "db"), (3, "files")] {
        std::fs::write(src.join("db/app.sql"), dump(40_000, g)).expect("write");
        std::fs::write(src.join(format!("files/gen-{g}")), noise(300_000, g.into()))
            .expect("write");
        let r = env.json(&["ingest", "--set", set, s(&src)]);
        // The second dump of its set: its changed chunks are stored as deltas.
        if g == 2 {
            assert!(
                r["summary"]["delta_chunks"].as_u64().expect("deltas") > 0,
                "generation {g} stored no delta, so no base would be copied: {r}"
            );
        }
        let expect = env.path(&format!("expect-{g}"));
        copy_dir(&src, &expect);
        out.push((set, expect));
    }
    out
}

/// `cofre` against the target repository (its own password and catalog).
fn target(env: &Env, url: &str, vars: &[(String, String)]) -> Env {
    let mut t = env.other_host("target-host");
    t.url = Some(url.to_string());
    t.vars = vars.to_vec();
    t.vars
        .push(("COFRE_PASSWORD".into(), TARGET_PASSWORD.into()));
    t
}

/// `cofre copy --to` from the source `env`, with the target's password and store settings.
fn copy_cmd(env: &Env, to: &Env) -> Command {
    let mut c = env.cmd();
    c.envs(
        to.vars
            .iter()
            .filter(|(k, _)| k != "COFRE_PASSWORD")
            .map(|(k, v)| (k, v)),
    )
    .env("COFRE_TO_PASSWORD", TARGET_PASSWORD)
    .args(["copy", "--to", to.url.as_deref().expect("url")]);
    c
}

/// Restores `spec` from `env` into a new directory `dir`, twice (into an empty target, then
/// over what the first left), and insists both times that the tree once at `src` is now
/// exactly `expect`, content and metadata.
fn restores_as(env: &Env, spec: &str, dir: &str, src: &Path, expect: &Path) {
    let target = env.path(dir);
    for mode in ["into an empty target", "over the restored tree"] {
        env.ok(&["restore", spec, "--target", s(&target)]);
        assert_eq!(
            compare_trees(expect, &restored(&target, src)),
            Vec::<String>::new(),
            "{spec}, {mode}"
        );
    }
    assert_eq!(restore_leftovers(&target), Vec::<std::path::PathBuf>::new());
    std::fs::remove_dir_all(&target).expect("cleanup");
}

fn ids(env: &Env) -> Vec<String> {
    let mut v = env.snapshot_ids();
    v.sort();
    v
}

fn copy_json(env: &Env, to: &Env) -> serde_json::Value {
    let out = copy_cmd(env, to).arg("--json").output().expect("copy");
    assert!(
        out.status.success(),
        "copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn a_copy_to_s3_keeps_ids_restores_exactly_and_a_second_copy_writes_nothing() {
    let garage = Garage::start();
    let env = Env::new();
    env.init();
    let gens = history(&env);
    let remote = Env::s3(&garage);
    let to = target(&env, remote.url.as_deref().expect("url"), &garage.vars);
    to.init_copying_from(&env);

    // A dry run says what it would copy and writes nothing.
    let dry = {
        let out = copy_cmd(&env, &to)
            .args(["--dry-run", "--json"])
            .output()
            .expect("copy");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    assert_eq!(dry["copied"].as_array().expect("list").len(), 3, "{dry}");
    assert_eq!(ids(&to), Vec::<String>::new(), "a dry run copied something");

    let first = copy_json(&env, &to);
    assert_eq!(
        first["copied"].as_array().expect("list").len(),
        3,
        "{first}"
    );
    assert_eq!(first["blobs"], dry["blobs"], "the dry run's estimate");
    assert_eq!(ids(&to), ids(&env), "the same snapshot ids on both sides");

    // Each snapshot restores exactly from the copy, in both restore modes.
    for (i, (set, expect)) in gens.iter().enumerate() {
        let id = &first["copied"][i]["id"];
        assert_eq!(first["copied"][i]["set"], *set);
        let spec = format!("{}:{}", id.as_str().expect("id"), s(&env.path("src")));
        restores_as(&to, &spec, &format!("r-{i}"), &env.path("src"), expect);
    }
    to.ok(&["check", "--read-data"]);

    // Again: nothing to copy, and nothing written to either store but the source's lock.
    let log = env.path("second-copy.log");
    let out = copy_cmd(&env, &to)
        .env("COFRE_TEST_CALL_LOG", &log)
        .arg("--json")
        .output()
        .expect("copy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        again["copied"].as_array().expect("list").len(),
        0,
        "{again}"
    );
    assert_eq!(again["present"], 3, "{again}");
    assert!(log.exists(), "no call log");
    assert_eq!(
        logged_writes(&log),
        Vec::<String>::new(),
        "a second copy wrote objects"
    );

    // A new snapshot on the source: only it is copied, and only what it added.
    std::fs::write(env.path("src/files/gen-4"), noise(200_000, 4)).expect("write");
    env.ok(&["ingest", "--set", "files", s(&env.path("src"))]);
    let third = copy_json(&env, &to);
    assert_eq!(
        third["copied"].as_array().expect("list").len(),
        1,
        "{third}"
    );
    assert!(
        third["bytes"].as_u64().expect("bytes") < 400_000,
        "the new snapshot's copy sent more than its new data: {third}"
    );
    // A bare machine with the target's bucket and password sees every snapshot.
    let bare = to.other_host("bare");
    assert_eq!(ids(&bare), ids(&env));
    bare.ok(&["check"]);
}

#[test]
fn a_target_with_other_keys_is_refused_and_left_unchanged() {
    let env = Env::new();
    env.init();
    std::fs::create_dir_all(env.path("src")).expect("mkdir");
    std::fs::write(env.path("src/a"), noise(10_000, 1)).expect("write");
    env.ok(&["ingest", s(&env.path("src"))]);
    let to = target(&env, s(&env.path("plain-target")), &[]);
    to.init();
    let before = walk(&env.path("plain-target"));
    let out = copy_cmd(&env, &to).output().expect("copy");
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--copy-params-from"), "{err}");
    assert_eq!(walk(&env.path("plain-target")), before);
}

#[test]
fn a_copy_killed_at_many_points_resumes_and_never_shows_a_partial_snapshot() {
    let env = Env::new();
    env.init();
    let gens = history(&env);
    let to = target(&env, s(&env.path("target")), &[]);
    to.init_copying_from(&env);
    let pristine = env.path("target-pristine");
    copy_dir(&env.path("target"), &pristine);

    // Every store call a whole copy makes (both stores', one at a time), on the target.
    let log = env.path("calls.log");
    let out = copy_cmd(&env, &to)
        .env("COFRE_TEST_CALL_LOG", &log)
        .output()
        .expect("copy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = std::fs::read_to_string(&log).expect("log").lines().count() as u64;
    assert!(total > 20, "{total} calls");

    let want = ids(&env);
    let mut partial_states = std::collections::BTreeSet::new();
    for n in (1..=total).step_by((total as usize / 30).max(1)) {
        copy_dir(&pristine, &env.path("target"));
        let st = copy_cmd(&env, &to)
            .env("COFRE_TEST_KILL_AT_CALL", n.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("copy");
        use std::os::unix::process::ExitStatusExt;
        if st.signal() != Some(libc::SIGKILL) {
            // Each store counts its own calls: past the end of both, the copy completes.
            assert!(st.success(), "copy at kill point {n}: {st}");
        }
        // Whatever the target shows is whole: every byte of every snapshot it lists reads.
        let shown = ids(&to);
        assert!(shown.iter().all(|i| want.contains(i)), "{shown:?}");
        to.ok(&["check", "--read-data"]);
        partial_states.insert(shown.len());
        // And the next copy completes it.
        copy_json(&env, &to);
        assert_eq!(ids(&to), want, "after a kill at call {n}");
        let (_, expect) = &gens[2];
        let latest = format!("{}:{}", want_latest(&to), s(&env.path("src")));
        restores_as(&to, &latest, &format!("r-{n}"), &env.path("src"), expect);
    }
    // The kills landed before the first commit, between commits, and after the last.
    assert!(
        partial_states.len() >= 3,
        "snapshots shown after kills: {partial_states:?}"
    );
}

/// The id of the newest snapshot of the `files` set.
fn want_latest(env: &Env) -> String {
    env.json(&["snapshots", "--set", "files"])
        .as_array()
        .expect("list")
        .last()
        .expect("a snapshot")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

#[test]
fn one_snapshot_copied_alone_brings_the_delta_bases_its_dump_needs() {
    let env = Env::new();
    env.init();
    let gens = history(&env);
    let to = target(&env, s(&env.path("target")), &[]);
    to.init_copying_from(&env);
    // The second dump of set `db` is stored as deltas on chunks of the first, which is not
    // copied: the copy must bring those bases.
    let second = env.json(&["snapshots", "--set", "db"])[1]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let out = copy_cmd(&env, &to)
        .args(["--json", &second[..12]])
        .output()
        .expect("copy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ids(&to), vec![second.clone()]);
    to.ok(&["check", "--read-data"]);
    let spec = format!("{second}:{}", s(&env.path("src")));
    restores_as(&to, &spec, "r", &env.path("src"), &gens[1].1);
}

/// The result of `set`'s job `class` in a run's results.
fn job<'a>(v: &'a serde_json::Value, set: &str, class: &str) -> &'a serde_json::Value {
    v.as_array()
        .expect("results")
        .iter()
        .find(|r| r["set"] == set && r["class"] == class)
        .unwrap_or_else(|| panic!("no {set}/{class} in {v}"))
}

/// The value of the metric line starting with `name{labels}`.
fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name_and_labels} in\n{text}"))
}

#[test]
fn run_copies_each_new_snapshot_and_catches_up_when_the_target_is_back() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), noise(50_000, 1)).expect("write");
    let target_dir = env.path("offsite");
    let to = target(&env, s(&target_dir), &[]);
    to.init_copying_from(&env);
    let pw = env.path("offsite.pass");
    std::fs::write(&pw, TARGET_PASSWORD).expect("write");
    let prom = env.path("cofre.prom");
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            "metrics_file = {prom:?}\ncopy_to = [{target_dir:?}]\ncopy_password_file = {pw:?}\n\n\
             [sets.files]\npaths = [{src:?}]\nevery = \"4h\"\n"
        ),
    )
    .expect("config");
    let class = format!("copy:{}", target_dir.display());
    let lag = format!(
        "cofre_copy_lag_snapshots{{set=\"files\",target=\"{}\"}}",
        target_dir.display()
    );

    // The snapshot, then its copy, each a job of its own.
    let (code, v) = env.run_at(&cfg, "2026-12-01T00:00:00Z");
    assert_eq!(code, 0, "{v}");
    assert_eq!(job(&v, "files", "4h")["action"], "done");
    assert_eq!(job(&v, "files", &class)["action"], "done", "{v}");
    assert_eq!(ids(&to), ids(&env));
    assert_eq!(
        metric(&std::fs::read_to_string(&prom).expect("metrics"), &lag),
        0.0
    );

    // The target is gone: the snapshot is taken and kept, its copy fails, and says so.
    let away = env.path("offsite-away");
    std::fs::rename(&target_dir, &away).expect("take the target away");
    std::fs::write(src.join("g"), noise(50_000, 2)).expect("write");
    let (code, v) = env.run_at(&cfg, "2026-12-01T04:00:00Z");
    assert_ne!(code, 0, "a failed copy fails the run: {v}");
    assert_eq!(job(&v, "files", "4h")["action"], "done");
    assert_eq!(job(&v, "files", &class)["action"], "failed", "{v}");
    assert_eq!(ids(&env).len(), 2, "the snapshot stays");
    let text = std::fs::read_to_string(&prom).expect("metrics");
    assert_eq!(metric(&text, &lag), 1.0);
    let status = env
        .cmd()
        .env("COFRE_CONFIG", &cfg)
        .args(["schedule", "status", "--json"])
        .output()
        .expect("status");
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let row = job(&rows, "files", &class);
    assert_eq!(row["lag_snapshots"], 1, "{rows}");
    assert_eq!(row["result"], "failed", "{rows}");

    // Back: the next run, with no snapshot due, catches up.
    std::fs::rename(&away, &target_dir).expect("bring the target back");
    let (code, v) = env.run_at(&cfg, "2026-12-01T05:00:00Z");
    assert_eq!(code, 0, "{v}");
    assert_eq!(job(&v, "files", "4h")["action"], "not due");
    assert_eq!(job(&v, "files", &class)["action"], "done", "{v}");
    assert_eq!(ids(&to), ids(&env));
    assert_eq!(
        metric(&std::fs::read_to_string(&prom).expect("metrics"), &lag),
        0.0
    );
    // And then it rests until the next snapshot.
    let (_, v) = env.run_at(&cfg, "2026-12-01T06:00:00Z");
    assert_eq!(job(&v, "files", &class)["action"], "not due", "{v}");
    to.ok(&["check", "--read-data"]);
}

#[test]
fn a_snapshot_damaged_on_the_source_is_reported_and_the_ones_after_it_still_go() {
    let env = Env::new();
    env.init();
    let data_packs = |env: &Env| -> std::collections::BTreeSet<std::path::PathBuf> {
        walk(&env.repo().join("data"))
            .into_iter()
            .filter(|p| p.is_file())
            .collect()
    };
    // Two sets whose data share no pack: a damaged pack of the first hurts only it.
    for (set, seed) in [("a", 1u64), ("b", 2)] {
        let dir = env.path(set);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("f"), noise(2 << 20, seed)).expect("write");
        let before = data_packs(&env);
        env.ok(&["ingest", "--set", set, s(&dir)]);
        if set == "a" {
            let new: Vec<_> = data_packs(&env).difference(&before).cloned().collect();
            let big = new
                .iter()
                .max_by_key(|p| std::fs::metadata(p).expect("stat").len())
                .expect("a pack of set a");
            let mut bytes = std::fs::read(big).expect("read");
            bytes[100] ^= 0x01;
            std::fs::write(big, bytes).expect("damage");
        }
    }
    let to = target(&env, s(&env.path("target")), &[]);
    to.init_copying_from(&env);
    let out = copy_cmd(&env, &to).output().expect("copy");
    assert_ne!(
        out.status.code(),
        Some(0),
        "a damaged snapshot fails the copy"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data/") && err.contains("cofre check --read-data"),
        "{err}"
    );
    let b = env.json(&["snapshots", "--set", "b"])[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(ids(&to), vec![b], "set b's snapshot went, set a's did not");
    to.ok(&["check", "--read-data"]);
}

#[test]
fn source_and_copy_keep_their_own_retention_and_each_restores_what_it_keeps() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_awkward_tree(&src);
    let mut expected = Vec::new();
    for g in 0..4u64 {
        // Each generation rewrites one file and keeps the others: what a prune on either
        // side must tell apart (data still used by a kept snapshot, or not).
        std::fs::write(src.join("changing"), noise(400_000, g)).expect("write");
        env.ok(&["ingest", "--set", "files", s(&src)]);
        let keep = env.path(&format!("expect-{g}"));
        copy_dir(&src, &keep);
        expected.push(keep);
    }
    let all = env.snapshot_ids();
    let to = target(&env, s(&env.path("offsite")), &[]);
    to.init_copying_from(&env);
    assert_eq!(
        copy_json(&env, &to)["copied"]
            .as_array()
            .expect("list")
            .len(),
        4
    );

    // 4-hourly on the primary keeps one; the offsite keeps three. Each prunes its own, and
    // each prune frees something (the rewritten file's old versions).
    let packs = |e: &Env| -> std::collections::BTreeSet<std::path::PathBuf> {
        walk(
            &e.url
                .as_deref()
                .map_or(e.repo(), std::path::PathBuf::from)
                .join("data"),
        )
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
    };
    let (before_env, before_to) = (packs(&env), packs(&to));
    env.ok(&["forget", "--keep-last", "1", "--prune"]);
    to.ok(&["forget", "--keep-last", "3", "--prune"]);
    assert_ne!(packs(&env), before_env, "the primary's prune freed nothing");
    assert_ne!(packs(&to), before_to, "the offsite's prune freed nothing");
    assert_eq!(env.snapshot_ids(), all[3..].to_vec());
    assert_eq!(to.snapshot_ids(), all[1..].to_vec());
    let restores = |e: &Env, g: usize, dir: &str| {
        let spec = format!("{}:{}", all[g], s(&src));
        restores_as(e, &spec, dir, &src, &expected[g]);
    };
    restores(&env, 3, "primary-3");
    for g in 1..4 {
        restores(&to, g, &format!("offsite-{g}"));
    }
    env.ok(&["check", "--read-data"]);
    to.ok(&["check", "--read-data"]);

    // Copying again finds the primary's one snapshot there, and a new snapshot goes over,
    // reusing on the target only what its prune kept.
    let again = copy_json(&env, &to);
    assert_eq!(again["copied"], serde_json::json!([]), "{again}");
    std::fs::write(src.join("changing"), noise(400_000, 9)).expect("write");
    env.ok(&["ingest", "--set", "files", s(&src)]);
    let newest = copy_json(&env, &to);
    assert_eq!(
        newest["copied"].as_array().expect("list").len(),
        1,
        "{newest}"
    );
    let spec = format!(
        "{}:{}",
        newest["copied"][0]["id"].as_str().expect("id"),
        s(&src)
    );
    restores_as(&to, &spec, "offsite-new", &src, &src);
    to.ok(&["check", "--read-data"]);
}
