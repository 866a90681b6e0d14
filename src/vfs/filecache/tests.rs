use super::fill::add_range;
use super::*;

/// Bytes the directory's files take on disk (blocks, so a sparse file counts its data).
fn on_disk(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    super::super::diskcache::files(dir)
        .iter()
        .map(|(_, m)| m.blocks() * 512)
        .sum()
}

fn hash(data: &[u8]) -> Hash {
    *blake3::hash(data).as_bytes()
}

fn read_all(p: Pinned) -> Vec<u8> {
    let mut v = vec![0u8; p.file.metadata().expect("stat").len() as usize];
    p.file.read_exact_at(&mut v, 0).expect("read");
    v
}

/// Writes `data` into a new fill in `pieces` (offset ranges, in that order); whether the
/// entry was complete after each piece.
fn fill(c: &Arc<FileCache>, data: &[u8], pieces: &[(usize, usize)]) -> Vec<bool> {
    let f = c.begin(&hash(data), data.len() as u64, &[]).expect("begin");
    pieces
        .iter()
        .map(|&(s, e)| f.write(s as u64, &data[s..e]))
        .collect()
}

#[test]
fn add_range_merges_and_keeps_order() {
    // (ranges before, added, ranges after)
    type Case = (Vec<(u64, u64)>, (u64, u64), Vec<(u64, u64)>);
    let cases: Vec<Case> = vec![
        (vec![], (0, 10), vec![(0, 10)]),
        (vec![(0, 10)], (10, 20), vec![(0, 20)]),
        (vec![(10, 20)], (0, 5), vec![(0, 5), (10, 20)]),
        (vec![(0, 5), (10, 20)], (5, 10), vec![(0, 20)]),
        (
            vec![(0, 5), (10, 20)],
            (30, 40),
            vec![(0, 5), (10, 20), (30, 40)],
        ),
        (vec![(0, 5), (10, 20), (30, 40)], (3, 35), vec![(0, 40)]),
        (vec![(0, 40)], (10, 20), vec![(0, 40)]),
    ];
    for (before, (s, e), after) in cases {
        let mut r = before.clone();
        add_range(&mut r, s, e);
        assert_eq!(r, after, "{before:?} + {s}..{e}");
    }
}

#[test]
fn an_entry_appears_when_every_byte_is_written_in_any_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let c = FileCache::open(tmp.path().join("f"), 1 << 20).expect("open");
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let h = hash(&data);
    // Out of order, overlapping, and a last read that runs past the end (as the
    // kernel's read of a file's last page does).
    let mut padded = data.clone();
    padded.extend([0u8; 96]);
    let f = c.begin(&h, data.len() as u64, &[]).expect("begin");
    assert!(!f.write(4096, &data[4096..8192]));
    assert!(
        c.get(&h, 10_000).is_none(),
        "no entry before the file is whole"
    );
    assert!(!f.write(0, &data[..5000]));
    assert!(f.write(8192, &padded[8192..]));
    drop(f);
    assert!(read_all(c.get(&h, 10_000).expect("kept")) == data);
    assert_eq!(c.used(), 12_288, "counted in whole 4 KiB blocks");
    // Kept once: a second fill of the same content is not started.
    assert!(c.begin(&h, 10_000, &[]).is_none());
}

#[test]
fn an_unfinished_fill_leaves_nothing_and_holes_stay_holes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("f");
    let c = FileCache::open(dir.clone(), 64 << 20).expect("open");
    let data = vec![3u8; 100_000];
    assert_eq!(fill(&c, &data, &[(0, 50_000)]), vec![false]);
    assert_eq!(c.used(), 0);
    assert_eq!(on_disk(&dir), 0, "temporary file removed");
    assert!(c.get(&hash(&data), 100_000).is_none());

    // 8 MiB of zeros with 4 KiB of data at the start: only the data takes blocks.
    let mut sparse = vec![0u8; 8 << 20];
    sparse[..4096].fill(9);
    let n = sparse.len();
    assert_eq!(
        fill(&c, &sparse, &[(0, n / 2), (n / 2, n)]),
        vec![false, true]
    );
    // A reader that seeks over the holes (`cp`) writes the data only: with the holes
    // given at the start, that completes the entry.
    let mut other = sparse.clone();
    other[n - 10..].fill(5);
    let f = c
        .begin(&hash(&other), n as u64, &[(4096, n as u64 - 4096)])
        .expect("begin");
    assert!(!f.write(0, &other[..4096]));
    assert!(f.write(n as u64 - 4096, &other[n - 4096..]));
    drop(f);
    assert!(read_all(c.get(&hash(&other), n as u64).expect("kept")) == other);
    assert!(read_all(c.get(&hash(&sparse), n as u64).expect("kept")) == sparse);
    assert!(on_disk(&dir) < 1 << 20, "{} bytes on disk", on_disk(&dir));
}

