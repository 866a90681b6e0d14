//! `cofre schedule install|remove|status`: the systemd timer (or crontab line) that calls
//! `cofre run`, and what each set's schedule did last and does next.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Context;
use crate::catalog::{self, sync};
use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::run::units::{self, Every};
use crate::run::{self as runner, state};

pub struct ScheduleOptions {
    /// Print a crontab line instead of writing systemd units.
    pub cron: bool,
    /// Write the units here and leave systemctl alone (packaging, tests).
    pub dir: Option<PathBuf>,
    pub every: Every,
    /// Unit name (`cofre` → cofre.service, cofre.timer).
    pub name: String,
}

fn root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Where systemd looks for this user's units.
fn unit_dir() -> PathBuf {
    if root() {
        return PathBuf::from("/etc/systemd/system");
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("systemd/user")
}

fn systemctl(args: &[&str]) -> Result<()> {
    let mut cmd = std::process::Command::new("systemctl");
    if !root() {
        cmd.arg("--user");
    }
    let what = format!("systemctl {}", args.join(" "));
    let status = cmd.args(args).status().map_err(|e| {
        Error::InvalidArgument(format!(
            "{what}: {e}; without systemd use `cofre schedule install --cron`"
        ))
    })?;
    if !status.success() {
        return Err(Error::InvalidArgument(format!(
            "{what} failed ({status}); the unit files stay in {} (remove them with `cofre schedule remove`)",
            unit_dir().display()
        )));
    }
    Ok(())
}

/// The configuration file the timer will use: it must exist and be valid now.
fn config_file(explicit: Option<&Path>) -> Result<PathBuf> {
    let Some((path, _)) = config::load(explicit)? else {
        return Err(Error::InvalidArgument(format!(
            "no configuration file at {} (give --config FILE; see docs/config.md)",
            config::default_path().display()
        )));
    };
    std::fs::canonicalize(&path).map_err(|e| Error::io(&path, e))
}

pub fn install(explicit: Option<&Path>, o: &ScheduleOptions) -> Result<i32> {
    let cfg = config_file(explicit)?;
    let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
    if o.cron {
        println!("{}", units::cron_line(&exe, &cfg, o.every));
        return Ok(0);
    }
    let dir = o.dir.clone().unwrap_or_else(unit_dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let service = dir.join(format!("{}.service", o.name));
    let timer = dir.join(format!("{}.timer", o.name));
    crate::fsutil::write_atomic(&service, units::service(&exe, &cfg).as_bytes(), 0o644)?;
    crate::fsutil::write_atomic(&timer, units::timer(&o.name, o.every).as_bytes(), 0o644)?;
    println!("wrote {} and {}", service.display(), timer.display());
    if o.dir.is_none() {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", &format!("{}.timer", o.name)])?;
        println!(
            "enabled {}.timer: `cofre run` every {} (see `cofre schedule status`)",
            o.name,
            o.every.on_calendar()
        );
    }
    Ok(0)
}

pub fn remove(o: &ScheduleOptions) -> Result<i32> {
    let dir = o.dir.clone().unwrap_or_else(unit_dir);
    let timer_name = format!("{}.timer", o.name);
    if o.dir.is_none() && dir.join(&timer_name).exists() {
        systemctl(&["disable", "--now", &timer_name])?;
    }
    let mut removed = 0;
    for f in [timer_name, format!("{}.service", o.name)] {
        let p = dir.join(f);
        match std::fs::remove_file(&p) {
            Ok(()) => {
                println!("removed {}", p.display());
                removed += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    if removed == 0 {
        println!("no {}.timer or .service in {}", o.name, dir.display());
    } else if o.dir.is_none() {
        systemctl(&["daemon-reload"])?;
    }
    Ok(0)
}

#[derive(Serialize)]
struct Row {
    set: String,
    class: String,
    schedule: String,
    last_snapshot: Option<String>,
    last_run: Option<String>,
    result: Option<state::Outcome>,
    error: Option<String>,
    next_due: Option<String>,
}

pub fn status(ctx: &Context, file: Option<&Config>, now: Option<(i64, u32)>) -> Result<i32> {
    let Some(cfg) = file else {
        return Err(Error::InvalidArgument(format!(
            "cofre schedule status needs a configuration file ({} or --config FILE)",
            config::default_path().display()
        )));
    };
    let repo = ctx.open_repo()?;
    let cat = sync::open_synced(&ctx.catalog_path(&repo), &repo)?;
    let dir = catalog::cache_dir(&repo.config.id);
    let now = now.unwrap_or_else(crate::ingest::now).0;
    let fmt = |t: i64| crate::ingest::format_time((t, 0));
    let mut rows = Vec::new();
    for job in runner::jobs(cfg)? {
        let last = runner::latest(&cat, job.set, &job.tag)?.map(|s| s.manifest.time.0);
        let st = state::load(&dir, job.set).remove(&job.tag);
        rows.push(Row {
            set: job.set.to_string(),
            class: job.tag.clone(),
            schedule: job.schedule.describe(),
            last_snapshot: last.map(fmt),
            last_run: st.as_ref().map(|s| fmt(s.last_run)),
            result: st.as_ref().map(|s| s.outcome),
            error: st.and_then(|s| s.error),
            next_due: job.schedule.next(last, now).map(fmt),
        });
    }
    if ctx.json {
        ctx.print_json(&rows)?;
        return Ok(0);
    }
    println!(
        "{:<12} {:<8} {:<17} {:<20} {:<20} {:<8} NEXT DUE",
        "SET", "CLASS", "SCHEDULE", "LAST SNAPSHOT", "LAST RUN", "RESULT"
    );
    let short = |s: &Option<String>| {
        s.as_deref()
            .map_or("-".to_string(), |t| t[..19.min(t.len())].to_string())
    };
    for r in &rows {
        let result = r.result.map_or("-".to_string(), |o| {
            serde_json::to_value(o)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        });
        println!(
            "{:<12} {:<8} {:<17} {:<20} {:<20} {:<8} {}",
            r.set,
            r.class,
            r.schedule,
            short(&r.last_snapshot),
            short(&r.last_run),
            result,
            short(&r.next_due)
        );
        if let Some(e) = &r.error {
            println!("    last error: {e}");
        }
    }
    Ok(0)
}
