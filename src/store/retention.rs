//! S3 Object Lock, as the store layer sees it: the retention of one object version, and
//! the versions a versioned bucket keeps. What is locked and for how long is decided in
//! `repo::retain` and `crate::objlock`; docs/object-lock.md says why.

use serde::{Deserialize, Serialize};

/// S3's two retention modes. Governance: an admin credential with
/// `s3:BypassGovernanceRetention` may still delete or shorten, and only with the bypass
/// header. Compliance: nobody can, the account's root included, until the date passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    /// S3's spelling (`x-amz-object-lock-mode`).
    pub fn as_s3(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

impl std::str::FromStr for LockMode {
    type Err = String;
    fn from_str(s: &str) -> Result<LockMode, String> {
        match s.to_ascii_lowercase().as_str() {
            "governance" => Ok(LockMode::Governance),
            "compliance" => Ok(LockMode::Compliance),
            _ => Err(format!("{s:?}: expected governance or compliance")),
        }
    }
}

/// Keep this version, in `mode`, until `until` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    pub until: i64,
}

/// One version of an object in a versioned bucket (S3 ListObjectVersions), grouped by key.
/// Within a key the order is S3's LastModified, to the second: callers never rely on it
/// to tell two versions apart (`latest` names the current one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    pub id: String,
    /// A delete marker: the key looks deleted, its earlier versions are still there.
    pub delete_marker: bool,
    pub latest: bool,
    pub size: u64,
    pub modified: Option<i64>,
    /// Its storage class (None: STANDARD, or a delete marker).
    pub class: Option<String>,
    /// S3's ETag: the MD5 of the bytes for a single-part PUT (equal ETags, equal bytes).
    pub etag: Option<String>,
}
