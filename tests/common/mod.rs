//! Shared helpers for the cargo tests: run the real binary in an isolated environment,
//! build the awkward tree, compare trees byte for byte and metadata for metadata.
#![allow(dead_code)]

pub mod browser;
mod copy;
mod craft;
mod mount;
pub mod pg;
mod servers;
mod stores;
pub mod web;
#[allow(unused_imports)]
pub use copy::copy_dir;
#[allow(unused_imports)]
pub use craft::{edited_snapshot, open_local, snapshot_node};
#[allow(unused_imports)]
pub use mount::{fuse_requests, is_mounted, Mount};
#[allow(unused_imports)]
pub use servers::{Azurite, Emulator, FakeGcs, Garage, Moto, MotoIam};
#[allow(unused_imports)]
pub use stores::{conformance_on, copy_into, end_to_end_on, logged_writes};

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PASSWORD: &str = "correct horse battery staple";

/// A scratch area with its own repository and catalog.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Repository URL; None means the local `repo` directory.
    pub url: Option<String>,
    /// Extra environment (S3 credentials and endpoint).
    pub vars: Vec<(String, String)>,
    /// Catalog/cache directory name (a second "host" uses another).
    pub cache: String,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("cofre-test-")
            .tempdir_in(scratch_root())
            .expect("tempdir");
        Env {
            dir,
            url: None,
            vars: Vec::new(),
            cache: "cache".into(),
        }
    }

    /// A repository in the test Garage, under a fresh prefix.
    pub fn s3(garage: &Garage) -> Env {
        Env::s3_at(&garage.bucket, &garage.vars)
    }

    /// A repository under a fresh prefix of `bucket`, reached with `vars`.
    pub fn s3_at(bucket: &str, vars: &[(String, String)]) -> Env {
        Env::remote_at(&format!("s3://{bucket}"), vars)
    }

    /// The same repository seen from another host: its own catalog and cache.
    pub fn other_host(&self, name: &str) -> Env {
        let mut e = Env::new();
        e.url = Some(
            self.url
                .clone()
                .unwrap_or_else(|| self.repo().display().to_string()),
        );
        e.vars = self.vars.clone();
        e.cache = name.to_string();
        e
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cofre"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CACHE_HOME", self.path(&self.cache))
            .env("COFRE_PASSWORD", PASSWORD)
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        match &self.url {
            Some(u) => c.env("COFRE_REPO", u),
            None => c.env("COFRE_REPO", self.repo()),
        };
        c
    }

    /// Runs cofre with `args`; returns the output whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run cofre")
    }

    /// Runs cofre and insists on exit code 0.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cofre {args:?} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn init(&self) {
        self.ok(&["init"]);
    }

    /// `cofre restore <args> --target <dir>` into a new directory `dir`, then insists that
    /// what landed there is `src`, content and metadata. Then the same restore again, over
    /// the tree the first one left: restore's other mode (every file written beside its
    /// destination and renamed over it), which must be just as exact and leave nothing.
    pub fn restore_matches(&self, args: &[&str], dir: &str, src: &Path) {
        let target = self.path(dir);
        assert!(!target.exists(), "{dir} must be a new directory");
        let target_s = target.to_str().expect("utf-8");
        let all: Vec<&str> = ["restore"]
            .into_iter()
            .chain(args.iter().copied())
            .chain(["--target", target_s])
            .collect();
        for mode in ["into an empty target", "over the restored tree"] {
            self.ok(&all);
            assert_eq!(
                compare_trees(src, &restored(&target, src)),
                Vec::<String>::new(),
                "{mode}"
            );
        }
        assert_eq!(restore_leftovers(&target), Vec::<PathBuf>::new());
    }

    /// `cofre init --copy-params-from` the repository of `from` (whose password is
    /// PASSWORD), here, with this environment's own password.
    pub fn init_copying_from(&self, from: &Env) {
        let from_repo = from
            .url
            .clone()
            .unwrap_or_else(|| from.repo().display().to_string());
        // The source's store settings too (a copy from Garage into GCS needs both).
        let from_vars = from.vars.iter().filter(|(k, _)| k != "COFRE_PASSWORD");
        let out = self
            .cmd()
            .envs(from_vars.map(|(k, v)| (k, v)))
            .env("COFRE_FROM_PASSWORD", PASSWORD)
            .args(["init", "--copy-params-from", &from_repo])
            .output()
            .expect("init");
        assert!(
            out.status.success(),
            "init --copy-params-from: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `cofre run --json --now NOW` with the configuration file `cfg`: (exit code, results).
    pub fn run_at(&self, cfg: &Path, now: &str) -> (i32, serde_json::Value) {
        let out = self
            .cmd()
            .env("COFRE_CONFIG", cfg)
            .args(["run", "--json", "--now", now])
            .output()
            .expect("run");
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap_or(-1), v)
    }

    /// A repository at `base/<this scratch area's name>` (`s3://bucket`, `az://container`),
    /// reached with `vars`.
    pub fn remote_at(base: &str, vars: &[(String, String)]) -> Env {
        let mut e = Env::new();
        let prefix = e
            .dir
            .path()
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        e.url = Some(format!("{base}/{prefix}"));
        e.vars = vars.to_vec();
        e
    }

    /// `cofre snapshots`' ids, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let list = self.json(&["snapshots"]);
        let ids = list.as_array().expect("list").iter();
        ids.map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).expect("json output")
    }

    /// Total size of the repository directory in bytes.
    pub fn repo_size(&self) -> u64 {
        dir_size(&self.repo())
    }
}

