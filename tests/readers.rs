//! Readers under pressure (issue 13): many concurrent readers of one file and of many files
//! through a mount whose cache is far smaller than what they read, a restore with a tiny
//! cache, and the mount's memory staying within its bound while copying out a tree many
//! times the cache size.

mod common;
use common::*;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MIB: usize = 1024 * 1024;

/// A big file (half noise, half text, so both compressed and stored chunks) and `files`
/// smaller ones of 0.5-2.5 MiB.
fn make_tree(root: &Path, big: usize, files: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(root.join("many")).expect("mkdir");
    let mut data = noise(big / 2, 1);
    while data.len() < big {
        data.extend_from_slice(format!("line {} of the text half\n", data.len()).as_bytes());
    }
    std::fs::write(root.join("big"), &data).expect("write");
    let mut paths = vec![PathBuf::from("big")];
    for i in 0..files {
        let rel = PathBuf::from(format!("many/f{i:03}"));
        std::fs::write(
            root.join(&rel),
            noise(MIB / 2 + i * 64 * 1024, 100 + i as u64),
        )
        .expect("write");
        paths.push(rel);
    }
    paths
}

fn drop_page_cache() {
    let _ = std::process::Command::new("sync").status();
    // Without root the kernel's page cache may serve later passes: the readers still
    // compare bytes, the memory test reads less through the mount.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

#[test]
fn eight_readers_of_one_file_and_of_many_files_get_exact_bytes() {
    let env = Env::new();
    let src = env.path("src");
    let paths = make_tree(&src, 24 * MIB, 24);
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    // 4 MiB of cache for ~60 MiB read at once: chunks are evicted while others wait on them.
    eight_readers(&env, &src, &paths, &["--cache-mib", "4"]);
    // With the file cache (`--file-cache`), twice: the first mount's readers fill it while
    // others open the same files, the second's open them in passthrough mode. The files'
    // opens mix both ways on one inode, which the kernel refuses (EIO) if done wrong.
    let mut passed = Vec::new();
    for _ in 0..2 {
        let extra = ["--cache-mib", "4", "--file-cache", "128"];
        passed.push(eight_readers(&env, &src, &paths, &extra)["passthrough"]);
    }
    // Every file was read whole in the first round, so all 25 are kept, and the second
    // round's opens (8 readers of the big one, then 8 x 25 files) pass through.
    assert!(
        passed[1] >= 8 + 8 * 25,
        "passthrough opens per round: {passed:?}"
    );

    // A restore with a 1 MiB cache: its writers and read-ahead evict each other's chunks.
    env.restore_matches(&["latest", "--cache-mib", "1"], "restored", &src);
}

/// Eight readers of one file, then eight readers of every file, through a new mount with
/// `extra` options, each comparing what it reads with `src`; the mount's request counts.
fn eight_readers(
    env: &Env,
    src: &Path,
    paths: &[PathBuf],
    extra: &[&str],
) -> std::collections::HashMap<String, u64> {
    let log = env.path("readers.log");
    let m = Mount::start_logged(env, "mnt", &[extra, &["-v"]].concat(), &log);
    let view = m.latest("default", src);
    let want_big = std::fs::read(src.join("big")).expect("read");

    // One file, 8 readers: each reads all of it in its own order and request size.
    drop_page_cache();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (view, want) = (&view, &want_big);
            s.spawn(move || {
                let f = std::fs::File::open(view.join("big")).expect("open");
                let step = [4096, 65536, 131072, 1 << 20][t as usize % 4] + t as usize * 512;
                let blocks = want.len().div_ceil(step);
                let mut got = vec![0u8; want.len()];
                for k in 0..blocks {
                    // Readers 0-3 go forward, 4-7 hop from a different start.
                    let b = if t < 4 {
                        k
                    } else {
                        (k * 7 + t as usize) % blocks
                    };
                    let off = b * step;
                    let end = (off + step).min(want.len());
                    f.read_exact_at(&mut got[off..end], off as u64)
                        .unwrap_or_else(|e| panic!("reader {t} at {off}: {e}"));
                }
                assert!(got == *want, "reader {t} got different bytes");
            });
        }
    });

    // Many files, 8 readers: each reads every file, starting at a different one.
    drop_page_cache();
    std::thread::scope(|s| {
        for t in 0..8 {
            let view = &view;
            s.spawn(move || {
                for k in 0..paths.len() {
                    let rel = &paths[(k * 5 + t * 3) % paths.len()];
                    let got = std::fs::read(view.join(rel))
                        .unwrap_or_else(|e| panic!("reader {t}, {}: {e}", rel.display()));
                    let want = std::fs::read(src.join(rel)).expect("source");
                    assert!(got == want, "reader {t}: {} differs", rel.display());
                }
            });
        }
    });
    m.stop();
    fuse_requests(&log)
}

