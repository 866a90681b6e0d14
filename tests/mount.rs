//! The real FUSE mount: exact content and metadata, layout, read-only, live updates,
//! damaged data, clean unmount, the hidden hash xattr.

mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[test]
fn awkward_tree_through_the_mount_is_exact() {
    let env = Env::new();
    let src = env.path("src");
    make_awkward_tree(&src);
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let m = Mount::start(&env, "mnt", &[]);
    let view = m.latest("default", &src);
    assert_eq!(rsync_diff(&src, &view), "");
    assert_eq!(compare_trees(&src, &view), Vec::<String>::new());

    // cp -a out of the mount: identical again, and the sparse file stays sparse.
    let out = env.path("copy");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&view)
        .arg(&out)
        .status()
        .expect("cp");
    assert!(st.success());
    assert_eq!(rsync_diff(&src, &out), "");
    assert_eq!(compare_trees(&src, &out), Vec::<String>::new());
    let blocks = std::os::unix::fs::MetadataExt::blocks(
        &std::fs::metadata(out.join("sparse.img")).expect("stat"),
    );
    assert!(
        blocks * 512 < 10 * 1024 * 1024,
        "sparse file copied with {blocks} blocks"
    );
    m.stop();
}

#[test]
fn layout_sets_dates_latest_ids_and_same_minute_snapshots() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"one").expect("write");
    env.init();
    let s = src.to_str().expect("utf-8");
    env.ok(&["ingest", s, "--set", "db", "--time", "2026-03-04T05:06:07Z"]);
    std::fs::write(src.join("f"), b"two").expect("write");
    env.ok(&["ingest", s, "--set", "db", "--time", "2026-03-04T05:06:40Z"]);
    std::fs::write(src.join("f"), b"three").expect("write");
    env.ok(&[
        "ingest",
        s,
        "--set",
        "files",
        "--time",
        "2026-10-11T12:13:14Z",
    ]);
    let snaps = env.json(&["snapshots", "--set", "db"]);
    let second = snaps[1]["id"].as_str().expect("id").to_string();

    let m = Mount::start(&env, "mnt", &[]);
    let rel = src.strip_prefix("/").expect("abs");
    let day = m.dir.join("db/2026/03/04");
    let mut names: Vec<_> = std::fs::read_dir(&day)
        .expect("day")
        .map(|e| e.expect("e").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["0506".to_string(), format!("0506-{}", &second[..8])]
    );
    assert_eq!(
        std::fs::read(day.join("0506").join(rel).join("f")).expect("read"),
        b"one"
    );
    assert_eq!(
        std::fs::read(
            day.join(format!("0506-{}", &second[..8]))
                .join(rel)
                .join("f")
        )
        .expect("read"),
        b"two"
    );
    assert_eq!(
        std::fs::read_link(m.dir.join("db/latest"))
            .expect("link")
            .to_str(),
        Some(&*format!("2026/03/04/0506-{}", &second[..8]))
    );
    assert_eq!(
        std::fs::read(m.latest("files", &src).join("f")).expect("read"),
        b"three"
    );
    assert_eq!(
        std::fs::read(m.dir.join("files/2026/10/11/1213").join(rel).join("f")).expect("read"),
        b"three"
    );
    assert_eq!(
        std::fs::read(m.dir.join("ids").join(&second[..8]).join(rel).join("f")).expect("read"),
        b"two"
    );
    let mut top: Vec<_> = std::fs::read_dir(&m.dir)
        .expect("root")
        .map(|e| e.expect("e").file_name().into_string().expect("utf-8"))
        .collect();
    top.sort();
    assert_eq!(top, ["db", "files", "ids"]);
    m.stop();
}

