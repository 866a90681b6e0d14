//! Issue 25, the archive tier: self-contained classes. A weekly full in an archive class
//! stores every chunk it needs in its own class, deduplicates only against that class's
//! earlier snapshots, and neither depends on nor keeps alive the hotter packs. On the local
//! store, which records each pack's class in the index as S3 does (it does not refuse
//! reads of archived data: the moto tests of archive semantics are tests/archive_classes.rs).
mod common;

use common::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8")
}

fn added(report: &serde_json::Value) -> u64 {
    report["summary"]["bytes_added"]
        .as_u64()
        .expect("bytes_added")
}

/// A new local repository whose `src` holds one file, `name`: a snapshot of it in set
/// `hot` (STANDARD), then one in set `weekly` in GLACIER with `weekly_args`.
fn hot_then_weekly(
    name: &str,
    content: Vec<u8>,
    weekly_args: &[&str],
) -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join(name), content).expect("write");
    env.init();
    env.ok(&["ingest", "--set", "hot", s(&src)]);
    let weekly = [
        "ingest",
        "--set",
        "weekly",
        "--data-storage-class",
        "GLACIER",
    ];
    env.ok(&[&weekly[..], weekly_args, &[s(&src)]].concat());
    (env, src)
}

/// Ids of `set`'s snapshots.
fn ids_of(env: &Env, set: &str) -> Vec<String> {
    let list = env.json(&["snapshots", "--set", set]);
    let all = list.as_array().expect("list").iter();
    all.map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn a_self_contained_weekly_stands_alone_and_keeps_no_hot_pack_alive() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("a"), noise(2_000_000, 1)).expect("write");
    std::fs::write(src.join("b"), noise(1_000_000, 2)).expect("write");
    env.init();
    let hot = env.json(&["ingest", "--set", "hot", s(&src)]);
    assert!(added(&hot) > 2_900_000, "{hot}");

    // The weekly full in GLACIER, self-contained by default: all of it again, in its class.
    let weekly = [
        "ingest",
        "--set",
        "weekly",
        "--data-storage-class",
        "GLACIER",
    ];
    let w1 = env.json(&[&weekly[..], &[s(&src)]].concat());
    assert!(
        added(&w1) > 2_900_000,
        "the weekly deduplicated against hot data: {w1}"
    );
    // Only `b` changes: the next weekly deduplicates `a` against the first weekly.
    std::fs::write(src.join("b"), noise(1_000_000, 3)).expect("write");
    let w2 = env.json(&[&weekly[..], &[s(&src)]].concat());
    assert!(
        (900_000..1_500_000).contains(&added(&w2)),
        "not deduplicated within its class: {w2}"
    );
    // Asked to share hotter data, a GLACIER snapshot stores nothing new.
    let shared = env.json(&[&weekly[..], &["--no-self-contained", s(&src)]].concat());
    assert!(added(&shared) < 100_000, "{shared}");

    // stats shows the price: `a` is stored in STANDARD and in GLACIER.
    let stats = env.json(&["stats"]);
    let dup = stats["also_in_other_classes"]["GLACIER"].as_u64();
    assert!(dup.is_some_and(|d| d > 1_900_000), "{stats}");

    // A prune while the hot snapshot holds the same data keeps the weekly's own copies:
    // `check` would name the weekly otherwise.
    env.ok(&["prune", "--max-unused", "0%"]);
    env.ok(&["check"]);

    // Once the hot snapshot and the sharing weekly are forgotten, their packs go: the
    // self-contained weeklies did not keep them alive, and restore from GLACIER alone.
    let mut forget = ids_of(&env, "hot");
    forget.push(shared["snapshot"].as_str().expect("id").to_string());
    let args: Vec<&str> = ["forget"]
        .into_iter()
        .chain(forget.iter().map(String::as_str))
        .collect();
    env.ok(&args);
    let pruned = env.json(&["prune", "--max-unused", "0%"]);
    let freed = pruned["plan"]["freed_by_class"]["STANDARD"]["bytes"].as_u64();
    assert!(freed.is_some_and(|b| b > 2_900_000), "{pruned}");
    assert_eq!(
        pruned["plan"]["chunks_outside_own_class"].as_u64(),
        Some(0),
        "{pruned}"
    );
    let stats = env.json(&["stats"]);
    assert!(
        stats["stored_by_class"]["STANDARD"]
            .as_u64()
            .is_none_or(|b| b < 100_000),
        "hot data left: {stats}"
    );
    env.restore_matches(&["latest", "--set", "weekly"], "out", &src);
    env.ok(&["check", "--read-data"]);
}

