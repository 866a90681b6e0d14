//! `cofre schedule install|remove`: the systemd timer (or crontab line) that calls
//! `cofre run`.

use std::path::{Path, PathBuf};

use super::units::{self, Every};
use crate::config;
use crate::error::{Error, Result};

pub struct ScheduleOptions {
    /// Print a crontab line instead of writing systemd units.
    pub cron: bool,
    /// Write the units here and leave systemctl alone (packaging, tests).
    pub dir: Option<PathBuf>,
    pub every: Every,
    /// Unit name (`cofre` → cofre.service, cofre.timer; with `serve`, NAME.service only).
    pub name: String,
    /// The always-running `cofre serve` service instead of the timer of `cofre run`.
    pub serve: bool,
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
        Error::External(format!(
            "{what}: {e}; without systemd use `cofre schedule install --cron`"
        ))
    })?;
    if !status.success() {
        return Err(Error::External(format!(
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

/// What `install` and `remove` did, told as it happens (before a systemctl that may fail).
#[derive(Debug)]
pub enum UnitStep {
    /// The crontab line to add (nothing was written).
    Cron(String),
    /// Both unit files written.
    Wrote { service: PathBuf, timer: PathBuf },
    /// systemctl enabled and started the timer.
    Enabled { name: String, on_calendar: String },
    /// The `cofre serve` unit written.
    WroteServe(PathBuf),
    /// systemctl enabled and started `cofre serve`.
    Serving(String),
    /// A unit file deleted.
    Removed(PathBuf),
    /// No unit of this name to remove in this directory.
    NothingIn { name: String, dir: PathBuf },
}

/// Writes (and, without `dir`, enables) the units that call `cofre run`, or gives the
/// crontab line. The configuration file must exist and be valid now.
pub fn install(
    explicit: Option<&Path>,
    o: &ScheduleOptions,
    tell: &mut dyn FnMut(UnitStep),
) -> Result<()> {
    if o.serve && o.cron {
        return Err(Error::InvalidArgument(
            "--cron is for the timer: cofre serve runs as a service (drop --cron)".into(),
        ));
    }
    let cfg = config_file(explicit)?;
    let exe = crate::session::cofre_binary()?;
    if o.cron {
        tell(UnitStep::Cron(units::cron_line(&exe, &cfg, o.every)));
        return Ok(());
    }
    let dir = o.dir.clone().unwrap_or_else(unit_dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    if o.serve {
        return install_serve(&dir, &exe, &cfg, o, tell);
    }
    let service = dir.join(format!("{}.service", o.name));
    let timer = dir.join(format!("{}.timer", o.name));
    crate::fsutil::write_atomic(&service, units::service(&exe, &cfg).as_bytes(), 0o644)?;
    crate::fsutil::write_atomic(&timer, units::timer(&o.name, o.every).as_bytes(), 0o644)?;
    tell(UnitStep::Wrote { service, timer });
    if o.dir.is_none() {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", &format!("{}.timer", o.name)])?;
        tell(UnitStep::Enabled {
            name: o.name.clone(),
            on_calendar: o.every.on_calendar(),
        });
    }
    Ok(())
}

fn install_serve(
    dir: &Path,
    exe: &Path,
    cfg: &Path,
    o: &ScheduleOptions,
    tell: &mut dyn FnMut(UnitStep),
) -> Result<()> {
    // The server refuses to start without an account: say so now, not in the journal.
    if config::load(Some(cfg))?.is_some_and(|(_, c)| c.serve.users.is_empty()) {
        return Err(Error::InvalidArgument(
            "no one could log in: add a user with `cofre serve passwd USER --role admin` first"
                .into(),
        ));
    }
    let unit = format!("{}.service", o.name);
    let service = dir.join(&unit);
    crate::fsutil::write_atomic(&service, units::serve_service(exe, cfg).as_bytes(), 0o644)?;
    tell(UnitStep::WroteServe(service));
    if o.dir.is_none() {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", &unit])?;
        tell(UnitStep::Serving(unit));
    }
    Ok(())
}

/// Disables and deletes the units.
pub fn remove(o: &ScheduleOptions, tell: &mut dyn FnMut(UnitStep)) -> Result<()> {
    let dir = o.dir.clone().unwrap_or_else(unit_dir);
    // The unit systemctl stops: the timer, or the server itself.
    let started = match o.serve {
        true => format!("{}.service", o.name),
        false => format!("{}.timer", o.name),
    };
    if o.dir.is_none() && dir.join(&started).exists() {
        systemctl(&["disable", "--now", &started])?;
    }
    let mut files = vec![format!("{}.service", o.name)];
    if !o.serve {
        files.insert(0, format!("{}.timer", o.name));
    }
    let mut removed = 0;
    for f in files {
        let p = dir.join(f);
        match std::fs::remove_file(&p) {
            Ok(()) => {
                tell(UnitStep::Removed(p));
                removed += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    if removed == 0 {
        tell(UnitStep::NothingIn {
            name: o.name.clone(),
            dir,
        });
    } else if o.dir.is_none() {
        systemctl(&["daemon-reload"])?;
    }
    Ok(())
}
