//! The mount's file cache and FUSE passthrough (`cofre mount --file-cache`, issue 27):
//! copies stay exact with it, a file seen once is read by the kernel from the cache with
//! no request to the mount, the cache keeps to its bound on disk, a damaged entry is never
//! served, and the kernel's rule that one inode is not opened both ways is kept.

mod common;
use common::*;

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file cache's directory of a local repository's mount.
fn cache_dir(env: &Env) -> PathBuf {
    let root = env.path(&env.cache).join("cofre");
    let mut found = walk(&root)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "files") && p.is_dir());
    found.next().expect("a file cache directory")
}

/// Where the cache keeps the file with this content.
fn entry_of(dir: &Path, content: &[u8]) -> PathBuf {
    let h = blake3::hash(content).to_hex().to_string();
    dir.join(&h[..2]).join(h)
}

/// Blocks the cache's files take on disk, in bytes (what `du` says). The mount writes and
/// evicts entries while this runs, so an entry listed and gone before its stat is skipped
/// (`common::walk` would fail on it: CI saw that race).
fn on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

/// The awkward tree (xattrs, ACLs, hardlinks, a 300 MB sparse file, odd names) copied out
/// with `cp -a` three times, each by a new mount process: the first decodes and fills the
/// cache, the second reads every file through passthrough and sends no read at all, the
/// third finds every entry damaged and must neither serve one nor fail. Each copy is
/// compared byte for byte and metadata for metadata, and by `rsync -aHAX`.
#[test]
fn copies_through_the_file_cache_are_exact_and_a_second_mount_reads_nothing() {
    let env = Env::new();
    let src = env.path("src");
    make_awkward_tree(&src);
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let files_with_data = walk(&src)
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file() && m.len() > 0)
        .count() as u64;
    let copy = |name: &str| {
        let log = env.path(&format!("{name}.log"));
        // 2 GiB: the sparse file (300 MB long, 1.1 MB of data) is kept too.
        let m = Mount::start_logged(
            &env,
            &format!("mnt-{name}"),
            &["-v", "--file-cache", "2048", "--file-cache-min", "0"],
            &log,
        );
        let out = env.path(name);
        copy_dir(&m.latest("default", &src), &out);
        m.stop();
        assert_eq!(rsync_diff(&src, &out), "", "{name}");
        assert_eq!(compare_trees(&src, &out), Vec::<String>::new(), "{name}");
        (
            fuse_requests(&log),
            std::fs::read_to_string(&log).expect("log"),
        )
    };

    let (first, _) = copy("first");
    assert!(first["read"] > 0, "{first:?}");
    let (second, _) = copy("second");
    // Every open of a file with data passed through (hardlinks share an inode but
    // `cp -a` opens the first name only), and the kernel sent no read.
    assert!(second["passthrough"] >= files_with_data - 2, "{second:?}");
    assert_eq!(second.get("read").copied().unwrap_or(0), 0, "{second:?}");

    // A crash before writeback can leave an entry with other bytes in it: damage them
    // all. The next mount checks each before first use, deletes it, and decodes.
    let dir = cache_dir(&env);
    let entries: Vec<PathBuf> = walk(&dir).into_iter().filter(|p| p.is_file()).collect();
    assert!(entries.len() as u64 >= files_with_data - 2);
    for p in &entries {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .expect("open entry");
        f.write_all_at(b"X", 0).expect("damage");
    }
    let (third, log) = copy("third");
    assert!(third["read"] > 0, "{third:?}");
    assert!(log.contains("does not match its content hash"), "{log}");
}

