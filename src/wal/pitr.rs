//! `cofre pitr`: a PostgreSQL data directory brought back to a point in time, from the
//! newest base backup of the set that ended before that point, with the settings that make
//! the server replay the set's archived WAL up to it (`restore_command` is `cofre
//! wal-fetch`).
//!
//! A base backup is a snapshot of the set holding one tar stream (`pg_basebackup -D - -Ft
//! -X none`). Its `backup_label` names the WAL file it starts in; the `.backup` history
//! file PostgreSQL archives when the backup ends (named after that start) says when it
//! ended. A backup is usable for a target only if it ended before it: replay must first
//! reach the backup's end to be consistent.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::index::WalIndex;
use super::names::{parse_lsn, WalName};
use super::object;
use crate::error::{Error, Result};
use crate::session::{Entry, Session, SnapshotInfo};

/// Where replay stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The end of the archive.
    Latest,
    /// Unix seconds (and nanoseconds), UTC.
    Time(i64, u32),
    /// A WAL location.
    Lsn(u64),
}

impl Target {
    /// `latest`, an RFC 3339 time, or an LSN `X/Y`.
    pub fn parse(s: &str) -> Result<Target> {
        if s == "latest" {
            return Ok(Target::Latest);
        }
        if let Some(l) = s.contains('/').then(|| parse_lsn(s)).flatten() {
            return Ok(Target::Lsn(l));
        }
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| {
                Error::InvalidArgument(format!(
                    "--to {s}: expected latest, an RFC 3339 time (2026-12-05T15:54:00Z) or an LSN (0/3000060)"
                ))
            })?;
        Ok(Target::Time(t.unix_timestamp(), t.nanosecond()))
    }
}

