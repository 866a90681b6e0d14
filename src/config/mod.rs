//! The configuration file (TOML): repository, password source, backup sets with their
//! schedules, retention, storage classes, hooks and notifications. Parsing and validation
//! only; `docs/config.md` documents every key. Unknown keys are errors.
//!
//! Precedence, decided in `resolve` only: command-line flags and `COFRE_*` variables, then
//! this file, then built-in defaults.

mod locate;
mod schedule;
mod serve;

use locate::{key, Seg};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use schedule::Schedule;
pub use serve::{valid_user_name, Role, Serve, User as ServeUser, USER_NAME_RULE};

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
    /// Whose prices `cofre stats` applies: aws, b2, wasabi, gcs, local.
    pub provider: Option<String>,
    /// A TOML price table overriding the built-in one (docs/stats.md).
    pub prices: Option<PathBuf>,
    #[serde(default)]
    pub notify: Notify,
    /// Hooks for every set (a set's own hooks run too).
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub serve: Serve,
    /// Repositories every set is copied to after its snapshots (`cofre copy`), each made
    /// with `init --copy-params-from` this one; a set's own `copy_to` replaces this list.
    #[serde(default)]
    pub copy_to: Vec<String>,
    /// The password of the `copy_to` repositories (default: this repository's own).
    pub copy_password_file: Option<PathBuf>,
    pub copy_password_command: Option<String>,
    /// Scheduled verification by `cofre run` (docs/config.md, `[check]`).
    pub check: Option<CheckConfig>,
    /// Read by hand in `parse` (a set's tables are its classes).
    #[serde(default, skip_deserializing)]
    pub sets: BTreeMap<String, SetConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    #[serde(default)]
    pub webhook: Vec<Webhook>,
    /// When to send webhooks: "failure", "success".
    #[serde(default = "failure_only")]
    pub on: Vec<NotifyOn>,
    /// Healthchecks-style URL: `/start`, then the URL itself on success or `/<exit code>`.
    pub ping: Option<String>,
    /// Each request's time limit; a notifier that hangs never holds up or fails a backup.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            webhook: Vec::new(),
            on: failure_only(),
            ping: None,
            timeout_seconds: default_timeout(),
        }
    }
}

fn default_timeout() -> u64 {
    10
}

/// A webhook: a URL (Slack-compatible body), or `{ url = "...", format = "json" }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Webhook {
    Url(String),
    Full {
        url: String,
        #[serde(default)]
        format: WebhookFormat,
    },
}

impl Webhook {
    pub fn url(&self) -> &str {
        match self {
            Webhook::Url(u) | Webhook::Full { url: u, .. } => u,
        }
    }

    pub fn format(&self) -> WebhookFormat {
        match self {
            Webhook::Url(_) => WebhookFormat::Slack,
            Webhook::Full { format, .. } => *format,
        }
    }
}

/// `slack`: `{"text": ...}` as Slack, Mattermost, Rocket.Chat and Teams workflows take;
/// `json`: the run's whole result (docs/monitoring.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Slack,
    Json,
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

/// `[check]`: `cofre run` verifies the repository (and its `copy_to` targets) on this
/// schedule, reading `read_data` of the packs each time.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    pub every: Option<String>,
    pub at: Option<String>,
    /// `"1/30"`: a thirtieth of the packs a run, in turn, so each is read once per 30 runs;
    /// `"all"`, `"none"` (structure only), `"10%"`, `"500M"`. Default `"none"`.
    pub read_data: Option<String>,
    /// Check the `copy_to` targets too (default true).
    pub copies: Option<bool>,
    #[serde(skip)]
    pub schedule: Schedule,
    /// `read_data` parsed when the file is loaded.
    #[serde(skip)]
    pub read: crate::check::ReadData,
}

/// When a set (or a class of it) snapshots, what it keeps, where it stores.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    /// "4h", "1d", "30m": the snapshot is due this long after the last one.
    pub every: Option<String>,
    /// "02:00" (daily) or "Sun 02:00" (weekly), UTC.
    pub at: Option<String>,
    pub keep: Option<Keep>,
    pub storage_class: Option<String>,
    /// Deduplicate only within `storage_class`'s own snapshots, never against hotter data
    /// (default: true for archive classes, GLACIER and DEEP_ARCHIVE). docs/s3.md.
    pub self_contained: Option<bool>,
    /// Run prune after this class's forget.
    pub prune: Option<bool>,
    #[serde(default)]
    pub hooks: Hooks,
    /// `every`/`at` parsed, once, when the file is loaded.
    #[serde(skip)]
    pub schedule: Schedule,
    /// `keep` parsed, once, when the file is loaded.
    #[serde(skip)]
    pub policy: Option<Policy>,
}