fn errno_of(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

#[test]
fn every_write_fails_with_erofs_and_allow_other_keeps_modes() {
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let src = env.path("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(src.join("public"), b"everyone").expect("write");
    std::fs::write(src.join("private"), b"root only").expect("write");
    std::fs::set_permissions(src.join("public"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    std::fs::set_permissions(src.join("private"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let m = Mount::start(&env, "mnt", &["--allow-other"]);
    let v = m.latest("default", &src);
    let erofs = Some(libc::EROFS);
    assert_eq!(
        errno_of(
            std::fs::OpenOptions::new()
                .write(true)
                .open(v.join("public"))
        ),
        erofs
    );
    assert_eq!(errno_of(std::fs::File::create(v.join("new"))), erofs);
    assert_eq!(errno_of(std::fs::create_dir(v.join("newdir"))), erofs);
    assert_eq!(errno_of(std::fs::remove_file(v.join("public"))), erofs);
    assert_eq!(errno_of(std::fs::remove_dir(v.join("d"))), erofs);
    assert_eq!(
        errno_of(std::fs::rename(v.join("public"), v.join("moved"))),
        erofs
    );
    assert_eq!(
        errno_of(std::fs::set_permissions(
            v.join("public"),
            std::fs::Permissions::from_mode(0o777)
        )),
        erofs
    );
    assert_eq!(
        errno_of(std::os::unix::fs::symlink("x", v.join("sym"))),
        erofs
    );
    assert_eq!(
        errno_of(std::fs::hard_link(v.join("public"), v.join("hl"))),
        erofs
    );
    assert_eq!(
        errno_of(xattr::set(v.join("public"), "user.x", b"y")),
        erofs
    );
    assert_eq!(
        errno_of(std::os::unix::fs::chown(v.join("public"), Some(1), Some(1))),
        erofs
    );
    let truncate = std::process::Command::new("truncate")
        .args(["-s", "0"])
        .arg(v.join("public"))
        .output()
        .expect("truncate");
    assert!(
        String::from_utf8_lossy(&truncate.stderr).contains("Read-only file system"),
        "{truncate:?}"
    );

    // Another user: the original modes apply.
    let public = as_nobody(&["cat", v.join("public").to_str().expect("utf-8")]);
    assert!(public.status.success(), "{public:?}");
    assert_eq!(public.stdout, b"everyone");
    let private = as_nobody(&["cat", v.join("private").to_str().expect("utf-8")]);
    assert!(!private.status.success());
    assert!(
        String::from_utf8_lossy(&private.stderr).contains("Permission denied"),
        "{private:?}"
    );
    m.stop();
}

/// The names in `dir`, sorted.
fn sorted_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn new_snapshots_appear_live_and_latest_moves() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"before").expect("write");
    env.init();
    let s = src.to_str().expect("utf-8");
    env.ok(&["ingest", s, "--time", "2026-01-01T00:00:00Z"]);
    let m = Mount::start(&env, "mnt", &[]);
    let link = m.dir.join("default/latest");
    assert_eq!(
        std::fs::read_link(&link).expect("link").to_str(),
        Some("2026/01/01/0000")
    );
    // The layout's listings, read once before the new snapshot: the kernel may keep them
    // (no opendir, cached listings), so the mount must invalidate them when it changes.
    let months = || sorted_names(&m.dir.join("default/2026"));
    assert_eq!(months(), vec!["01"]);
    std::fs::write(src.join("f"), b"after").expect("write");
    env.ok(&["ingest", s, "--time", "2026-02-02T02:02:00Z"]);
    let started = std::time::Instant::now();
    let moved = wait_for(Duration::from_secs(5), || {
        std::fs::read_link(&link)
            .ok()
            .and_then(|t| t.to_str().map(String::from))
            .as_deref()
            == Some("2026/02/02/0202")
    });
    assert!(moved, "latest did not move within 5 s");
    assert!(
        wait_for(Duration::from_secs(5), || months() == vec!["01", "02"]),
        "the listing of default/2026 is stale: {:?}",
        months()
    );
    // A snapshot older than the newest (a backfill, another host's late ingest): the
    // newest snapshot's time, the layout directories' mtime seconds, does not move.
    let days = || sorted_names(&m.dir.join("default/2026/01"));
    assert_eq!(days(), vec!["01"]);
    env.ok(&["ingest", s, "--time", "2026-01-15T00:00:00Z"]);
    assert!(
        wait_for(Duration::from_secs(5), || days() == vec!["01", "15"]),
        "the listing of default/2026/01 is stale: {:?}",
        days()
    );
    eprintln!("new snapshot visible after {:?}", started.elapsed());
    assert_eq!(
        std::fs::read(m.latest("default", &src).join("f")).expect("read"),
        b"after"
    );
    assert_eq!(
        std::fs::read(
            m.dir
                .join("default/2026/01/01/0000")
                .join(src.strip_prefix("/").expect("abs"))
                .join("f")
        )
        .expect("read"),
        b"before"
    );
    m.stop();
}

#[test]
fn damaged_pack_gives_eio_for_that_file_only() {
    let env = Env::new();
    let src = ingest_two_files_and_damage_one(&env);

    let m = Mount::start(&env, "mnt", &[]);
    let v = m.latest("default", &src);
    let (ra, rb) = (std::fs::read(v.join("a")), std::fs::read(v.join("b")));
    let (bad, good, name) = match (&ra, &rb) {
        (Err(_), Ok(_)) => (ra, rb, "b"),
        (Ok(_), Err(_)) => (rb, ra, "a"),
        _ => panic!(
            "exactly one file must fail: a={:?} b={:?}",
            ra.is_ok(),
            rb.is_ok()
        ),
    };
    assert_eq!(bad.err().and_then(|e| e.raw_os_error()), Some(libc::EIO));
    assert_eq!(
        good.expect("good file"),
        std::fs::read(src.join(name)).expect("read")
    );
    // The mount is still up and serving.
    assert!(std::fs::metadata(v.join(name)).is_ok());
    assert!(is_mounted(&m.dir));
    m.stop();
}

#[test]
fn two_mounts_at_once_and_sigterm_unmounts() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), noise(300_000, 5)).expect("write");
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let m1 = Mount::start(&env, "mnt1", &[]);
    let m2 = Mount::start(&env, "mnt2", &[]);
    let want = std::fs::read(src.join("f")).expect("read");
    assert_eq!(
        std::fs::read(m1.latest("default", &src).join("f")).expect("read"),
        want
    );
    assert_eq!(
        std::fs::read(m2.latest("default", &src).join("f")).expect("read"),
        want
    );
    let dir1 = m1.dir.clone();
    assert!(m1.stop().success());
    assert!(!is_mounted(&dir1));
    assert_eq!(
        std::fs::read(m2.latest("default", &src).join("f")).expect("read"),
        want
    );
    // fusermount3 -u works too; the process then exits by itself.
    let st = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(&m2.dir)
        .status()
        .expect("fusermount3");
    assert!(st.success());
    assert!(!is_mounted(&m2.dir));
}

#[test]
fn hidden_hash_xattr_is_correct_and_unlisted() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let data = noise(2_345_678, 11);
    std::fs::write(src.join("f"), &data).expect("write");
    xattr::set(src.join("f"), "user.kept", b"v").expect("xattr");
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let m = Mount::start(&env, "mnt", &[]);
    let f = m.latest("default", &src).join("f");
    let got = xattr::get(&f, "user.cofre.blake3")
        .expect("getxattr")
        .expect("present");
    assert_eq!(
        String::from_utf8(got).expect("hex"),
        blake3::hash(&data).to_hex().to_string()
    );
    let listed: Vec<_> = xattr::list(&f)
        .expect("list")
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, ["user.kept"]);
    let copy = env.path("copy");
    assert!(std::process::Command::new("cp")
        .arg("-a")
        .arg(&f)
        .arg(&copy)
        .status()
        .expect("cp")
        .success());
    assert_eq!(xattr::get(&copy, "user.cofre.blake3").expect("get"), None);
    assert_eq!(
        xattr::get(&copy, "user.kept").expect("get"),
        Some(b"v".to_vec())
    );
    m.stop();
}

