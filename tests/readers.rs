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
