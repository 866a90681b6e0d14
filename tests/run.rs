//! `cofre run` from a configuration file: due sets only, a missed night caught up once,
//! classes tagged and retained on their own, hooks (skip with 75, fail, environment), one
//! failing set not stopping the others, the worst exit code.

mod common;

use common::Env;

fn run(env: &Env, cfg: &std::path::Path, now: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = env
        .cmd()
        .env("COFRE_CONFIG", cfg)
        .args(["run", "--json", "--now", now])
        .args(extra)
        .output()
        .expect("run");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status.code().unwrap_or(-1), v)
}

/// (set, class) -> action of one run.
fn actions(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("set"), s("class"), s("action"))
        })
        .collect()
}

fn action(v: &serde_json::Value, set: &str, class: &str) -> String {
    actions(v)
        .into_iter()
        .find(|(s, c, _)| s == set && c == class)
        .map(|(_, _, a)| a)
        .unwrap_or_else(|| panic!("no {set}/{class} in {v}"))
}

#[test]
fn run_takes_what_is_due_and_catches_up_once() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"data").expect("write");
    let dump = env.path("dump.sql");
    std::fs::write(&dump, b"CREATE TABLE t();").expect("write");
    let log = env.path("hook.log");
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[sets.files]
paths = [{src:?}]
every = "4h"
keep = {{ last = 2 }}
hooks = {{ after = "echo $COFRE_SET $COFRE_CLASS $COFRE_SNAPSHOT_ID >> {log}" }}

[sets.db]
command = "cat {dump}"
stdin_name = "/dumps/app.sql"
at = "02:00"

[sets.db.weekly]
at = "Sun 02:00"

[sets.broken]
paths = [{src:?}]
every = "1d"
hooks = {{ before = "exit 3", failure = "echo failed $COFRE_SET $COFRE_EXIT_CODE >> {log}" }}

[sets.maintenance]
paths = [{src:?}]
every = "1d"
hooks = {{ before = "exit 75" }}
"#,
            src = src.display().to_string(),
            dump = dump.display(),
            log = log.display(),
        ),
    )
    .expect("write");

    // --dry-run: everything is due, nothing is taken.
    let (code, v) = run(&env, &cfg, "2026-11-23T03:00:00Z", &["--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(action(&v, "files", "4h"), "would run");
    assert!(env.json(&["snapshots"]).as_array().expect("a").is_empty());

    // Monday 03:00: all due; broken fails, maintenance is skipped, the others go on.
    let (code, v) = run(&env, &cfg, "2026-11-23T03:00:00Z", &[]);
    assert_eq!(code, 1, "the worst exit code: {v}");
    assert_eq!(action(&v, "files", "4h"), "done");
    assert_eq!(action(&v, "db", "daily"), "done");
    assert_eq!(action(&v, "db", "weekly"), "done");
    assert_eq!(action(&v, "broken", "1d"), "failed");
    assert_eq!(action(&v, "maintenance", "1d"), "skipped");
    let hook_log = std::fs::read_to_string(&log).expect("hook log");
    assert!(hook_log.contains("files 4h "), "{hook_log}");
    assert!(hook_log.contains("failed broken 1"), "{hook_log}");

    // Two hours later nothing is due (broken still fails: it never got a snapshot).
    let (_, v) = run(&env, &cfg, "2026-11-23T05:00:00Z", &[]);
    assert_eq!(action(&v, "files", "4h"), "not due");
    assert_eq!(action(&v, "db", "daily"), "not due");
    assert_eq!(action(&v, "db", "weekly"), "not due");

    // Every 4 hours: two more; retention keeps the last 2 of files' 4h class.
    for now in ["2026-11-23T07:05:00Z", "2026-11-23T11:10:00Z"] {
        let (_, v) = run(&env, &cfg, now, &["--set", "files"]);
        assert_eq!(actions(&v).len(), 1, "--set limits the run: {v}");
        assert_eq!(action(&v, "files", "4h"), "done");
    }
    let files = env.json(&["snapshots", "--set", "files"]);
    assert_eq!(files.as_array().expect("a").len(), 2, "{files}");

    // Off from Monday 03:00 to Wednesday 09:00: db's daily is taken once, not twice.
    let (_, v) = run(&env, &cfg, "2026-11-25T09:00:00Z", &["--set", "db"]);
    assert_eq!(action(&v, "db", "daily"), "done");
    assert_eq!(action(&v, "db", "weekly"), "not due");
    let (_, v) = run(&env, &cfg, "2026-11-25T10:00:00Z", &["--set", "db"]);
    assert_eq!(action(&v, "db", "daily"), "not due");
    let db = env.json(&["snapshots", "--set", "db"]);
    assert_eq!(
        db.as_array().expect("a").len(),
        3,
        "two daily, one weekly: {db}"
    );
    // The dump restores as stored.
    env.ok(&[
        "restore",
        "latest:/dumps/app.sql",
        "--set",
        "db",
        "--target",
        env.path("r").to_str().expect("utf-8"),
    ]);
    assert_eq!(
        std::fs::read(env.path("r/dumps/app.sql")).expect("read"),
        b"CREATE TABLE t();"
    );
}

#[test]
fn run_without_a_configuration_says_so() {
    let env = Env::new();
    env.init();
    let out = env
        .cmd()
        .env("XDG_CONFIG_HOME", env.path("nothing"))
        .env("COFRE_CONFIG", env.path("missing.toml"))
        .arg("run")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

/// Two runs at once never both work on a set: the second, started while the first is
/// inside the set (its before-hook waits), skips it and says why; the first finishes and
/// there is one snapshot.
#[test]
fn overlapping_runs_never_both_take_a_set() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"data").expect("write");
    let (started, release) = (env.path("started"), env.path("release"));
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sets.files]\npaths = [{:?}]\nevery = \"4h\"\n\
             hooks = {{ before = \"touch {s}; for i in $(seq 600); do [ -e {r} ] && exit 0; sleep 0.1; done; exit 1\" }}\n",
            src.display().to_string(),
            s = started.display(),
            r = release.display(),
        ),
    )
    .expect("write");
    let first = env
        .cmd()
        .env("COFRE_CONFIG", &cfg)
        .args(["run", "--json", "--now", "2026-11-23T00:00:00Z"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("first run");
    assert!(
        common::wait_for(std::time::Duration::from_secs(60), || started.exists()),
        "the first run reached its before-hook"
    );
    std::fs::remove_file(&started).expect("rm");
    let (code, v) = run(&env, &cfg, "2026-11-23T00:00:00Z", &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(action(&v, "files", "4h"), "skipped");
    assert!(
        v[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("another cofre run"),
        "{v}"
    );
    assert!(!started.exists(), "the second run never ran the set's hook");
    std::fs::write(&release, b"").expect("release");
    let out = first.wait_with_output().expect("first run ends");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(action(&v, "files", "4h"), "done");
    assert_eq!(env.json(&["snapshots"]).as_array().expect("a").len(), 1);
}
