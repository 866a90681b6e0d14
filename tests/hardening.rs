//! Hardening: each test here failed on the code before the fix it names (issue 8).
mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

/// Item 1: `/srv/www -> /data/www`; `cofre ingest /srv/www/site` restores at the given path.
#[test]
fn symlinked_ancestor_is_recorded_as_a_directory() {
    let env = Env::new();
    let data = env.path("data/www/site");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("index.html"), b"<h1>hello</h1>").expect("write");
    std::fs::create_dir_all(env.path("srv")).expect("mkdir");
    std::os::unix::fs::symlink(env.path("data/www"), env.path("srv/www")).expect("symlink");
    let given = env.path("srv/www/site");
    env.init();
    env.ok(&["ingest", s(&given)]);
    let ls = env.json(&["ls", &format!("latest:{}", s(&env.path("srv")))]);
    assert!(
        ls.to_string().contains("\"dir\""),
        "the symlinked ancestor must be listed as a directory: {ls}"
    );
    env.restore_matches(&["latest"], "out", &given);
}

/// "A missing path saves an empty snapshot": when no given path exists, nothing is committed.
#[test]
fn no_given_path_exists_commits_nothing() {
    let env = Env::new();
    env.init();
    let missing = env.path("does/not/exist");
    let out = env.run(&["ingest", s(&missing)]);
    assert_eq!(
        code(&out),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.json(&["snapshots"]).as_array().map(Vec::len), Some(0));
}

/// Item 17: the password never reaches `--stdin-from-command` children.
#[test]
fn password_never_reaches_the_dump_command() {
    let env = Env::new();
    env.init();
    env.ok(&[
        "ingest",
        "--stdin-name",
        "/env.txt",
        "--stdin-from-command",
        "env",
    ]);
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", s(&target)]);
    let dumped = std::fs::read_to_string(target.join("env.txt")).expect("read");
    assert!(dumped.contains("PATH="), "env ran: {dumped}");
    assert!(
        !dumped.contains(PASSWORD),
        "the password leaked to the command"
    );
    assert!(!dumped.contains("COFRE_PASSWORD"), "{dumped}");
}

