//! The drill of a set whose WAL is archived (`wal = true`, `pg_drill.to`): point-in-time
//! recovery into a scratch cluster, to the end of the archive or to a time before the
//! drill, as `cofre pitr --start` does it after an incident; then the set's checks and
//! command against the recovered cluster, which is stopped and removed. The report says how
//! long restoring the base backup and replaying the WAL took, and what the recovered
//! cluster's last transaction is.

use std::path::Path;
use std::time::{Duration, Instant};

use super::pg::{run, PgReport, Step};
use super::MountCommand;
use crate::config::PgDrill;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::wal::names::{Kind, WalName};
use crate::wal::server::Server;
use crate::wal::{PitrOptions, Target};

/// How long replay may take before the drill gives up on it.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

pub struct PitrDrill<'a> {
    pub session: &'a Session,
    pub set: &'a str,
    pub cfg: &'a PgDrill,
    pub mc: &'a MountCommand,
    /// The drill's private scratch directory (the socket goes here: its path is short).
    pub scratch: &'a Path,
    pub now: i64,
}

/// The mount child's global options as text, for `restore_command` (its paths are
/// absolute already: the server runs it in its data directory).
fn globals(mc: &MountCommand) -> Result<Vec<String>> {
    mc.args
        .iter()
        .map(|a| {
            a.to_str().map(str::to_string).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{a:?}: a restore_command is text; give the repository, catalog and \
                     password file as UTF-8 paths"
                ))
            })
        })
        .collect()
}

fn failed(what: String, seconds: f64, e: impl std::fmt::Display) -> Step {
    Step {
        what,
        ok: false,
        seconds,
        output: e.to_string(),
    }
}

/// What the server's log says went wrong (its FATAL and PANIC lines, else its last lines),
/// for a replay that failed: the log goes with the scratch directory.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let fatal: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("FATAL:") || l.contains("PANIC:"))
        .collect();
    match fatal.is_empty() {
        true => lines[lines.len().saturating_sub(3)..].join("; "),
        false => fatal[fatal.len().saturating_sub(3)..].join("; "),
    }
}

impl PitrDrill<'_> {
    /// The timeline the cluster archives on now: that of the segment pushed last. Replay
    /// follows it, not PostgreSQL's "latest" (the highest timeline in the archive), which
    /// may be a restored copy's that archived into the set for a while.
    fn live_timeline(&self) -> Result<Option<String>> {
        let files = self.session.wal_files(self.set)?;
        let newest = files
            .iter()
            .filter_map(|l| Some((l.entry.pushed, WalName::parse(&l.entry.name)?)))
            .filter(|(_, n)| n.kind() == Kind::Segment)
            .max();
        Ok(newest.map(|(_, n)| n.timeline().to_string()))
    }

    pub fn run(&self) -> PgReport {
        let database = self.cfg.database.clone().unwrap_or("postgres".into());
        let mut report = PgReport::new(
            database.clone(),
            "pitr (base backup + WAL)",
            failed("pitr".into(), 0.0, "not started"),
        );
        let data = self.scratch.join(format!("pitr-{}", self.set));
        let t = Instant::now();
        let restored = self.restore(&data);
        let seconds = t.elapsed().as_secs_f64();
        report.restore = match restored {
            Ok(what) => Step {
                what,
                ok: true,
                seconds,
                output: String::new(),
            },
            Err(e) => {
                report.restore = failed("pitr".into(), seconds, e);
                return report;
            }
        };
        let server = Server {
            data: &data,
            socket_dir: self.scratch,
            port: 5432,
            pg_bin: None,
            env: &self.mc.env,
            scratch: true,
        };
        let t = Instant::now();
        let replay = server.start_and_wait(REPLAY_TIMEOUT);
        let seconds = t.elapsed().as_secs_f64();
        let replayed_ok = replay.is_ok();
        report.replay = Some(match replay {
            Ok(s) => Step {
                what: "replay WAL (pg_ctl start, until promoted)".into(),
                ok: true,
                seconds: s,
                output: String::new(),
            },
            Err(e) => failed(
                "replay WAL".into(),
                seconds,
                format!("{e}: {}", log_tail(&server.log())),
            ),
        });
        if replayed_ok {
            let last = server.query(
                &database,
                "select pg_last_xact_replay_timestamp()::text || '|' || \
                 extract(epoch from pg_last_xact_replay_timestamp())::bigint",
            );
            if let Some((text, epoch)) = last.ok().as_deref().and_then(|l| l.split_once('|')) {
                report.recovered_to = Some(text.to_string());
                report.recovered_unix = epoch.parse().ok();
            }
            for q in &self.cfg.checks {
                let step = run(q.clone(), server.psql(&database).args(["-c", q]));
                report.checks.push(step);
            }
            if let Some(cmd) = &self.cfg.command {
                report.command = Some(run(
                    cmd.clone(),
                    std::process::Command::new("sh")
                        .args(["-c", cmd])
                        .env("PGHOST", self.scratch)
                        .env("PGPORT", server.port.to_string())
                        .env("PGDATABASE", &database)
                        .env("COFRE_DRILL_DSN", server.dsn(&database)),
                ));
            }
        }
        // pg_ctl may have started the server even when waiting failed: stop it either way.
        if let Err(e) = server.stop() {
            if server.running() {
                tracing::error!(
                    "the drill's scratch cluster in {} is still running: {e}",
                    data.display()
                );
            }
        }
        report.passed = report.restore.ok
            && report.replay.as_ref().is_some_and(|r| r.ok)
            && report.checks.iter().all(|c| c.ok)
            && report.command.as_ref().is_none_or(|c| c.ok);
        report
    }

    /// Restores the base backup into `data` with the recovery settings; what it did.
    fn restore(&self, data: &Path) -> Result<String> {
        let to = self.cfg.to.as_deref().unwrap_or("latest");
        let ago = crate::config::parse_drill_to(to).map_err(Error::InvalidArgument)?;
        let target = match ago {
            None => Target::Latest,
            Some(secs) => Target::Time(self.now - secs as i64, 0),
        };
        let restore_command =
            crate::wal::pitr::restore_command(&self.mc.exe, &globals(self.mc)?, self.set);
        let opts = PitrOptions {
            set: self.set.to_string(),
            to: target.clone(),
            target: data.to_path_buf(),
            timeline: self.live_timeline()?,
            restore_command,
            keep_archiving: false,
        };
        let r = self.session.pitr(&opts)?;
        Ok(format!(
            "pitr: base backup {} to {}",
            &r.base_backup.snapshot[..8],
            crate::wal::pitr::describe(&target)
        ))
    }
}
