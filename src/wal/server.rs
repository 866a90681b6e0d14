//! A restored PostgreSQL cluster started on its own data directory, listening on a unix
//! socket only, and waited on until replay has finished (`cofre pitr --start`, and the
//! PITR drill, which also stops it). Uses the system's `pg_ctl` and `psql`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// `pg_ctl`, `psql`, … from `pg_bin`, else `PATH`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian keeps the server tools off `PATH`).
pub fn pg_tool(pg_bin: Option<&Path>, name: &str) -> PathBuf {
    if let Some(dir) = pg_bin {
        return dir.join(name);
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        versions.sort();
        versions
            .pop()
            .map_or_else(|| PathBuf::from(name), |v| v.join("bin").join(name))
    })
}

/// A word for a shell command line, single-quoted.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub struct Server<'a> {
    pub data: &'a Path,
    /// Where its socket goes (a unix socket path is at most 107 bytes: keep it short).
    pub socket_dir: &'a Path,
    pub port: u16,
    pub pg_bin: Option<&'a Path>,
    /// Environment for the server, and so for its `restore_command`.
    pub env: &'a [(String, String)],
    /// A throwaway copy (the drill): its own authentication (trust on the private socket
    /// directory, not production's pg_hba.conf), and nothing that reaches outside it
    /// (logical replication workers, archive cleanup, recovery end commands).
    pub scratch: bool,
}

impl Server<'_> {
    pub fn log(&self) -> PathBuf {
        self.data.join("cofre-pitr.log")
    }

    /// `pg_ctl -D DATA`.
    fn pg_ctl(&self) -> Command {
        let mut c = Command::new(pg_tool(self.pg_bin, "pg_ctl"));
        c.arg("-D").arg(self.data);
        c
    }

    /// `psql` connected to `database` on this server, quiet, stopping on the first error.
    pub fn psql(&self, database: &str) -> Command {
        let mut c = Command::new(pg_tool(self.pg_bin, "psql"));
        c.arg("-h")
            .arg(self.socket_dir)
            .args(["-p", &self.port.to_string(), "-d", database])
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]);
        c
    }

    /// libpq's key=value string for it.
    pub fn dsn(&self, database: &str) -> String {
        format!(
            "host={} port={} dbname={database}",
            self.socket_dir.display(),
            self.port
        )
    }

    /// Starts the server and waits until it has left recovery; the seconds that took.
    pub fn start_and_wait(&self, timeout: Duration) -> Result<f64> {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            return Err(Error::InvalidArgument(
                "PostgreSQL does not run as root: run this as the cluster's user (postgres), \
                 as archive_command runs"
                    .into(),
            ));
        }
        let t = Instant::now();
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=''",
            self.port,
            sh_quote(&self.socket_dir.display().to_string())
        );
        if self.scratch {
            let hba = self.socket_dir.join("cofre-scratch-hba.conf");
            crate::fsutil::write_atomic(&hba, b"local all all trust\n", 0o600)?;
            opts += &format!(
                " -c hba_file={} -c max_logical_replication_workers=0 \
                 -c archive_cleanup_command='' -c recovery_end_command=''",
                sh_quote(&hba.display().to_string())
            );
        }
        let out = self
            .pg_ctl()
            .arg("-l")
            .arg(self.log())
            .args(["-o", &opts, "-w", "-t", &timeout.as_secs().to_string()])
            .arg("start")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::External(format!("pg_ctl: {e}")))?;
        if !out.status.success() {
            return Err(Error::External(format!(
                "pg_ctl start failed: {} (see {})",
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log().display()
            )));
        }
        let deadline = t + timeout;
        // The server deletes recovery.signal when replay is over; from then on it must
        // answer soon, or say why not (authentication, a missing database).
        let mut promoted: Option<Instant> = None;
        loop {
            if promoted.is_none() && !self.data.join("recovery.signal").exists() {
                promoted = Some(Instant::now());
            }
            if let Some(at) = promoted {
                match self.query("postgres", "select pg_is_in_recovery()") {
                    Ok(v) if v == "f" => return Ok(t.elapsed().as_secs_f64()),
                    Err(e) if at.elapsed() > Duration::from_secs(30) => return Err(e),
                    _ => {}
                }
            }
            if !self.running() {
                return Err(Error::External(format!(
                    "the server stopped during replay: see {}",
                    self.log().display()
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::External(format!(
                    "the server is still replaying after {}s: see {}",
                    timeout.as_secs(),
                    self.log().display()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One value from `sql` (the first line of its output).
    pub fn query(&self, database: &str, sql: &str) -> Result<String> {
        let out = self
            .psql(database)
            .args(["-c", sql])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::External(format!("psql: {e}")))?;
        if !out.status.success() {
            return Err(Error::External(format!(
                "psql {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().next().unwrap_or("").trim().to_string())
    }

    /// Whether a server runs on the data directory (`pg_ctl status`).
    pub fn running(&self) -> bool {
        self.pg_ctl()
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Stops the server at once (a scratch copy: nothing of it is kept).
    pub fn stop(&self) -> Result<()> {
        let out = self
            .pg_ctl()
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .map_err(|e| Error::External(format!("pg_ctl: {e}")))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(Error::External(format!(
                "pg_ctl stop: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }
}