/// atime is not recorded by default: a second ingest of an unchanged tree that the first
/// ingest read adds nothing.
#[test]
fn unchanged_tree_read_in_between_adds_nothing() {
    let env = Env::new();
    let src = env.path("src");
    for d in ["a", "b/c"] {
        std::fs::create_dir_all(src.join(d)).expect("mkdir");
        std::fs::write(src.join(d).join("f"), noise(10_000, 3)).expect("write");
    }
    // Fresh files have atime == mtime: under relatime the first ingest's reads move it.
    let f = src.join("a/f");
    let atime = |p: &Path| std::fs::metadata(p).expect("stat").atime();
    set_atime(&f, 1_000_000_000);
    let before = atime(&f);
    env.init();
    env.ok(&["ingest", s(&src)]);
    assert_ne!(
        atime(&f),
        before,
        "the ingest's read must move atime here (relatime)"
    );
    let first = env.json(&["snapshots"])[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let second = env.json(&["ingest", s(&src)]);
    assert_eq!(second["summary"]["bytes_read"], 0, "{second}");
    // The trees of `src` are the same blobs: nothing new was stored for them. (Not the
    // snapshot's `bytes_added`: the shared scratch directory above `src`, recorded as an
    // ancestor, changes whenever a test running beside this one creates its own.)
    let second = second["snapshot"].as_str().expect("id").to_string();
    assert_eq!(src_tree(&env, &first, &src), src_tree(&env, &second, &src));
}

/// The tree id of directory `dir` in `snapshot`, read through the library.
fn src_tree(env: &Env, snapshot: &str, dir: &Path) -> cofre::crypto::BlobId {
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let store = cofre::store::open(s(&env.repo()), rt.handle()).expect("store");
    let repo = cofre::repo::Repository::open(store, rt.handle().clone(), PASSWORD.as_bytes())
        .expect("open");
    let index = repo.load_master_index().expect("index");
    let mut id = repo.load_manifest(snapshot).expect("manifest").root;
    for part in dir.iter().skip(1) {
        let tree = repo.load_tree(&index, &id).expect("tree");
        let node = tree.find(part.as_encoded_bytes()).expect("on the path");
        id = node.subtree.expect("a directory");
    }
    id
}

/// Item 3: a restore over an existing file that fails (damaged chunk) leaves the live file.
#[test]
fn failed_restore_over_a_live_file_leaves_it_intact() {
    let env = Env::new();
    let src = ingest_two_files_and_damage_one(&env);
    let target = env.path("live");
    let copy = restored(&target, &src);
    std::fs::create_dir_all(&copy).expect("mkdir");
    for f in ["a", "b"] {
        std::fs::write(copy.join(f), b"live data, newer than the backup").expect("write");
    }
    let out = env.run(&["restore", "latest", "--target", s(&target)]);
    assert_eq!(code(&out), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (mut kept, mut replaced) = (0, 0);
    for f in ["a", "b"] {
        let now = std::fs::read(copy.join(f)).expect("the live file is still there");
        if now == b"live data, newer than the backup" {
            kept += 1;
            assert!(
                stderr.contains(&format!("{}/{f}", copy.display())),
                "{stderr}"
            );
        } else {
            assert_eq!(now, std::fs::read(src.join(f)).expect("read"));
            replaced += 1;
        }
    }
    assert_eq!((kept, replaced), (1, 1), "{stderr}");
    let leftovers: Vec<_> = walk(&copy)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".cofre-restore-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Item 15: catalog, caches and local objects are private.
#[test]
fn catalog_and_repository_are_not_world_readable() {
    let env = Env::new();
    ingest_one_file(&env, b"secret-ish");
    for p in walk(&env.repo())
        .into_iter()
        .chain(walk(&env.path("cache")))
    {
        let mode = std::fs::symlink_metadata(&p)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{} is {:o}", p.display(), mode);
    }
}

/// Item 7: a key file that the password unwraps but that opens nothing (a racing init),
/// and a damaged key file, do not lock the owner out.
#[test]
fn stray_and_damaged_key_files_are_skipped() {
    let env = Env::new();
    env.init();
    let other = Env::new();
    other.init();
    let stray = walk(&other.repo().join("keys"))
        .into_iter()
        .find(|p| p.is_file())
        .expect("key file");
    std::fs::copy(&stray, env.repo().join("keys/0000-stray")).expect("copy");
    std::fs::write(env.repo().join("keys/0001-damaged"), b"{not json").expect("write");
    env.ok(&["snapshots"]);
    // A second init must refuse: the config is there.
    let out = env.run(&["init"]);
    assert_eq!(code(&out), Some(1));
}

/// Item 5: the catalog forgets blobs whose index object vanished; dedup stores them again.
#[test]
fn dedup_never_reuses_data_whose_index_is_gone() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), noise(600_000, 9)).expect("write");
    env.init();
    env.ok(&["ingest", s(&src)]);
    // Another host (or a lifecycle rule) removes everything the first snapshot stored.
    for d in ["index", "data", "snapshots"] {
        std::fs::remove_dir_all(env.repo().join(d)).expect("rm");
    }
    let again = env.json(&["ingest", s(&src)]);
    assert!(
        again["summary"]["bytes_added"].as_u64().unwrap_or(0) > 500_000,
        "the data must be stored again: {again}"
    );
    env.restore_matches(&["latest"], "out", &src);
}

/// Item 5: `cofre repair index` rebuilds lost index objects from the packs.
#[test]
fn repair_index_rebuilds_lost_index_objects() {
    let env = Env::new();
    let src = env.path("src");
    make_awkward_tree(&src);
    env.init();
    env.ok(&["ingest", s(&src)]);
    std::fs::remove_dir_all(env.repo().join("index")).expect("rm index");
    let check = env.run(&["check"]);
    assert_eq!(code(&check), Some(1), "check must see the loss");
    let r = env.json(&["repair", "index"]);
    assert!(r["packs_reindexed"].as_u64().unwrap_or(0) >= 2, "{r}");
    env.ok(&["check", "--read-data"]);
    env.ok(&["catalog", "rebuild"]);
    env.restore_matches(&["latest"], "out", &src);
}

/// Item 6: one damaged index object does not stop restore, ls or ingest.
#[test]
fn one_damaged_index_object_is_skipped() {
    let env = Env::new();
    let (one, two) = (env.path("one"), env.path("two"));
    for (d, seed) in [(&one, 1), (&two, 2)] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::write(d.join("f"), noise(300_000, seed)).expect("write");
    }
    env.init();
    env.ok(&["ingest", "--set", "one", s(&one)]);
    let before: Vec<_> = walk(&env.repo().join("index"));
    env.ok(&["ingest", "--set", "two", s(&two)]);
    let second_index = walk(&env.repo().join("index"))
        .into_iter()
        .find(|p| p.is_file() && !before.contains(p))
        .expect("second index");
    let mut bytes = std::fs::read(&second_index).expect("read");
    bytes[40] ^= 1;
    std::fs::write(&second_index, bytes).expect("write");
    std::fs::remove_dir_all(env.path("cache")).expect("drop the catalog");
    env.restore_matches(&["latest", "--set", "one"], "out", &one);
    env.ok(&["ls", "latest:/", "--set", "one"]);
    let check = env.run(&["check"]);
    assert_eq!(code(&check), Some(1));
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("index/"),
        "check names the damaged object"
    );
}