/// A set's own keys (those of `[sets.NAME]` that are not its main class's): what it
/// stores, how it is compressed, its own ping.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// A shell command whose standard output is stored as one file (`stdin_name`).
    pub command: Option<String>,
    pub stdin_name: Option<String>,
    /// A Healthchecks-style URL for this set alone (`/start`, success, `/<exit code>`).
    pub ping: Option<String>,
    /// Compression of this set's new blobs (default: the repository's).
    pub compression: Option<crate::repo::compress::Compression>,
    /// Changed chunks stored as deltas against the previous version (default true).
    pub delta: Option<bool>,
    /// Recovery targets `cofre drill` checks: time to get the set back, and the newest
    /// snapshot's greatest acceptable age ("30m", "4h").
    pub rto: Option<String>,
    pub rpo: Option<String>,
    /// `cofre drill` also restores this set's `pg_dump` into a scratch database.
    pub pg_drill: Option<PgDrill>,
    /// `cofre run` drills the set when its last drill here is this old ("30d").
    pub drill_every: Option<String>,
    /// Where `cofre run` copies the set's snapshots (replaces the file's `copy_to`; `[]`
    /// copies it nowhere).
    pub copy_to: Option<Vec<String>>,
    /// The set's PostgreSQL cluster archives its WAL into the repository (`archive_command
    /// = 'cofre wal-push --set NAME %p'`); its snapshots are base backups (docs/pitr.md).
    pub wal: Option<bool>,
    /// Where `wal-push` keeps WAL until it is flushed (default
    /// `$XDG_STATE_HOME/cofre/wal/NAME`, i.e. `~/.local/state/cofre/wal/NAME`).
    pub wal_spool: Option<PathBuf>,
    /// How long a WAL file waits in the spool at most ("60s", the default); "0s" stores
    /// every file in the repository before `wal-push` returns.
    pub wal_flush: Option<String>,
    #[serde(skip)]
    pub wal_flush_secs: Option<u64>,
    /// `rto`, `rpo` and `drill_every` in seconds, parsed once when the file is loaded.
    #[serde(skip)]
    pub rto_secs: Option<u64>,
    #[serde(skip)]
    pub rpo_secs: Option<u64>,
    #[serde(skip)]
    pub drill_every_secs: Option<u64>,
}

/// The PostgreSQL part of a set's drill: where to restore, what to check.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgDrill {
    /// libpq connection string of a server the drill may create and drop a database on
    /// ("host=/var/run/postgresql user=postgres"); the scratch database's name is added.
    /// Not used with `to`.
    #[serde(default)]
    pub dsn: String,
    /// A set with `wal = true` is drilled by point-in-time recovery instead: `latest` (the
    /// end of the archive) or `-1h` (that long before the drill), replayed into a scratch
    /// cluster the drill starts, checks, and stops (docs/pitr.md "Drill").
    pub to: Option<String>,
    /// The database of the restored cluster the checks and command run in (with `to`;
    /// default `postgres`).
    pub database: Option<String>,
    /// Queries that must succeed on the restored database (`SELECT 1 FROM orders LIMIT 1`).
    #[serde(default)]
    pub checks: Vec<String>,
    /// A command run against it (e.g. the application's tests), with `PGDATABASE` and
    /// `COFRE_DRILL_DSN` set; it must exit 0.
    pub command: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct SetConfig {
    #[serde(flatten)]
    pub src: Sources,
    #[serde(flatten)]
    pub main: ClassConfig,
    /// Further classes of the set (`[sets.db.weekly]`): their own schedule, retention and
    /// storage class; same sources. Tagged with the class name.
    pub classes: BTreeMap<String, ClassConfig>,
}

/// The keys of `[sets.NAME]` that belong to the set itself (`Sources`).
const SOURCE_KEYS: &[&str] = &[
    "paths",
    "exclude",
    "command",
    "stdin_name",
    "ping",
    "compression",
    "delta",
    "rto",
    "rpo",
    "pg_drill",
    "drill_every",
    "copy_to",
    "wal",
    "wal_spool",
    "wal_flush",
];
/// The keys of a class table (and of a set's main class, beside its sources).
const CLASS_KEYS: &[&str] = &[
    "every",
    "at",
    "keep",
    "storage_class",
    "self_contained",
    "prune",
    "hooks",
];

impl Config {
    /// The repositories `set`'s snapshots are copied to: its own `copy_to`, else the file's.
    pub fn copy_targets(&self, set: &str) -> &[String] {
        self.sets
            .get(set)
            .and_then(|s| s.src.copy_to.as_deref())
            .unwrap_or(&self.copy_to)
    }
}

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

