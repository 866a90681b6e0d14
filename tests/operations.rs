//! Operations around `cofre run`: webhooks and Healthchecks pings against a local HTTP
//! server, Prometheus metrics checked by the real node_exporter and promtool, the metrics
//! file replaced atomically, systemd units that `systemd-analyze verify` accepts, crontab
//! lines that parse, and `schedule status`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{wait_for, Env};

#[derive(Debug, Clone)]
struct Req {
    path: String,
    body: String,
}

/// A small HTTP server that records every request; with `hang` it never answers.
struct Server {
    port: u16,
    reqs: Arc<Mutex<Vec<Req>>>,
}

fn handle(stream: TcpStream, reqs: Arc<Mutex<Vec<Req>>>, hang: bool) {
    let mut r = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    reqs.lock().expect("lock").push(Req {
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if hang {
        // Hold the connection open and say nothing, as a stuck monitor does.
        std::thread::sleep(Duration::from_secs(600));
    }
    let mut s = stream;
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
}

impl Server {
    fn start(hang: bool) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let reqs = Arc::new(Mutex::new(Vec::new()));
        let r = reqs.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let r = r.clone();
                std::thread::spawn(move || handle(s, r, hang));
            }
        });
        Server { port, reqs }
    }

    fn url(&self, p: &str) -> String {
        format!("http://127.0.0.1:{}{p}", self.port)
    }

    /// Takes the requests recorded so far.
    fn take(&self) -> Vec<Req> {
        std::mem::take(&mut *self.reqs.lock().expect("lock"))
    }
}

fn paths(reqs: &[Req]) -> Vec<&str> {
    reqs.iter().map(|r| r.path.as_str()).collect()
}

fn run(env: &Env, cfg: &Path, now: &str) -> Output {
    env.cmd()
        .env("COFRE_CONFIG", cfg)
        .args(["run", "--now", now])
        .output()
        .expect("run")
}

fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("a"), b"alpha").expect("write");
    std::fs::write(src.join("b"), vec![7u8; 100_000]).expect("write");
    src
}