/// "A damaged catalog": garbage in the SQLite file is rebuilt from the repository.
#[test]
fn damaged_catalog_is_rebuilt_with_a_warning() {
    let env = Env::new();
    ingest_one_file(&env, b"x");
    let db = walk(&env.path("cache"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "catalog.db"))
        .expect("catalog");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::write(&db, vec![0x5a; 64 * 1024]).expect("garbage");
    let out = env.run(&["snapshots", "--json"]);
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rebuilding"));
}

/// Exit codes as restic's table; `check --json` prints JSON only.
#[test]
fn exit_codes_and_clean_json() {
    let env = Env::new();
    assert_eq!(code(&env.run(&["snapshots"])), Some(10), "no repository");
    env.init();
    let wrong = env
        .cmd()
        .env("COFRE_PASSWORD", "nope")
        .arg("snapshots")
        .output()
        .expect("run");
    assert_eq!(code(&wrong), Some(12), "wrong password");
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    assert_eq!(
        code(&env.run(&["ingest", "--time", "yesterday", s(&src)])),
        Some(2)
    );
    env.ok(&["ingest", s(&src)]);
    let check = env.run(&["check", "--json"]);
    assert_eq!(code(&check), Some(0));
    serde_json::from_slice::<serde_json::Value>(&check.stdout).expect("only JSON on stdout");
}

/// Item 16: chunk boundaries depend on the repository key.
#[test]
fn chunk_boundaries_differ_between_repositories() {
    let data = noise(3_000_000, 11);
    let lengths = |env: &Env| -> Vec<u32> {
        let src = env.path("src");
        std::fs::create_dir_all(&src).expect("mkdir");
        std::fs::write(src.join("f"), &data).expect("write");
        env.init();
        env.ok(&["ingest", s(&src)]);
        chunk_lengths(env, &src.join("f"))
    };
    let (a, b) = (Env::new(), Env::new());
    let (la, lb) = (lengths(&a), lengths(&b));
    assert!(la.len() > 10 && lb.len() > 10);
    assert_ne!(
        la, lb,
        "same data, same settings, other key: other boundaries"
    );
}

/// "One missing pack prints 102 lines": check reports per pack, with the files it affects.
#[test]
fn check_reports_a_missing_pack_once_with_its_files() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..3 {
        std::fs::write(src.join(format!("f{i}")), noise(1_500_000, 20 + i)).expect("write");
    }
    env.init();
    env.ok(&["ingest", s(&src)]);
    std::fs::remove_file(largest_pack(&env)).expect("rm");
    let out = env.run(&["check"]);
    assert_eq!(code(&out), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        2,
        "one line for the pack, one summary: {stderr}"
    );
    assert!(
        errors[0].contains("is missing") && errors[0].contains("/f"),
        "{stderr}"
    );
}

/// A missing pack fails exactly the files that need it, naming them, and every other file
/// is restored exactly — in both of restore's modes: into an empty target, and over an
/// existing tree, where the file that cannot be restored keeps its live content.
#[test]
fn a_missing_pack_fails_only_the_files_that_need_it() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    // `big` (walked first) fills whole packs; the small files share the last one.
    std::fs::write(src.join("big"), noise(20_000_000, 7)).expect("write");
    for i in 0..20 {
        std::fs::write(src.join(format!("sub/small{i}")), noise(3_000, 100 + i)).expect("write");
    }
    env.init();
    env.ok(&["ingest", s(&src)]);
    let over = env.path("over");
    env.ok(&["restore", "latest", "--target", s(&over)]);
    // A pack with nothing but chunks of `big` in it.
    std::fs::remove_file(largest_pack(&env)).expect("rm");
    let live = restored(&over, &src);
    std::fs::write(live.join("big"), b"live data, newer than the backup").expect("write");
    std::fs::write(live.join("sub/small3"), b"to be replaced").expect("write");
    for (mode, target) in [("empty", env.path("empty")), ("over", over.clone())] {
        let out = env.run(&["restore", "latest", "--target", s(&target)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), Some(1), "{mode}: {stderr}");
        let copy = restored(&target, &src);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert!(
            !errors.is_empty()
                && errors
                    .iter()
                    .all(|l| l.contains(&*copy.join("big").to_string_lossy())
                        || !l.contains(&*copy.to_string_lossy())),
            "{mode}: only big is named: {stderr}"
        );
        assert_eq!(
            compare_trees(&src.join("sub"), &copy.join("sub")),
            Vec::<String>::new(),
            "{mode}"
        );
        match mode {
            "empty" => assert!(!copy.join("big").exists(), "half-written big left"),
            _ => assert_eq!(
                std::fs::read(copy.join("big")).expect("read"),
                b"live data, newer than the backup"
            ),
        }
        assert_eq!(restore_leftovers(&target), Vec::<std::path::PathBuf>::new());
    }
}

