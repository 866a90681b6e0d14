//! `cofre lock recover`: puts back what a credential holder deleted or overwrote in a
//! locked repository. A versioned bucket keeps every version: a DELETE only adds a delete
//! marker, a PUT only adds a version, and the locked versions cofre wrote are still there.
//! cofre names every object but the config by the blake3 of its bytes, and writes the
//! config once, so the right version is known without trusting any listing's order: the
//! newest version whose bytes hash to the name, and the config's oldest version.

use serde::Serialize;

use crate::error::Result;
use crate::repo::block;
use crate::repo::file::FileType;
use crate::store::{DynStore, Retention, Version};

#[derive(Debug, Default, Serialize)]
pub struct RecoverReport {
    /// Objects looked at (every key of the kinds cofre names, with its versions).
    pub objects: usize,
    /// Keys whose current version was a delete marker or foreign bytes, and is now a copy
    /// of the right version (or would be, in a dry run).
    pub restored: Vec<String>,
    /// Keys with no right version left: `cofre check` tells which snapshots they hurt.
    pub unrecoverable: Vec<String>,
    pub dry_run: bool,
}

/// Works on the store as it is, before the repository is opened: the config or the key
/// files may be what was overwritten. Restored copies get `keep` (None: no retention
/// of their own; the versions they copy stay locked, and `extend` locks them after).
pub fn recover(
    store: &DynStore,
    rt: &tokio::runtime::Handle,
    keep: Option<Retention>,
    dry_run: bool,
) -> Result<RecoverReport> {
    let mut report = RecoverReport {
        dry_run,
        ..Default::default()
    };
    let versions = block(rt, store.versions(""))?;
    for group in versions.chunk_by(|a, b| a.key == b.key) {
        let key = &group[0].key;
        let config = key == FileType::Config.prefix();
        let named = [
            FileType::Key,
            FileType::Pack,
            FileType::Index,
            FileType::Snapshot,
        ]
        .iter()
        .find_map(|t| t.name_of(key));
        if !config && named.is_none() {
            continue;
        }
        report.objects += 1;
        let Some(latest) = group.iter().rfind(|v| v.latest).or(group.last()) else {
            continue;
        };
        if group.len() == 1 && !latest.delete_marker {
            // Written once and never touched: nothing to look at.
            continue;
        }
        let right = match named {
            Some(name) => newest_named(store, rt, key, name, group)?,
            None => group.iter().find(|v| !v.delete_marker),
        };
        let Some(right) = right else {
            report.unrecoverable.push(key.clone());
            continue;
        };
        if right.id == latest.id {
            continue;
        }
        if !latest.delete_marker && same_bytes(store, rt, key, right, latest)? {
            continue;
        }
        tracing::debug!(
            "{key}: its current version is {}; restoring version {}",
            if latest.delete_marker {
                "a delete marker"
            } else {
                "not what cofre wrote"
            },
            right.id
        );
        if !dry_run {
            block(rt, store.restore_version(key, &right.id, keep))?;
        }
        report.restored.push(key.clone());
    }
    Ok(report)
}

/// The newest version of `key` whose bytes hash to `name`.
fn newest_named<'a>(
    store: &DynStore,
    rt: &tokio::runtime::Handle,
    key: &str,
    name: &str,
    group: &'a [Version],
) -> Result<Option<&'a Version>> {
    for v in group.iter().rev().filter(|v| !v.delete_marker) {
        let bytes = block(rt, store.get_version(key, &v.id))?;
        if blake3::hash(&bytes).to_hex().as_str() == name {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn same_bytes(
    store: &DynStore,
    rt: &tokio::runtime::Handle,
    key: &str,
    a: &Version,
    b: &Version,
) -> Result<bool> {
    if a.size != b.size {
        return Ok(false);
    }
    Ok(block(rt, store.get_version(key, &a.id))? == block(rt, store.get_version(key, &b.id))?)
}
