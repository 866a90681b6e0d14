//! Bad input gets a clear message and the documented exit code, and loses nothing.

mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;

#[test]
fn wrong_password_is_named() {
    let env = Env::new();
    env.init();
    let out = env
        .cmd()
        .env("COFRE_PASSWORD", "not it")
        .arg("snapshots")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(12));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong password"),
        "{out:?}"
    );
}

#[test]
fn password_file_and_command_work() {
    let env = Env::new();
    env.init();
    let pf = env.path("pw");
    std::fs::write(&pf, format!("{PASSWORD}\n")).expect("write");
    let out = env
        .cmd()
        .env_remove("COFRE_PASSWORD")
        .env("COFRE_PASSWORD_FILE", &pf)
        .arg("snapshots")
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let out = env
        .cmd()
        .env_remove("COFRE_PASSWORD")
        .env("COFRE_PASSWORD_COMMAND", format!("echo '{PASSWORD}'"))
        .arg("snapshots")
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let out = env
        .cmd()
        .env_remove("COFRE_PASSWORD")
        .arg("snapshots")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(12));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no password"),
        "{out:?}"
    );
}

#[test]
fn missing_repository_says_how_to_create_one() {
    let env = Env::new();
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no repository") && err.contains("cofre init"),
        "{err}"
    );
    let out = env
        .cmd()
        .env_remove("COFRE_REPO")
        .arg("snapshots")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&out.stderr).contains("COFRE_REPO"));
}

#[test]
fn failing_command_commits_nothing() {
    let env = Env::new();
    env.init();
    let out = env.run(&[
        "ingest",
        "--stdin-name",
        "db.dump",
        "--stdin-from-command",
        "echo partial output; echo 'pg_dump: connection refused' >&2; exit 2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connection refused") && err.contains("nothing was committed"),
        "{err}"
    );
    assert_eq!(env.json(&["snapshots"]).as_array().expect("list").len(), 0);

    let data = noise(5_000_000, 7);
    std::fs::write(env.path("payload"), &data).expect("write");
    let cmd = format!("cat {}", env.path("payload").display());
    env.ok(&[
        "ingest",
        "--set",
        "db",
        "--stdin-name",
        "/dumps/db.dump",
        "--stdin-from-command",
        &cmd,
    ]);
    let target = env.path("out");
    env.ok(&[
        "restore",
        "latest",
        "--set",
        "db",
        "--target",
        target.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        std::fs::read(target.join("dumps/db.dump")).expect("read"),
        data
    );
}

#[test]
fn stdin_is_stored_as_one_file() {
    let env = Env::new();
    env.init();
    let data = noise(1_234_567, 8);
    let mut child = env
        .cmd()
        .args(["ingest", "--stdin-name", "stream.bin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &data).expect("write");
    assert!(child.wait().expect("wait").success());
    let target = env.path("out");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        std::fs::read(target.join("stream.bin")).expect("read"),
        data
    );
}

#[test]
fn unreadable_file_is_a_warning_and_exit_3() {
    assert!(is_root(), "needs root to drop privileges with setpriv");
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("readable"), b"ok").expect("write");
    std::fs::write(src.join("secret"), b"root only").expect("write");
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    let as_nobody = |args: &[&str]| {
        let mut c = env.cmd();
        let prog = c.get_program().to_owned();
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(prog)
            .args(args);
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        c = cmd;
        c.output().expect("setpriv")
    };
    let out = as_nobody(&["init"]);
    assert!(out.status.success(), "{out:?}");
    let out = as_nobody(&["ingest", src.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("secret"),
        "{out:?}"
    );
    let out = as_nobody(&["ls", "latest", "--json"]);
    let ls: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let paths: Vec<_> = ls
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_string())
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("/readable"))
            && !paths.iter().any(|p| p.ends_with("/secret")),
        "{paths:?}"
    );
}

#[test]
fn restore_never_follows_a_symlinked_parent_out_of_the_target() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    std::fs::write(src.join("etc/passwd"), b"from the backup").expect("write");
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    // The target already has the snapshot's parent path as a symlink to somewhere else.
    let target = env.path("target");
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    let first = src
        .strip_prefix("/")
        .expect("abs")
        .components()
        .next()
        .expect("component");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::os::unix::fs::symlink(&outside, target.join(first)).expect("symlink");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        std::fs::read_dir(&outside).expect("outside").count(),
        0,
        "restore wrote through a symlink"
    );
    let restored_file = restored(&target, &src).join("etc/passwd");
    assert!(!std::fs::symlink_metadata(target.join(first))
        .expect("stat")
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read(restored_file).expect("read"),
        b"from the backup"
    );
}

/// Issue 22: `cofre init --repo backups` (a bare relative name) failed with "store: put
/// keys/…: No such file or directory" and left an empty directory. Every spelling of a local
/// repository a user may type works, from the directory it is relative to, and names the
/// same repository afterwards; a scheme cofre does not know is refused with a message.
#[test]
fn every_spelling_of_a_local_repository_works() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"kept").expect("write");
    let src_s = src.to_str().expect("utf-8");
    let home = env.path(""); // Env sets HOME to its directory.
    std::fs::create_dir_all(home.join("nested")).expect("mkdir");
    let cases = [
        ("backups", "backups"),
        ("./dot", "dot"),
        ("nested/repo", "nested/repo"),
        ("~/tilde", "tilde"),
        (&*format!("file://{}", home.join("url").display()), "url"),
    ];
    for (spelling, dir) in cases {
        let run = |args: &[&str]| {
            env.cmd()
                .current_dir(&home)
                .env_remove("COFRE_REPO")
                .args(args)
                .args(["--repo", spelling])
                .output()
                .expect("run")
        };
        for args in [&["init"][..], &["ingest", src_s][..], &["snapshots"][..]] {
            let out = run(args);
            assert!(
                out.status.success(),
                "{spelling}: {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(home.join(dir).join("config").is_file(), "{spelling}");
    }
    for typo in ["gs:/bucket/prefix", "s3:bucket", "~nobody/repo", "az://"] {
        let out = env
            .cmd()
            .args(["init", "--repo", typo])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{typo}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("s3://bucket/prefix"));
    }
    // A missing parent is not made: the disk it is on may not be mounted.
    let unmounted = env.path("not-mounted/backups");
    let out = env
        .cmd()
        .args(["init", "--repo", unmounted.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!env.path("not-mounted").exists());
}

/// A skipped source is said once on stderr (it was said twice: logged, then repeated as a
/// `warning:` line), as plain text when stderr is not a terminal (no color codes in a log
/// file or a captured `cofre run`).
#[test]
fn a_warning_is_said_once_and_without_color_codes() {
    let env = Env::new();
    env.init();
    let here = env.path("here");
    std::fs::create_dir_all(&here).expect("mkdir");
    std::fs::write(here.join("f"), b"data").expect("write");
    let gone = env.path("gone-away");
    let out = env.run(&[
        "ingest",
        here.to_str().expect("utf-8"),
        gone.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("gone-away").count(), 1, "{err}");
    assert!(!err.contains('\x1b'), "escape sequences on stderr: {err:?}");
}

/// A reader that stops early (`cofre ls latest | head`) closes the pipe: cofre exits as a
/// program killed by SIGPIPE would (141), without a panic's backtrace. Before, `println!`
/// panicked ("failed printing to stdout: Broken pipe").
#[test]
fn a_closed_stdout_is_a_quiet_exit_not_a_panic() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..50 {
        std::fs::write(src.join(format!("file-{i}")), b"x").expect("write");
    }
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let mut child = env
        .cmd()
        .args(["ls", "latest"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
