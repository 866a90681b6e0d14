//! The configuration file (TOML): repository, password source, backup sets with their
//! schedules, retention, storage classes, hooks and notifications. Parsing and validation
//! only; `docs/config.md` documents every key. Unknown keys are errors.
//!
//! Precedence, decided in `resolve` only: command-line flags and `COFRE_*` variables, then
//! this file, then built-in defaults.

mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use schedule::Schedule;

use crate::error::{Error, Result};
use crate::forget::policy::{Policy, Span};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub repository: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub catalog: Option<PathBuf>,
    /// Prometheus textfile-collector output.
    pub metrics_file: Option<PathBuf>,
    #[serde(default)]
    pub notify: Notify,
    /// Hooks for every set (a set's own hooks run too).
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub sets: BTreeMap<String, SetConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    #[serde(default)]
    pub webhook: Vec<String>,
    /// When to send webhooks: "failure", "success".
    #[serde(default = "failure_only")]
    pub on: Vec<NotifyOn>,
    /// Healthchecks-style URL: `/start`, success, `/fail`.
    pub ping: Option<String>,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            webhook: Vec::new(),
            on: failure_only(),
            ping: None,
        }
    }
}

fn failure_only() -> Vec<NotifyOn> {
    vec![NotifyOn::Failure]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    Failure,
    Success,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    pub before: Option<String>,
    pub after: Option<String>,
    pub failure: Option<String>,
}

/// Retention, with restic's names (`forget --keep-*`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    #[serde(default)]
    pub last: u32,
    #[serde(default)]
    pub hourly: u32,
    #[serde(default)]
    pub daily: u32,
    #[serde(default)]
    pub weekly: u32,
    #[serde(default)]
    pub monthly: u32,
    #[serde(default)]
    pub yearly: u32,
    pub within: Option<String>,
    pub within_hourly: Option<String>,
    pub within_daily: Option<String>,
    pub within_weekly: Option<String>,
    pub within_monthly: Option<String>,
    pub within_yearly: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Keep {
    pub fn policy(&self) -> std::result::Result<Policy, String> {
        let span = |s: &Option<String>| {
            s.as_deref()
                .map(Span::parse)
                .transpose()
                .map(Option::unwrap_or_default)
        };
        Ok(Policy {
            last: self.last,
            hourly: self.hourly,
            daily: self.daily,
            weekly: self.weekly,
            monthly: self.monthly,
            yearly: self.yearly,
            within: span(&self.within)?,
            within_hourly: span(&self.within_hourly)?,
            within_daily: span(&self.within_daily)?,
            within_weekly: span(&self.within_weekly)?,
            within_monthly: span(&self.within_monthly)?,
            within_yearly: span(&self.within_yearly)?,
            tags: self
                .tags
                .iter()
                .map(|t| t.split(',').map(str::to_string).collect())
                .collect(),
        })
    }
}

/// What a set (or a class of it) snapshots and when. (Unknown keys are checked by hand in
/// `parse`: serde's `deny_unknown_fields` does not work through `flatten`.)
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ClassConfig {
    /// "4h", "1d", "30m": the snapshot is due this long after the last one.
    pub every: Option<String>,
    /// "02:00" (daily) or "Sun 02:00" (weekly), UTC.
    pub at: Option<String>,
    pub keep: Option<Keep>,
    pub storage_class: Option<String>,
    /// Run prune after this class's forget.
    pub prune: Option<bool>,
    #[serde(default)]
    pub hooks: Hooks,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SetConfig {
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// A shell command whose standard output is stored as one file (`stdin_name`).
    pub command: Option<String>,
    pub stdin_name: Option<String>,
    #[serde(flatten)]
    pub main: ClassConfig,
    /// Further classes of the set (`[sets.db.weekly]`): their own schedule, retention and
    /// storage class; same sources. Tagged with the class name.
    #[serde(skip_deserializing)]
    pub classes: BTreeMap<String, ClassConfig>,
}

const CLASS_KEYS: &[&str] = &["every", "at", "keep", "storage_class", "prune", "hooks"];
const SET_KEYS: &[&str] = &[
    "paths",
    "exclude",
    "command",
    "stdin_name",
    "every",
    "at",
    "keep",
    "storage_class",
    "prune",
    "hooks",
];

/// Where the file is looked for when neither `--config` nor `COFRE_CONFIG` names one.
pub fn default_path() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/etc/cofre/cofre.toml");
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("cofre/cofre.toml")
}