/// An error at a key of the file: "FILE:LINE: KEY: what".
fn invalid_at(path: &Path, text: &str, keys: &[Seg], msg: impl std::fmt::Display) -> Error {
    let line = locate::line_of(text, keys).map_or(String::new(), |l| format!(":{l}"));
    let key = if keys.is_empty() {
        String::new()
    } else {
        format!(" {}:", locate::display(keys))
    };
    Error::InvalidArgument(format!("{}{line}:{key} {msg}", path.display()))
}

/// Parses and validates `text` (read from `path`, for messages). Every error names the
/// line and the key.
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e.span().map_or(String::new(), |s| {
            format!(":{}", locate::line_at(text, s.start))
        });
        let msg = e.message().trim().replace('\n', " ");
        Error::InvalidArgument(format!("{}{line}: {msg}", path.display()))
    })?;
    let err = |keys: &[Seg], msg: String| invalid_at(path, text, keys, msg);
    let sets = doc.remove("sets");
    let mut cfg: Config = typed(toml::Value::Table(doc), &[], &err)?;
    let sets = match sets {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(_) => return Err(err(&[key("sets")], "must be a table ([sets.NAME])".into())),
    };
    for (set, value) in sets {
        let here = [key("sets"), key(&set)];
        let toml::Value::Table(t) = value else {
            return Err(err(&here, format!("must be a table ([sets.{set}])")));
        };
        // A set's keys are its sources and its main class; its sub-tables other than
        // `keep` and `hooks` are further classes.
        let (mut src, mut main) = (toml::Table::new(), toml::Table::new());
        let mut classes = BTreeMap::new();
        for (k, v) in t {
            if CLASS_KEYS.contains(&k.as_str()) {
                main.insert(k, v);
            } else if SOURCE_KEYS.contains(&k.as_str()) {
                src.insert(k, v);
            } else if let toml::Value::Table(c) = v {
                let at = [key("sets"), key(&set), key(&k)];
                classes.insert(k, typed::<ClassConfig>(toml::Value::Table(c), &at, &err)?);
            } else {
                let all: Vec<&str> = SOURCE_KEYS.iter().chain(CLASS_KEYS).copied().collect();
                return Err(err(
                    &[key("sets"), key(&set), key(&k)],
                    format!(
                        "unknown key `{k}` in [sets.{set}] (expected one of {}, or a class table)",
                        all.join(", ")
                    ),
                ));
            }
        }
        let set_cfg = SetConfig {
            src: typed(toml::Value::Table(src), &here, &err)?,
            main: typed(toml::Value::Table(main), &here, &err)?,
            classes,
        };
        cfg.sets.insert(set, set_cfg);
    }
    validate(&mut cfg).map_err(|(keys, msg)| err(&keys, msg))?;
    Ok(cfg)
}

/// Deserializes `value` (found at `prefix` in the file), naming the key that failed.
fn typed<T: serde::de::DeserializeOwned>(
    value: toml::Value,
    prefix: &[Seg],
    err: &dyn Fn(&[Seg], String) -> Error,
) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut keys = prefix.to_vec();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Map { key: k } => keys.push(key(k)),
                serde_path_to_error::Segment::Seq { index } => keys.push(Seg::Index(*index)),
                _ => {}
            }
        }
        let mut msg = e.inner().message().to_string();
        if keys.len() == 1 && msg.starts_with("unknown field") {
            msg.push_str(", `sets`"); // read apart from the other top-level keys
        }
        let msg = msg.replace(
            "data did not match any variant of untagged enum Webhook",
            "expected a URL or { url = \"...\", format = \"slack\" | \"json\" }",
        );
        err(&keys, msg)
    })
}