/// Without xattrs in any snapshot, the kernel is told once that there are none (a `cp -a`
/// then sends no listxattr and no getxattr per entry), by default as with `--no-xattrs`,
/// and the copy is still exact. `--xattrs` keeps them on, the hidden hash with them.
/// A snapshot with xattrs arriving ends the first two kinds of mount, saying why, and not
/// the third; `--no-xattrs` is then refused.
#[test]
fn xattr_free_mounts_copy_exactly_without_xattr_round_trips() {
    let env = Env::new();
    let src = env.path("src");
    make_awkward_tree(&src);
    for p in walk(&src) {
        for name in xattr::list(&p)
            .map(|l| l.collect::<Vec<_>>())
            .unwrap_or_default()
        {
            xattr::remove(&p, &name).expect("remove xattr");
        }
    }
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let hash_of = |m: &Mount| {
        let f = walk(&src)
            .into_iter()
            .find(|p| !p.is_symlink() && p.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
            .expect("a file");
        let rel = f.strip_prefix(&src).expect("under src");
        let got = xattr::get(m.latest("default", &src).join(rel), "user.cofre.blake3");
        let want = blake3::hash(&std::fs::read(&f).expect("read"));
        (got.ok().flatten(), want.to_hex().to_string().into_bytes())
    };
    let copy_with = |flags: &[&str], name: &str| {
        let log = env.path(&format!("{name}.log"));
        let mut extra = vec!["-v"];
        extra.extend(flags);
        let m = Mount::start_logged(&env, &format!("mnt-{name}"), &extra, &log);
        let out = env.path(name);
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(m.latest("default", &src))
            .arg(&out)
            .status()
            .expect("cp");
        assert!(st.success());
        let (hash, want) = hash_of(&m);
        m.stop();
        assert_eq!(rsync_diff(&src, &out), "");
        assert_eq!(compare_trees(&src, &out), Vec::<String>::new());
        (fuse_requests(&log), hash == Some(want))
    };
    let entries = walk(&src).len() as u64;
    let asked =
        |c: &std::collections::HashMap<String, u64>, k: &str| c.get(k).copied().unwrap_or(0);
    let (all, hashed) = copy_with(&["--xattrs"], "all");
    assert!(asked(&all, "listxattr") >= entries && hashed, "{all:?}");
    // Neither listings nor values: not even `cp -a`'s ACL probe, one per entry.
    for (flags, name) in [(&[][..], "auto"), (&["--no-xattrs"][..], "none")] {
        let (asked_for, hashed) = copy_with(flags, name);
        assert!(
            asked(&asked_for, "listxattr") <= 1 && asked(&asked_for, "getxattr") <= 1 && !hashed,
            "{name}: {asked_for:?}"
        );
    }

    // A snapshot with xattrs arriving: the mounts that told the kernel there are none end
    // (exit 2, saying why), since a copy of it would silently lack them; `--xattrs` stays.
    let started: Vec<_> = [&[][..], &["--no-xattrs"], &["--xattrs"]]
        .iter()
        .enumerate()
        .map(|(i, flags)| {
            let log = env.path(&format!("arrival-{i}.log"));
            let mut extra = vec!["-v", "--poll-secs", "1"];
            extra.extend(*flags);
            (
                Mount::start_logged(&env, &format!("mnt-arrival-{i}"), &extra, &log),
                log,
            )
        })
        .collect();
    let with = env.path("with");
    make_awkward_tree(&with);
    env.ok(&["ingest", with.to_str().expect("utf-8")]);
    let ended = |i: usize| {
        let (m, log) = &started[i];
        assert!(
            wait_for(Duration::from_secs(30), || !is_mounted(&m.dir)),
            "mount {i} went on: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    };
    ended(0);
    ended(1);
    let mut started = started.into_iter();
    for hint in ["with --xattrs", "without --no-xattrs"] {
        let (m, log) = started.next().expect("mount");
        assert_eq!(m.stop().code(), Some(2));
        let text = std::fs::read_to_string(&log).expect("log");
        assert!(
            text.contains("cannot show") && text.contains(hint),
            "{text}"
        );
        // Never shown first: no layout with the new snapshot was published.
        assert!(!text.contains("snapshot list changed"), "{text}");
    }
    let (m, _) = started.next().expect("--xattrs mount");
    assert!(is_mounted(&m.dir));
    let listed = |p: &std::path::Path| xattr::list(p).map(|l| l.count()).unwrap_or(0);
    let shown = m.latest("default", &with);
    assert!(
        wait_for(Duration::from_secs(30), || shown.exists()),
        "the new snapshot never showed"
    );
    let want: usize = walk(&with).iter().map(|p| listed(p)).sum();
    let got: usize = walk(&shown).iter().map(|p| listed(p)).sum();
    assert!(
        want > 0 && got == want,
        "{got} xattrs listed, {want} stored"
    );
    m.stop();

    // Then the flag is refused, with the reason.
    std::fs::create_dir_all(env.path("mnt-refused")).expect("mkdir");
    let out = env
        .cmd()
        .args(["mount", "--no-xattrs"])
        .arg(env.path("mnt-refused"))
        .output()
        .expect("mount");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("have extended attributes or ACLs"),
        "{out:?}"
    );
}

/// A snapshot's directories stay listed in the kernel across opens: a second `find` of
/// the same snapshot sends no READDIRPLUS (counted by the mount), and still sees every
/// entry; and no directory costs an opendir round trip.
#[test]
fn a_second_find_of_a_snapshot_lists_nothing_again() {
    let env = Env::new();
    let src = env.path("src");
    many_files(&src, 30, 20);
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let want = walk(&src).len();
    let finds = |n: usize, name: &str| {
        let log = env.path(&format!("{name}.log"));
        let m = Mount::start_logged(&env, name, &["-v"], &log);
        for _ in 0..n {
            assert_eq!(walk(&m.latest("default", &src)).len(), want);
        }
        m.stop();
        fuse_requests(&log)
    };
    let once = finds(1, "once");
    let twice = finds(2, "twice");
    assert!(once["readdirplus"] >= 31, "{once:?}");
    assert_eq!(twice["readdirplus"], once["readdirplus"], "{twice:?}");
    // No opendir round trip per directory: the kernel is told once that none is needed.
    assert!(twice["opendir"] <= 1, "{twice:?}");
}

/// `cp -a` copies a directory's files in inode-number order (coreutils sorts each listing
/// by `d_ino`), and ingest stores them in the packs in name order: the mount numbers a
/// directory's entries upwards in that order, so a copy reads the packs front to back.
/// Listed (READDIRPLUS) or looked up by name without a listing (LOOKUP, in reverse order),
/// on another mount, and after a catalog rebuild under a running mount, the numbers are
/// the same.
#[test]
fn a_directorys_inode_numbers_follow_its_listing_and_stay() {
    use std::os::unix::fs::{DirEntryExt, MetadataExt};
    let env = Env::new();
    let src = env.path("src");
    many_files(&src, 3, 300);
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let mut names: Vec<String> = std::fs::read_dir(src.join("dir000"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    // Each directory's numbers, in name order: listed first, or only looked up.
    let numbers = |m: &Mount, list: bool| {
        let mut all = Vec::new();
        for d in 0..3 {
            let dir = m.latest("default", &src.join(format!("dir{d:03}")));
            if list {
                for e in std::fs::read_dir(&dir).expect("list") {
                    let e = e.expect("entry");
                    let stat = e.metadata().expect("stat").ino();
                    assert_eq!(e.ino(), stat, "d_ino and st_ino differ");
                }
            }
            let mut inos: Vec<u64> = names
                .iter()
                .rev()
                .map(|n| std::fs::metadata(dir.join(n)).expect("stat").ino())
                .collect();
            inos.reverse();
            assert!(
                inos.windows(2).all(|w| w[0] < w[1]),
                "dir{d:03}: inode numbers not in name order: {inos:?}"
            );
            all.extend(inos);
        }
        all
    };
    let one = Mount::start(&env, "one", &[]);
    let first = numbers(&one, true);
    one.stop();
    let two = Mount::start(&env, "two", &["--poll-secs", "1"]);
    assert_eq!(numbers(&two, false), first, "looked up, not listed");
    env.ok(&["catalog", "rebuild"]);
    assert_eq!(
        numbers(&two, false),
        first,
        "after a rebuild under the mount"
    );
    two.stop();
    let three = Mount::start(&env, "three", &[]);
    assert_eq!(
        numbers(&three, true),
        first,
        "after a rebuild, on a new mount"
    );
    three.stop();
}

/// Whether every page of `p` is in the kernel's page cache. `mincore` on a mapping reads
/// nothing: it only reports what is there.
fn in_page_cache(p: &std::path::Path) -> bool {
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
/// 1 MiB is left to the kernel's own read-ahead. (Here, not in readers.rs: tests there
/// drop the page cache, and with it the kernel's entries, while this one runs.)
#[test]
fn files_after_the_one_being_read_are_pushed_into_the_page_cache() {
    let env = Env::new();
    let src = env.path("src");
    let dir = src.join("walk");
    std::fs::create_dir_all(dir.join("f10-sub")).expect("mkdir");
    std::fs::write(dir.join("f10-sub/inner"), b"inner").expect("write");
    std::os::unix::fs::symlink("f00", dir.join("f20-link")).expect("symlink");
    std::fs::write(dir.join("f30-empty"), b"").expect("write");
    std::fs::write(dir.join("f25-big"), noise(3 << 20, 7)).expect("write");
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

/// While a walk goes on (a file read from its start less than a second ago), a directory
/// being listed gets its first files pushed: the walker's next directory needs no READ for
/// them either. Under load (`stress-ng` beside it) this failed 3 times in 95 while the push
/// came at the listing's first reply, before the kernel had made the entries' inodes.
#[test]
fn a_directory_listed_during_a_walk_gets_its_first_files_pushed() {
    let names: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
    listed_during_a_walk(&names, names.len());
}

/// The same for a directory listed in many requests (300 long names, read 2 KiB at a time:
/// a few entries a reply): its later requests do not cut the push of its first files
/// short, as they did when each one sent the pusher a job that stopped the one under way,
/// and each pushes what the replies before it brought, until the first 16 files are.
#[test]
fn a_long_directory_listed_during_a_walk_gets_its_first_files_pushed() {
    let names: Vec<String> = (0..300)
        .map(|i| format!("{i:03}-{}", "n".repeat(200)))
        .collect();
    // The push's first window: 16 files.
    listed_during_a_walk(&names, 16);
}

/// The number of entries of `dir` (`.` and `..` included), read with `getdents64` into a
/// 2 KiB buffer: the kernel asks the mount for as much as the buffer holds.
fn entries_in_small_reads(dir: &std::path::Path) -> usize {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(dir).expect("open dir");
    let mut buf = vec![0u8; 2048];
    let mut n = 0;
    loop {
        // SAFETY: getdents64 writes at most `buf.len()` bytes into `buf`.
        let got = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                d.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        assert!(got >= 0, "getdents64: {}", std::io::Error::last_os_error());
        if got == 0 {
            return n;
        }
        let mut at = 0;
        while at < got as usize {
            // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, ...
            at += u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            n += 1;
        }
    }
}

/// Reads a file of directory `a`, lists directory `b` (files `names`, 10 KB each), and
/// waits for `b`'s first `pushed` files (in listing order) to come into the page cache.
fn listed_during_a_walk(names: &[String], pushed: usize) {
    let mut env = Env::new();
    // The read and the listing below came more than a second apart once, with the whole
    // suite running: the walk's window is not what this tests.
    env.vars
        .push(("COFRE_TEST_PUSH_WALK_MS".into(), "30000".into()));
    // The pusher's jobs and outcomes, for a failure below.
    env.vars
        .push(("COFRE_LOG".into(), "info,cofre::mount::push=debug".into()));
    let src = env.path("src");
    std::fs::create_dir_all(src.join("a")).expect("mkdir");
    std::fs::create_dir_all(src.join("b")).expect("mkdir");
    std::fs::write(src.join("a/x"), b"the walk starts here").expect("write");
    for (i, name) in names.iter().enumerate() {
        std::fs::write(src.join("b").join(name), noise(10_000 + i, 300 + i as u64)).expect("write");
    }
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let log = env.path("mount.log");
    let m = Mount::start_logged(&env, "mnt", &["-v"], &log);
    let view = m.latest("default", &src);
    assert_eq!(
        std::fs::read(view.join("a/x")).expect("read"),
        b"the walk starts here"
    );
    assert_eq!(entries_in_small_reads(&view.join("b")), names.len() + 2);
    let first = &names[..pushed];
    let in_cache = wait_for(Duration::from_secs(20), || {
        first.iter().all(|n| in_page_cache(&view.join("b").join(n)))
    });
    assert!(
        in_cache,
        "b's first files were not pushed after its listing; the mount's log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    for name in first {
        assert_eq!(
            std::fs::read(view.join("b").join(name)).expect("read"),
            std::fs::read(src.join("b").join(name)).expect("read"),
            "{name}"
        );
    }
    m.stop();
    // a/x's own read only.
    assert_eq!(fuse_requests(&log)["read"], 1);
}
