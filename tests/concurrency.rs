//! Real processes racing on one repository (issue 20): a paused ingest, a prune on a
//! skewed clock, two processes of one hostname in separate PID namespaces. Lock timings are
//! shortened through the `test-hooks` build (a release build ignores these variables).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{compare_trees, is_root, noise, restored, wait_for, Env};

/// Seconds: a lock not refreshed for this long is stale; unindexed packs younger than
/// twice this are left alone by prune.
const STALE: u64 = 3;

fn short_locks(c: &mut Command) -> &mut Command {
    c.env("COFRE_LOCK_STALE_SECS", STALE.to_string())
        .env("COFRE_LOCK_REFRESH_SECS", "1")
}

fn packs(repo: &Path) -> Vec<PathBuf> {
    common::walk(&repo.join("data"))
        .into_iter()
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
        })
        .collect()
}

fn locks(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("locks"))
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with(".tmp-"))
                .count()
        })
        .unwrap_or(0)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

fn stderr_of(child: Child) -> (std::process::ExitStatus, String) {
    let out = child.wait_with_output().expect("wait");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every snapshot restores to `src` exactly, and check is clean.
fn all_restore(env: &Env, src: &Path) {
    let ids = env.json(&["snapshots"]);
    let ids = ids.as_array().expect("array");
    assert!(!ids.is_empty());
    for (i, s) in ids.iter().enumerate() {
        let id = s["id"].as_str().expect("id");
        let target = env.path(&format!("out{i}"));
        env.ok(&["restore", id, "--target", target.to_str().expect("utf8")]);
        let diff = compare_trees(src, &restored(&target, src));
        assert!(diff.is_empty(), "snapshot {id}: {diff:?}");
    }
    env.ok(&["check"]);
}

/// The second reproduction: ingest I1 stopped with its packs written and not
/// indexed, I2 commits the same data, a prune runs once I1's lock is stale and its packs
/// are old, then I1 continues. Before the fix prune took I1's packs as the home of I2's
/// chunks, dropped I2's copies, and I1 then deleted its packs: I2's snapshot lost data.
#[test]
fn a_paused_ingest_and_a_prune_lose_nothing_whichever_process_loses() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("big"), noise(60_000_000, 7)).expect("write");
    std::fs::write(src.join("small"), b"small file").expect("write");
    let s = src.to_str().expect("utf8");

    // I1, slowed so that it can be stopped with some packs written and none indexed.
    let mut c = env.cmd();
    short_locks(&mut c).env("COFRE_TEST_STORE_DELAY_MS", "150");
    let i1 = c
        .args(["ingest", "--set", "s", s])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn I1");
    let repo = env.repo();
    assert!(
        wait_for(Duration::from_secs(120), || packs(&repo).len() >= 2),
        "I1 wrote no packs"
    );
    signal(&i1, libc::SIGSTOP);
    let stopped_at = Instant::now();
    assert!(
        !repo.join("index").exists()
            || std::fs::read_dir(repo.join("index")).expect("ls").count() == 0
    );

    // I2 commits the same data (a shared lock beside I1's).
    let mut c = env.cmd();
    let out = short_locks(&mut c)
        .args(["ingest", "--set", "s", s])
        .output()
        .expect("I2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Once I1's lock is stale and its packs older than twice the stale time, prune.
    let old_enough = Duration::from_secs(2 * STALE + 2);
    assert!(wait_for(old_enough + Duration::from_secs(5), || stopped_at
        .elapsed()
        >= old_enough));
    let mut c = env.cmd();
    let out = short_locks(&mut c).args(["prune"]).output().expect("prune");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "prune: {err}");
    assert!(
        err.contains("removing stale lock"),
        "prune did not judge I1 stale: {err}"
    );

    // I1 wakes up: its lock is gone, so it commits nothing and deletes nothing.
    signal(&i1, libc::SIGCONT);
    let (status, err) = stderr_of(i1);
    assert_eq!(status.code(), Some(1), "I1: {err}");
    assert!(err.contains("lock was lost"), "I1: {err}");

    let snaps = env.json(&["snapshots"]);
    assert_eq!(
        snaps.as_array().expect("array").len(),
        1,
        "only I2 committed"
    );
    all_restore(&env, &src);
    // And a later prune leaves it whole too.
    let mut c = env.cmd();
    let out = short_locks(&mut c).args(["prune"]).output().expect("prune");
    assert!(out.status.success());
    all_restore(&env, &src);
}

