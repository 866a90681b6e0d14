//! The configuration file through the real binary: it supplies repository and password,
//! flags and environment win over it, and mistakes are named.

mod common;

use common::Env;

#[test]
fn the_file_supplies_what_flags_do_not_and_flags_win() {
    let env = Env::new();
    let pw = env.path("pw");
    std::fs::write(&pw, common::PASSWORD).expect("write");
    let cfg = env.path("cofre.toml");
    let other = env.path("other-repo");
    std::fs::write(
        &cfg,
        format!(
            "repository = {:?}\npassword_file = {:?}\n\n[sets.etc]\npaths = [\"/etc\"]\nevery = \"4h\"\n",
            other.display().to_string(),
            pw.display().to_string()
        ),
    )
    .expect("write");
    let bare = || {
        let mut c = env.cmd();
        c.env_remove("COFRE_REPO")
            .env_remove("COFRE_PASSWORD")
            .env("COFRE_CONFIG", &cfg);
        c
    };
    // Repository and password from the file alone.
    let out = bare().arg("init").output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(other.join("config").exists());
    // COFRE_REPO wins over the file: env.repo() has no repository yet.
    let out = bare()
        .env("COFRE_REPO", env.repo())
        .arg("snapshots")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // COFRE_PASSWORD wins over the file's password_file.
    let out = bare()
        .env("COFRE_PASSWORD", "wrong")
        .arg("snapshots")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(12));
    let out = bare()
        .args(["config", "show", "--json"])
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["sets"]["etc"]["every"], "4h");
    assert_eq!(v["notify"]["on"][0], "failure", "defaults are filled in");
    assert_eq!(v["notify"]["timeout_seconds"], 10, "defaults are filled in");
    assert_eq!(
        v["repository"],
        other.display().to_string(),
        "from the file"
    );
    assert_eq!(v["password_from"], "password_file");
    // Resolved as commands see it: the environment and flags over the file.
    let out = bare()
        .env("COFRE_REPO", env.repo())
        .env("COFRE_PASSWORD", "secret-in-env")
        .args(["--catalog", "/tmp/flag.db", "config", "show", "--json"])
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["repository"], env.repo().display().to_string());
    assert_eq!(v["catalog"], "/tmp/flag.db");
    assert_eq!(v["password_from"], "COFRE_PASSWORD");
    assert_eq!(v["password_file"], serde_json::Value::Null);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret-in-env"));
    let out = bare()
        .args(["--password-command", "echo pw", "config", "show", "--json"])
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["password_from"], "password_command");
    assert_eq!(
        v["password_file"],
        serde_json::Value::Null,
        "one source, not a mix"
    );
}

/// Every key docs/config.md documents, in one file: parsed, and shown back resolved.
#[test]
fn every_documented_key_is_read() {
    let env = Env::new();
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        r#"
repository = "/srv/backups/repo"
password_file = "/etc/cofre/password"
catalog = "/var/lib/cofre/catalog.db"
metrics_file = "/var/lib/prometheus/node-exporter/cofre.prom"
provider = "wasabi"
prices = "/etc/cofre/prices.toml"
hooks = { before = "echo b", after = "echo a", failure = "echo f" }

[notify]
webhook = ["https://hooks.slack.com/services/T/B/X", { url = "https://example.com/hook", format = "json" }]
on = ["failure", "success"]
ping = "https://hc-ping.com/abc"
timeout_seconds = 5

[sets.db]
command = "pg_dump -Fp app"
stdin_name = "/dumps/app.sql"
ping = "https://hc-ping.com/db"
compression = "zstd:5"
delta = false
rto = "30m"
rpo = "4h"
every = "4h"
keep = { last = 1, hourly = 2, daily = 3, weekly = 4, monthly = 5, yearly = 6, within = "1d", within_hourly = "2d", within_daily = "3d", within_weekly = "4d", within_monthly = "5m", within_yearly = "6y", tags = ["a,b"] }
storage_class = "STANDARD_IA"
prune = true
hooks = { before = "echo sb", after = "echo sa", failure = "echo sf" }

[sets.db.weekly]
every = "1w"
at = "Sun 02:00"
keep = { weekly = 52 }
storage_class = "GLACIER_IR"
prune = false
hooks = { before = "echo cb" }

[sets.files]
paths = ["/etc"]
exclude = ["*.tmp"]
at = "02:00"
"#,
    )
    .expect("write");
    let out = env
        .cmd()
        .env_remove("COFRE_REPO")
        .env_remove("COFRE_PASSWORD")
        .env("COFRE_CONFIG", &cfg)
        .args(["config", "show", "--json"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let pairs = [
        ("/catalog", serde_json::json!("/var/lib/cofre/catalog.db")),
        (
            "/metrics_file",
            "/var/lib/prometheus/node-exporter/cofre.prom".into(),
        ),
        ("/hooks/failure", "echo f".into()),
        ("/notify/webhook/1/format", "json".into()),
        ("/notify/on/1", "success".into()),
        ("/notify/timeout_seconds", 5.into()),
        ("/sets/db/ping", "https://hc-ping.com/db".into()),
        ("/sets/db/compression", "zstd:5".into()),
        ("/sets/db/delta", false.into()),
        ("/sets/db/rto", "30m".into()),
        ("/sets/db/rpo", "4h".into()),
        ("/provider", "wasabi".into()),
        ("/prices", "/etc/cofre/prices.toml".into()),
        ("/sets/db/keep/within_yearly", "6y".into()),
        ("/sets/db/keep/tags/0", "a,b".into()),
        ("/sets/db/keep/yearly", 6.into()),
        ("/sets/db/prune", true.into()),
        ("/sets/db/hooks/after", "echo sa".into()),
        ("/sets/db/classes/weekly/at", "Sun 02:00".into()),
        ("/sets/db/classes/weekly/prune", false.into()),
        ("/sets/db/classes/weekly/hooks/before", "echo cb".into()),
        ("/sets/files/exclude/0", "*.tmp".into()),
        ("/sets/files/at", "02:00".into()),
    ];
    for (ptr, want) in pairs {
        assert_eq!(v.pointer(ptr), Some(&want), "{ptr} in {v}");
    }
}

#[test]
fn a_mistake_names_the_file_table_and_key() {
    let env = Env::new();
    let cfg = env.path("cofre.toml");
    std::fs::write(&cfg, "[sets.db]\npaths = [\"/srv\"]\nevry = \"4h\"\n").expect("write");
    let out = env
        .cmd()
        .args([
            "--config",
            cfg.to_str().expect("utf-8"),
            "config",
            "validate",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cofre.toml") && err.contains("unknown key `evry` in [sets.db]"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // Every other command refuses the broken file the same way.
    let out = env
        .cmd()
        .args(["--config", cfg.to_str().expect("utf-8"), "snapshots"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    // A file named explicitly must exist.
    let out = env
        .cmd()
        .args(["--config", "/nonexistent/cofre.toml", "snapshots"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/cofre.toml"));
}
