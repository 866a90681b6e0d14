//! Hardening of the mount and of restore onto odd filesystems (issue 8), with the real
//! parts: FUSE mounted, an exFAT image through exfat-fuse on a loop device.
mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

fn mount_options(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let want = dir.to_string_lossy();
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(&*want))
        .map(|l| {
            l.split(' ')
                .nth(5)
                .unwrap_or("")
                .split(',')
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Item 8: nosuid and nodev always; a setuid-root binary in a snapshot does not make
/// another user root.
#[test]
fn mount_is_nosuid_nodev_and_setuid_binaries_gain_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let id = src.join("id");
    std::fs::copy("/usr/bin/id", &id).expect("copy id");
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o4755)).expect("setuid");
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    env.init();
    env.ok(&["ingest", s(&src)]);
    let m = Mount::start(&env, "mnt", &["--allow-other"]);
    let opts = mount_options(&m.dir);
    assert!(opts.contains(&"nosuid".to_string()), "{opts:?}");
    assert!(opts.contains(&"nodev".to_string()), "{opts:?}");
    let in_mount = m.latest("default", &id);
    let out = as_nobody(&[s(&in_mount), "-u"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "65534",
        "euid must stay nobody's"
    );
    m.stop();
}

/// Item 12: a local repository whose disk goes away is an error, not an empty listing:
/// the running mount keeps its snapshots.
#[test]
fn repository_that_disappears_keeps_the_mount_view() {
    let env = Env::new();
    let src = ingest_one_file(&env, b"still here");
    let log = env.path("mount.log");
    let m = Mount::start_logged(&env, "mnt", &["--poll-secs", "1"], &log);
    let file = m.latest("default", &src.join("f"));
    assert_eq!(std::fs::read(&file).expect("read"), b"still here");
    let away = env.path("repo-unplugged");
    std::fs::rename(env.repo(), &away).expect("unplug");
    let noticed = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("is not there")
    });
    assert!(
        noticed,
        "the mount must notice and say so: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let sets: Vec<_> = std::fs::read_dir(&m.dir)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        sets.iter().any(|n| n == "default"),
        "snapshots vanished: {sets:?}"
    );
    assert!(m.dir.join("default/latest").exists());
    std::fs::rename(&away, env.repo()).expect("plug back");
    m.stop();
    // The CLI says so too, instead of listing nothing.
    std::fs::rename(env.repo(), &away).expect("unplug");
    let out = env.run(&["catalog", "sync"]);
    assert_ne!(out.status.code(), Some(0));
}

/// "A stale mountpoint": a mount killed with SIGKILL does not block the next one.
#[test]
fn killed_mount_does_not_block_a_remount() {
    let env = Env::new();
    let src = ingest_one_file(&env, b"x");
    let m = Mount::start(&env, "mnt", &[]);
    m.kill();
    assert!(
        std::fs::metadata(env.path("mnt")).is_err(),
        "a killed FUSE mount leaves ENOTCONN behind"
    );
    let again = Mount::start(&env, "mnt", &[]);
    let f = again.latest("default", &src.join("f"));
    // The dead mount is listed until the new process detaches it: wait for the new one.
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read(&f)
            .is_ok_and(|b| b == b"x")),
        "the remount must serve the snapshot"
    );
    again.stop();
}

/// Directories report their recorded size (`du --apparent-size` matches the source).
#[test]
fn directories_report_their_recorded_size() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("many")).expect("mkdir");
    for i in 0..300 {
        std::fs::write(
            src.join(format!("many/a-rather-long-file-name-{i:04}")),
            b"",
        )
        .expect("write");
    }
    env.init();
    env.ok(&["ingest", s(&src)]);
    let m = Mount::start(&env, "mnt", &[]);
    let want = std::fs::metadata(src.join("many")).expect("stat").len();
    assert!(want > 0);
    let got = std::fs::metadata(m.latest("default", &src.join("many")))
        .expect("stat")
        .len();
    assert_eq!(got, want);
    m.stop();
}

/// An exFAT filesystem on a loop device through exfat-fuse, as a USB stick is mounted.
struct Exfat {
    dir: PathBuf,
    loopdev: String,
}