/// A clock 40 minutes off is refused (exit 13), not trusted: before, a prune on such a
/// host judged a running ingest's lock stale and deleted what it was using.
#[test]
fn a_clock_forty_minutes_off_is_refused() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), noise(100_000, 1)).expect("write");
    env.ok(&["ingest", "--set", "s", src.to_str().expect("utf8")]);
    let before = packs(&env.repo()).len();
    for (offset, args) in [
        ("+40m", vec!["prune"]),
        ("-40m", vec!["prune"]),
        (
            "+40m",
            vec!["ingest", "--set", "s", src.to_str().expect("utf8")],
        ),
    ] {
        let mut c = program_with_env_of(&env, "faketime");
        c.arg("-f")
            .arg(offset)
            .arg(env!("CARGO_BIN_EXE_cofre"))
            .args(&args);
        let out = c.output().expect("faketime (apt-get install faketime)");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(13), "{offset} {args:?}: {err}");
        assert!(err.contains("clock"), "{err}");
    }
    assert_eq!(
        packs(&env.repo()).len(),
        before,
        "nothing written or deleted"
    );
    assert_eq!(locks(&env.repo()), 0, "no lock left behind");
    // The same commands with the right time work.
    env.ok(&["prune"]);
}

/// Two processes with one hostname in separate PID namespaces: the prune cannot see the
/// ingest's pid, so it must not judge its live lock stale. (Before, "same hostname, pid
/// gone" made it stale and prune removed it.)
#[test]
fn same_hostname_in_two_pid_namespaces_never_breaks_a_live_lock() {
    if !is_root() {
        eprintln!("skipped: unshare --pid needs root");
        return;
    }
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("big"), noise(20_000_000, 3)).expect("write");
    // cofre in a PID namespace of its own, behind a shell that started `before` other
    // processes first: the ingest's pid there (about 12) names no process in the prune's
    // namespace (where the prune is about 3).
    let in_ns = |before: usize, args: &str| {
        let mut c = program_with_env_of(&env, "unshare");
        short_locks(&mut c);
        c.args(["--pid", "--fork", "sh", "-c"]).arg(format!(
            "{} wait; '{}' {args}",
            "true & ".repeat(before),
            env!("CARGO_BIN_EXE_cofre")
        ));
        c
    };
    let child = in_ns(10, &format!("ingest --set s '{}'", src.display()))
        .env("COFRE_TEST_STORE_DELAY_MS", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare");
    let repo = env.repo();
    assert!(
        wait_for(Duration::from_secs(60), || locks(&repo) >= 1),
        "the ingest took no lock"
    );
    let out = in_ns(1, "prune").output().expect("prune");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(11),
        "prune must find the repository locked: {err}"
    );
    assert!(!err.contains("removing stale lock"), "{err}");
    let (status, err) = stderr_of(child);
    assert!(status.success(), "the ingest lost its lock: {err}");
    all_restore(&env, &src);
}

/// `program` with the environment `env.cmd()` gives cofre (repository, password, cache).
fn program_with_env_of(env: &Env, program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear();
    for (k, v) in env.cmd().get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

/// Whether process `pid` is stopped (state T in /proc/<pid>/stat).
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
        .unwrap_or(false)
}