/// Tests write big sparse files and repositories: keep them on the project's disk, not tmpfs.
pub fn scratch_root() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&p).expect("scratch dir");
    p
}

pub fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    for e in walk(p) {
        let md = std::fs::symlink_metadata(&e).expect("stat");
        if md.is_file() {
            total += md.len();
        }
    }
    total
}

/// Every path under `root` (excluded), sorted.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.expect("entry").path();
            if std::fs::symlink_metadata(&p).expect("stat").is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path")
}

/// Moves the access time only (as a read under relatime does).
pub fn set_atime(p: &Path, sec: i64) {
    utimens(p, (sec, 0), (0, libc::UTIME_OMIT));
}

fn utimens(p: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c(p).as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", p.display());
}

/// Chunk lengths of the file at absolute `path` in the latest snapshot of a local repository.
pub fn chunk_lengths(env: &Env, path: &Path) -> Vec<u32> {
    let (_rt, repo) = open_local(env);
    let id = repo.snapshot_ids().expect("ids").pop().expect("a snapshot");
    let node = snapshot_node(&repo, &id, path);
    node.chunks.iter().map(|c| c.len).collect()
}

pub fn set_mtime(p: &Path, sec: i64, nsec: i64) {
    utimens(p, (sec, nsec), (sec, nsec));
}

