//! `cofre drill`: the monthly recovery test — mount, `cp -a` out, verify every file and its
//! metadata against the snapshot, report RTO and RPO against the set's targets. Passes on a
//! good repository (local and Garage), fails naming the file a damaged pack affects, and
//! fails when a target is missed.

mod common;

use common::*;

fn drill(env: &Env, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = env
        .cmd()
        .args(["--json", "drill"])
        .args(args)
        .output()
        .expect("drill");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Drills the awkward tree (every file type, xattrs, ACLs, odd names, sparse and hard-linked
/// files) out of `env`'s repository and insists it passes, with the counts the tree has.
fn drill_passes(env: &Env) {
    let src = env.path("src");
    make_awkward_tree(&src);
    env.init();
    env.ok(&["ingest", "-q", src.to_str().expect("utf-8")]);
    let report = env.path("report.json");
    let (code, v, err) = drill(
        env,
        &[
            "--set",
            "default",
            "--report",
            report.to_str().expect("utf-8"),
        ],
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("--report file")).expect("json");
    assert_eq!(saved[0]["snapshot"], v[0]["snapshot"]);
    let r = &v[0];
    assert_eq!(code, 0, "{v:#}\n{err}");
    assert_eq!(r["passed"], true, "{r:#}");
    assert_eq!(r["mismatches"], serde_json::json!([]));
    let files = walk(&src)
        .iter()
        .filter(|p| p.is_file() && !p.is_symlink())
        .count() as u64;
    assert_eq!(r["files"].as_u64(), Some(files), "{r:#}");
    let bytes: u64 = walk(&src)
        .iter()
        .filter(|p| p.is_file() && !p.is_symlink())
        .map(|p| std::fs::metadata(p).expect("stat").len())
        .sum();
    assert_eq!(r["bytes"].as_u64(), Some(bytes));
    for k in [
        "mount_seconds",
        "copy_seconds",
        "rto_seconds",
        "throughput_bytes_per_second",
    ] {
        assert!(r[k].as_f64() > Some(0.0), "{k}: {r:#}");
    }
    assert!(r["rpo_seconds"].as_i64() >= Some(0));
    // Nothing is left mounted or copied.
    let leftovers: Vec<_> = std::fs::read_dir(env.path("tmp")).expect("tmp").collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn with_tmp(mut env: Env) -> Env {
    let tmp = env.path("tmp");
    std::fs::create_dir_all(&tmp).expect("mkdir");
    env.vars.push(("TMPDIR".into(), tmp.display().to_string()));
    env
}

#[test]
fn drill_passes_on_a_good_local_repository() {
    drill_passes(&with_tmp(Env::new()));
}

#[test]
fn drill_passes_on_a_good_repository_in_garage() {
    let garage = Garage::start();
    drill_passes(&with_tmp(Env::s3(&garage)));
}

/// Mount points below `dir`, from /proc/self/mountinfo.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.to_str().expect("utf-8");
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(dir))
        .map(String::from)
        .collect()
}

/// A drill killed while its mount is up (cron's `timeout`, systemd, the OOM killer) takes
/// its mount with it, and the next drill removes the copy it left in the scratch directory.
#[test]
fn a_killed_drills_mount_goes_and_the_next_drill_sweeps_its_copy() {
    let env = with_tmp(Env::new());
    let tmp = env.path("tmp");
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    // Incompressible, so that the copy takes long enough to be caught under way.
    for i in 0..6 {
        std::fs::write(src.join(format!("part{i}")), noise(24 << 20, i)).expect("write");
    }
    env.init();
    env.ok(&["ingest", "-q", src.to_str().expect("utf-8")]);

    let mut child = env
        .cmd()
        .args(["drill", "--set", "default"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("drill");
    // Killed once its copy has begun: the copier holds files open in the mount.
    let copying = || {
        std::fs::read_dir(&tmp).expect("tmp").flatten().any(|e| {
            std::fs::read_dir(e.path().join("copy-default")).is_ok_and(|mut d| d.next().is_some())
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while mounts_under(&tmp).is_empty() || !copying() {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the drill ended before its copy was seen"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no drill mount within 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !mounts_under(&tmp).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the killed drill's mount is still there after 30 s: {:?}",
            mounts_under(&tmp)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("tmp")
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(
        left.len(),
        1,
        "the killed drill's scratch directory: {left:?}"
    );

    let (code, v, err) = drill(&env, &["--set", "default"]);
    assert_eq!(code, 0, "{v:#}\n{err}");
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("tmp").flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_damaged_pack_fails_the_drill_naming_the_file() {
    let env = with_tmp(Env::new());
    let src = ingest_two_files_and_damage_one(&env);
    let (code, v, _) = drill(&env, &["--set", "default"]);
    assert_eq!(code, 1, "{v:#}");
    let r = &v[0];
    assert_eq!(r["passed"], false);
    let bad: Vec<&str> = r["mismatches"]
        .as_array()
        .expect("mismatches")
        .iter()
        .map(|m| m.as_str().expect("str"))
        .collect();
    let a = format!("{}/a:", src.display());
    let b = format!("{}/b:", src.display());
    let hits = (
        bad.iter().any(|m| m.contains(&a)),
        bad.iter().any(|m| m.contains(&b)),
    );
    assert!(
        hits == (true, false) || hits == (false, true),
        "exactly one file: {bad:?}"
    );
    assert!(
        r["problems"][0]
            .as_str()
            .expect("problem")
            .starts_with("cp -a exited 1"),
        "{r:#}"
    );
}

#[test]
fn missed_targets_fail_the_drill() {
    let env = with_tmp(Env::new());
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), noise(2_000_000, 3)).expect("write");
    env.init();
    // A snapshot two hours old.
    let t = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let when = t
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    env.ok(&[
        "ingest",
        "-q",
        "--set",
        "files",
        "--time",
        &when,
        src.to_str().expect("utf-8"),
    ]);
    let cfg = env.path("cofre.toml");
    let write = |rto: &str, rpo: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[sets.files]\npaths = [{:?}]\nrto = {rto:?}\nrpo = {rpo:?}\n",
                src.display().to_string()
            ),
        )
        .expect("write");
    };
    let run = || {
        let out = env
            .cmd()
            .env("COFRE_CONFIG", &cfg)
            .args(["--json", "drill"])
            .output()
            .expect("drill");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        (out.status.code(), v)
    };
    write("30m", "4h");
    let (code, v) = run();
    assert_eq!(code, Some(0), "generous targets pass: {v:#}");
    assert_eq!(v[0]["rto_target_seconds"], 1800);
    assert!(
        (7195..7300).contains(&v[0]["rpo_seconds"].as_i64().expect("rpo")),
        "{v:#}"
    );

    // Each target missed alone fails the drill, with the data itself fine.
    for (rto, rpo, problem) in [("0s", "4h", "RTO missed"), ("30m", "1h", "RPO missed")] {
        write(rto, rpo);
        let (code, v) = run();
        assert_eq!(code, Some(1), "{v:#}");
        let first = v[0]["problems"][0].as_str().expect("problem");
        assert!(first.starts_with(problem), "{v:#}");
        assert_eq!(v[0]["mismatches"], serde_json::json!([]), "{v:#}");
    }

    // The history is in the repository: a fresh machine (empty cache, catalog rebuilt) sees
    // all three drills.
    let fresh = env.other_host("fresh");
    fresh.ok(&["catalog", "rebuild"]);
    let h = fresh.json(&["drill", "--history"]);
    let h = h.as_array().expect("history");
    assert_eq!(h.len(), 3, "{h:#?}");
    let passed: Vec<bool> = h
        .iter()
        .map(|r| r["passed"].as_bool().expect("b"))
        .collect();
    assert_eq!(passed, [true, false, false]);
    assert!(h.iter().all(|r| r["set"] == "files" && r["files"] == 1));
    assert!(h[1]["notes"][0]
        .as_str()
        .expect("n")
        .starts_with("RTO missed"));
    // Metrics on the drilling machine: the last drill failed, the last success is kept.
    let out = env
        .cmd()
        .env("COFRE_CONFIG", &cfg)
        .arg("metrics")
        .output()
        .expect("metrics");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cofre_drill_status{set=\"files\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("cofre_drill_last_success_timestamp_seconds{set=\"files\"} "),
        "{text}"
    );
    assert!(
        text.contains("cofre_drill_rto_seconds{set=\"files\"} "),
        "{text}"
    );
}

/// `drill_every` in the configuration: `cofre run` drills the set after its backups when
/// the last drill here is that old, reports it as a job, and not again before it is due.
#[test]
fn run_schedules_the_monthly_drill() {
    let env = with_tmp(Env::new());
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), noise(500_000, 9)).expect("write");
    env.init();
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sets.files]\npaths = [{:?}]\nevery = \"4h\"\ndrill_every = \"30d\"\n",
            src.display().to_string()
        ),
    )
    .expect("write");
    let run = |now: &str| {
        let out = env
            .cmd()
            .env("COFRE_CONFIG", &cfg)
            .args(["run", "--json", "--now", now])
            .output()
            .expect("run");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        (out.status.code(), v)
    };
    let (code, v) = run("2026-11-23T00:00:00Z");
    assert_eq!(code, Some(0), "{v:#}");
    let jobs = v.as_array().expect("jobs");
    assert_eq!(jobs.len(), 2, "the backup, then the drill: {v:#}");
    assert_eq!(
        (jobs[0]["class"].as_str(), jobs[0]["action"].as_str()),
        (Some("4h"), Some("done"))
    );
    assert_eq!(
        (jobs[1]["class"].as_str(), jobs[1]["action"].as_str()),
        (Some("drill"), Some("done"))
    );
    assert_eq!(
        jobs[1]["snapshot"], jobs[0]["snapshot"],
        "the new snapshot is drilled"
    );
    assert!(
        jobs[1]["reason"]
            .as_str()
            .expect("r")
            .starts_with("drill passed: 1 files"),
        "{v:#}"
    );
    assert_eq!(
        env.json(&["drill", "--history"])
            .as_array()
            .expect("h")
            .len(),
        1
    );

    let (_, v) = run("2026-11-23T04:00:00Z");
    let drill = v
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["class"] == "drill")
        .expect("drill job")
        .clone();
    assert_eq!(drill["action"], "not due", "{v:#}");
    assert_eq!(
        env.json(&["drill", "--history"])
            .as_array()
            .expect("h")
            .len(),
        1
    );
}
