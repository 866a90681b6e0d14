use super::Catalog;
use crate::crypto::BlobId;
use crate::repo::index::{IndexFile, IndexPack};
use crate::repo::pack::{BlobKind, PackEntry};

fn pack(id: u8, class: Option<&str>, blob: BlobId) -> IndexPack {
    IndexPack {
        id: BlobId([id; 32]),
        size: 100,
        class: class.map(str::to_string),
        entries: vec![pack_entry(blob)],
    }
}

/// Issue 20 point 7: one index object listing a blob in two packs (prune re-lists a
/// GLACIER copy and writes a repacked STANDARD copy into the same new index object). Every
/// order, every class pair: the catalog keeps both and readers get the nearest.
#[test]
fn an_index_object_listing_two_copies_keeps_both_and_readers_get_the_nearest() {
    let blob = BlobId([9; 32]);
    type Copies = &'static [(u8, Option<&'static str>)];
    let cases: [(Copies, u8); 4] = [
        (&[(1, Some("GLACIER")), (2, None)], 2),
        (&[(2, None), (1, Some("GLACIER"))], 2),
        (&[(1, Some("DEEP_ARCHIVE")), (2, Some("STANDARD_IA"))], 2),
        (&[(1, None), (2, None)], 1),
    ];
    for (copies, nearest) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cat = Catalog::open(&dir.path().join("c.db")).expect("open");
        let file = IndexFile {
            packs: copies.iter().map(|(id, c)| pack(*id, *c, blob)).collect(),
        };
        cat.insert_index("i1", &file).expect("insert");
        let loc = cat.blob_location(&blob).expect("query").expect("located");
        assert_eq!(loc.pack, BlobId([nearest; 32]), "{copies:?}");
        assert_eq!(cat.blob_packs(&blob, 9).expect("packs").len(), copies.len());
    }
}

/// The catalog's reader query skips a delta copy whose base has no whole copy, as
/// `MasterIndex::seal` does.
#[test]
fn readers_skip_a_delta_copy_whose_base_is_gone() {
    use crate::repo::compress::Bases;
    let blob = BlobId([5; 32]);
    let delta = |p: u8, base: u8| IndexPack {
        entries: vec![PackEntry {
            base: Some(Box::new(Bases::one(BlobId([base; 32])))),
            ..pack_entry(blob)
        }],
        ..pack(p, None, blob)
    };
    let base_a = pack(9, None, BlobId([7; 32]));
    // Base 6's only whole copy is in GLACIER: a delta on it reads only after a thaw.
    let base_g = pack(10, Some("GLACIER"), BlobId([6; 32]));
    for (copies, want) in [
        (vec![delta(1, 8), delta(2, 7)], 2u8),
        (vec![delta(2, 7), delta(1, 8)], 2),
        (vec![delta(1, 6), delta(2, 7)], 2),
        (vec![delta(1, 6)], 1),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cat = Catalog::open(&dir.path().join("c.db")).expect("open");
        let mut packs = copies;
        packs.push(base_a.clone());
        packs.push(base_g.clone());
        cat.insert_index("i1", &IndexFile { packs })
            .expect("insert");
        let loc = cat.blob_location(&blob).expect("query").expect("located");
        assert_eq!(loc.pack, BlobId([want; 32]));
    }
}

fn pack_entry(blob: BlobId) -> PackEntry {
    PackEntry {
        id: blob,
        kind: BlobKind::Data,
        offset: 0,
        length: 50,
        raw_len: 60,
        base: None,
    }
}

/// A pack with `n` blobs (ids `[blob0 + i; 32]`) in `class`.
fn pack_of(id: u8, class: Option<&str>, blob0: u8, n: u8) -> IndexPack {
    IndexPack {
        entries: (0..n)
            .map(|i| PackEntry {
                offset: u32::from(i) * 50,
                ..pack_entry(BlobId([blob0 + i; 32]))
            })
            .collect(),
        ..pack(id, class, BlobId([blob0; 32]))
    }
}

/// Blob rows are per pack (schema 6): a pack listed by several index objects keeps its
/// rows until the last of them goes, in every order; a re-listing (what a prune writes for
/// the packs it keeps) writes no blob row; and the rows' tier is the nearest class the
/// remaining listings give, as readers took it from per-listing rows before.
#[test]
fn a_pack_keeps_its_blob_rows_while_some_index_object_lists_it() {
    let blob = BlobId([20; 32]);
    let tier_of = |cat: &Catalog| cat.blob_location(&blob).expect("query").map(|l| l.tier);
    // (listings added in order, by name and class; names removed in order; tier after each
    // removal, None once no listing is left).
    type Case = (
        &'static [(&'static str, Option<&'static str>)],
        &'static [&'static str],
        &'static [Option<u8>],
    );
    let cases: [Case; 5] = [
        (&[("a", None), ("b", None)], &["a", "b"], &[Some(0), None]),
        (&[("a", None), ("b", None)], &["b", "a"], &[Some(0), None]),
        (
            &[("a", Some("GLACIER")), ("b", None)],
            &["b", "a"],
            &[Some(1), None],
        ),
        (
            &[("a", None), ("b", Some("DEEP_ARCHIVE"))],
            &["a", "b"],
            &[Some(2), None],
        ),
        (
            &[
                ("a", Some("DEEP_ARCHIVE")),
                ("b", Some("GLACIER")),
                ("c", None),
            ],
            &["c", "b", "a"],
            &[Some(1), Some(2), None],
        ),
    ];
    for (adds, removes, tiers) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cat = Catalog::open(&dir.path().join("c.db")).expect("open");
        let mut nearest = u8::MAX;
        for (i, (name, class)) in adds.iter().enumerate() {
            let before = cat.conn.total_changes();
            let file = IndexFile {
                packs: vec![pack_of(1, *class, 20, 3)],
            };
            cat.insert_index(name, &file).expect("insert");
            let written = cat.conn.total_changes() - before;
            // index_files and packs rows; the three blob rows the first time, and again (an
            // update of their tier) when this listing's class is nearer.
            let t = crate::repo::index::tier(*class);
            let want = if i == 0 || t < nearest { 5 } else { 2 };
            nearest = nearest.min(t);
            assert_eq!(written, want, "{adds:?}: listing {name}");
            assert_eq!(tier_of(&cat), Some(nearest), "{adds:?}: after {name}");
        }
        for (name, want) in removes.iter().zip(tiers) {
            cat.remove_index(name).expect("remove");
            assert_eq!(tier_of(&cat), *want, "{adds:?}: without {name}");
            let rows = cat.blob_packs(&BlobId([22; 32]), 9).expect("packs").len();
            assert_eq!(
                rows,
                usize::from(want.is_some()),
                "{adds:?}: without {name}"
            );
        }
    }
}