/// What a base backup's labels say.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BaseBackup {
    pub snapshot: String,
    pub snapshot_time: String,
    pub label: String,
    pub start_wal: String,
    pub start_lsn: String,
    pub stop_lsn: String,
    /// Unix seconds (None: written in a time zone cofre cannot read).
    pub stop_time: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PitrOptions {
    pub set: String,
    pub to: Target,
    pub target: PathBuf,
    pub timeline: Option<String>,
    /// The shell command PostgreSQL runs to fetch WAL (`cofre ... wal-fetch --set S %f %p`).
    pub restore_command: String,
    /// Leave the backed-up cluster's `archive_mode` as it was (default: off in the
    /// restored cluster, so a scratch copy never archives into the production set).
    pub keep_archiving: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct PitrReport {
    pub base_backup: BaseBackup,
    pub target: String,
    pub data_directory: PathBuf,
    pub seconds_restoring: f64,
    pub bytes: u64,
}

/// A time PostgreSQL wrote in a label ("2026-12-05 22:00:01 UTC"): only UTC/GMT or a
/// numeric offset can be read without the zone database.
fn pg_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (dt, zone) = s.rsplit_once(' ')?;
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let naive = time::PrimitiveDateTime::parse(dt, &fmt).ok()?;
    let offset_secs = match zone {
        "UTC" | "GMT" | "Z" => 0,
        z if z.starts_with('+') || z.starts_with('-') => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let d = &z[1..];
            let (h, m) = match d.split_once(':') {
                Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
                None if d.len() == 4 => (d[..2].parse().ok()?, d[2..].parse().ok()?),
                None => (d.parse().ok()?, 0),
            };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let off = time::UtcOffset::from_whole_seconds(offset_secs).ok()?;
    Some(naive.assume_offset(off).unix_timestamp())
}

/// `KEY: value` lines of a label file.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

/// The one file of a stream snapshot.
fn the_file(session: &Session, snap: &SnapshotInfo) -> Result<Entry> {
    let mut found = None;
    session.walk(&snap.id, "/", None, &mut |e| {
        if e.kind == "file" && found.is_none() {
            found = Some(e);
        }
        Ok(())
    })?;
    found.ok_or_else(|| {
        Error::InvalidArgument(format!(
            "snapshot {} of set {} holds no file: not a base backup",
            snap.short_id, snap.set
        ))
    })
}

/// `backup_label` from the start of a base backup's tar stream (it comes first).
fn read_label(reader: impl Read) -> Result<Option<String>> {
    let mut ar = tar::Archive::new(reader);
    let entries = ar
        .entries()
        .map_err(|e| Error::corrupt("base backup", format!("not a tar stream: {e}")))?;
    // pg_basebackup sends backup_label first: a tar that does not start with it within a
    // few entries is not a base backup (and is not read to its end).
    for e in entries.take(4) {
        let mut e = e.map_err(|e| Error::corrupt("base backup", format!("tar: {e}")))?;
        let path = e.path().map(|p| p.into_owned()).unwrap_or_default();
        if path == Path::new("backup_label") {
            let mut s = String::new();
            e.read_to_string(&mut s)
                .map_err(|e| Error::corrupt("backup_label", e.to_string()))?;
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// The WAL archive's `.backup` file of a backup that started at `start_lsn` in
/// `start_wal`, as text: the one among `<start_wal>.*.backup` whose own START WAL
/// LOCATION is that location (whatever the cluster's segment size).
fn backup_history(
    session: &Session,
    index: &WalIndex,
    set: &str,
    start_wal: &str,
    start_lsn: &str,
) -> Result<Option<String>> {
    let repo = session.repository();
    for l in index.all(set)? {
        let n = &l.entry.name;
        let ours = n
            .strip_prefix(start_wal)
            .is_some_and(|r| r.starts_with('.') && r.ends_with(".backup"));
        if !ours {
            continue;
        }
        let b = repo.get_raw(&l.key(), Some(l.range()))?;
        let raw = object::decode_body(repo.keys(), &l.key(), &l.entry, &b)?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let starts = field(&text, "START WAL LOCATION")
            .and_then(|v| v.split_whitespace().next())
            .and_then(parse_lsn);
        if starts.is_some() && starts == parse_lsn(start_lsn) {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// What a base backup's `backup_label` says about where its replay starts.
#[derive(Debug, Clone)]
pub struct Label {
    pub text: String,
    /// The WAL file replay starts in, and the start location.
    pub start_wal: String,
    pub start_lsn: String,
}

/// The `backup_label` of each snapshot of `set`, newest first: None for a snapshot that is
/// not a base backup (no `backup_label` at the start of its tar stream). Only snapshots
/// at or before `newest` (Unix seconds) are read. A snapshot that cannot be read is an
/// error, never skipped: WAL retention must not judge by part of the backups.
///
/// With `strict` false (pitr choosing a backup), a snapshot that cannot be read is left
/// out with a warning instead: an older backup may still serve.
pub fn labels(
    session: &Session,
    set: &str,
    newest: Option<i64>,
    strict: bool,
) -> Result<Vec<(SnapshotInfo, Option<Label>)>> {
    let mut snaps = session.snapshots(Some(set))?;
    snaps.reverse();
    let contents = session.contents(8, 0)?;
    let mut out = Vec::new();
    for s in snaps {
        let t =
            time::OffsetDateTime::parse(&s.time, &time::format_description::well_known::Rfc3339)
                .map(|t| t.unix_timestamp())
                .unwrap_or(i64::MAX);
        if newest.is_some_and(|n| t > n) {
            continue;
        }
        let read = the_file(session, &s)
            .and_then(|file| contents.open(&file, 0, file.node.size))
            .map(read_label);
        let read = match read {
            Ok(r) => r,
            Err(e) if !strict => {
                tracing::warn!(
                    "snapshot {} of {set} cannot be read, skipped: {e}",
                    s.short_id
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        let label = match read {
            Ok(Some(text)) => {
                let start = field(&text, "START WAL LOCATION").unwrap_or("");
                let (lsn, wal) = start.split_once("(file ").ok_or_else(|| {
                    Error::corrupt(
                        format!("backup_label of snapshot {}", s.short_id),
                        "no START WAL LOCATION",
                    )
                })?;
                Some(Label {
                    start_lsn: lsn.trim().to_string(),
                    start_wal: wal.trim_end_matches(')').trim().to_string(),
                    text,
                })
            }
            // Retention must not judge by part of the backups: a snapshot of the set with
            // no label it can read (a read that failed midway, a compressed or directory
            // backup) stops it.
            Ok(None) | Err(_) if strict => {
                return Err(Error::InvalidArgument(format!(
                    "snapshot {} of set {set} is not a base backup cofre can read (one tar \
                     stream starting with backup_label); WAL retention deletes nothing while \
                     the set holds it",
                    s.short_id
                )))
            }
            // Not a tar stream, or one without a label: not a base backup.
            Ok(None) | Err(Error::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        out.push((s, label));
    }
    Ok(out)
}

/// The base backups of `set`, newest first, with their labels read (each read costs the
/// first chunk of its tar stream and one small WAL file).
pub fn base_backups(
    session: &Session,
    index: &mut WalIndex,
    set: &str,
    newest: Option<i64>,
) -> Result<Vec<BaseBackup>> {
    index.sync(session.repository())?;
    let mut out = Vec::new();
    for (s, label) in labels(session, set, newest, false)? {
        let Some(label) = label else {
            tracing::warn!(
                "snapshot {} of {set} has no backup_label: not a base backup",
                s.short_id
            );
            continue;
        };
        let (wal, lsn) = (label.start_wal, label.start_lsn);
        let Some(hist) = backup_history(session, index, set, &wal, &lsn)? else {
            tracing::warn!(
                "base backup {} of {set}: its .backup file ({wal}.*.backup) is not in the WAL \
                 archive yet (still in a spool, or archiving was off when it was taken); skipped",
                s.short_id
            );
            continue;
        };
        let stop_time = field(&hist, "STOP TIME").and_then(pg_time);
        if stop_time.is_none() {
            tracing::warn!(
                "base backup {}: its STOP TIME is in a time zone cofre cannot read; it serves \
                 LSN and latest targets only (log_timezone = 'UTC' on the server avoids this)",
                s.short_id
            );
        }
        out.push(BaseBackup {
            snapshot: s.id.clone(),
            snapshot_time: s.time.clone(),
            label: field(&label.text, "LABEL").unwrap_or("").to_string(),
            start_wal: wal,
            start_lsn: lsn,
            stop_lsn: field(&hist, "STOP WAL LOCATION")
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or("")
                .to_string(),
            stop_time,
        });
    }
    Ok(out)
}

fn fmt_time(t: i64, ns: u32) -> String {
    crate::ingest::format_time((t, ns))
}

/// A time as PostgreSQL reads it in `recovery_target_time` ("2026-12-05 22:00:01.5+00").
fn pg_format(t: i64, ns: u32) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let base = time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default();
    match ns / 1000 {
        0 => format!("{base}+00"),
        us => format!("{base}.{us:06}+00"),
    }
}

/// A value for postgresql.conf: single-quoted, backslashes and quotes escaped (the file's
/// parser reads backslash escapes in quoted values, and `sh_quote` writes `'\''`).
fn conf_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Restores the data directory and writes the recovery settings. The server is not started
/// (the caller can).
pub fn pitr(session: &Session, index: &mut WalIndex, opts: &PitrOptions) -> Result<PitrReport> {
    let started = std::time::Instant::now();
    let dir = &opts.target;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .next()
            .is_some()
    {
        return Err(Error::InvalidArgument(format!(
            "{} is not empty: pitr restores into a new or empty directory",
            dir.display()
        )));
    }
    let newest = match opts.to {
        Target::Time(t, _) => Some(t),
        _ => None,
    };
    let backups = base_backups(session, index, &opts.set, newest)?;
    let chosen = backups
        .iter()
        .filter(|b| match opts.timeline.as_deref().map(str::parse::<u32>) {
            // A backup taken on a later timeline cannot replay into an earlier one.
            Some(Ok(tli)) => WalName::parse(&b.start_wal).is_some_and(|n| n.timeline() <= tli),
            _ => true,
        })
        .find(|b| match opts.to {
            // STOP TIME has whole seconds: the backup surely ended before the next one.
            Target::Time(t, ns) => b.stop_time.is_some_and(|s| (s + 1, 0) <= (t, ns)),
            Target::Lsn(l) => parse_lsn(&b.stop_lsn).is_some_and(|s| s <= l),
            Target::Latest => true,
        })
        .cloned()
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no base backup of set {} ended before {}: {} ",
                opts.set,
                describe(&opts.to),
                match backups.last() {
                    Some(b) => format!(
                        "the oldest ended at {}",
                        b.stop_time.map_or(b.stop_lsn.clone(), |t| fmt_time(t, 0))
                    ),
                    None => "there is none with its WAL archived (take one: cofre ingest --set SET --stdin-from-command 'pg_basebackup -D - -Ft -X none')".into(),
                }
            ))
        })?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(dir, e))?;
    let snap = session
        .snapshots(Some(&opts.set))?
        .into_iter()
        .find(|s| s.id == chosen.snapshot)
        .ok_or_else(|| Error::NoSnapshot(chosen.snapshot.clone()))?;
    let file = the_file(session, &snap)?;
    let contents = session.contents(64, 0)?;
    // tar reads 512-byte headers and small files: each read of the snapshot's reader costs
    // a chunk lookup, so it is read in large pieces (337 MB unpacked in 23 s without).
    let reader = contents.open(&file, 0, file.node.size)?;
    let mut ar = tar::Archive::new(std::io::BufReader::with_capacity(4 << 20, reader));
    ar.set_preserve_permissions(true);
    ar.set_overwrite(false);
    ar.unpack(dir)
        .map_err(|e| Error::corrupt(format!("base backup {}", snap.short_id), e.to_string()))?;
    for d in ["pg_wal", "pg_wal/archive_status"] {
        let p = dir.join(d);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
    }
    // A backup taken with `-R` would start as a standby and never promote.
    let standby = dir.join("standby.signal");
    if standby.exists() {
        std::fs::remove_file(&standby).map_err(|e| Error::io(&standby, e))?;
    }
    // Debian keeps postgresql.conf in /etc, outside the data directory and the backup: the
    // server then starts on the defaults and postgresql.auto.conf.
    let conf_file = dir.join("postgresql.conf");
    if !conf_file.exists() {
        let note = "# Written by cofre pitr: the backed-up cluster kept its configuration \
                    outside its data directory.\n";
        crate::fsutil::write_atomic(&conf_file, note.as_bytes(), 0o600)?;
    }
    let mut conf = format!(
        "\n# Written by cofre pitr ({}): replay set {} from base backup {} to {}.\n\
         restore_command = {}\nrecovery_target_action = 'promote'\n",
        crate::repo::now_rfc3339(),
        opts.set,
        snap.short_id,
        describe(&opts.to),
        conf_str(&opts.restore_command),
    );
    match &opts.to {
        Target::Latest => {}
        Target::Time(t, ns) => {
            conf += &format!("recovery_target_time = {}\n", conf_str(&pg_format(*t, *ns)))
        }
        Target::Lsn(l) => {
            conf += &format!(
                "recovery_target_lsn = '{:X}/{:X}'\n",
                l >> 32,
                l & 0xffff_ffff
            )
        }
    }
    conf += &format!(
        "recovery_target_timeline = {}\n",
        conf_str(opts.timeline.as_deref().unwrap_or("latest"))
    );
    if !opts.keep_archiving {
        conf += "# A restored copy does not archive into the set it came from; remove this line \
                 when it becomes the primary.\narchive_mode = off\n";
    }
    let auto = dir.join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
    text += &conf;
    crate::fsutil::write_atomic(&auto, text.as_bytes(), 0o600)?;
    let signal = dir.join("recovery.signal");
    crate::fsutil::write_atomic(&signal, b"", 0o600)?;
    Ok(PitrReport {
        base_backup: chosen,
        target: describe(&opts.to),
        data_directory: dir.clone(),
        seconds_restoring: started.elapsed().as_secs_f64(),
        bytes: file.node.size,
    })
}

/// The `restore_command` of a cluster replaying `set`: `exe wal-fetch` reaching the
/// repository with `globals` (absolute paths: the server runs it in its data directory).
pub fn restore_command(exe: &Path, globals: &[String], set: &str) -> String {
    let mut words = vec![exe.display().to_string()];
    words.extend(globals.iter().cloned());
    words.extend(["wal-fetch".into(), "--set".into(), set.to_string()]);
    // PostgreSQL expands %f, %p, %r and %% in the command: a literal % is written %%.
    let mut cmd: Vec<String> = words
        .iter()
        .map(|w| super::server::sh_quote(w).replace('%', "%%"))
        .collect();
    cmd.extend(["%f".into(), "%p".into()]);
    cmd.join(" ")
}

pub fn describe(t: &Target) -> String {
    match t {
        Target::Latest => "the end of the archive".into(),
        Target::Time(s, ns) => fmt_time(*s, *ns),
        Target::Lsn(l) => format!("LSN {:X}/{:X}", l >> 32, l & 0xffff_ffff),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_times_and_targets_parse() {
        let cases: &[(&str, Option<i64>)] = &[
            ("2026-12-05 22:00:01 UTC", Some(1796508001)),
            ("2026-12-05 23:00:01 +01", Some(1796508001)),
            ("2026-12-05 17:30:01 -04:30", Some(1796508001)),
            ("2026-12-05 22:00:01 CET", None),
            ("yesterday", None),
        ];
        for (s, want) in cases {
            assert_eq!(pg_time(s), *want, "{s}");
        }
        assert_eq!(Target::parse("latest").ok(), Some(Target::Latest));
        assert_eq!(
            Target::parse("0/3000060").ok(),
            Some(Target::Lsn(0x300_0060))
        );
        assert_eq!(
            Target::parse("2026-12-05T22:00:01.5Z").ok(),
            Some(Target::Time(1796508001, 500_000_000))
        );
        assert!(Target::parse("soon").is_err());
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: x\n";
        assert_eq!(field(label, "LABEL"), Some("x"));
        assert_eq!(conf_str("it's"), "'it''s'");
        // A quoted shell word with a quote in it: `'a'\''b'`.
        assert_eq!(conf_str(r"'a'\''b'"), r"'''a''\\''''b'''");
        assert_eq!(
            restore_command(
                Path::new("/bin/cofre"),
                &["--repo".into(), "/r/50%".into()],
                "db"
            ),
            "'/bin/cofre' '--repo' '/r/50%%' 'wal-fetch' '--set' 'db' %f %p"
        );
        assert_eq!(pg_format(1796508001, 0), "2026-12-05 22:00:01+00");
        assert_eq!(
            pg_format(1796508001, 101_364_999),
            "2026-12-05 22:00:01.101364+00"
        );
    }
}