/// A prune paused right before its first delete under `prefix` (`index/`: before the
/// replaced index objects; `data/`: before the packs), for longer than the stale time. A
/// `repair index` (with `repair`) and an ingest of the data the prune is about to delete
/// run meanwhile; then the prune wakes. Every snapshot must still restore.
/// Before doomed lists (docs/prune.md) the ingest reused the doomed data: with `index/`
/// its blobs ended in no index, with `data/` (after repair listed the doomed pack again)
/// the prune deleted them.
fn a_prune_paused_before_deleting(prefix: &str, repair: bool) {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("keep"), noise(300_000, 1)).expect("write");
    let doomed = noise(3_000_000, 2);
    std::fs::write(src.join("doomed"), &doomed).expect("write");
    let s = src.to_str().expect("utf8");
    let run = |args: &[&str]| {
        let mut c = env.cmd();
        let out = short_locks(&mut c).args(args).output().expect("cofre");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {err}");
        err
    };
    run(&["ingest", "--set", "s", s]);
    let first = env.json(&["snapshots"])[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    std::fs::remove_file(src.join("doomed")).expect("rm");
    run(&["ingest", "--set", "s", s]);
    run(&["forget", &first]);

    // The prune stops itself at its first delete under `prefix`.
    let mut c = env.cmd();
    let prune = short_locks(&mut c)
        .env("COFRE_TEST_STOP_AT_DELETE", prefix)
        .args(["prune"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prune");
    assert!(
        wait_for(Duration::from_secs(60), || is_stopped(prune.id())),
        "the prune never reached a delete under {prefix}"
    );
    // Past the stale time: its lock is now anyone's to remove.
    let stopped_at = Instant::now();
    let stale = Duration::from_secs(STALE + 2);
    assert!(wait_for(stale + Duration::from_secs(5), || stopped_at
        .elapsed()
        >= stale));
    if repair {
        let err = run(&["repair", "index"]);
        assert!(err.contains("removing stale lock"), "repair: {err}");
    }
    std::fs::write(src.join("doomed"), &doomed).expect("write");
    run(&["ingest", "--set", "s", s]);
    signal(&prune, libc::SIGCONT);
    let (status, err) = stderr_of(prune);
    eprintln!("the prune, woken: {status} {err}");

    let target = env.path("out");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().expect("utf8"),
    ]);
    let diff = compare_trees(&src, &restored(&target, &src));
    assert!(diff.is_empty(), "{diff:?}");
    env.ok(&["check", "--read-data"]);
    // And a later prune (the woken one's list is finished by it) keeps it whole.
    run(&["prune"]);
    env.ok(&["check", "--read-data"]);
    assert!(
        !env.repo().join("doomed").exists()
            || std::fs::read_dir(env.repo().join("doomed"))
                .expect("ls doomed")
                .flatten()
                .all(|e| e.file_name().to_string_lossy().starts_with(".tmp-")),
        "a doomed list outlived the prunes that finished it"
    );
}

#[test]
fn a_prune_paused_before_deleting_index_objects_loses_nothing() {
    a_prune_paused_before_deleting("index/", false);
}

#[test]
fn a_prune_paused_before_deleting_packs_loses_nothing_after_a_repair() {
    a_prune_paused_before_deleting("data/", true);
}

/// Names in `doomed/`, temporary files aside.
fn doomed_lists(repo: &Path) -> Vec<String> {
    std::fs::read_dir(repo.join("doomed"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A doomed list whose prune never came back (killed, its machine gone) names packs a
/// snapshot still uses in full. Ingest reuses nothing from them, so until they go their
/// data is stored again by every ingest. The next prune rewrites them (whatever its
/// `--max-unused`) and removes the list. Before, it kept fully used doomed packs, and the
/// list, for ever.
#[test]
fn an_abandoned_doomed_list_is_finished_by_the_next_prune() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("big"), noise(2_000_000, 1)).expect("write");
    std::fs::write(src.join("small"), noise(100_000, 2)).expect("write");
    env.init();
    let s = src.to_str().expect("utf8");
    env.ok(&["ingest", "--set", "s", s]);
    let before: Vec<PathBuf> = packs(&env.repo());
    // The abandoned list, as a prune killed after announcing it would leave it.
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let store = cofre::store::open(&env.repo().to_string_lossy(), rt.handle()).expect("store");
    let repo =
        cofre::repo::Repository::open(store, rt.handle().clone(), common::PASSWORD.as_bytes())
            .expect("open");
    let all = repo.pack_ids().expect("packs").into_iter().collect();
    cofre::repo::doomed::save(
        &repo,
        &cofre::repo::doomed::DoomedList {
            packs: all,
            indexes: Vec::new(),
        },
    )
    .expect("save list");
    assert_eq!(doomed_lists(&env.repo()).len(), 1);

    env.ok(&["prune"]);
    assert_eq!(
        doomed_lists(&env.repo()),
        Vec::<String>::new(),
        "the list outlived the prune that could finish it"
    );
    let after = packs(&env.repo());
    assert!(
        before.iter().all(|p| !after.contains(p)),
        "a doomed pack is still there: {before:?} vs {after:?}"
    );
    env.ok(&["check", "--read-data"]);
    env.restore_matches(&["latest", "--set", "s"], "out", &src);
    // The rewritten packs are reusable: the same files store no data again (a tree, ~1 KB).
    let again = env.json(&["ingest", "--set", "t", s]);
    let added = again["summary"]["bytes_added"]
        .as_u64()
        .expect("bytes_added");
    assert!(added < 10_000, "{again}");
}
