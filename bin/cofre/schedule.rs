//! `cofre schedule install|remove|status`: the systemd timer (or crontab line) that calls
//! `cofre run`, and what each set's schedule did last and does next.

use std::path::PathBuf;

use clap::Subcommand;
use cofre::error::{Error, Result};
use cofre::Every;
use cofre::{ScheduleOptions, UnitStep};

use crate::Ctx;

#[derive(clap::Args)]
pub struct UnitArgs {
    /// Unit name: NAME.service and NAME.timer [default: cofre, or cofre-serve with --serve].
    #[arg(long)]
    name: Option<String>,
    /// The always-running `cofre serve` service (NAME.service) instead of the timer.
    #[arg(long)]
    serve: bool,
    /// Write or remove the units in this directory and leave systemctl alone.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Write and enable a systemd service + timer (Persistent=true) that calls `cofre run`.
    Install {
        #[command(flatten)]
        unit: UnitArgs,
        /// How often the timer starts `cofre run` (minutes dividing an hour, or hours).
        #[arg(long, default_value = "15m", value_parser = Every::parse)]
        every: Every,
        /// Print a crontab line instead.
        #[arg(long)]
        cron: bool,
    },
    /// Disable and delete the units.
    Remove {
        #[command(flatten)]
        unit: UnitArgs,
    },
    /// Each set's schedule: last snapshot, last run and its result, next due time.
    Status {
        /// Say what is due at this time (RFC 3339) instead of now.
        #[arg(long)]
        now: Option<String>,
    },
}

fn options(unit: UnitArgs, every: Every, cron: bool) -> ScheduleOptions {
    let default = if unit.serve { "cofre-serve" } else { "cofre" };
    ScheduleOptions {
        cron,
        dir: unit.dir,
        every,
        name: unit.name.unwrap_or_else(|| default.into()),
        serve: unit.serve,
    }
}

/// Each step on its own line, as it happens.
fn tell(step: UnitStep) {
    match step {
        UnitStep::Cron(line) => println!("{line}"),
        UnitStep::Wrote { service, timer } => {
            println!("wrote {} and {}", service.display(), timer.display())
        }
        UnitStep::Enabled { name, on_calendar } => println!(
            "enabled {name}.timer: `cofre run` every {on_calendar} (see `cofre schedule status`)"
        ),
        UnitStep::WroteServe(p) => println!("wrote {}", p.display()),
        UnitStep::Serving(unit) => println!("enabled and started {unit} (`cofre serve`)"),
        UnitStep::Removed(p) => println!("removed {}", p.display()),
        UnitStep::NothingIn { name, dir } => {
            println!("no {name}.timer or .service in {}", dir.display())
        }
    }
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Install { unit, every, cron } => {
            let o = options(unit, every, cron);
            cofre::install_schedule(ctx.config_path.as_deref(), &o, &mut tell)?;
        }
        Cmd::Remove { unit } => {
            let o = options(unit, Every::DEFAULT, false);
            cofre::remove_schedule(&o, &mut tell)?;
        }
        Cmd::Status { now } => return status(ctx, now),
    }
    Ok(0)
}

fn status(ctx: &Ctx, now: Option<String>) -> Result<i32> {
    let Some(cfg) = ctx.file.as_ref() else {
        return Err(Error::InvalidArgument(format!(
            "cofre schedule status needs a configuration file ({} or --config FILE)",
            cofre::default_config_path().display()
        )));
    };
    let now = now
        .as_deref()
        .map(|t| crate::parse_time("--now", t))
        .transpose()?;
    let rows = ctx.session()?.schedule_status(cfg, now)?;
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
            r.lag_snapshots
                .map_or_else(|| short(&r.next_due), |n| format!("{n} snapshot(s) behind"))
        );
        if let Some(e) = &r.error {
            println!("    last error: {e}");
        }
    }
    Ok(0)
}
