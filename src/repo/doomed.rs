//! Doomed lists: `doomed/<id>`, a prune's announcement of the packs and index objects it
//! is about to delete (docs/prune.md "Doomed lists").
//!
//! A prune checks its lock, then deletes; a prune paused between the two (a suspended VM)
//! can wake after its lock was judged stale and removed, and delete anyway. What it deletes
//! was unused when it planned, so the danger is only a *new* reference made meanwhile: an
//! ingest reusing a doomed blob, a `repair index` listing a doomed pack again. So prune
//! writes this list after its last plan check, then proves its lock still stands (anyone
//! who removes the lock later lists `doomed/` after the list landed), and only then
//! deletes. Everyone else honours every list in the store:
//! - ingest reuses nothing from a doomed pack (it stores the data again);
//! - `repair index` does not list a doomed pack again;
//! - a later prune never takes a doomed copy as a blob's home while another copy exists,
//!   replaces every doomed index object, deletes the doomed packs that nothing uses (of any
//!   age), and removes a list once nothing it names is left.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::file::FileType;
use super::Repository;
use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::store::StoreError;

const DOOMED_AAD: &[u8] = b"cofre-doomed-v1";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DoomedList {
    pub packs: Vec<BlobId>,
    /// Index object names (without `index/`).
    pub indexes: Vec<String>,
}

/// Every doomed list in the store.
#[derive(Default)]
pub struct Doomed {
    pub lists: Vec<(String, DoomedList)>,
    /// Lists that cannot be read: nobody can tell what they doom (see `reuse_blocked`).
    pub damaged: Vec<(String, Error)>,
}

impl Doomed {
    pub fn packs(&self) -> HashSet<BlobId> {
        self.lists
            .iter()
            .flat_map(|(_, l)| l.packs.iter().copied())
            .collect()
    }

    pub fn indexes(&self) -> HashSet<String> {
        self.lists
            .iter()
            .flat_map(|(_, l)| l.indexes.iter().cloned())
            .collect()
    }

    /// A damaged list may doom any pack: nothing stored may be reused while it is there.
    /// The error names it and tells the person what to do.
    pub fn reuse_blocked(&self) -> Option<Error> {
        let (name, e) = self.damaged.first()?;
        Some(Error::corrupt(
            FileType::Doomed.key(name),
            format!(
                "{e}; it names what some prune may still delete: once every prune has ended (on every host, a suspended VM's too), delete that object from the store"
            ),
        ))
    }
}

pub fn save(repo: &Repository, list: &DoomedList) -> Result<String> {
    let plain = serde_json::to_vec(list).map_err(|e| Error::corrupt("doomed", e.to_string()))?;
    repo.put_sealed(FileType::Doomed, &plain, DOOMED_AAD)
}

/// Every list; a failed listing or read is an error (never "nothing is doomed").
pub fn load(repo: &Repository) -> Result<Doomed> {
    let mut out = Doomed::default();
    for (name, _) in repo.list_type(FileType::Doomed)? {
        let key = FileType::Doomed.key(&name);
        let list = repo.get_sealed(&key, DOOMED_AAD).and_then(|plain| {
            serde_json::from_slice::<DoomedList>(&plain)
                .map_err(|e| Error::corrupt(&key, e.to_string()))
        });
        match list {
            Ok(l) => out.lists.push((name, l)),
            // Removed since the listing: its prune (or a later one) finished with it.
            Err(Error::Store(StoreError::NotFound(_))) => {}
            Err(e @ Error::Corrupt { .. }) => out.damaged.push((name, e)),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