impl Exfat {
    fn new(env: &Env) -> Option<Exfat> {
        let img = env.path("usb.img");
        let dir = env.path("usb");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = std::fs::File::create(&img).expect("image");
        f.set_len(256 * 1024 * 1024).expect("size");
        let run = |cmd: &mut Command| cmd.output().map(|o| (o.status.success(), o));
        let (ok, _) = run(Command::new("mkfs.exfat").arg(&img))
            .expect("mkfs.exfat (apt-get install exfatprogs)");
        assert!(ok, "mkfs.exfat failed");
        let (ok, out) =
            run(Command::new("losetup").args(["--find", "--show"]).arg(&img)).expect("losetup");
        if !ok {
            eprintln!(
                "skipped: no loop device: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        let loopdev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (ok, out) = run(Command::new("mount.exfat-fuse").arg(&loopdev).arg(&dir))
            .expect("mount.exfat-fuse (apt-get install exfat-fuse)");
        let fs = Exfat { dir, loopdev };
        assert!(ok, "exfat-fuse: {}", String::from_utf8_lossy(&out.stderr));
        assert!(wait_for(Duration::from_secs(10), || is_mounted(&fs.dir)));
        Some(fs)
    }
}

impl Drop for Exfat {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.dir)
            .status();
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = Command::new("losetup").args(["-d", &self.loopdev]).status();
    }
}

