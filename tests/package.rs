//! The Debian package (`packaging/deb.sh`, `cargo deb`): built from the tested binary,
//! installed on this machine with dpkg, used as a person would (`cofre --version`,
//! `man -w cofre`, completions, systemd units), then removed. Needs root and cargo-deb
//! (integration/install-deps.sh installs it).

mod common;

use std::path::Path;
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "cofre"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Removes the package even when an assertion fails halfway.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-r", "cofre"]).output();
    }
}

#[test]
fn the_debian_package_installs_documents_and_removes_cleanly() {
    assert!(common::is_root(), "dpkg -i needs root");
    assert!(
        !installed(),
        "a cofre package is already installed on this machine: this test will not replace it"
    );
    // The binary under test, packaged into a scratch directory (never target/debian, where
    // a release package is looked for: this one is built with the test hooks).
    let env = common::Env::new();
    let out = env.path("deb");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deb = run(
        root.join("packaging/deb.sh").to_str().expect("utf-8"),
        &[
            "--binary",
            env!("CARGO_BIN_EXE_cofre"),
            "--out",
            out.to_str().expect("utf-8"),
        ],
    );
    let deb = deb.trim();
    assert!(deb.ends_with(".deb"), "deb.sh printed {deb:?}");
    let contents = run("dpkg-deb", &["--contents", deb]);
    for want in [
        "./usr/bin/cofre",
        "./usr/share/man/man1/cofre.1.gz",
        "./usr/share/man/man1/cofre-restore.1.gz",
        "./usr/share/bash-completion/completions/cofre",
        "./usr/lib/systemd/system/cofre.timer",
        "./usr/lib/systemd/system/cofre-serve.service",
        "./usr/share/man/man1/cofre-serve.1.gz",
    ] {
        assert!(
            contents.contains(want),
            "{want} not in the package:\n{contents}"
        );
    }
    // dpkg would overwrite, and its removal delete, a file no package owns: refuse to
    // touch a machine that has any of them.
    for line in contents.lines().filter(|l| l.starts_with('-')) {
        let path = line.rsplit(" ./").next().expect("path");
        let path = Path::new("/").join(path);
        assert!(
            !path.exists(),
            "{} exists outside any package: this test will not overwrite it",
            path.display()
        );
    }

    let _guard = Installed;
    run("dpkg", &["-i", deb]);
    assert!(installed(), "dpkg -i did not install cofre");
    let version = run("/usr/bin/cofre", &["--version"]);
    assert_eq!(
        version.trim(),
        format!("cofre {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        run("man", &["-w", "cofre"]).trim(),
        "/usr/share/man/man1/cofre.1.gz"
    );
    // The page documents the flags the binary has.
    let page = run("man", &["-P", "cat", "cofre-restore"]);
    assert!(page.contains("--cache-mib"), "{page}");
    let service =
        std::fs::read_to_string("/usr/lib/systemd/system/cofre.service").expect("service unit");
    assert!(
        service.contains("/usr/bin/cofre --config /etc/cofre/cofre.toml run"),
        "{service}"
    );

    run("dpkg", &["-r", "cofre"]);
    assert!(!installed(), "dpkg -r left cofre installed");
    assert!(
        !Path::new("/usr/bin/cofre").exists(),
        "/usr/bin/cofre left behind"
    );
}