/// RSS of a process in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("VmRSS")
        / 1024
}

#[test]
fn mount_memory_stays_within_the_cache_bound_while_copying_out() {
    let env = Env::new();
    let src = env.path("src");
    // ~140 MiB, mostly noise: decoded chunks about as large as they are stored.
    make_tree(&src, 48 * MIB, 48);
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let cache_mib = 16;
    let m = Mount::start(&env, "mnt", &["--cache-mib", &cache_mib.to_string()]);
    let view = m.latest("default", &src);
    let bound = cache_mib + 64;
    for pass in 0..3 {
        drop_page_cache();
        let out = env.path(&format!("copy{pass}"));
        copy_dir(&view, &out);
        assert_eq!(rsync_diff(&src, &out), "", "pass {pass}");
        let rss = rss_mib(m.pid());
        eprintln!("pass {pass}: mount RSS {rss} MiB (bound {bound})");
        assert!(
            rss <= bound as u64,
            "pass {pass}: the mount holds {rss} MiB after copying out {} MiB with --cache-mib {cache_mib}",
            dir_size(&src) >> 20
        );
        std::fs::remove_dir_all(&out).expect("rm");
    }
    m.stop();
}

/// Whether every page of `p` is in the kernel's page cache. `mincore` on a mapping reads
/// nothing: it only reports what is there.
fn in_page_cache(p: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(p).expect("open");
    let len = f.metadata().expect("stat").len() as usize;
    // SAFETY: a read-only mapping of an open file, unmapped before return; mincore writes
    // one byte per page into a vector of that many.
    unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
        let at = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(at, libc::MAP_FAILED, "mmap {}", p.display());
        let mut pages = vec![0u8; len.div_ceil(page)];
        let rc = libc::mincore(at, len, pages.as_mut_ptr());
        libc::munmap(at, len);
        assert_eq!(rc, 0, "mincore {}", p.display());
        pages.iter().all(|b| b & 1 == 1)
    }
}

/// `cp -a`, `rsync` and `tar` read a directory's files one after the other. Once a file
/// was read from its start, the mount pushes the files listed after it into the kernel's
/// page cache (FUSE_NOTIFY_STORE, `mount/push.rs`): a first few, and once a second read
/// in the directory shows a walk, the rest. The walker finds them there before reading
/// them, they read back exact, and reading them sends the mount no READ. A file over
/// 1 MiB is left to the kernel's own read-ahead.
#[test]
fn files_after_the_one_being_read_are_pushed_into_the_page_cache() {
    let env = Env::new();
    let src = env.path("src");
    let dir = src.join("walk");
    std::fs::create_dir_all(dir.join("f10-sub")).expect("mkdir");
    std::fs::write(dir.join("f10-sub/inner"), b"inner").expect("write");
    std::os::unix::fs::symlink("f00", dir.join("f20-link")).expect("symlink");
    std::fs::write(dir.join("f30-empty"), b"").expect("write");
    std::fs::write(dir.join("f25-big"), noise(3 * MIB, 7)).expect("write");
    let sizes = [1, 4095, 4096, 4097, 100_000, 300_000, 700_000];
    let small: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
    for (i, name) in small.iter().enumerate() {
        let data = noise(sizes[i % sizes.len()] + i, 200 + i as u64);
        std::fs::write(dir.join(name), data).expect("write");
    }
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let log = env.path("mount.log");
    let m = Mount::start_logged(&env, "mnt", &["-v"], &log);
    let view = m.latest("default", &dir);
    // The walker: a listing, then each file in turn, read whole once it is in the page
    // cache, or after 2 s without.
    assert_eq!(std::fs::read_dir(&view).expect("list").count(), 44);
    let mut found = Vec::new();
    for name in &small {
        let path = view.join(name);
        if wait_for(std::time::Duration::from_secs(2), || in_page_cache(&path)) {
            found.push(name.clone());
        }
        assert_eq!(
            std::fs::read(&path).expect("read"),
            std::fs::read(dir.join(name)).expect("read"),
            "{name}"
        );
    }
    assert!(
        !in_page_cache(&view.join("f25-big")),
        "over 1 MiB: not pushed"
    );
    m.stop();
    let reads = fuse_requests(&log)["read"];
    // f00 starts the walk; the first file past the first few pushed shows it.
    assert!(
        found.len() >= small.len() - 3,
        "only {found:?} were in the page cache before they were read"
    );
    assert!(reads <= 3, "{reads} READs for {} files", small.len());
}