#[test]
fn the_cache_stays_within_its_limit_least_recently_used_first() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("f");
    let limit = 64 * 1024;
    let c = FileCache::open(dir.clone(), limit).expect("open");
    let files: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i + 1; 10_000]).collect();
    for (i, data) in files.iter().enumerate() {
        // Keep the first file in use: it must survive the others.
        assert!(c.get(&hash(&files[0]), 10_000).is_some() || i == 0);
        assert_eq!(fill(&c, data, &[(0, 10_000)]), vec![true]);
        assert!(c.used() <= limit, "{} used", c.used());
        assert!(on_disk(&dir) <= limit, "{} on disk", on_disk(&dir));
    }
    assert!(c.get(&hash(&files[0]), 10_000).is_some(), "in use, kept");
    assert!(c.get(&hash(&files[1]), 10_000).is_none(), "oldest, evicted");
    assert!(c.get(&hash(&files[19]), 10_000).is_some(), "newest, kept");
    // A fill reserves its size before writing: with the room taken by fills in progress,
    // no new one starts, and the disk never holds more than the limit.
    let big: Vec<Fill> = (0..4u8)
        .filter_map(|i| c.begin(&hash(&[i; 16_000]), 16_000, &[]))
        .collect();
    assert_eq!(big.len(), 4);
    assert!(c.begin(&hash(b"x"), 1000, &[]).is_none(), "no room left");
    assert!(c.used() <= limit);
    drop(big);
    // Larger than a quarter of the cache: never kept.
    assert!(c.begin(&hash(&[1; 20_000]), 20_000, &[]).is_none());
}

#[test]
fn entries_of_an_earlier_process_are_checked_once_and_damaged_ones_deleted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("f");
    let good = vec![1u8; 5000];
    let bad = vec![2u8; 5000];
    let c = FileCache::open(dir.clone(), 1 << 20).expect("open");
    fill(&c, &good, &[(0, 5000)]);
    fill(&c, &bad, &[(0, 5000)]);
    drop(c);
    // A crash after the rename, before writeback: the entry holds something else. And
    // a fill's temporary file and a stray name are left behind.
    let bad_path = dir
        .join(&hex::encode(hash(&bad))[..2])
        .join(hex::encode(hash(&bad)));
    std::fs::write(&bad_path, vec![0u8; 5000]).expect("damage");
    let sub = dir.join("00");
    std::fs::create_dir_all(&sub).expect("mkdir");
    std::fs::write(sub.join(".fill-0000000000000001"), b"half").expect("tmp");
    std::fs::write(sub.join("not-an-entry"), b"x").expect("stray");

    let c = FileCache::open(dir.clone(), 1 << 20).expect("reopen");
    assert_eq!(c.used(), 16_384);
    assert!(read_all(c.get(&hash(&good), 5000).expect("good")) == good);
    assert!(c.get(&hash(&bad), 5000).is_none(), "damaged entry served");
    assert!(!bad_path.exists(), "damaged entry kept on disk");
    assert_eq!(c.used(), 8192);
    assert_eq!(
        on_disk(&dir),
        8192,
        "only the good entry is left (one 8 KiB extent)"
    );
    // The wrong size for a hash is a miss, not a short file.
    assert!(c.get(&hash(&good), 4999).is_none());
}