/// Item 2: restoring to a filesystem that refuses owners and modes keeps every file's
/// content, names what could not be applied, and exits 3.
#[test]
fn restore_onto_exfat_keeps_content_and_exits_3() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("docs/deep")).expect("mkdir");
    std::fs::write(src.join("docs/report.pdf"), noise(700_000, 5)).expect("write");
    std::fs::write(src.join("docs/deep/notes.txt"), b"remember the milk").expect("write");
    std::fs::write(src.join("model.bin"), noise(2_500_000, 6)).expect("write");
    lchown(&src.join("model.bin"), 1234, 5678);
    std::fs::set_permissions(
        src.join("docs/report.pdf"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    env.init();
    env.ok(&["ingest", s(&src)]);
    let Some(usb) = Exfat::new(&env) else { return };
    // Both of restore's modes: into the empty filesystem, then over what it wrote there.
    for mode in ["empty", "over"] {
        let out = env.run(&["restore", "latest", "--target", s(&usb.dir)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{mode}: {stderr}");
        assert!(stderr.contains("could not apply"), "{mode}: {stderr}");
        let copy = restored(&usb.dir, &src);
        for f in ["docs/report.pdf", "docs/deep/notes.txt", "model.bin"] {
            assert_eq!(
                std::fs::read(copy.join(f)).expect("content kept"),
                std::fs::read(src.join(f)).expect("read"),
                "{mode}: {f}"
            );
        }
        assert_eq!(restore_leftovers(&usb.dir), Vec::<PathBuf>::new(), "{mode}");
    }
}

/// "A failed ingest leaves its packs behind": an ingest into a full filesystem removes
/// what it wrote, so the next (small) ingest succeeds.
#[test]
fn failed_ingest_on_a_full_disk_removes_its_packs() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    let disk = env.path("small-disk");
    std::fs::create_dir_all(&disk).expect("mkdir");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=50m", "tmpfs"])
        .arg(&disk)
        .status()
        .expect("mount");
    assert!(st.success(), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(disk.clone());
    let mut env = env;
    env.url = Some(disk.join("repo").display().to_string());
    env.init();
    let big = env.path("big");
    std::fs::create_dir_all(&big).expect("mkdir");
    for i in 0..8 {
        std::fs::write(big.join(format!("f{i}")), noise(10_000_000, 100 + i)).expect("write");
    }
    let out = env.run(&["ingest", s(&big)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packs: Vec<_> = walk(&disk.join("repo/data"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert!(packs.is_empty(), "packs left behind: {}", packs.len());
    let small = env.path("small");
    std::fs::create_dir_all(&small).expect("mkdir");
    std::fs::write(small.join("f"), noise(1_000_000, 7)).expect("write");
    env.ok(&["ingest", s(&small)]);
    env.restore_matches(&["latest"], "out", &small);
}

/// Item 10: the inode table shrinks when the kernel forgets: `find` over many snapshots
/// does not leave the mount holding every entry it ever listed.
#[test]
fn inodes_are_forgotten_when_the_kernel_drops_them() {
    if !is_root() {
        eprintln!("skipped: needs root (drop_caches)");
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    for d in 0..20 {
        std::fs::create_dir_all(src.join(format!("d{d}"))).expect("mkdir");
        for f in 0..50 {
            std::fs::write(src.join(format!("d{d}/f{f}")), format!("{d}/{f}")).expect("write");
        }
    }
    env.init();
    for i in 0..5 {
        env.ok(&[
            "ingest",
            "--time",
            &format!("2026-01-0{}T00:00:00Z", i + 1),
            s(&src),
        ]);
    }
    // `--xattrs`: the count is a hidden xattr, and these snapshots have none.
    let m = Mount::start(&env, "mnt", &["--xattrs"]);
    let inodes = || -> u64 {
        let v = xattr::get(&m.dir, "user.cofre.inodes")
            .expect("getxattr")
            .expect("value");
        String::from_utf8_lossy(&v).parse().expect("number")
    };
    let out = Command::new("find").arg(&m.dir).output().expect("find");
    let listed = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
    assert!(listed > 5 * 1000, "find listed {listed}");
    let after_find = inodes();
    assert!(after_find >= 5 * 1000, "{after_find} inodes after find");
    // The kernel evicts its dentries and inodes, and sends FUSE forget for each.
    let dropped = wait_for(Duration::from_secs(20), || {
        std::fs::write("/proc/sys/vm/drop_caches", "2").expect("drop_caches");
        inodes() < 100
    });
    assert!(
        dropped,
        "still {} inodes of {after_find} after the kernel forgot them",
        inodes()
    );
    // And everything is still reachable afterwards.
    let again = Command::new("find").arg(&m.dir).output().expect("find");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).lines().count() as u64,
        listed
    );
    m.stop();
}

/// Item 9: one view at a time. Whoever sees a new snapshot's directory sees `latest` moved
/// to it, even right after the kernel cached the old `latest`.
#[test]
fn latest_moves_with_the_new_snapshot_directory() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"0").expect("write");
    env.init();
    env.ok(&["ingest", "--time", "2026-03-01T10:00:00Z", s(&src)]);
    let m = Mount::start(&env, "mnt", &["--poll-secs", "1"]);
    let day = m.dir.join("default/2026/03/01");
    let latest = m.dir.join("default/latest");
    for i in 1..=6 {
        // The kernel caches `latest` (and the day's listing) right before the change.
        let before = std::fs::read_link(&latest).expect("readlink");
        assert!(std::fs::read_dir(&day).expect("ls").count() >= i);
        std::fs::write(src.join("f"), format!("{i}")).expect("write");
        env.ok(&[
            "ingest",
            "--time",
            &format!("2026-03-01T10:{i:02}:00Z"),
            s(&src),
        ]);
        let name = format!("10{i:02}");
        let seen = wait_for(Duration::from_secs(20), || {
            std::fs::read_dir(&day)
                .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy() == name))
                .unwrap_or(false)
        });
        assert!(seen, "snapshot {name} never appeared");
        let now = std::fs::read_link(&latest).expect("readlink");
        assert_ne!(now, before);
        assert_eq!(
            now,
            PathBuf::from(format!("2026/03/01/{name}")),
            "round {i}"
        );
        assert_eq!(
            std::fs::read(latest.join(src.strip_prefix("/").expect("abs")).join("f"))
                .expect("read"),
            format!("{i}").as_bytes()
        );
    }
    m.stop();
}

/// Item 11: `catalog rebuild` under a running mount, importing in another order than the
/// catalog was built: inodes the kernel holds must keep serving their own files.
#[test]
fn catalog_rebuilt_under_a_running_mount_serves_the_right_files() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..40 {
        std::fs::write(
            src.join(format!("f{i:02}")),
            format!("file {i} of the first set"),
        )
        .expect("write");
    }
    env.init();
    let a = env.json(&["ingest", "--set", "a", s(&src)])["snapshot"]
        .as_str()
        .expect("id")
        .to_string();
    let m = Mount::start(&env, "mnt", &["--poll-secs", "1"]);
    // The kernel looks the files up (row ids of this catalog) but reads none yet.
    let paths: Vec<PathBuf> = (0..40)
        .map(|i| m.latest("a", &src.join(format!("f{i:02}"))))
        .collect();
    for p in &paths {
        std::fs::metadata(p).expect("stat");
    }
    // Another host adds snapshots until one sorts before `a`: a rebuild imports in id
    // order, so this one's rows then come first and every row id of `a` moves.
    let other = env.other_host("host2");
    let zsrc = env.path("zsrc");
    std::fs::create_dir_all(&zsrc).expect("mkdir");
    for round in 0..64 {
        for i in 0..40 {
            std::fs::write(
                zsrc.join(format!("z{i:02}")),
                format!("other host {round}/{i}"),
            )
            .expect("write");
        }
        let z = other.json(&["ingest", "--set", "z", s(&zsrc)])["snapshot"]
            .as_str()
            .expect("id")
            .to_string();
        if z < a {
            break;
        }
    }
    env.ok(&["catalog", "rebuild"]);
    assert!(
        wait_for(Duration::from_secs(20), || m.dir.join("z").exists()),
        "the mount must go on seeing new snapshots"
    );
    // Read them all at once: several FUSE threads, several catalog connections.
    let handles: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let p = p.clone();
            std::thread::spawn(move || (i, std::fs::read(&p)))
        })
        .collect();
    for h in handles {
        let (i, got) = h.join().expect("reader");
        assert_eq!(
            got.expect("read after rebuild"),
            format!("file {i} of the first set").as_bytes(),
            "f{i:02} after the catalog was replaced"
        );
    }
    m.stop();
}

