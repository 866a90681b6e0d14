//! What each run of a set's class did, kept in the repository's cache directory
//! (`<cache>/state/<set>.json`) so `schedule status` and the metrics can say when a set last
//! ran, how it ended and when it last succeeded. Written under the set's run lock, so two
//! runs never write one set's file at once. Advisory data: a damaged file is reported and
//! started afresh; snapshots themselves are always read from the catalog.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Partial,
    Failed,
    Skipped,
}

impl Outcome {
    /// `cofre_last_run_status`: 0 failed, 1 partial, 2 ok (a skip is not a run's result).
    pub fn status_value(self) -> Option<u8> {
        match self {
            Outcome::Failed => Some(0),
            Outcome::Partial => Some(1),
            Outcome::Ok => Some(2),
            Outcome::Skipped => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassState {
    /// When the last run of this class started (the run's clock, Unix seconds).
    pub last_run: i64,
    pub duration_seconds: f64,
    pub outcome: Outcome,
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// When the last run that ended ok or partial started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<i64>,
    /// Last result that was not a skip (a skip does not hide a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<Outcome>,
    /// A copy job's: the time of the newest snapshot of the set known to be on the target
    /// (kept across failures), from which its lag is counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<i64>,
    /// A check job's: the part of the data its next run reads (`read_data = "1/M"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_part: Option<u32>,
    /// A check job's: damaged packs found, by the part of the data that found them (0: a
    /// read of all of it, or of a random share). Kept until that part is read again and
    /// found clean, so the damage stays reported between the days its part comes up.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub damaged_parts: std::collections::BTreeMap<u32, u64>,
}

impl ClassState {
    /// A check job's damaged packs, as far as its runs know.
    pub fn damaged_packs(&self) -> u64 {
        self.damaged_parts.values().sum()
    }
}

/// Per class tag of one set.
pub type SetState = BTreeMap<String, ClassState>;

fn path(dir: &Path, set: &str) -> PathBuf {
    dir.join("state").join(format!("{set}.json"))
}

pub fn load(dir: &Path, set: &str) -> SetState {
    let p = path(dir, set);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: unreadable run state ({e}); starting afresh",
                p.display()
            );
            SetState::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SetState::new(),
        Err(e) => {
            tracing::warn!("{}: {e}; run history unknown", p.display());
            SetState::new()
        }
    }
}

/// Records a run of `set`'s `class`: `last_success` and `last_result` carry over from the
/// previous state when this run did not set them.
pub fn record(dir: &Path, set: &str, class: &str, mut now: ClassState) -> Result<()> {
    let mut st = load(dir, set);
    let prev = st.get(class);
    match now.outcome {
        Outcome::Ok | Outcome::Partial => now.last_success = Some(now.last_run),
        _ => now.last_success = prev.and_then(|p| p.last_success),
    }
    now.through = now.through.or_else(|| prev.and_then(|p| p.through));
    now.last_result = match now.outcome {
        Outcome::Skipped => prev.and_then(|p| p.last_result),
        o => Some(o),
    };
    if let (Outcome::Skipped, Some(p)) = (now.outcome, prev) {
        // A skip's few milliseconds are not how long the set's run takes.
        now.duration_seconds = p.duration_seconds;
    }
    st.insert(class.to_string(), now);
    let p = path(dir, set);
    if let Some(parent) = p.parent() {
        crate::catalog::private_dir(parent).map_err(|e| Error::io(parent, e))?;
    }
    let json =
        serde_json::to_vec_pretty(&st).map_err(|e| Error::io(&p, std::io::Error::other(e)))?;
    crate::fsutil::write_atomic(&p, &json, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(at: i64, outcome: Outcome) -> ClassState {
        ClassState {
            last_run: at,
            duration_seconds: 1.0,
            outcome,
            exit_code: 0,
            error: None,
            snapshot: None,
            last_success: None,
            last_result: None,
            through: None,
            next_part: None,
            damaged_parts: Default::default(),
        }
    }

    #[test]
    fn success_and_result_carry_over_failures_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // (run at, outcome) → (expected last_success, expected last_result)
        let table = [
            (100, Outcome::Failed, None, Some(Outcome::Failed)),
            (200, Outcome::Ok, Some(200), Some(Outcome::Ok)),
            (300, Outcome::Failed, Some(200), Some(Outcome::Failed)),
            (400, Outcome::Skipped, Some(200), Some(Outcome::Failed)),
            (500, Outcome::Partial, Some(500), Some(Outcome::Partial)),
            (600, Outcome::Skipped, Some(500), Some(Outcome::Partial)),
        ];
        for (at, outcome, success, result) in table {
            record(d, "db", "4h", st(at, outcome)).unwrap();
            let s = &load(d, "db")["4h"];
            assert_eq!((s.last_run, s.outcome), (at, outcome));
            assert_eq!(s.last_success, success, "after run at {at}");
            assert_eq!(s.last_result, result, "after run at {at}");
        }
        // Another class of the set is kept beside it.
        record(d, "db", "weekly", st(700, Outcome::Ok)).unwrap();
        assert_eq!(load(d, "db").len(), 2);
    }

    #[test]
    fn a_damaged_state_file_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("state/db.json"), b"{not json").unwrap();
        assert!(load(dir.path(), "db").is_empty());
        record(dir.path(), "db", "4h", st(1, Outcome::Ok)).unwrap();
        assert_eq!(load(dir.path(), "db")["4h"].last_success, Some(1));
    }
}