#[test]
fn webhooks_and_pings_say_what_each_run_did() {
    let env = Env::new();
    env.init();
    let src = source(&env);
    let srv = Server::start(false);
    let flag = env.path("broken-flag");
    std::fs::write(&flag, b"").expect("flag");
    let cfg = env.path("cofre.toml");
    let write_cfg = |on: &str| {
        std::fs::write(
            &cfg,
            format!(
                r#"
[notify]
webhook = [{slack:?}, {{ url = {json:?}, format = "json" }}]
on = {on}
ping = {ping:?}

[sets.files]
paths = [{src:?}]
every = "4h"
ping = {fping:?}

[sets.broken]
paths = [{src:?}]
every = "4h"
hooks = {{ before = "test ! -e {flag}" }}
"#,
                slack = srv.url("/slack"),
                json = srv.url("/json"),
                ping = srv.url("/ping/run"),
                fping = srv.url("/ping/files/"),
                src = src.display().to_string(),
                flag = flag.display(),
            ),
        )
        .expect("write config");
    };
    write_cfg(r#"["failure", "success"]"#);

    // broken fails (its before-hook exits 1), files succeeds: the run fails with 1.
    let out = run(&env, &cfg, "2026-11-23T00:00:00Z");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let reqs = srv.take();
    assert_eq!(
        paths(&reqs),
        [
            "/ping/run/start",
            "/ping/files/start",
            "/ping/files",
            "/ping/run/1",
            "/slack",
            "/json"
        ],
        "{reqs:?}"
    );
    let slack: serde_json::Value = serde_json::from_str(&reqs[4].body).expect("slack json");
    let text = slack["text"].as_str().expect("text");
    assert_eq!(slack.as_object().expect("object").len(), 1, "{slack}");
    assert!(text.contains("1 of 2 failed"), "{text}");
    assert!(
        text.contains("broken/4h: FAILED (exit 1): before hook"),
        "{text}"
    );
    assert!(text.contains("files/4h: ok, snapshot "), "{text}");
    assert_eq!(reqs[3].body, text, "the ping carries the summary");
    let json: serde_json::Value = serde_json::from_str(&reqs[5].body).expect("json");
    assert_eq!(json["status"], "failure");
    assert_eq!(json["exit_code"], 1);
    let jobs = json["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2, "{json}");
    let snap = env.json(&["snapshots", "--set", "files"]);
    let files_job = jobs
        .iter()
        .find(|j| j["set"] == "files")
        .expect("files job");
    assert_eq!(files_job["snapshot"], snap[0]["id"]);
    assert_eq!(files_job["action"], "done");

    // Four hours later both succeed: success pings and a success message.
    std::fs::remove_file(&flag).expect("rm flag");
    let out = run(&env, &cfg, "2026-11-23T04:00:00Z");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let reqs = srv.take();
    assert_eq!(
        paths(&reqs),
        [
            "/ping/run/start",
            "/ping/files/start",
            "/ping/files",
            "/ping/run",
            "/slack",
            "/json"
        ]
    );
    assert!(reqs[4].body.contains("2 ok"), "{:?}", reqs[4]);
    assert!(
        reqs[5].body.contains("\"status\":\"success\""),
        "{:?}",
        reqs[5]
    );

    // Nothing due: nothing sent (the monitor notices a backup that did not run).
    let out = run(&env, &cfg, "2026-11-23T05:00:00Z");
    assert_eq!(out.status.code(), Some(0));
    assert!(srv.take().is_empty());

    // on = ["failure"]: a good run pings but sends no message.
    write_cfg(r#"["failure"]"#);
    let out = run(&env, &cfg, "2026-11-23T08:00:00Z");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let reqs = srv.take();
    assert_eq!(
        paths(&reqs),
        [
            "/ping/run/start",
            "/ping/files/start",
            "/ping/files",
            "/ping/run"
        ]
    );
}

#[test]
fn a_hanging_notifier_neither_holds_up_nor_fails_the_backup() {
    let env = Env::new();
    env.init();
    let src = source(&env);
    let srv = Server::start(true);
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            "[notify]\nwebhook = [{:?}]\non = [\"success\"]\nping = {:?}\ntimeout_seconds = 2\n\n\
             [sets.files]\npaths = [{:?}]\nevery = \"1d\"\n",
            srv.url("/slack"),
            srv.url("/ping"),
            src.display().to_string()
        ),
    )
    .expect("write");
    let t = Instant::now();
    let out = run(&env, &cfg, "2026-11-23T00:00:00Z");
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Three requests of at most 2 s each, plus the backup itself.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ping to 127.0.0.1"), "{err}");
    assert!(err.contains("the backup's result is unchanged"), "{err}");
    assert!(
        !err.contains("/ping"),
        "the URL (a secret) is not printed: {err}"
    );
    assert_eq!(
        paths(&srv.take()),
        ["/ping/start", "/ping", "/slack"],
        "every notifier was tried"
    );
    assert_eq!(
        env.json(&["snapshots"]).as_array().expect("a").len(),
        1,
        "the snapshot is there"
    );
}

/// `name{labels} value` lines of a metrics text, by the whole series (name and labels).
fn series(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("series value");
            (k.to_string(), v.parse().expect("number"))
        })
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// What node_exporter's textfile collector makes of `dir`: its own parser is the strictest
/// reader the users' Prometheus will have.
fn node_exporter_view(dir: &Path) -> String {
    let port = free_port();
    let mut child = Command::new("prometheus-node-exporter")
        .args([
            "--collector.disable-defaults",
            "--collector.textfile",
            &format!("--collector.textfile.directory={}", dir.display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus-node-exporter (integration/install-deps.sh installs it)");
    let mut body = None;
    wait_for(Duration::from_secs(30), || {
        body = http_get(port, "/metrics");
        body.is_some()
    });
    let _ = child.kill();
    let _ = child.wait();
    body.expect("node_exporter answered")
}

#[test]
fn metrics_parse_strictly_match_the_snapshots_and_are_replaced_atomically() {
    let env = Env::new();
    env.init();
    let src = source(&env);
    let prom_dir = env.path("textfile");
    std::fs::create_dir_all(&prom_dir).expect("mkdir");
    let prom = prom_dir.join("cofre.prom");
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            "metrics_file = {:?}\n\n[sets.files]\npaths = [{src:?}]\nevery = \"4h\"\n\
             [sets.files.weekly]\nat = \"Sun 02:00\"\nstorage_class = \"STANDARD_IA\"\n\n\
             [sets.broken]\npaths = [{src:?}]\nevery = \"1d\"\nhooks = {{ before = \"exit 3\" }}\n",
            prom.display().to_string(),
            src = src.display().to_string()
        ),
    )
    .expect("write");
    let out = run(&env, &cfg, "2026-11-22T03:00:00Z");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = std::fs::read_to_string(&prom).expect("metrics file");

    // promtool's checker and node_exporter's parser both accept it.
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (integration/install-deps.sh installs it)");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let checked = check.wait_with_output().expect("promtool");
    assert!(checked.status.success(), "{checked:?}\n{text}");
    let scraped = node_exporter_view(&prom_dir);
    let got = series(&scraped);
    assert_eq!(
        got.get("node_textfile_scrape_error"),
        Some(&0.0),
        "{scraped}"
    );

    // Values match the snapshots (node_exporter sorts labels by name).
    let snaps = env.json(&["snapshots", "--set", "files"]);
    let four_h = snaps
        .as_array()
        .expect("a")
        .iter()
        .find(|s| s["tags"][0] == "4h")
        .expect("4h snapshot");
    let l = r#"{class="4h",set="files"}"#;
    let at = |name: &str, labels: &str| {
        *got.get(&format!("{name}{labels}"))
            .unwrap_or_else(|| panic!("{name}{labels} in {scraped}"))
    };
    assert_eq!(
        at("cofre_snapshot_files", l),
        four_h["files"].as_f64().expect("n")
    );
    assert_eq!(
        at("cofre_snapshot_source_bytes", l),
        four_h["bytes"].as_f64().expect("n")
    );
    assert_eq!(
        at("cofre_snapshot_added_bytes", l),
        four_h["bytes_added"].as_f64().expect("n")
    );
    assert_eq!(
        at("cofre_last_success_timestamp_seconds", l),
        1_795_316_400.0
    );
    assert_eq!(at("cofre_last_run_status", l), 2.0);
    assert_eq!(at("cofre_schedule_interval_seconds", l), 14_400.0);
    assert_eq!(
        at("cofre_last_run_status", r#"{class="1d",set="broken"}"#),
        0.0
    );
    assert!(
        !got.contains_key(r#"cofre_last_success_timestamp_seconds{class="1d",set="broken"}"#),
        "a set that never succeeded has no success time (absent() alerts on it)"
    );
    assert_eq!(at("cofre_snapshots", r#"{set="files"}"#), 2.0);
    // The weekly class's snapshot deduplicated everything against the 4h one, so only
    // STANDARD holds data; what it holds is within what the repository takes on disk.
    let standard = at("cofre_repository_stored_bytes", r#"{class="STANDARD"}"#);
    assert!(standard > 1_000.0, "{standard}");
    assert!(standard <= env.repo_size() as f64);
    // `cofre metrics` prints the same series.
    let printed = env
        .cmd()
        .env("COFRE_CONFIG", &cfg)
        .arg("metrics")
        .output()
        .expect("metrics");
    let printed = series(&String::from_utf8_lossy(&printed.stdout));
    assert_eq!(
        printed.keys().collect::<Vec<_>>(),
        series(&text).keys().collect::<Vec<_>>()
    );

    // Replaced atomically: a reader polling the file while runs rewrite it only ever sees
    // a whole file, and each run leaves a new inode and no temporary file behind.
    use std::os::unix::fs::MetadataExt;
    // Held open: a freed inode's number is given to the next new file (CI saw the last
    // run's file get the first one's number), an open one's is not.
    let first = std::fs::File::open(&prom).expect("open the metrics file");
    let ino = first.metadata().expect("stat").ino();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (prom, stop) = (prom.clone(), stop.clone());
        let whole = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = std::fs::read_to_string(&prom).expect("never missing");
                assert!(t.ends_with('\n'), "torn read: {t}");
                assert_eq!(
                    t.lines().filter(|l| l.starts_with("# TYPE")).count(),
                    whole,
                    "{t}"
                );
                series(&t);
                reads += 1;
            }
            reads
        })
    };
    for h in [7, 11, 15, 19, 23] {
        run(&env, &cfg, &format!("2026-11-22T{h:02}:05:00Z"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("reader saw only whole files");
    assert!(reads > 0);
    assert_ne!(std::fs::metadata(&prom).expect("stat").ino(), ino);
    drop(first);
    let leftovers: Vec<_> = std::fs::read_dir(&prom_dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("cofre.prom")]);
    let last = series(&std::fs::read_to_string(&prom).expect("read"));
    assert_eq!(
        last[r#"cofre_snapshots{set="files"}"#], 7.0,
        "the file follows the runs"
    );
}

/// A crontab time field: `*`, `*/n`, `a`, `a-b`, `a-b/n`, and lists of them, in range.
fn cron_field_ok(f: &str, lo: u32, hi: u32) -> bool {
    let num = |s: &str| s.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n));
    f.split(',').all(|part| {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).map(|_| ())),
            None => (part, Some(())),
        };
        step.is_some()
            && (range == "*"
                || num(range).is_some()
                || range
                    .split_once('-')
                    .is_some_and(|(a, b)| matches!((num(a), num(b)), (Some(a), Some(b)) if a <= b)))
    })
}