/// Item 8: with --allow-other the kernel enforces the stored POSIX ACLs too (a 0600 file
/// that an ACL opens to nobody is readable by nobody, and no more).
#[test]
fn allow_other_enforces_posix_acls() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for f in ["shared", "private"] {
        std::fs::write(src.join(f), f).expect("write");
        std::fs::set_permissions(src.join(f), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    let st = Command::new("setfacl")
        .args(["-m", "u:nobody:r"])
        .arg(src.join("shared"))
        .status()
        .expect("setfacl (apt-get install acl)");
    assert!(st.success());
    for d in [env.dir.path(), src.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    env.init();
    env.ok(&["ingest", s(&src)]);
    let m = Mount::start(&env, "mnt", &["--allow-other"]);
    let cat = |f: &str| as_nobody(&["cat", s(&m.latest("default", &src.join(f)))]);
    let shared = cat("shared");
    assert!(
        shared.status.success(),
        "the ACL grants nobody read: {}",
        String::from_utf8_lossy(&shared.stderr)
    );
    assert_eq!(shared.stdout, b"shared");
    assert!(
        !cat("private").status.success(),
        "mode 0600 keeps nobody out"
    );
    m.stop();
}

/// Issue 20 point 9, as a new user met it: garbage in the middle of the catalog, then
/// `cofre mount`. Some directories answered EIO for ever and the log repeated "database
/// disk image is malformed" on every request. Now the mount says once that it rebuilds the
/// catalog beside the damaged one, switches to it, and the whole tree reads back exactly.
#[test]
fn a_mount_on_a_catalog_damaged_inside_heals_and_reads_everything() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    many_files(&src, 40, 150);
    env.ok(&["ingest", s(&src)]);
    damage_catalog_inside(&env);
    let log = env.path("mount.log");
    let m = Mount::start_logged(&env, "mnt", &["--poll-secs", "600"], &log);
    let seen = m.latest("default", &src);
    // Requests may fail while the catalog is rebuilt; within the deadline every file reads.
    // A listing that fails midway (EIO at readdir) panics the walk: that is "not yet".
    let healed = wait_for(Duration::from_secs(60), || {
        std::panic::catch_unwind(|| compare_trees(&src, &seen).is_empty()).unwrap_or(false)
    });
    assert!(m.stop().success());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(healed, "the mount never read the whole tree: {text}");
    assert!(
        text.matches("is damaged").count() <= 1,
        "said more than once: {text}"
    );
    assert!(
        text.matches("malformed").count() <= 1,
        "repeated per request: {text}"
    );
}

/// Two entries of one snapshot with the same (device, inode) but different content (an
/// inode freed and reused during a long walk, a file rewritten between the reads of its
/// two names, or a damaged repository): restore gives each its own content, never a hard
/// link to the other, and the mount shows them as two files.
#[test]
fn hardlinked_entries_with_different_content_stay_apart() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("b")).expect("mkdir");
    std::fs::write(src.join("a"), noise(300_000, 1)).expect("write");
    std::fs::hard_link(src.join("a"), src.join("b/a")).expect("link");
    std::fs::write(src.join("c"), noise(200_000, 2)).expect("write");
    env.init();
    env.ok(&["ingest", s(&src)]);
    let (_rt, repo) = open_local(&env);
    let snap = repo.snapshot_ids().expect("ids").pop().expect("a snapshot");
    let c = snapshot_node(&repo, &snap, &src.join("c"));
    let edited = edited_snapshot(&repo, &snap, &src.join("b/a"), |n| {
        assert!(n.nlink > 1, "b/a is a hard link");
        (n.chunks, n.blake3, n.size) = (c.chunks.clone(), c.blake3, c.size);
    });
    let check = |root: &Path, how: &str| {
        let content = |p: &str| std::fs::read(root.join(p)).expect("read");
        assert!(
            content("a") == noise(300_000, 1),
            "{how}: a has its own content"
        );
        assert!(
            content("b/a") == noise(200_000, 2),
            "{how}: b/a has the content its node names, not a's"
        );
        let ino = |p: &str| std::fs::metadata(root.join(p)).expect("stat").ino();
        assert_ne!(ino("a"), ino("b/a"), "{how}: one inode for two contents");
    };
    let target = env.path("out");
    env.ok(&["restore", &edited, "--target", s(&target)]);
    check(&restored(&target, &src), "restore");
    let m = Mount::start(&env, "mnt", &[]);
    check(&m.latest("default", &src), "mount");
}