/// Item 13: while a restore runs, a local user swaps directories of the target for
/// symlinks to a place of their choosing; nothing may be written there. Both of restore's
/// modes: into an empty target, and over a tree restored before.
#[test]
fn directories_swapped_for_symlinks_during_restore_are_never_followed() {
    let env = Env::new();
    let src = env.path("src");
    for d in 0..60 {
        let dir = src.join(format!("d{d:02}"));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        for f in 0..20 {
            std::fs::write(dir.join(format!("sub/f{f}")), noise(20_000, d * 100 + f))
                .expect("write");
        }
    }
    env.init();
    env.ok(&["ingest", s(&src)]);
    let outside = env.path("attacker");
    std::fs::create_dir_all(&outside).expect("mkdir");
    for over_existing in [false, true] {
        let target = env.path(&format!("target-{over_existing}"));
        if over_existing {
            env.ok(&["restore", "latest", "--target", s(&target)]);
        }
        race_restore(&env, &src, &target, &outside);
    }
}

/// One restore of `src`'s snapshot into `target` while another thread keeps swapping its
/// directories for symlinks to `outside`; insists nothing reached `outside`.
fn race_restore(env: &Env, src: &Path, target: &Path, outside: &Path) {
    let copy = restored(target, src);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (copy, outside, stop) = (copy.clone(), outside.to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for d in 0..60 {
                    let dir = copy.join(format!("d{d:02}"));
                    let moved = copy.join(format!("moved-{d:02}-{swaps}"));
                    if std::fs::rename(&dir, &moved).is_ok()
                        && std::os::unix::fs::symlink(&outside, &dir).is_ok()
                    {
                        swaps += 1;
                    }
                }
            }
            swaps
        })
    };
    let out = env.run(&["restore", "latest", "--target", s(target)]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    assert!(swaps > 0, "the race never happened");
    let leaked: Vec<_> = walk(outside).into_iter().filter(|p| p != outside).collect();
    assert!(
        leaked.is_empty(),
        "restore wrote through a swapped symlink ({swaps} swaps, exit {:?}): {leaked:?}",
        out.status.code()
    );
}

/// Item 6: `ls` and `snapshots` work when the catalog sync fails part-way (here: the
/// snapshot listing fails), with what the catalog knew — and it forgets nothing.
#[test]
fn listing_works_when_the_sync_fails() {
    let env = Env::new();
    ingest_one_file(&env, b"x");
    let snaps = env.repo().join("snapshots");
    let away = env.path("snapshots-away");
    std::fs::rename(&snaps, &away).expect("move");
    std::fs::write(&snaps, b"not a directory").expect("in the way");
    let out = env.run(&["ls", "latest:/", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not brought up to date"));
    std::fs::remove_file(&snaps).expect("rm");
    std::fs::rename(&away, &snaps).expect("back");
    assert_eq!(env.json(&["snapshots"]).as_array().map(Vec::len), Some(1));
}

/// Issue 20 point 9: 64 KiB of garbage in the middle of the catalog, in rows that opening
/// and syncing do not read. `ls`, `restore` and `ingest` said "database disk image is
/// malformed" and failed; now each says once that it rebuilds the catalog, and works.
#[test]
fn a_catalog_damaged_inside_is_rebuilt_for_ls_restore_and_ingest() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    many_files(&src, 40, 150);
    env.ok(&["ingest", s(&src)]);
    let listing = env.ok(&["ls", "latest"]);
    assert!(listing.lines().count() > 6_000, "ls lists every file");
    let once = |out: &std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(out), Some(0), "{what}: {err}");
        assert_eq!(err.matches("is damaged").count(), 1, "{what}: {err}");
        assert!(
            err.contains("rebuilding it from the repository"),
            "{what}: {err}"
        );
    };

    damage_catalog_inside(&env);
    let out = env.run(&["ls", "latest"]);
    once(&out, "ls");
    assert!(
        String::from_utf8_lossy(&out.stdout) == listing,
        "ls lists what it listed before"
    );

    damage_catalog_inside(&env);
    let target = env.path("out");
    let out = env.run(&["restore", "latest", "--target", s(&target)]);
    // Restore reads the catalog only to find the snapshot, then the store: it may never
    // meet the damage, and must work either way.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), Some(0), "restore: {err}");
    assert!(err.matches("is damaged").count() <= 1, "restore: {err}");
    let diff = compare_trees(&src, &restored(&target, &src));
    assert!(diff.is_empty(), "{diff:?}");

    damage_catalog_inside(&env);
    std::fs::write(src.join("dir000/new.txt"), b"after the damage").expect("write");
    let out = env.run(&["ingest", s(&src)]);
    once(&out, "ingest");
    env.restore_matches(&["latest"], "out2", &src);
}