#[test]
fn schedule_writes_units_systemd_accepts_and_cron_lines_that_parse() {
    let env = Env::new();
    env.init();
    let src = source(&env);
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sets.files]\npaths = [{:?}]\nevery = \"4h\"\n[sets.broken]\npaths = [\"/nonexistent\"]\nevery = \"1d\"\n",
            src.display().to_string()
        ),
    )
    .expect("write");
    let sched = |args: &[&str]| {
        env.cmd()
            .env("COFRE_CONFIG", &cfg)
            .arg("schedule")
            .args(args)
            .output()
            .expect("schedule")
    };
    let units = env.path("units");
    for every in ["15m", "4h"] {
        let out = sched(&[
            "install",
            "--dir",
            units.to_str().expect("utf-8"),
            "--every",
            every,
        ]);
        assert!(out.status.success(), "{out:?}");
        let timer = std::fs::read_to_string(units.join("cofre.timer")).expect("timer");
        let service = std::fs::read_to_string(units.join("cofre.service")).expect("service");
        assert!(timer.contains("Persistent=true") && timer.contains("RandomizedDelaySec="));
        assert!(service.contains(&format!(
            "ExecStart={} --config {} run",
            env!("CARGO_BIN_EXE_cofre"),
            std::fs::canonicalize(&cfg).expect("abs").display()
        )));
        match Command::new("systemd-analyze")
            .arg("verify")
            .arg(units.join("cofre.timer"))
            .arg(units.join("cofre.service"))
            .output()
        {
            Ok(v) => {
                let err = String::from_utf8_lossy(&v.stderr);
                assert!(v.status.success(), "{err}");
                assert!(!err.contains("cofre."), "systemd complains: {err}");
            }
            Err(_) => {
                // No systemd here: the keys a timer needs are at least there.
                assert!(timer.contains("[Timer]\nOnCalendar=") && timer.contains("[Install]"));
            }
        }
    }
    let out = sched(&["install", "--cron", "--every", "30m"]);
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (f, (lo, hi)) in fields.iter().zip(ranges) {
        assert!(cron_field_ok(f, lo, hi), "{f} in {line}");
    }
    assert_eq!(fields[0], "*/30");
    assert_eq!(fields[5], env!("CARGO_BIN_EXE_cofre"));
    assert_eq!(fields.last(), Some(&"run"));
    // The checker itself rejects what cron would.
    assert!(
        !cron_field_ok("*/0", 0, 59) && !cron_field_ok("61", 0, 59) && !cron_field_ok("5-2", 0, 59)
    );
    assert!(!sched(&["install", "--every", "7m", "--cron"])
        .status
        .success());

    // status: last snapshot, last run and result, next due, per set and class.
    run(&env, &cfg, "2026-11-23T00:00:00Z");
    let out = env
        .cmd()
        .env("COFRE_CONFIG", &cfg)
        .args([
            "schedule",
            "status",
            "--json",
            "--now",
            "2026-11-23T01:00:00Z",
        ])
        .output()
        .expect("status");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let row = |set: &str| {
        rows.as_array()
            .expect("a")
            .iter()
            .find(|r| r["set"] == set)
            .expect("row")
            .clone()
    };
    let files = row("files");
    assert_eq!(files["class"], "4h");
    assert_eq!(files["schedule"], "every 4h");
    assert_eq!(files["result"], "ok");
    assert_eq!(files["last_snapshot"], "2026-11-23T00:00:00Z");
    assert_eq!(
        files["next_due"], "2026-11-23T03:50:00Z",
        "4h less the timer's tolerance"
    );
    let broken = row("broken");
    assert_eq!(broken["result"], "failed");
    assert!(
        broken["error"]
            .as_str()
            .expect("error")
            .contains("/nonexistent"),
        "{broken}"
    );
    assert_eq!(broken["last_snapshot"], serde_json::Value::Null);

    let out = sched(&["remove", "--dir", units.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    assert!(!units.join("cofre.timer").exists() && !units.join("cofre.service").exists());

    // The web server's unit: refused while no one could log in, then a service that runs
    // `cofre serve` with the same file, verified by systemd where it is.
    let d = units.to_str().expect("utf-8");
    let out = sched(&["install", "--serve", "--dir", d]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cofre serve passwd"));
    // `serve passwd` writes into the same file, keeping its sets.
    common::web::add_user(&env, "ana", "admin", "pw");
    let out = sched(&["install", "--serve", "--dir", d]);
    assert!(out.status.success(), "{out:?}");
    let unit = units.join("cofre-serve.service");
    let text = std::fs::read_to_string(&unit).expect("serve unit");
    assert!(
        text.contains(&format!(
            "ExecStart={} --config {} serve",
            env!("CARGO_BIN_EXE_cofre"),
            std::fs::canonicalize(&cfg).expect("abs").display()
        )),
        "{text}"
    );
    if let Ok(v) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
    {
        let err = String::from_utf8_lossy(&v.stderr);
        assert!(v.status.success() && !err.contains("cofre-serve"), "{err}");
    }
    assert!(!sched(&["install", "--serve", "--cron"]).status.success());
    let out = sched(&["remove", "--serve", "--dir", d]);
    assert!(out.status.success(), "{out:?}");
    assert!(!unit.exists());
    // Without a configuration file there is nothing to schedule.
    let out = env
        .cmd()
        .env("COFRE_CONFIG", env.path("missing.toml"))
        .args(["schedule", "install", "--cron"])
        .output()
        .expect("schedule");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

/// The alert rules and the dashboard shipped in docs/: promtool checks the rules and runs
/// their unit tests; the dashboard is JSON and uses only metrics cofre writes.
#[test]
fn documented_alerts_and_dashboard_hold() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/monitoring");
    for args in [
        vec!["check", "rules", "cofre-alerts.yml"],
        vec!["test", "rules", "cofre-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&docs)
            .output()
            .expect("promtool (integration/install-deps.sh installs it)");
        assert!(out.status.success(), "promtool {args:?}: {out:?}");
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(docs.join("cofre-dashboard.json")).expect("dashboard"),
    )
    .expect("dashboard is JSON");
    let metrics_doc = std::fs::read_to_string(docs.join("../monitoring.md")).expect("doc");
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/metrics.rs"))
            .expect("metrics.rs");
    let mut used = 0;
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("cofre_"))
            {
                assert!(
                    source.contains(&format!("\"{name}\"")),
                    "{name} is not written"
                );
                assert!(metrics_doc.contains(name), "{name} is not documented");
                used += 1;
            }
        }
    }
    assert!(used >= 8, "{used}");
    let rules = std::fs::read_to_string(docs.join("cofre-alerts.yml")).expect("rules");
    for name in rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("cofre_"))
    {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "rule uses unwritten {name}"
        );
    }
}