pub fn mknod(p: &Path, mode: u32, dev: u64) {
    let rc = unsafe { libc::mknod(c(p).as_ptr(), mode, dev as libc::dev_t) };
    assert_eq!(
        rc,
        0,
        "mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

pub fn lchown(p: &Path, uid: u32, gid: u32) {
    let rc = unsafe { libc::lchown(c(p).as_ptr(), uid, gid) };
    assert_eq!(rc, 0, "lchown {}", p.display());
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Every kind of entry cofre must keep: see issue 2. Needs root (devices, foreign owners).
pub fn make_awkward_tree(root: &Path) {
    assert!(
        is_root(),
        "the awkward tree needs root (device nodes, foreign uid/gid)"
    );
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
        p
    };
    std::fs::create_dir_all(root).expect("root");
    w("empty-file", b"");
    w("small.txt", b"hello, cofre\n");
    w("dir/random.bin", &noise(3 * 1024 * 1024 + 17, 1));
    let text: String = (0..200_000)
        .map(|i| format!("line {i} of a compressible log\n"))
        .collect();
    w("dir/sub/log.txt", text.as_bytes());
    std::fs::create_dir_all(root.join("empty-dir")).expect("empty dir");
    std::fs::create_dir_all(root.join("deep/a/b/c/d")).expect("deep");
    w("deep/a/b/c/d/leaf", b"leaf");

    // Names are bytes: non-UTF-8, newline, spaces, leading dash.
    w("names/a\nnewline", b"nl");
    let latin1 = root
        .join("names")
        .join(OsStr::from_bytes(b"caf\xe9-\xff\xfe"));
    std::fs::write(&latin1, b"not utf-8").expect("latin1");
    w("names/ spaces and -dash", b"sp");

    // Symlinks: relative, absolute, dangling, to a directory.
    std::os::unix::fs::symlink("../small.txt", root.join("dir/link-rel")).expect("symlink");
    std::os::unix::fs::symlink("/etc/hostname", root.join("dir/link-abs")).expect("symlink");
    std::os::unix::fs::symlink("does/not/exist", root.join("dir/link-dangling")).expect("symlink");
    std::os::unix::fs::symlink("sub", root.join("dir/link-dir")).expect("symlink");

    // Hardlinks, across directories.
    let h = w("hard/one", b"shared inode content");
    std::fs::hard_link(&h, root.join("hard/two")).expect("link");
    std::fs::hard_link(&h, root.join("dir/three")).expect("link");

    // Special files.
    let fifo = root.join("special/fifo");
    std::fs::create_dir_all(fifo.parent().expect("parent")).expect("mkdir");
    mknod(&fifo, libc::S_IFIFO | 0o640, 0);
    mknod(
        &root.join("special/null"),
        libc::S_IFCHR | 0o666,
        libc::makedev(1, 3),
    );
    mknod(
        &root.join("special/loop"),
        libc::S_IFBLK | 0o660,
        libc::makedev(7, 200),
    );

    // Modes: setuid, setgid, sticky, read-only dir with content.
    let suid = w("modes/suid", b"#!/bin/sh\n");
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let sgid = root.join("modes/sgid-dir");
    std::fs::create_dir_all(&sgid).expect("mkdir");
    std::fs::set_permissions(&sgid, std::fs::Permissions::from_mode(0o2775)).expect("chmod");
    let sticky = root.join("modes/sticky");
    std::fs::create_dir_all(&sticky).expect("mkdir");
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    w("modes/ro-dir/inside", b"inside a read-only dir");
    let private = w("modes/private", b"secret");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // Foreign owners with no name on this machine.
    let foreign = w("owners/foreign", b"owned by 1234:5678");
    lchown(&foreign, 1234, 5678);
    lchown(&root.join("dir/link-rel"), 4321, 8765);

    // Extended attributes, binary values.
    let xa = w("xattrs/file", b"with attributes");
    xattr::set(&xa, "user.comment", b"a comment").expect("xattr");
    xattr::set(&xa, "user.binary", &[0u8, 1, 2, 255, b'\n']).expect("xattr");
    xattr::set(root.join("xattrs"), "user.on-dir", b"dir attr").expect("xattr");

    // A 300 MB sparse file with data at the start, in the middle and at the end.
    let sparse = root.join("sparse.img");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&sparse).expect("sparse");
        f.set_len(300 * 1024 * 1024).expect("set_len");
        f.write_all_at(&noise(100_000, 2), 0).expect("write");
        f.write_all_at(&noise(1024 * 1024, 3), 150 * 1024 * 1024)
            .expect("write");
        f.write_all_at(b"tail", 300 * 1024 * 1024 - 4)
            .expect("write");
    }

    // Nanosecond mtimes everywhere (directories last, children first).
    let mut all = walk(root);
    all.reverse();
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 3600, 123_456_789 + i as i64);
    }
    std::fs::set_permissions(
        root.join("modes/ro-dir"),
        std::fs::Permissions::from_mode(0o555),
    )
    .expect("chmod");
    set_mtime(&root.join("modes/ro-dir"), 1_500_000_000, 999_999_999);
    set_mtime(root, 1_400_000_000, 1);
}