#[test]
fn an_open_entry_is_not_evicted_and_a_wrong_content_is_not_kept() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("f");
    let limit = 64 * 1024;
    let c = FileCache::open(dir.clone(), limit).expect("open");
    let first = vec![1u8; 12_000];
    fill(&c, &first, &[(0, 12_000)]);
    let held = c.get(&hash(&first), 12_000).expect("kept");
    for i in 2..20u8 {
        fill(&c, &[i; 12_000], &[(0, 12_000)]);
        assert!(on_disk(&dir) <= limit, "{} on disk", on_disk(&dir));
    }
    assert!(entry_of(&dir, &first).exists(), "an open entry was evicted");
    drop(held);
    fill(&c, &[99; 12_000], &[(0, 12_000)]);
    assert!(!entry_of(&dir, &first).exists(), "unpinned, and the oldest");

    // Bytes that are not the content the hash names: never filed under it.
    let named = vec![7u8; 8000];
    let f = c.begin(&hash(&named), 8000, &[]).expect("begin");
    assert!(!f.write(0, &[8u8; 8000]));
    assert!(f.ended());
    drop(f);
    assert!(c.get(&hash(&named), 8000).is_none());
    assert!(!entry_of(&dir, &named).exists());

    // One fill per content at a time.
    let f = c.begin(&hash(&named), 8000, &[]).expect("begin");
    assert!(c.begin(&hash(&named), 8000, &[]).is_none());
    drop(f);
    assert!(c.begin(&hash(&named), 8000, &[]).is_some());
}

#[test]
fn a_sealed_cache_trusts_older_entries_only_and_one_process_holds_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("f");
    let old = vec![1u8; 5000];
    let c = FileCache::open(dir.clone(), 1 << 20).expect("open");
    assert!(
        FileCache::open(dir.clone(), 1 << 20)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "a second process took the cache"
    );
    fill(&c, &old, &[(0, 5000)]);
    c.seal().expect("seal");
    drop(c);
    assert!(dir.join(SEAL).exists());
    // After the seal, a process that then crashed left an entry with other bytes in it.
    let late = vec![2u8; 5000];
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::create_dir_all(entry_of(&dir, &late).parent().expect("parent")).expect("mkdir");
    std::fs::write(entry_of(&dir, &late), vec![0u8; 5000]).expect("write");

    let c = FileCache::open(dir.clone(), 1 << 20).expect("reopen");
    assert!(
        !dir.join(SEAL).exists(),
        "the seal outlives the process that read it"
    );
    assert!(
        c.state.lock().entries[&hash(&old)].checked,
        "sealed entry not trusted"
    );
    assert!(
        !c.state.lock().entries[&hash(&late)].checked,
        "newer entry trusted"
    );
    assert!(read_all(c.get(&hash(&old), 5000).expect("old")) == old);
    assert!(
        c.get(&hash(&late), 5000).is_none(),
        "unsealed damaged entry served"
    );

    // A crash left a damaged entry; the next process never opened it and sealed at its
    // clean end. The seal does not vouch for it: the process after that still checks it.
    let other = vec![3u8; 5000];
    fill(&c, &other, &[(0, 5000)]);
    drop(c);
    std::fs::write(entry_of(&dir, &other), vec![0u8; 5000]).expect("damage");
    let c = FileCache::open(dir.clone(), 1 << 20).expect("after the crash");
    c.seal().expect("seal");
    drop(c);
    let c = FileCache::open(dir.clone(), 1 << 20).expect("after the clean end");
    assert!(!c.state.lock().entries[&hash(&other)].checked);
    assert!(
        c.get(&hash(&other), 5000).is_none(),
        "crash-damaged entry served"
    );
}

#[test]
fn make_room_deletes_nothing_when_it_cannot_make_enough() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("f");
    let c = FileCache::open(dir.clone(), 128 * 1024).expect("open");
    let a = vec![1u8; 12_000];
    let b = vec![2u8; 12_000];
    fill(&c, &a, &[(0, 12_000)]);
    fill(&c, &b, &[(0, 12_000)]);
    // `a` held open and three fills of 32 KiB in progress: 120 KiB of 128 taken, of which
    // only b's 12 KiB can be freed.
    let _held = c.get(&hash(&a), 12_000).expect("a");
    let fills: Vec<Fill> = (10..13u8)
        .filter_map(|i| c.begin(&hash(&[i; 32_000]), 32_000, &[]))
        .collect();
    assert_eq!(fills.len(), 3);
    // 24 KiB more cannot fit even with b gone: b stays.
    assert!(c.begin(&hash(&[20; 24_000]), 24_000, &[]).is_none());
    assert!(entry_of(&dir, &b).exists(), "evicted for nothing");
    // 20 KiB can: b goes.
    assert!(c.begin(&hash(&[21; 20_000]), 20_000, &[]).is_some());
    assert!(!entry_of(&dir, &b).exists());
}

fn entry_of(dir: &Path, content: &[u8]) -> PathBuf {
    path_in(dir, &hash(content))
}
