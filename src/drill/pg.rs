//! The PostgreSQL part of a drill: the set's dump, read from the mount, is restored into a
//! scratch database (`pg_restore` for custom-format dumps, `psql` for plain SQL), the
//! configured queries and command run against it, and the database is dropped — each step
//! timed. Uses the system's `psql`/`pg_restore` on `PATH`, as the users' runbook does.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::config::PgDrill;

#[derive(Debug, Serialize)]
pub struct Step {
    pub what: String,
    pub ok: bool,
    pub seconds: f64,
    /// First lines of the output (queries) or of the errors.
    pub output: String,
}

#[derive(Debug, Serialize)]
pub struct PgReport {
    pub database: String,
    pub format: &'static str,
    pub restore: Step,
    /// A point-in-time drill's WAL replay: from starting the server until it promoted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<Step>,
    /// A point-in-time drill: the recovered cluster's last replayed commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_to: Option<String>,
    /// The same, Unix seconds: what the drill's RPO is measured from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_unix: Option<i64>,
    pub checks: Vec<Step>,
    pub command: Option<Step>,
    pub passed: bool,
}

impl PgReport {
    /// A report whose first step is `restore`, nothing else done yet.
    pub(super) fn new(database: String, format: &'static str, restore: Step) -> PgReport {
        PgReport {
            database,
            format,
            restore,
            replay: None,
            recovered_to: None,
            recovered_unix: None,
            checks: Vec::new(),
            command: None,
            passed: false,
        }
    }
}

pub(super) fn run(what: String, cmd: &mut Command) -> Step {
    let t = Instant::now();
    let out = cmd.stdin(Stdio::null()).output();
    let seconds = t.elapsed().as_secs_f64();
    let first = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join("; ")
    };
    match out {
        Ok(o) if o.status.success() => Step {
            what,
            ok: true,
            seconds,
            output: first(&o.stdout),
        },
        Ok(o) => Step {
            what,
            ok: false,
            seconds,
            output: format!(
                "exit {}: {}",
                o.status.code().unwrap_or(-1),
                first(&o.stderr)
            ),
        },
        Err(e) => Step {
            what,
            ok: false,
            seconds,
            output: e.to_string(),
        },
    }
}

/// Killed with the drill (`dies_with_drill`): a killed drill's restore does not go on
/// writing into the production server.
fn psql(conn: &str) -> Command {
    let mut c = super::dies_with_drill(Command::new("psql"), libc::SIGKILL);
    c.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conn]);
    c
}

/// Restores `dump` (a file in the mounted snapshot) into a new database on `cfg.dsn`,
/// checks it, and drops it.
pub fn drill(dump: &Path, set: &str, cfg: &PgDrill) -> PgReport {
    let safe: String = set
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let db = format!("cofre_drill_{safe}_{}", std::process::id());
    let admin = format!("{} dbname=postgres", cfg.dsn);
    let conn = format!("{} dbname={db}", cfg.dsn);
    let mut head = [0u8; 5];
    let custom = std::fs::File::open(dump)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == b"PGDMP";
    let create = run(
        format!("CREATE DATABASE {db}"),
        psql(&admin).args(["-c", &format!("CREATE DATABASE \"{db}\"")]),
    );
    let format = match custom {
        true => "custom (pg_restore)",
        false => "plain (psql)",
    };
    let mut report = PgReport::new(db.clone(), format, create);
    if !report.restore.ok {
        return report;
    }
    report.restore = if custom {
        run(
            format!("pg_restore {}", dump.display()),
            super::dies_with_drill(Command::new("pg_restore"), libc::SIGKILL)
                .args([
                    "--exit-on-error",
                    "--no-owner",
                    "--no-privileges",
                    "-d",
                    &conn,
                ])
                .arg(dump),
        )
    } else {
        run(
            format!("psql -f {}", dump.display()),
            psql(&conn).arg("-f").arg(dump),
        )
    };
    if report.restore.ok {
        for q in &cfg.checks {
            report
                .checks
                .push(run(q.clone(), psql(&conn).args(["-c", q])));
        }
        if let Some(cmd) = &cfg.command {
            report.command = Some(run(
                cmd.clone(),
                Command::new("sh")
                    .args(["-c", cmd])
                    .env("PGDATABASE", &db)
                    .env("COFRE_DRILL_DSN", &conn),
            ));
        }
    }
    let dropped = run(
        format!("DROP DATABASE {db}"),
        psql(&admin).args(["-c", &format!("DROP DATABASE IF EXISTS \"{db}\"")]),
    );
    if !dropped.ok {
        tracing::warn!("scratch database {db} not dropped: {}", dropped.output);
    }
    report.passed = report.restore.ok
        && report.checks.iter().all(|c| c.ok)
        && report.command.as_ref().is_none_or(|c| c.ok);
    report
}
