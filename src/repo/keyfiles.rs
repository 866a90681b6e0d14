//! Key files: several passwords per repository, each a `keys/<id>` object wrapping the
//! same master keys (`cofre key list|add|remove|passwd`).

use serde::Serialize;

use super::file::FileType;
use super::{now_rfc3339, Repository};
use crate::crypto::KeyFile;
use crate::error::{Error, Result};

#[derive(Debug, Serialize)]
pub struct KeyEntry {
    pub id: String,
    /// The key this process opened the repository with.
    pub current: bool,
    pub created: String,
    pub hostname: String,
    pub username: String,
}

pub fn list(repo: &Repository) -> Result<Vec<KeyEntry>> {
    let mut out = Vec::new();
    for (name, _) in repo.list_type(FileType::Key)? {
        let bytes = repo.get_raw(&FileType::Key.key(&name), None)?;
        let (created, hostname, username) = match serde_json::from_slice::<KeyFile>(&bytes) {
            Ok(kf) => (kf.created, kf.hostname, kf.username),
            Err(e) => (format!("unreadable: {e}"), String::new(), String::new()),
        };
        out.push(KeyEntry {
            current: name == repo.key_name,
            id: name,
            created,
            hostname,
            username,
        });
    }
    Ok(out)
}

/// Wraps the master keys with a new password; returns the new key's id.
pub fn add(repo: &Repository, password: &[u8]) -> Result<String> {
    if password.is_empty() {
        return Err(Error::InvalidArgument(
            "an empty password protects nothing".into(),
        ));
    }
    let mut kf = KeyFile::wrap(repo.keys(), password, now_rfc3339())?;
    (kf.hostname, kf.username) = crate::ingest::host_and_user();
    let bytes = kf.to_bytes()?;
    let name = blake3::hash(&bytes).to_hex().to_string();
    repo.put_raw(&FileType::Key.key(&name), bytes)?;
    Ok(name)
}

/// Removes the key whose id starts with `prefix`. The key in use and the last key are
/// refused: either would leave a repository nobody (or not this user) can open.
pub fn remove(repo: &Repository, prefix: &str) -> Result<String> {
    let keys = list(repo)?;
    let hits: Vec<&KeyEntry> = keys.iter().filter(|k| k.id.starts_with(prefix)).collect();
    let key = match hits.as_slice() {
        [k] => *k,
        [] => {
            return Err(Error::InvalidArgument(format!(
                "no key {prefix}: see `cofre key list`"
            )))
        }
        _ => {
            return Err(Error::InvalidArgument(format!(
                "key prefix {prefix} is ambiguous"
            )))
        }
    };
    if keys.len() == 1 {
        return Err(Error::InvalidArgument(
            "refusing to remove the last key: the repository could never be opened again".into(),
        ));
    }
    if key.current {
        return Err(Error::InvalidArgument(
            "refusing to remove the key in use: open the repository with another password to remove this one (or use `cofre key passwd`)".into(),
        ));
    }
    removable(repo, &key.id)?;
    repo.delete(FileType::Key, &key.id)?;
    Ok(key.id.clone())
}

/// In a repository under S3 Object Lock a key file cannot be removed before its retention
/// ends (S3 refuses): say so before anything is written, with the date.
fn removable(repo: &Repository, id: &str) -> Result<()> {
    if repo.config.object_lock.is_none() {
        return Ok(());
    }
    let until = crate::objlock::retained_until(repo, vec![FileType::Key.key(id)])?;
    match until.first().copied().flatten() {
        Some(t) if t > repo.env().now().0 => Err(Error::InvalidArgument(format!(
            "key {} is under S3 Object Lock until {} and its password opens the repository until then: `cofre key add` a new password now, `cofre key remove` this one after that date",
            &id[..8.min(id.len())],
            time::OffsetDateTime::from_unix_timestamp(t)
                .map(|d| d.date().to_string())
                .unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

/// Replaces the key in use by one with a new password: the new key is stored first.
pub fn passwd(repo: &Repository, password: &[u8]) -> Result<String> {
    removable(repo, &repo.key_name)?;
    let new = add(repo, password)?;
    repo.delete(FileType::Key, &repo.key_name)?;
    Ok(new)
}
