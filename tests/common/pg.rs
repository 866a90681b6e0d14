//! A throwaway PostgreSQL cluster for the tests, run by the `postgres` user.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A throwaway PostgreSQL cluster owned by the `postgres` user, on a unix socket.
pub struct Postgres {
    pub data: PathBuf,
    pub sock: PathBuf,
    pub bin: PathBuf,
}

pub fn pg_bin() -> PathBuf {
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<_> = std::fs::read_dir(base)
        .expect("PostgreSQL is installed (integration/install-deps.sh)")
        .map(|e| e.expect("entry").path())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version").join("bin")
}

pub fn as_postgres(args: &[&str]) -> Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Postgres {
    pub fn start(dir: &Path) -> Postgres {
        Postgres::start_with(dir, "")
    }

    /// A cluster with `conf` appended to its postgresql.conf before it starts.
    pub fn start_with(dir: &Path, conf: &str) -> Postgres {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let pg = Postgres {
            data: dir.join("data"),
            sock: dir.join("sock"),
            bin: pg_bin(),
        };
        std::fs::create_dir_all(&pg.sock).expect("mkdir");
        std::fs::set_permissions(&pg.sock, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let initdb = pg.bin.join("initdb");
        as_postgres(&[
            initdb.to_str().expect("utf-8"),
            "--no-sync",
            "-A",
            "trust",
            "-U",
            "postgres",
            "-D",
            pg.data.to_str().expect("utf-8"),
        ]);
        if !conf.is_empty() {
            let path = pg.data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&path).expect("postgresql.conf");
            text.push_str(conf);
            std::fs::write(&path, text).expect("postgresql.conf");
        }
        let opts = format!("-k {} -c listen_addresses=''", pg.sock.display());
        let ctl = pg.bin.join("pg_ctl");
        as_postgres(&[
            ctl.to_str().expect("utf-8"),
            "-D",
            pg.data.to_str().expect("utf-8"),
            "-o",
            &opts,
            "-w",
            "-l",
            dir.join("log").to_str().expect("utf-8"),
            "start",
        ]);
        pg
    }

    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = as_postgres(&[
            "psql",
            "-h",
            self.sock.to_str().expect("utf-8"),
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-c",
            sql,
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let ctl = self.bin.join("pg_ctl");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(ctl)
            .args(["-D", self.data.to_str().unwrap_or(""), "-m", "fast", "stop"])
            .output();
    }
}