/// The cache keeps to its bound measured on disk while a tree eight times its size is
/// read, keeps the entry of a file open in passthrough mode, which reads right even once
/// that entry is deleted behind its back; and a
/// file open through the mount is never also opened in passthrough mode (the kernel
/// fails such an open with EIO), even once its entry appears.
#[test]
fn the_file_cache_keeps_its_bound_and_open_files_read_right() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    // 64 files of 128 KiB-1.1 MiB (~38 MiB) through a 4 MiB cache (1 MiB per file at most).
    let names: Vec<String> = (0..64).map(|i| format!("f{i:02}")).collect();
    for (i, n) in names.iter().enumerate() {
        let len = 128 * 1024 + (i % 8) * 128 * 1024;
        std::fs::write(src.join(n), noise(len, 7 + i as u64)).expect("write");
    }
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let log = env.path("mount.log");
    let m = Mount::start_logged(
        &env,
        "mnt",
        &["-vv", "--file-cache", "4", "--file-cache-min", "0"],
        &log,
    );
    let view = m.latest("default", &src);
    let dir = cache_dir(&env);
    let read = |n: &str| std::fs::read(view.join(n)).expect("read through the mount");
    let want = |n: &str| std::fs::read(src.join(n)).expect("source");

    // f00 read once (its entry appears), then opened again: passthrough, held open.
    // Entries are written after the reply, so the reader may get there first.
    let kept =
        |content: &[u8]| wait_for(Duration::from_secs(10), || entry_of(&dir, content).exists());
    assert!(read("f00") == want("f00"));
    assert!(kept(&want("f00")), "f00 was not kept");
    // The kernel sends RELEASE after close() returns, so an open right away may still find
    // f00 open through the mount and rightly not pass through (the held handle would then
    // not pin f00's entry): open again until one passes through.
    let passed_through = |ino: u64| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains(&format!("inode {ino}: opened in passthrough mode"))
    };
    let f00_ino = std::fs::metadata(view.join("f00")).expect("stat f00").ino();
    let mut held = None;
    assert!(
        wait_for(Duration::from_secs(10), || {
            let f = std::fs::File::open(view.join("f00")).expect("open f00");
            let through = passed_through(f00_ino);
            if through {
                held = Some(f);
            }
            through
        }),
        "f00 was never opened in passthrough mode"
    );
    let held = held.expect("held f00");

    // Every other file, twice, with the bound checked after each (`du` would not see an
    // evicted file still open: an open entry is not evicted, so that cannot happen).
    let round_of_reads = |round: usize| {
        for n in &names[1..] {
            assert!(read(n) == want(n), "{n} differs (round {round})");
            let used = on_disk(&dir);
            assert!(used <= 4 << 20, "{used} bytes on disk after {n}");
        }
    };
    round_of_reads(0);
    assert!(
        entry_of(&dir, &want("f00")).exists(),
        "open f00 was evicted"
    );
    // Deleted behind the mount's back while open: the kernel holds the file, and reads go on.
    std::fs::remove_file(entry_of(&dir, &want("f00"))).expect("rm f00's entry");
    let mut got = vec![0u8; want("f00").len()];
    held.read_exact_at(&mut got, 0).expect("read held f00");
    assert!(
        got == want("f00"),
        "an open file whose entry went read wrong"
    );
    drop(held);
    // Closed, then a miss: read through the mount again, and kept again. Until the mount
    // has the RELEASE, an open still joins the held handle's passthrough (its backing is
    // the deleted entry), which keeps nothing: read again until kept.
    assert!(
        wait_for(Duration::from_secs(10), || {
            assert!(read("f00") == want("f00"), "f00 differs");
            entry_of(&dir, &want("f00")).exists()
        }),
        "f00 was not kept again"
    );
    round_of_reads(1);

    // f01 opened and read whole through the mount: its entry appears while the handle is
    // still open. A second open must not pass through (EIO); once both are closed, the
    // next open does.
    let f01 = want("f01");
    assert!(!entry_of(&dir, &f01).exists());
    let first = std::fs::File::open(view.join("f01")).expect("open f01");
    let mut got = vec![0u8; f01.len()];
    first.read_exact_at(&mut got, 0).expect("read f01");
    assert!(got == f01);
    assert!(kept(&f01), "f01 was not kept");
    let second = std::fs::File::open(view.join("f01")).expect("second open of f01");
    let mut again = vec![0u8; f01.len()];
    second
        .read_exact_at(&mut again, 0)
        .expect("read f01 through a second handle");
    assert!(again == f01);
    drop((first, second));
    // The kernel sends RELEASE after close() returns, so an open right away may still find
    // f01 open through the mount and rightly not pass through: open again until one does
    // (the mount's inode numbers are what stat shows).
    let ino = std::fs::metadata(view.join("f01")).expect("stat f01").ino();
    assert!(
        wait_for(Duration::from_secs(10), || {
            assert!(read("f01") == f01, "f01 differs");
            passed_through(ino)
        }),
        "f01 was never opened in passthrough mode once both handles were closed"
    );
    m.stop();
    let counts = fuse_requests(&log);
    assert!(counts["passthrough"] >= 2, "{counts:?}");
}
