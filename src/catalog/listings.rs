//! Index objects in the catalog: which packs each lists (`packs`), and each listed pack's
//! blob locations (`blobs`), once per pack however many index objects list it.
//!
//! Why once per pack (schema 6): a prune writes new index objects that list again the
//! packs it keeps, and deletes the old ones. With a row per index object and blob, the
//! sync after it deleted and wrote again every row of the repository: 44 s of a 59 s
//! prune at a million files (docs/catalog.md, "Blob rows per pack"). Now it writes only
//! the rows of the packs the prune wrote and deletes those of the packs it deleted.
//!
//! What makes one set of rows per pack enough: every index object that lists a pack
//! lists its whole header (the packer's entries, a prune's re-listing of a kept pack, a
//! repair's or prune's reading of the header), so any listing vouches for all of them.
//! A listing whose count of entries differs from the rows already there adds its entries
//! all the same (a blob listed twice in one pack does that; it costs time, not rows).
//! A pack's rows go when the last index object that lists it goes. Their `tier` is the
//! nearest of the classes its listings give, what readers took from several rows before.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{Catalog, DEFAULT_CLASS};
use crate::error::Result;
use crate::repo::compress::Bases;
use crate::repo::index::{tier, IndexFile};

impl Catalog {
    /// Records an index object's packs and the blob locations of those no other index
    /// object lists yet, in one transaction.
    pub fn insert_index(&mut self, name: &str, file: &IndexFile) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            tx.execute(
                "INSERT OR IGNORE INTO index_files (name) VALUES (?1)",
                params![name],
            )?;
            let idx: i64 = tx.query_row(
                "SELECT id FROM index_files WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )?;
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO blobs (id, pack, kind, offset, length, raw_len, tier, base) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            )?;
            let mut pk = tx.prepare_cached(
                "INSERT OR IGNORE INTO packs (pack, idx, class) VALUES (?1,?2,?3)",
            )?;
            let mut rows = tx.prepare_cached("SELECT count(*) FROM blobs WHERE pack = ?1")?;
            for p in &file.packs {
                pk.execute(params![
                    p.id.0.as_slice(),
                    idx,
                    p.class.as_deref().unwrap_or(DEFAULT_CLASS)
                ])?;
                let have: i64 = rows.query_row(params![p.id.0.as_slice()], |r| r.get(0))?;
                let tier = retier(&tx, &p.id.0)?.unwrap_or(0);
                if have > 0 && have as usize == p.entries.len() {
                    continue;
                }
                for e in &p.entries {
                    st.execute(params![
                        e.id.0.as_slice(),
                        p.id.0.as_slice(),
                        e.kind as u8,
                        e.offset,
                        e.length,
                        e.raw_len,
                        tier,
                        e.base.as_deref().map(Bases::to_bytes)
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets an index object that is no longer in the store, and the blob locations of
    /// the packs no other index object lists.
    pub fn remove_index(&mut self, name: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let packs: Vec<Vec<u8>> = {
            let mut st = tx.prepare(
                "SELECT pack FROM packs WHERE idx = (SELECT id FROM index_files WHERE name = ?1)",
            )?;
            let rows = st.query_map(params![name], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        tx.execute(
            "DELETE FROM packs WHERE idx = (SELECT id FROM index_files WHERE name = ?1)",
            params![name],
        )?;
        tx.execute("DELETE FROM index_files WHERE name = ?1", params![name])?;
        for pack in &packs {
            if retier(&tx, pack)?.is_none() {
                tx.execute("DELETE FROM blobs WHERE pack = ?1", params![pack])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// The nearest tier the index objects listing `pack` give it; None if none lists it.
fn nearest_tier(tx: &Transaction, pack: &[u8]) -> Result<Option<u8>> {
    let mut st = tx.prepare_cached("SELECT class FROM packs WHERE pack = ?1")?;
    let classes = st.query_map(params![pack], |r| r.get::<_, String>(0))?;
    let mut nearest = None;
    for c in classes {
        let t = tier(Some(&c?));
        nearest = Some(nearest.map_or(t, |n: u8| n.min(t)));
    }
    Ok(nearest)
}

/// Sets the tier of `pack`'s rows to the nearest its listings give, if they have another;
/// returns that tier (None: no index object lists the pack, its rows are left alone).
fn retier(tx: &Transaction, pack: &[u8]) -> Result<Option<u8>> {
    let Some(now) = nearest_tier(tx, pack)? else {
        return Ok(None);
    };
    let mut st =
        tx.prepare_cached("SELECT tier FROM blobs WHERE pack = ?1 ORDER BY offset LIMIT 1")?;
    let was: Option<u8> = st.query_row(params![pack], |r| r.get(0)).optional()?;
    if was.is_some_and(|t| t != now) {
        tx.execute(
            "UPDATE blobs SET tier = ?2 WHERE pack = ?1",
            params![pack, now],
        )?;
    }
    Ok(Some(now))
}