#[derive(Debug, PartialEq)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    nlink: u64,
    rdev: u64,
    target: Option<Vec<u8>>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    content: Option<blake3::Hash>,
}

fn meta(p: &Path) -> Meta {
    let md = std::fs::symlink_metadata(p).expect("stat");
    let xattrs = xattr::list(p)
        .map(|names| {
            names
                .filter_map(|n| Some((n.as_bytes().to_vec(), xattr::get(p, &n).ok()??)))
                .collect()
        })
        .unwrap_or_default();
    let is_dir = md.is_dir();
    Meta {
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        size: if is_dir { 0 } else { md.size() },
        mtime: (md.mtime(), md.mtime_nsec()),
        nlink: if is_dir { 0 } else { md.nlink() },
        rdev: md.rdev(),
        target: md.file_type().is_symlink().then(|| {
            std::fs::read_link(p)
                .expect("readlink")
                .as_os_str()
                .as_bytes()
                .to_vec()
        }),
        xattrs,
        content: md
            .is_file()
            .then(|| blake3::hash(&std::fs::read(p).expect("read"))),
    }
}

/// Differences between two trees: names, content, every metadata field, hardlink groups,
/// and sparseness (the copy may not use more blocks than the original).
pub fn compare_trees(a: &Path, b: &Path) -> Vec<String> {
    let rel = |root: &Path| -> Vec<PathBuf> {
        walk(root)
            .into_iter()
            .map(|p| p.strip_prefix(root).expect("prefix").to_path_buf())
            .collect()
    };
    let (ra, rb) = (rel(a), rel(b));
    let mut diffs = Vec::new();
    if ra != rb {
        let only_a: Vec<_> = ra.iter().filter(|p| !rb.contains(p)).collect();
        let only_b: Vec<_> = rb.iter().filter(|p| !ra.contains(p)).collect();
        diffs.push(format!(
            "entries differ: only in source {only_a:?}, only in copy {only_b:?}"
        ));
        return diffs;
    }
    let mut groups_a: HashMap<u64, Vec<&PathBuf>> = HashMap::new();
    let mut groups_b: HashMap<u64, Vec<&PathBuf>> = HashMap::new();
    for r in &ra {
        let (pa, pb) = (a.join(r), b.join(r));
        let (ma, mb) = (meta(&pa), meta(&pb));
        if ma != mb {
            diffs.push(format!("{}: {ma:?} != {mb:?}", r.display()));
        }
        let (sa, sb) = (
            std::fs::symlink_metadata(&pa).expect("stat"),
            std::fs::symlink_metadata(&pb).expect("stat"),
        );
        if sa.is_file() {
            if sb.blocks() > sa.blocks() + 8 {
                diffs.push(format!(
                    "{}: {} blocks in copy, {} in source (holes lost)",
                    r.display(),
                    sb.blocks(),
                    sa.blocks()
                ));
            }
            if sa.nlink() > 1 {
                groups_a.entry(sa.ino()).or_default().push(r);
                groups_b.entry(sb.ino()).or_default().push(r);
            }
        }
    }
    let mut ga: Vec<_> = groups_a.into_values().collect();
    let mut gb: Vec<_> = groups_b.into_values().collect();
    ga.sort();
    gb.sort();
    if ga != gb {
        diffs.push(format!("hardlink groups differ: {ga:?} vs {gb:?}"));
    }
    diffs
}