/// Two rebuilds of one catalog at once (a mount healing while `cofre ls` heals too): one
/// waits for the other and finds the file replaced. Before the lock, the second deleted
/// the first's half-built file and one of them failed or renamed a file still being
/// written.
#[test]
fn two_catalog_rebuilds_at_once_leave_one_sound_catalog() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    many_files(&src, 10, 100);
    env.ok(&["ingest", s(&src)]);
    let listing = env.ok(&["ls", "latest"]);
    for round in 0..3 {
        let kids: Vec<_> = (0..2)
            .map(|_| {
                env.cmd()
                    .args(["catalog", "rebuild"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for k in kids {
            let out = k.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let db = walk(&env.path("cache"))
            .into_iter()
            .find(|p| p.file_name().is_some_and(|n| n == "catalog.db"))
            .expect("catalog");
        let conn = rusqlite::Connection::open(&db).expect("open");
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(ok, "ok", "round {round}");
        drop(conn);
        assert!(env.ok(&["ls", "latest"]) == listing, "round {round}");
    }
}

/// A hard link whose file could not be restored is reported and left alone: over an
/// existing tree it must not be linked to the live file still at the first path (which
/// would give it content from outside the snapshot while the restore calls it restored).
#[test]
fn a_hard_link_to_a_file_that_failed_is_reported_and_left_alone() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    // `big` (walked first) fills whole packs; `sub/alias` is another name for it.
    std::fs::write(src.join("big"), noise(20_000_000, 7)).expect("write");
    std::fs::hard_link(src.join("big"), src.join("sub/alias")).expect("link");
    std::fs::write(src.join("sub/small"), noise(3_000, 8)).expect("write");
    env.init();
    env.ok(&["ingest", s(&src)]);
    std::fs::remove_file(largest_pack(&env)).expect("rm");
    let over = env.path("over");
    let live = restored(&over, &src);
    std::fs::create_dir_all(live.join("sub")).expect("mkdir");
    std::fs::write(live.join("big"), b"live data, newer than the backup").expect("write");
    std::fs::write(live.join("sub/alias"), b"an unrelated older file").expect("write");
    for (mode, target) in [("empty", env.path("empty")), ("over", over.clone())] {
        let out = env.run(&["restore", "latest", "--target", s(&target)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), Some(1), "{mode}: {stderr}");
        let copy = restored(&target, &src);
        for name in ["big", "sub/alias"] {
            let path = copy.join(name);
            assert!(
                stderr.contains(&format!("{}:", path.display())),
                "{mode}: {name} is named: {stderr}"
            );
        }
        assert!(!stderr.contains("sub/small"), "{mode}: {stderr}");
        assert_eq!(
            std::fs::read(copy.join("sub/small")).expect("small"),
            noise(3_000, 8)
        );
        match mode {
            "empty" => {
                assert!(!copy.join("big").exists(), "{mode}: half-written big");
                assert!(!copy.join("sub/alias").exists(), "{mode}: alias made");
            }
            _ => {
                assert_eq!(
                    std::fs::read(copy.join("big")).expect("big"),
                    b"live data, newer than the backup"
                );
                assert_eq!(
                    std::fs::read(copy.join("sub/alias")).expect("alias"),
                    b"an unrelated older file",
                    "{mode}: the alias was linked to a file the restore did not write"
                );
            }
        }
        assert_eq!(restore_leftovers(&target), Vec::<std::path::PathBuf>::new());
    }
}
