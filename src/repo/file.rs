//! Typed storage keys: every object in a repository is a (FileType, name) pair, and this is
//! the one place that knows how that pair is spelled in the store.

use crate::crypto::BlobId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Config,
    /// `keys/<blake3 of the key file>`: a password-wrapped copy of the master keys.
    Key,
    /// `data/<first two hex digits>/<pack id>`: packs, fanned out as restic does.
    Pack,
    /// `index/<blake3 of the sealed object>`
    Index,
    /// `snapshots/<blake3 of the sealed manifest>`
    Snapshot,
    /// `locks/<blake3 of the sealed lock>`: refreshed by writing a new one.
    Lock,
    /// `drills/<blake3 of the sealed report>`: one per `cofre drill` of a set, write-once.
    Drill,
    /// `doomed/<blake3 of the sealed list>`: what a running prune is about to delete
    /// (`repo::doomed`).
    Doomed,
    /// `wal/<blake3 of the object>`: PostgreSQL WAL files, many per object (`wal::object`).
    Wal,
}

impl FileType {
    /// The listing prefix (`config` is a single object).
    pub fn prefix(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "keys/",
            FileType::Pack => "data/",
            FileType::Index => "index/",
            FileType::Snapshot => "snapshots/",
            FileType::Lock => "locks/",
            FileType::Drill => "drills/",
            FileType::Doomed => "doomed/",
            FileType::Wal => "wal/",
        }
    }

    /// The store key of object `name` (a hex id).
    pub fn key(self, name: &str) -> String {
        match self {
            FileType::Config => "config".into(),
            FileType::Pack => format!("data/{}/{name}", name.get(..2).unwrap_or("")),
            t => format!("{}{name}", t.prefix()),
        }
    }

    /// The object name in a store key of this type, or None for a key that is not one.
    pub fn name_of(self, key: &str) -> Option<&str> {
        let rest = key.strip_prefix(self.prefix())?;
        let name = match self {
            FileType::Pack => rest.split_once('/')?.1,
            _ => rest,
        };
        (!name.is_empty() && !name.contains('/')).then_some(name)
    }
}

pub fn pack_key(pack: &BlobId) -> String {
    FileType::Pack.key(&pack.hex())
}

/// A pack id from a `data/` store key.
pub fn pack_id(key: &str) -> Option<BlobId> {
    BlobId::from_slice(&hex::decode(FileType::Pack.name_of(key)?).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let cases = [
            (FileType::Pack, "abcd", "data/ab/abcd"),
            (FileType::Index, "ff00", "index/ff00"),
            (FileType::Snapshot, "0123", "snapshots/0123"),
            (FileType::Key, "77", "keys/77"),
            (FileType::Lock, "99", "locks/99"),
            (FileType::Drill, "aa", "drills/aa"),
            (FileType::Doomed, "bb", "doomed/bb"),
            (FileType::Wal, "cc", "wal/cc"),
        ];
        for (t, name, key) in cases {
            assert_eq!(t.key(name), key);
            assert_eq!(t.name_of(key), Some(name), "{key}");
        }
        assert_eq!(FileType::Index.name_of("data/ab/abcd"), None);
        assert_eq!(FileType::Pack.name_of("data/abcd"), None);
        assert_eq!(FileType::Snapshot.name_of("snapshots/"), None);
        let id = BlobId([7; 32]);
        assert_eq!(pack_id(&pack_key(&id)), Some(id));
    }
}