/// `cofre check` names a self-contained snapshot whose data is not all in its class, forced
/// by hand: a manifest that claims self-containment for a snapshot that shares hot data.
#[test]
fn check_names_a_self_contained_snapshot_that_is_not() {
    let (env, src) = hot_then_weekly("model.bin", noise(1_000_000, 7), &["--no-self-contained"]);
    env.ok(&["check"]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let store = cofre::store::open(s(&env.repo()), rt.handle()).expect("store");
    let repo = cofre::repo::Repository::open(store, rt.handle().clone(), PASSWORD.as_bytes())
        .expect("open");
    let id = ids_of(&env, "weekly").remove(0);
    let mut m = repo.load_manifest(&id).expect("manifest");
    m.self_contained = true;
    m.set = "forged".into();
    let forged = repo.save_manifest(&m).expect("save");
    let out = env.run(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&forged[..8]) && err.contains("model.bin") && err.contains("self-contained"),
        "{err}"
    );
    assert!(!err.contains(&id[..8]), "the sharing weekly is fine: {err}");
    // Prune keeps the hot copy it still reads from, and says so.
    let out = env.run(&["prune"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("no copy in their own class"), "{err}");
    env.restore_matches(&["latest", "--set", "forged"], "out", &src);
}

/// `cofre copy` keeps a self-contained snapshot self-contained: on a target that already
/// holds the hot copies of its data, the weekly's data is written again in its class.
#[test]
fn a_copied_self_contained_weekly_is_self_contained_on_the_target() {
    let (env, src) = hot_then_weekly("a", noise(2_000_000, 11), &[]);
    let mut to = Env::new();
    to.url = Some(to.path("offsite").display().to_string());
    to.init_copying_from(&env);
    let copy = |sets: &[&str]| {
        let args: Vec<&str> = sets.iter().flat_map(|set| ["--set", set]).collect();
        copy_into(&env, &to, &args);
    };
    // The hot snapshot first: the target then holds `a` in STANDARD.
    copy(&["hot"]);
    copy(&[]);
    let stats = to.json(&["stats"]);
    let dup = stats["also_in_other_classes"]["GLACIER"].as_u64();
    assert!(dup.is_some_and(|d| d > 1_900_000), "{stats}");
    to.ok(&["check"]);
    to.restore_matches(&["latest", "--set", "weekly"], "out", &src);
}

/// Item 3: prune never deletes an archived pack before its class's minimum storage duration
/// (GLACIER: 90 days), since deleting it sooner is billed anyway; it says how long it keeps
/// it. With the clock injected past the minimum (`--now`), the same prune frees it. On
/// moto, whose listing dates objects as S3 does.
#[test]
fn prune_keeps_an_archived_pack_until_its_minimum_storage_duration_has_passed() {
    let moto = Moto::start();
    let env = Env::s3_at(&moto.bucket, &moto.vars);
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("model.bin"), noise(2_000_000, 21)).expect("write");
    env.init();
    env.ok(&["ingest", "--set", "daily", s(&src)]);
    let weekly = env.json(&[
        "ingest",
        "--set",
        "weekly",
        "--data-storage-class",
        "GLACIER",
        s(&src),
    ]);
    let weekly = weekly["snapshot"].as_str().expect("id");
    // What forgetting it would cost, before it is forgotten: its pack is held, not freed.
    let dry = env.json(&["forget", "--dry-run", "--prune", weekly]);
    let plan = &dry["prune"]["plan"];
    assert_eq!(plan["held_min_duration"]["packs"], 1, "{dry}");
    assert_eq!(
        plan["freed_by_class"]["GLACIER"],
        serde_json::Value::Null,
        "{dry}"
    );
    assert_eq!(env.snapshot_ids().len(), 2, "a dry run forgets nothing");
    env.ok(&["forget", weekly]);

    let pruned = env.json(&["prune", "--max-unused", "0%"]);
    let plan = &pruned["plan"];
    assert_eq!(
        plan["freed_by_class"]["GLACIER"],
        serde_json::Value::Null,
        "{pruned}"
    );
    let held = &plan["held_min_duration"];
    assert!(
        held["bytes"].as_u64().is_some_and(|b| b > 1_900_000),
        "{pruned}"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let until = held["until"].as_i64().expect("until");
    assert!(
        (now + 89 * 86_400..now + 91 * 86_400).contains(&until),
        "{pruned}"
    );
    env.ok(&["check"]);
    // `stats` shows what deleting it now would still cost.
    let stats = env.json(&["stats"]);
    let early = &stats["early_deletion"];
    assert_eq!(early["packs"], 1, "{stats}");
    assert!(
        early["dollars"].as_f64().is_some_and(|d| d > 0.0),
        "{stats}"
    );

    // 91 days on, a dry run says it would go, and the prune frees it.
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(91);
    let later = later
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let dry = env.json(&["prune", "--dry-run", "--now", &later]);
    assert!(
        dry["plan"]["freed_by_class"]["GLACIER"]["bytes"]
            .as_u64()
            .is_some_and(|b| b > 1_900_000),
        "{dry}"
    );
    let pruned = env.json(&["prune", "--now", &later]);
    assert_eq!(pruned["plan"]["held_min_duration"]["packs"], 0, "{pruned}");
    assert!(
        pruned["done"]["bytes_deleted"]
            .as_u64()
            .is_some_and(|b| b > 1_900_000),
        "{pruned}"
    );
    env.restore_matches(&["latest", "--set", "daily"], "out", &src);
    env.ok(&["check", "--read-data"]);
}

/// Item 2: `cofre thaw` asks for exactly the packs a path needs, from the index, and after
/// it (moto completes restores at once) the path restores; the rest of the snapshot is still
/// refused, at once, with the command to run. Listing needs no thaw.
#[test]
fn thaw_makes_exactly_the_packs_a_path_needs_readable() {
    let moto = Moto::start();
    let env = Env::s3_at(&moto.bucket, &moto.vars);
    let src = env.path("src");
    std::fs::create_dir_all(src.join("a")).expect("mkdir");
    std::fs::create_dir_all(src.join("b")).expect("mkdir");
    std::fs::write(src.join("a/one.bin"), noise(1_500_000, 31)).expect("write");
    env.init();
    let into_glacier = |src: &std::path::Path| {
        env.ok(&[
            "ingest",
            "--set",
            "weekly",
            "--data-storage-class",
            "DEEP_ARCHIVE",
            s(src),
        ])
    };
    // Two weeklies: `b` is new in the second, so its data is in a pack of its own.
    into_glacier(&src);
    std::fs::write(src.join("b/two.bin"), noise(1_500_000, 32)).expect("write");
    into_glacier(&src);
    let listed = env.ok(&["ls", "latest"]);
    assert!(listed.contains("two.bin"), "{listed}");

    // Through the mount, the frozen file fails at once, and the log says what to run.
    let log = env.path("mount.log");
    {
        let m = Mount::start_logged(&env, "mnt", &[], &log);
        let frozen = m.latest("weekly", &src).join("b/two.bin");
        let err = std::fs::read(&frozen).expect_err("archived data read");
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    }
    let logged = std::fs::read_to_string(&log).expect("mount log");
    assert!(logged.contains("b/two.bin --wait`"), "{logged}");

    let b = format!("latest:{}", src.join("b").display());
    let out = env.run(&["restore", &b, "--target", s(&env.path("early"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cofre thaw ") && err.contains("/b --wait"),
        "{err}"
    );

    // Off a terminal, a thaw (which is billed) needs --yes; the cost is stated first.
    let out = env.run(&["thaw", &b]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--yes") && err.contains("costs about $"),
        "{err}"
    );
    // DEEP_ARCHIVE has no Expedited tier.
    let out = env.run(&["thaw", &b, "--tier", "expedited", "--yes"]);
    assert_eq!(out.status.code(), Some(2));

    let thawed = env.json(&["thaw", &b, "--yes", "--wait", "--tier", "bulk"]);
    let packs = thawed["packs"].as_array().expect("packs");
    assert_eq!(packs.len(), 1, "only b's pack: {thawed}");
    assert_eq!(packs[0]["state"]["state"], "thawed", "{thawed}");
    assert_eq!(thawed["plan"]["frozen_files"], 1, "{thawed}");
    let restored = env.path("b-out");
    env.ok(&["restore", &b, "--target", s(&restored)]);
    let back = std::fs::read(restored.join(src.join("b/two.bin").strip_prefix("/").expect("abs")))
        .expect("restored");
    assert_eq!(back, noise(1_500_000, 32));
    // `a` was not thawed: still refused.
    let a = format!("latest:{}", src.join("a").display());
    let out = env.run(&["restore", &a, "--target", s(&env.path("a-out"))]);
    assert_eq!(out.status.code(), Some(1));

    let status = env.json(&["thaw", "--status"]);
    assert_eq!(status.as_array().map(Vec::len), Some(1), "{status}");
    // The whole snapshot: one more pack to ask for, one thawed already.
    let all = env.json(&["thaw", "latest", "--yes", "--wait"]);
    let states: Vec<&str> = all["packs"]
        .as_array()
        .expect("packs")
        .iter()
        .map(|p| p["state"]["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, ["thawed", "thawed"], "{all}");
    env.restore_matches(&["latest", "--set", "weekly"], "out", &src);
}

/// Item 4's ingest-only role: a credential without `s3:DeleteObject` (every delete refused,
/// as S3 refuses it) runs `ingest`, `cofre run` and `copy`; a failed ingest leaves its
/// packs for prune and says so; `forget` and `prune` are refused. The admin's `check` then
/// finds every snapshot whole.
#[test]
fn an_ingest_only_credential_backs_up_and_deletes_nothing() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("orders.csv"), noise(800_000, 41)).expect("write");
    env.init();
    let mut role = env.other_host("ingest-only");
    role.vars
        .push(("COFRE_TEST_REFUSE_DELETES".into(), "1".into()));
    let early = "2026-12-05T06:00:00Z";
    role.ok(&["ingest", "--set", "files", "--time", early, s(&src)]);
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!("[sets.files]\npaths = [{:?}]\nevery = \"4h\"\n", s(&src)),
    )
    .expect("write");
    std::fs::write(src.join("orders.csv"), noise(800_000, 42)).expect("write");
    let (code, ran) = role.run_at(&cfg, "2026-12-05T10:00:00Z");
    assert_eq!(code, 0, "{ran}");
    // A failed ingest: its packs stay, for the admin's prune, and it says so.
    let out = role.run(&[
        "ingest",
        "--set",
        "db",
        "--stdin-name",
        "db.sql",
        "--stdin-from-command",
        "head -c 3000000 /dev/urandom; exit 3",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("prune removes it"), "{err}");
    // An offsite copy with the same kind of credential there.
    let mut to = Env::new();
    to.url = Some(to.path("offsite").display().to_string());
    to.init_copying_from(&env);
    copy_into(&role, &to, &[]);
    // What needs delete is refused, and removes nothing.
    let before = env.snapshot_ids();
    assert_eq!(before.len(), 2);
    let out = role.run(&["forget", "--set", "files", "--keep-last", "1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = role.run(&["prune"]);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(env.snapshot_ids(), before);
    let report = env.json(&["check", "--read-data"]);
    assert_eq!(report["unindexed_packs"], 1, "{report}");
    env.restore_matches(&["latest", "--set", "files"], "out", &src);
    to.restore_matches(&["latest", "--set", "files"], "offsite-out", &src);
}
