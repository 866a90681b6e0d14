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
