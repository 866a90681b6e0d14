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
