//! `cofre lock recover`: puts back what a credential holder deleted or overwrote in a
//! locked repository. A versioned bucket keeps every version: a DELETE only adds a delete
//! marker, a PUT only adds a version, and the locked versions cofre wrote are still there.
//! cofre never makes a delete marker in a locked repository (its deletes remove versions),
//! so every marker is foreign: removing it makes the version under it current again, with
//! its lock and storage class. An overwritten object gets a copy of the right version: for
//! objects named by the blake3 of their bytes, one whose bytes hash to the name; for the
//! config, one the password opens. Which version S3 lists first never decides anything.

use serde::Serialize;

use crate::error::Result;
use crate::repo::block;
use crate::repo::file::FileType;
use crate::store::{DynStore, Version};

#[derive(Debug, Default, Serialize)]
pub struct RecoverReport {
    /// Objects looked at (every key of the kinds cofre names).
    pub objects: usize,
    /// Keys whose current version was a delete marker or foreign bytes, and is now the
    /// right version again (or would be, in a dry run).
    pub restored: Vec<String>,
    /// Keys with no right version left: `cofre check` tells which snapshots they hurt.
    pub unrecoverable: Vec<String>,
    /// Keys that could not be looked at or put back, with why (e.g. a version in an archive
    /// class cannot be read or copied: `cofre thaw` it first).
    pub failed: Vec<String>,
    pub dry_run: bool,
}

/// Works on the store as it is, before the repository is opened: the config or the key
/// files may be what was hit. `opens` tells whether config bytes open with the password
/// (key files are put back first, so it can). Restored copies get no retention of their
/// own (the versions they copy keep theirs); `extend` locks them after.
pub fn recover(
    store: &DynStore,
    rt: &tokio::runtime::Handle,
    opens: &dyn Fn(&[u8]) -> bool,
    dry_run: bool,
) -> Result<RecoverReport> {
    let mut report = RecoverReport {
        dry_run,
        ..Default::default()
    };
    let versions = block(rt, store.versions(""))?;
    let mut groups: Vec<&[Version]> = versions.chunk_by(|a, b| a.key == b.key).collect();
    // Key files first: the config is recognised by opening it with them.
    groups.sort_by_key(|g| !g[0].key.starts_with(FileType::Key.prefix()));
    for group in groups {
        let key = &group[0].key;
        let kind = if key == FileType::Config.prefix() {
            Some(Kind::Config)
        } else {
            [
                FileType::Key,
                FileType::Pack,
                FileType::Index,
                FileType::Snapshot,
            ]
            .iter()
            .find_map(|t| t.name_of(key))
            .map(Kind::Named)
        };
        let Some(kind) = kind else {
            continue;
        };
        report.objects += 1;
        match recover_key(store, rt, key, kind, group, opens, dry_run) {
            Ok(Outcome::Fine) => {}
            Ok(Outcome::Restored) => report.restored.push(key.clone()),
            Ok(Outcome::Unrecoverable) => report.unrecoverable.push(key.clone()),
            Err(e) => report.failed.push(format!("{key}: {e}")),
        }
    }
    Ok(report)
}

#[derive(Clone, Copy)]
enum Kind<'a> {
    Config,
    /// Named by the blake3 of its bytes.
    Named(&'a str),
}

enum Outcome {
    Fine,
    Restored,
    Unrecoverable,
}

fn recover_key(
    store: &DynStore,
    rt: &tokio::runtime::Handle,
    key: &str,
    kind: Kind,
    group: &[Version],
    opens: &dyn Fn(&[u8]) -> bool,
    dry_run: bool,
) -> Result<Outcome> {
    let real: Vec<&Version> = group.iter().filter(|v| !v.delete_marker).collect();
    if real.is_empty() {
        // Only markers: an interrupted delete of every version left them. Nothing to
        // put back; `check` says whether a snapshot needed it.
        return Ok(Outcome::Fine);
    }
    let markers: Vec<&Version> = group.iter().filter(|v| v.delete_marker).collect();
    if real.len() == 1 && markers.is_empty() {
        return Ok(Outcome::Fine);
    }
    let right_bytes = |bytes: &[u8]| match kind {
        Kind::Config => opens(bytes),
        Kind::Named(name) => blake3::hash(bytes).to_hex().as_str() == name,
    };
    let mut right = Vec::new();
    let mut wrong = Vec::new();
    for v in &real {
        match right_bytes(&block(rt, store.get_version(key, &v.id))?) {
            true => right.push(*v),
            false => wrong.push(*v),
        }
    }
    let Some(keep) = right.first() else {
        return Ok(Outcome::Unrecoverable);
    };
    // Nothing to do: no marker, and no foreign version (the config's are kept, so for it
    // a right current version is enough).
    let kept_foreign = matches!(kind, Kind::Config) && right.iter().any(|v| v.latest);
    if markers.is_empty() && (wrong.is_empty() || kept_foreign) {
        return Ok(Outcome::Fine);
    }
    if dry_run {
        return Ok(Outcome::Restored);
    }
    // Markers and foreign versions are not cofre's (its deletes remove versions, its
    // writes are the right bytes, named by their hash): with them gone a right version is
    // current again, with its own lock and storage class, and the key has no trace of the
    // attack left. The config's foreign versions are kept: one that the password does not
    // open may still be another repository's (a prefix used twice), and there is no name
    // to prove it is not. A right version is copied over them instead.
    let deletable: &[&Version] = match kind {
        Kind::Config => &[],
        Kind::Named(_) => &wrong,
    };
    // Foreign versions left in place: then a right one may need copying over them.
    let mut stuck = wrong.len() - deletable.len();
    for v in markers.iter().chain(deletable) {
        match block(rt, store.delete_version(key, &v.id)) {
            Ok(()) => {}
            // A foreign version its writer locked: it stays; a copy goes over it below.
            Err(e) if !v.delete_marker => {
                tracing::warn!("{key}: a foreign version cannot be deleted ({e})");
                stuck += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if stuck > 0 {
        let current = block(rt, store.versions(key))?
            .into_iter()
            .find(|v| v.key == key && v.latest)
            .map(|v| v.id);
        if !right.iter().any(|r| Some(&r.id) == current.as_ref()) {
            let class = keep.class.as_deref();
            block(rt, store.restore_version(key, &keep.id, class, None))?;
        }
    }
    Ok(Outcome::Restored)
}
