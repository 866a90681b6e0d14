//! Drill reports kept in the repository (`drills/`), sealed and write-once like snapshot
//! manifests, so a new machine and an auditor see every drill: `cofre drill --history`.
//! Prune never touches them (it deletes packs and index objects only).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::file::FileType;
use crate::repo::Repository;

const DRILL_AAD: &[u8] = b"cofre-drill-v1";

/// One set's drill, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillRecord {
    pub version: u32,
    /// When the drill ran (RFC 3339, and Unix seconds and nanoseconds) and where.
    pub time: String,
    pub unix: (i64, u32),
    pub hostname: String,
    pub set: String,
    pub snapshot: String,
    pub snapshot_time: String,
    pub passed: bool,
    pub files: u64,
    pub bytes: u64,
    pub mismatches: u64,
    /// The first problems and mismatches, for the record.
    pub notes: Vec<String>,
    pub mount_seconds: f64,
    pub copy_seconds: f64,
    pub verify_seconds: f64,
    pub rto_seconds: f64,
    pub rto_target_seconds: Option<u64>,
    pub rpo_seconds: i64,
    pub rpo_target_seconds: Option<u64>,
    /// The PostgreSQL restore: whether it and its checks passed, and how long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_passed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_restore_seconds: Option<f64>,
    /// A point-in-time drill: how long WAL replay took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_replay_seconds: Option<f64>,
}

impl DrillRecord {
    pub fn from_report(r: &super::SetReport, at: (i64, u32)) -> DrillRecord {
        DrillRecord {
            version: 1,
            time: crate::ingest::format_time(at),
            unix: at,
            hostname: crate::ingest::host_and_user().0,
            set: r.set.clone(),
            snapshot: r.snapshot.clone(),
            snapshot_time: r.snapshot_time.clone(),
            passed: r.passed,
            files: r.files,
            bytes: r.bytes,
            mismatches: r.mismatches.len() as u64,
            notes: r
                .problems
                .iter()
                .chain(&r.mismatches)
                .take(20)
                .cloned()
                .collect(),
            mount_seconds: r.mount_seconds,
            copy_seconds: r.copy_seconds,
            verify_seconds: r.verify_seconds,
            rto_seconds: r.rto_seconds,
            rto_target_seconds: r.rto_target_seconds,
            rpo_seconds: r.rpo_seconds,
            rpo_target_seconds: r.rpo_target_seconds,
            pg_passed: r.pg.as_ref().map(|p| p.passed),
            pg_restore_seconds: r.pg.as_ref().map(|p| p.restore.seconds),
            pg_replay_seconds: r
                .pg
                .as_ref()
                .and_then(|p| p.replay.as_ref())
                .map(|s| s.seconds),
        }
    }
}

pub fn save(repo: &Repository, rec: &DrillRecord) -> Result<String> {
    let plain = serde_json::to_vec(rec).map_err(|e| Error::corrupt("drill", e.to_string()))?;
    repo.put_sealed(FileType::Drill, &plain, DRILL_AAD)
}

/// Every stored drill, oldest first; a damaged record is an error naming it (history is
/// evidence: it is not silently shortened).
pub fn history(repo: &Repository) -> Result<Vec<DrillRecord>> {
    let names: Vec<String> = repo
        .list_type(FileType::Drill)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut out = Vec::new();
    for (name, r) in names
        .iter()
        .zip(repo.get_sealed_many(FileType::Drill, &names, DRILL_AAD))
    {
        let rec: DrillRecord = serde_json::from_slice(&r?)
            .map_err(|e| Error::corrupt(FileType::Drill.key(name), e.to_string()))?;
        out.push(rec);
    }
    out.sort_by(|a, b| (a.unix, &a.set).cmp(&(b.unix, &b.set)));
    Ok(out)
}

/// The newest drill of each set on this machine, for the metrics (`<cache>/state/drills.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LastDrill {
    pub time: i64,
    pub passed: bool,
    pub rto_seconds: f64,
    pub last_success: Option<i64>,
}

pub type LastDrills = std::collections::BTreeMap<String, LastDrill>;

fn local_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("state").join("drills.json")
}

/// What `record_local` kept; absent or unreadable is empty (the repository holds the record).
pub fn load_local(dir: &std::path::Path) -> LastDrills {
    std::fs::read(local_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn record_local(
    dir: &std::path::Path,
    set: &str,
    time: i64,
    passed: bool,
    rto: f64,
) -> Result<()> {
    let mut all = load_local(dir);
    let prev = all.get(set).and_then(|d| d.last_success);
    all.insert(
        set.to_string(),
        LastDrill {
            time,
            passed,
            rto_seconds: rto,
            last_success: if passed { Some(time) } else { prev },
        },
    );
    let p = local_path(dir);
    if let Some(parent) = p.parent() {
        crate::catalog::private_dir(parent).map_err(|e| Error::io(parent, e))?;
    }
    let json =
        serde_json::to_vec_pretty(&all).map_err(|e| Error::io(&p, std::io::Error::other(e)))?;
    crate::fsutil::write_atomic(&p, &json, 0o600)
}