/// rsync's own view: prints one line per difference; empty means identical.
pub fn rsync_diff(a: &Path, b: &Path) -> String {
    let out = Command::new("rsync")
        .args([
            "-aHAX",
            "--checksum",
            "--dry-run",
            "--itemize-changes",
            "--delete",
        ])
        .arg(format!("{}/", a.display()))
        .arg(format!("{}/", b.display()))
        .output()
        .expect("rsync is installed (apt-get install rsync)");
    assert!(
        out.status.success(),
        "rsync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where a restore of absolute path `src` lands under `target`.
/// Temporary files a restore left in `target` (it must leave none).
pub fn restore_leftovers(target: &Path) -> Vec<PathBuf> {
    walk(target)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".cofre-restore-"))
        .collect()
}

pub fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").expect("absolute"))
}

/// Waits for `cond` until `deadline`; returns whether it held.
pub fn wait_for(deadline: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    cond()
}

/// Runs `args` as user nobody; returns the output.
pub fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .output()
        .expect("setpriv")
}

/// Two 1 MB files `a` and `b` in `src`, ingested; then one bit flipped near the start of the
/// largest pack, which damages a chunk of exactly one of them.
pub fn ingest_two_files_and_damage_one(env: &Env) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("a"), noise(1_000_000, 1)).expect("write");
    std::fs::write(src.join("b"), noise(1_000_000, 2)).expect("write");
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let pack = largest_pack(env);
    let mut bytes = std::fs::read(&pack).expect("read pack");
    bytes[5000] ^= 0x01;
    std::fs::write(&pack, bytes).expect("write pack");
    src
}

/// The largest pack file of a local repository.
pub fn largest_pack(env: &Env) -> PathBuf {
    walk(&env.repo().join("data"))
        .into_iter()
        .filter(|p| p.is_file())
        .max_by_key(|p| std::fs::metadata(p).expect("stat").len())
        .expect("a pack")
}

/// A new repository with one snapshot of `src/f` holding `content`; returns `src`.
pub fn ingest_one_file(env: &Env, content: &[u8]) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), content).expect("write");
    env.init();
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    src
}

/// Ingest options for library-level tests: back up `path` into set `default`.
pub fn ingest_opts(path: &Path) -> cofre::ingest::IngestOptions {
    cofre::ingest::IngestOptions::new("default", vec![path.to_path_buf()])
}

/// A tree of `dirs` × `files` small files: enough catalog rows that its file spans many
/// pages, for damage in the middle to land in rows only a full listing reads.
pub fn many_files(root: &Path, dirs: usize, files: usize) {
    for d in 0..dirs {
        let dir = root.join(format!("dir{d:03}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..files {
            std::fs::write(
                dir.join(format!("file-with-a-longish-name-{f:04}.txt")),
                format!("{d}/{f}\n"),
            )
            .expect("write");
        }
    }
}

/// The issue 20 reproduction: 64 KiB of garbage written inside the catalog, over pages of
/// the `nodes` table only (page by page) — rows that opening and syncing never read, every listing does —
/// its WAL checkpointed first (the catalog is closed). Returns its path.
pub fn damage_catalog_inside(env: &Env) -> PathBuf {
    let db = walk(&env.path("cache"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "catalog.db"))
        .expect("catalog");
    let conn = rusqlite::Connection::open(&db).expect("open catalog");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    // 16 pages of `nodes` from the middle of it (dbstat: one row per page); in a catalog
    // this small they are not next to each other (trees and an index interleave).
    let pages: Vec<u64> = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = 'nodes' ORDER BY pageno")
        .and_then(|mut st| {
            st.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<u64>>>()
        })
        .expect("dbstat");
    assert!(pages.len() > 48, "nodes spans {} pages", pages.len());
    let page: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    drop(conn);
    use std::io::{Seek, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .expect("open");
    let garbage = noise(64 * 1024, 99);
    for (n, chunk) in pages[pages.len() / 3..]
        .iter()
        .zip(garbage.chunks(page as usize))
    {
        f.seek(std::io::SeekFrom::Start((n - 1) * page))
            .expect("seek");
        f.write_all(chunk).expect("garbage");
    }
    db
}