/// A `copy_to` entry: a repository location cofre can open.
fn check_target(url: &str) -> std::result::Result<(), String> {
    crate::store::Location::parse(url, std::env::var_os("HOME"))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks what the types cannot: names, sources, schedules, spans; the key at fault. What
/// it parses (schedules, policies, durations) is kept in the typed fields beside the text,
/// so nothing after loading parses again or can fail to.
fn validate(cfg: &mut Config) -> std::result::Result<(), (Vec<Seg>, String)> {
    serve::validate(&cfg.serve)?;
    if let Some(c) = &mut cfg.check {
        let at = |k: &str| vec![key("check"), key(k)];
        c.schedule = Schedule::from_config(c.every.as_deref(), c.at.as_deref())
            .map_err(|e| (at(if c.every.is_some() { "every" } else { "at" }), e))?;
        if c.schedule == Schedule::Manual {
            return Err((vec![key("check")], "give `every` or `at`".into()));
        }
        c.read = match c.read_data.as_deref() {
            None | Some("none") => crate::check::ReadData::None,
            Some("all") => crate::check::ReadData::All,
            Some(s) => crate::check::ReadData::parse_subset(s).map_err(|e| (at("read_data"), e))?,
        };
    }
    for (i, url) in cfg.copy_to.iter().enumerate() {
        check_target(url).map_err(|e| (vec![key("copy_to"), Seg::Index(i)], e))?;
    }
    for (name, set) in &mut cfg.sets {
        let here = |k: &str| vec![key("sets"), key(name), key(k)];
        let table = vec![key("sets"), key(name)];
        let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if name.is_empty() || name.starts_with('.') || !name.chars().all(ok) {
            return Err((
                table,
                "a set name is letters, digits, `-`, `_` and `.` (not first)".into(),
            ));
        }
        match (set.src.paths.is_empty(), &set.src.command) {
            (true, None) => return Err((table, "give `paths` or `command`".into())),
            (false, Some(_)) => {
                return Err((
                    here("command"),
                    "give `paths` or `command`, not both".into(),
                ))
            }
            _ => {}
        }
        if set.src.command.is_some() && set.src.stdin_name.is_none() {
            return Err((
                here("command"),
                "`command` needs `stdin_name`, the file name its output is stored as".into(),
            ));
        }
        if let Some(pg) = &set.src.pg_drill {
            if let Some(to) = &pg.to {
                parse_drill_to(to).map_err(|e| (here("pg_drill"), format!("to: {e}")))?;
                if set.src.wal != Some(true) {
                    return Err((
                        here("pg_drill"),
                        "to: a point-in-time drill needs `wal = true` (the set's archived WAL)"
                            .into(),
                    ));
                }
            } else if pg.dsn.is_empty() {
                return Err((
                    here("pg_drill"),
                    "give `dsn` (a server to restore the dump into) or, with `wal = true`, `to` (a point in time)".into(),
                ));
            }
            if pg.dsn.contains("://") {
                return Err((
                    here("pg_drill"),
                    "dsn: give libpq's key=value form (\"host=/var/run/postgresql user=postgres\"); the drill adds dbname".into(),
                ));
            }
        }
        let secs = |k: &str, v: &Option<String>| {
            v.as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| (here(k), e))
        };
        set.src.rto_secs = secs("rto", &set.src.rto)?;
        set.src.rpo_secs = secs("rpo", &set.src.rpo)?;
        set.src.drill_every_secs = secs("drill_every", &set.src.drill_every)?;
        set.src.wal_flush_secs = secs("wal_flush", &set.src.wal_flush)?;
        for (i, url) in set.src.copy_to.iter().flatten().enumerate() {
            let mut at = here("copy_to");
            at.push(Seg::Index(i));
            check_target(url).map_err(|e| (at, e))?;
        }
        let classes = std::iter::once((None, &mut set.main))
            .chain(set.classes.iter_mut().map(|(n, c)| (Some(n), c)));
        for (class_name, class) in classes {
            let at = |k: &str| {
                let mut v = vec![key("sets"), key(name)];
                v.extend(class_name.map(|n| key(n)));
                v.push(key(k));
                v
            };
            class.schedule = Schedule::from_config(class.every.as_deref(), class.at.as_deref())
                .map_err(|e| {
                    let k = if class.at.is_some() && e.starts_with("at") {
                        "at"
                    } else {
                        "every"
                    };
                    (at(k), e)
                })?;
            class.policy = class
                .keep
                .as_ref()
                .map(|k| k.policy().map_err(|e| (at("keep"), e)))
                .transpose()?;
        }
    }
    for (i, w) in cfg.notify.webhook.iter().enumerate() {
        if !(w.url().starts_with("http://") || w.url().starts_with("https://")) {
            return Err((
                vec![key("notify"), key("webhook"), Seg::Index(i)],
                format!("{:?} is not an http:// or https:// URL", w.url()),
            ));
        }
    }
    let pings = std::iter::once((vec![key("notify"), key("ping")], &cfg.notify.ping)).chain(
        cfg.sets
            .iter()
            .map(|(n, s)| (vec![key("sets"), key(n), key("ping")], &s.src.ping)),
    );
    for (keys, url) in pings {
        if let Some(u) = url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err((keys, format!("{u:?} is not an http:// or https:// URL")));
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

/// A PITR drill's `to`: None for `latest`, else how many seconds before the drill (`-1h`).
pub fn parse_drill_to(s: &str) -> std::result::Result<Option<u64>, String> {
    match s {
        "latest" => Ok(None),
        _ => match s.strip_prefix('-') {
            Some(d) => parse_duration(d).map(Some),
            None => Err(format!(
                "{s:?}: latest, or how long before the drill (-1h, -30m)"
            )),
        },
    }
}

/// `90s`, `30m`, `4h`, `2d` → seconds.
pub fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit, e.g. 30m, 4h"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    Ok(n * mult)
}

/// Flags and environment over the file: the one place precedence is decided.
pub fn resolve<T: Clone>(flag: Option<T>, file: Option<&T>) -> Option<T> {
    flag.or_else(|| file.cloned())
}

#[cfg(test)]
mod tests;