fn invalid(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{}: {msg}", path.display()))
}

/// Parses and validates `text` (read from `path`, for messages).
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let mut doc: toml::Table = text.parse().map_err(|e| invalid(path, e))?;
    // Classes are sub-tables of a set whose name is not a set key: take them out first, so
    // that everything left is checked strictly (unknown keys are errors).
    let mut classes: BTreeMap<String, BTreeMap<String, toml::Table>> = BTreeMap::new();
    if let Some(toml::Value::Table(sets)) = doc.get_mut("sets") {
        for (set, value) in sets.iter_mut() {
            let toml::Value::Table(t) = value else {
                return Err(invalid(
                    path,
                    format!("sets.{set} must be a table ([sets.{set}])"),
                ));
            };
            let names: Vec<String> = t
                .iter()
                .filter(|(k, v)| !SET_KEYS.contains(&k.as_str()) && v.is_table())
                .map(|(k, _)| k.clone())
                .collect();
            for n in names {
                if let Some(toml::Value::Table(c)) = t.remove(&n) {
                    classes.entry(set.clone()).or_default().insert(n, c);
                }
            }
            if let Some(k) = t.keys().find(|k| !SET_KEYS.contains(&k.as_str())) {
                return Err(invalid(
                    path,
                    format!(
                        "unknown key `{k}` in [sets.{set}] (expected one of {})",
                        SET_KEYS.join(", ")
                    ),
                ));
            }
        }
    }
    let mut cfg: Config = toml::Value::Table(doc)
        .try_into()
        .map_err(|e: toml::de::Error| invalid(path, e.message()))?;
    for (set, cls) in classes {
        for (name, table) in cls {
            if let Some(k) = table.keys().find(|k| !CLASS_KEYS.contains(&k.as_str())) {
                return Err(invalid(
                    path,
                    format!(
                        "unknown key `{k}` in [sets.{set}.{name}] (expected one of {})",
                        CLASS_KEYS.join(", ")
                    ),
                ));
            }
            let c: ClassConfig =
                toml::Value::Table(table)
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        invalid(path, format!("[sets.{set}.{name}]: {}", e.message()))
                    })?;
            if let Some(s) = cfg.sets.get_mut(&set) {
                s.classes.insert(name, c);
            }
        }
    }
    validate(&cfg).map_err(|e| invalid(path, e))?;
    Ok(cfg)
}

/// Checks what the types cannot: sources, schedules, spans, a line per problem.
fn validate(cfg: &Config) -> std::result::Result<(), String> {
    for (name, set) in &cfg.sets {
        match (set.paths.is_empty(), &set.command) {
            (true, None) => return Err(format!("[sets.{name}]: give `paths` or `command`")),
            (false, Some(_)) => {
                return Err(format!(
                    "[sets.{name}]: give `paths` or `command`, not both"
                ))
            }
            _ => {}
        }
        if set.command.is_some() && set.stdin_name.is_none() {
            return Err(format!("[sets.{name}]: `command` needs `stdin_name`, the file name its output is stored as"));
        }
        let classes = std::iter::once((String::new(), &set.main))
            .chain(set.classes.iter().map(|(n, c)| (format!(".{n}"), c)));
        for (suffix, class) in classes {
            let at = format!("[sets.{name}{suffix}]");
            Schedule::from_config(class.every.as_deref(), class.at.as_deref())
                .map_err(|e| format!("{at}: {e}"))?;
            if let Some(k) = &class.keep {
                k.policy().map_err(|e| format!("{at} keep: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Reads the file: `explicit` (from `--config` or `COFRE_CONFIG`) must exist; the default
/// location may be absent (then None).
pub fn load(explicit: Option<&Path>) -> Result<Option<(PathBuf, Config)>> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (default_path(), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path.clone(), parse(&text, &path)?))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Flags and environment over the file: the one place precedence is decided.
pub fn resolve<T: Clone>(flag: Option<T>, file: Option<&T>) -> Option<T> {
    flag.or_else(|| file.cloned())
}

#[cfg(test)]
mod tests;
