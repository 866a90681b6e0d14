//! `cofre serve` over real HTTP: the real binary on a loopback port, a real repository,
//! downloads unpacked by GNU tar and unzip and compared with the source tree, and every
//! refusal with its status code. The browser's view is tests/serve_browser.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::web::{add_user, raw_get, Client, Server};
use common::{compare_trees, walk, Env};

/// The awkward tree without what a tar or zip cannot carry as the snapshot has it: hard
/// links (archived as separate files) and the 300 MB sparse file (holes are not kept).
fn archivable_tree(env: &Env) -> PathBuf {
    let src = env.path("src");
    common::make_awkward_tree(&src);
    let mtime = std::fs::symlink_metadata(src.join("dir")).expect("stat");
    for gone in ["hard/two", "dir/three", "sparse.img"] {
        std::fs::remove_file(src.join(gone)).expect("remove");
    }
    use std::os::unix::fs::MetadataExt;
    common::set_mtime(&src.join("dir"), mtime.mtime(), mtime.mtime_nsec());
    src
}

fn url_path(p: &Path) -> String {
    p.to_str().expect("utf-8 test path").to_string()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn logged_in(env: &Env, user: &str, role: &str) -> (Server, Client) {
    add_user(env, user, role, "pw-of-someone");
    let server = Server::start(env, &[]);
    let mut c = Client::new(&server.url);
    let r = c.login(user, "pw-of-someone");
    assert_eq!(r.status, 303, "login: {}", r.text());
    (server, c)
}

#[test]
fn tar_and_zip_downloads_unpack_to_the_snapshot_and_ranges_are_exact() {
    let env = Env::new();
    env.init();
    let src = archivable_tree(&env);
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let (_server, mut c) = logged_in(&env, "ana", "viewer");
    let at = format!("/default/latest{}", url_path(&src));

    // .tar: GNU tar restores content, modes, owners, nanosecond mtimes, xattrs, devices.
    let tar = c.get(&format!("/archive{at}?format=tar"));
    assert_eq!(tar.status, 200, "{}", tar.text());
    assert_eq!(tar.header("content-type"), Some("application/x-tar"));
    assert_eq!(tar.header("cache-control"), Some("no-store"));
    let out = env.path("from-tar");
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::write(env.path("x.tar"), &tar.body).expect("write");
    run(Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--same-owner",
            "-xpf",
        ])
        .arg(env.path("x.tar"))
        .arg("-C")
        .arg(&out));
    let diffs = compare_trees(&src, &out.join("src"));
    assert!(diffs.is_empty(), "tar download differs: {diffs:#?}");

    // .zip: content, permission bits and symlinks (zip has no owners, devices or fifos,
    // and its names are UTF-8).
    let zip = c.get(&format!("/archive{at}?format=zip"));
    assert_eq!(zip.status, 200, "{}", zip.text());
    std::fs::write(env.path("x.zip"), &zip.body).expect("write");
    // Read by another implementation (Python's zipfile): exact names (unzip would escape
    // the newline), content, mode bits, symlinks.
    let listing = Command::new("python3")
        .arg("-c")
        .arg(concat!(
            "import json, sys, zipfile\n",
            "z = zipfile.ZipFile(sys.argv[1])\n",
            "print(json.dumps({i.filename: [i.external_attr >> 16, z.read(i).hex()] for i in z.infolist()}))\n",
        ))
        .arg(env.path("x.zip"))
        .output()
        .expect("python3");
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&listing.stdout).expect("json");
    let mut checked = 0;
    for p in walk(&src) {
        let rel = p.strip_prefix(&src).expect("prefix");
        let shown = String::from_utf8_lossy(rel.as_os_str().as_encoded_bytes()).into_owned();
        let md = std::fs::symlink_metadata(&p).expect("stat");
        let ft = md.file_type();
        use std::os::unix::fs::MetadataExt;
        let key = if ft.is_dir() {
            format!("src/{shown}/")
        } else {
            format!("src/{shown}")
        };
        let (want_data, kind) = if ft.is_file() {
            (std::fs::read(&p).expect("read"), libc::S_IFREG)
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&p).expect("readlink");
            (t.as_os_str().as_encoded_bytes().to_vec(), libc::S_IFLNK)
        } else if ft.is_dir() {
            (Vec::new(), libc::S_IFDIR)
        } else {
            // Zip has no devices or fifos: they are left out.
            assert!(entries.get(&key).is_none(), "{key} is not in a zip");
            continue;
        };
        let e = entries
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} missing from the zip"));
        let mode = e[0].as_u64().expect("mode") as u32;
        assert_eq!(mode & libc::S_IFMT, kind, "{key} type");
        // The zip writer keeps the permission bits only (setuid, setgid and sticky are the
        // tar's to carry).
        assert_eq!(mode & 0o777, md.mode() & 0o777, "{key} mode");
        assert!(
            e[1].as_str() == Some(&hex::encode(&want_data)),
            "{key} content"
        );
        checked += 1;
    }
    assert!(checked > 15, "only {checked} entries compared");

    // One file: whole, a range, a suffix, a resume of the same version, and a range
    // that cannot be served.
    let file = src.join("dir/random.bin");
    let bytes = std::fs::read(&file).expect("read");
    let path = format!("/download/default/latest{}", url_path(&file));
    let whole = c.get(&path);
    assert_eq!(whole.status, 200);
    assert!(whole.body == bytes, "whole download differs");
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole.header("etag").expect("etag").to_string();
    let part = c.get_with(&path, &[("Range", "bytes=1000-2000999")]);
    assert_eq!(part.status, 206);
    assert!(part.body == bytes[1000..2_001_000], "range differs");
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 1000-2000999/{}", bytes.len()).as_str())
    );
    let tail = c.get_with(&path, &[("Range", "bytes=-17"), ("If-Range", &etag)]);
    assert_eq!(tail.status, 206);
    assert!(tail.body == bytes[bytes.len() - 17..]);
    let other = c.get_with(
        &path,
        &[("Range", "bytes=-17"), ("If-Range", "\"another version\"")],
    );
    assert_eq!(other.status, 200, "a stale If-Range gets the whole file");
    assert_eq!(other.body.len(), bytes.len());
    let past = c.get_with(&path, &[("Range", &format!("bytes={}-", bytes.len()))]);
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{}", bytes.len()).as_str())
    );
}

#[test]
fn over_s3_with_the_disk_cache_downloads_are_the_snapshots_bytes() {
    let garage = common::Garage::start();
    let env = Env::s3(&garage);
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("sub/big.bin"), common::noise(5_000_000, 11)).expect("write");
    std::fs::write(src.join("small.txt"), b"over s3\n").expect("write");
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    env.ok(&["check"]);
    let (_server, mut c) = logged_in(&env, "ana", "viewer");
    let home = c.get("/").text();
    assert!(
        home.contains("Last check") && home.contains("no problems"),
        "{home}"
    );
    let at = format!("/default/latest{}", url_path(&src));
    for _ in 0..2 {
        // Twice: from the bucket, then from the disk cache.
        let big = c.get(&format!("/download{at}/sub/big.bin"));
        assert_eq!(big.status, 200);
        assert!(big.body == std::fs::read(src.join("sub/big.bin")).expect("read"));
        let part = c.get_with(
            &format!("/download{at}/sub/big.bin"),
            &[("Range", "bytes=4000000-4000099")],
        );
        assert!(part.body == common::noise(5_000_000, 11)[4_000_000..4_000_100]);
    }
    let cached = common::dir_size(&env.path("cache"));
    assert!(
        cached > 5_000_000,
        "fetched data is kept on disk: {cached} bytes"
    );
    let tar = c.get(&format!("/archive{at}?format=tar"));
    assert_eq!(tar.status, 200);
    std::fs::write(env.path("s3.tar"), &tar.body).expect("write");
    let out = env.path("from-s3");
    std::fs::create_dir_all(&out).expect("mkdir");
    run(Command::new("tar")
        .arg("-xpf")
        .arg(env.path("s3.tar"))
        .arg("-C")
        .arg(&out));
    let diffs = compare_trees(&src, &out.join("src"));
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
fn a_damaged_pack_breaks_the_download_instead_of_sending_other_bytes() {
    let env = Env::new();
    let src = common::ingest_two_files_and_damage_one(&env);
    let (_server, mut c) = logged_in(&env, "ana", "viewer");
    let at = format!("/default/latest{}", url_path(&src));
    let mut broken = 0;
    for name in ["a", "b"] {
        // A failure before the first 256 KiB closes the connection before the status line.
        let (status, body) = c.get_partial(&format!("/download{at}/{name}"));
        assert!([0, 200].contains(&status), "{status}");
        match body {
            Ok(b) => assert!(
                b == std::fs::read(src.join(name)).expect("read"),
                "{name}: a complete download has the snapshot's bytes"
            ),
            Err(_) => broken += 1,
        }
    }
    assert_eq!(
        broken, 1,
        "the file in the damaged part of the pack breaks off"
    );
    for format in ["tar", "zip"] {
        let (status, body) = c.get_partial(&format!("/archive{at}?format={format}"));
        assert_eq!(status, 200);
        assert!(
            body.is_err(),
            "a {format} with a damaged file is not delivered whole"
        );
    }
}

#[test]
fn pages_show_sets_snapshots_versions_search_and_diffs() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("big")).expect("mkdir");
    for i in 0..450 {
        std::fs::write(src.join(format!("big/f{i:03}.txt")), format!("{i}\n")).expect("write");
    }
    let conf = src.join("app.conf");
    std::fs::write(&conf, "mode = old\nsame = 1\n").expect("write");
    let s = src.to_str().expect("utf-8");
    env.ok(&[
        "ingest",
        s,
        "--set",
        "files",
        "--time",
        "2026-12-01T10:00:00Z",
    ]);
    std::fs::write(&conf, "mode = new\nsame = 1\n").expect("write");
    env.ok(&[
        "ingest",
        s,
        "--set",
        "files",
        "--time",
        "2026-12-02T10:00:00Z",
    ]);
    let (_server, mut c) = logged_in(&env, "ana", "viewer");

    let home = c.get("/");
    assert_eq!(home.status, 200);
    let t = home.text();
    assert!(
        t.contains("Set <a href=\"/browse/files/\">files</a>"),
        "{t}"
    );
    assert!(t.contains("2 snapshots") && t.contains("<svg"), "{t}");

    let root = c.get("/browse/").text();
    assert!(root.contains("href=\"/browse/files/\""), "{root}");
    let day = c.get("/browse/files/2026/12/").text();
    assert!(
        day.contains("href=\"/browse/files/2026/12/01/\"")
            && day.contains("href=\"/browse/files/2026/12/02/\""),
        "{day}"
    );

    let dir = format!("/browse/files/latest{}/big/", url_path(&src));
    let first = c.get(&dir).text();
    assert_eq!(
        first.matches("<tr><td><a href=").count(),
        200,
        "page 1 shows 200 entries"
    );
    assert!(
        first.contains("450 entries, page 1 of 3") && first.contains("Next page"),
        "{first}"
    );
    let last = c.get(&format!("{dir}?page=2")).text();
    assert_eq!(last.matches("<tr><td><a href=").count(), 50);
    assert!(last.contains("f449.txt") && !last.contains("f000.txt"));

    let file = c
        .get(&format!("/browse/files/latest{}", url_path(&conf)))
        .text();
    let new_hash = blake3::hash(b"mode = new\nsame = 1\n").to_hex().to_string();
    assert!(
        file.contains(&new_hash),
        "file page shows the blake3: {file}"
    );
    assert!(
        file.contains(">changed<") && file.contains(">added<"),
        "two versions: {file}"
    );
    let at = file.find("/diff/file?a=").expect("a diff link");
    let link = file[at..]
        .split('"')
        .next()
        .expect("link")
        .replace("&amp;", "&");
    let d = c.get(&link);
    assert_eq!(d.status, 200, "{}", d.text());
    let dt = d.text();
    assert!(
        dt.contains("-mode = old") && dt.contains("+mode = new") && dt.contains(" same = 1"),
        "{dt}"
    );

    let found = c.get("/search?q=app.*").text();
    assert!(
        found.contains(&url_path(&conf)),
        "search finds the file: {found}"
    );
    let none = c.get("/search?q=nothing-like-this").text();
    assert!(none.contains("Nothing matches"), "{none}");
    let bad = c.get("/search?q=*&since=yesterday");
    assert!(
        bad.text().contains("give a day as YYYY-MM-DD"),
        "{}",
        bad.text()
    );

    let snaps = env.json(&["snapshots"]);
    let id = |i: usize| snaps[i]["id"].as_str().expect("id").to_string();
    let cmp = c.get(&format!("/diff?a={}&b={}", id(0), id(1))).text();
    assert!(cmp.contains("0 added, 0 removed, 1 changed"), "{cmp}");
    assert!(cmp.contains(&url_path(&conf)), "{cmp}");
}

#[test]
fn refusals_have_their_status_codes_and_nothing_outside_a_snapshot_is_reachable() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("a.txt"), b"inside").expect("write");
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    add_user(&env, "vic", "viewer", "viewer-pw");
    add_user(&env, "ana", "admin", "admin-pw");
    let server = Server::start(&env, &[]);
    let mut anon = Client::new(&server.url);

    // No session: pages redirect to the login page, posts are refused.
    let r = anon.get("/browse/");
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    assert_eq!(
        anon.get(&format!("/download/default/latest{}/a.txt", url_path(&src)))
            .status,
        303
    );
    assert_eq!(
        anon.post("/restore", &[("path", "/"), ("target", "/tmp/x")])
            .status,
        401
    );
    let login = anon.get("/login");
    assert_eq!(login.status, 200);
    let csp = login.header("content-security-policy").expect("csp");
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(login.header("x-frame-options"), Some("DENY"));
    let cookie = login.header("set-cookie").expect("login cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // A login post without the form's token is refused; a wrong password is 401.
    let no_token = anon.post("/login", &[("user", "vic"), ("password", "viewer-pw")]);
    assert_eq!(no_token.status, 403);
    assert_eq!(anon.login("vic", "wrong").status, 401);

    // The viewer browses but may not restore to the server.
    let mut vic = Client::new(&server.url);
    assert_eq!(vic.login("vic", "viewer-pw").status, 303);
    let page = vic.get("/browse/default/latest/");
    assert_eq!(page.status, 200);
    assert!(
        !page.text().contains("action=\"/restore\""),
        "no restore form for a viewer"
    );
    let token = page.csrf();
    let target = env.path("restored");
    let t = target.to_str().expect("utf-8");
    assert_eq!(
        vic.post(
            "/restore",
            &[("csrf", &token), ("path", "/default/latest"), ("target", t)]
        )
        .status,
        403
    );
    assert!(!target.exists());

    // The admin may, but not without the token, and not with another session's.
    let mut ana = Client::new(&server.url);
    assert_eq!(ana.login("ana", "admin-pw").status, 303);
    assert_eq!(
        ana.post("/restore", &[("path", "/default/latest"), ("target", t)])
            .status,
        403
    );
    assert_eq!(
        ana.post(
            "/restore",
            &[("csrf", &token), ("path", "/default/latest"), ("target", t)]
        )
        .status,
        403
    );
    assert!(!target.exists());
    // Logging out needs the token too; afterwards the session is gone.
    assert_eq!(vic.post("/logout", &[("csrf", "nope")]).status, 403);
    assert_eq!(vic.post("/logout", &[("csrf", &token)]).status, 303);
    assert_eq!(vic.get("/").status, 303);

    // Paths that try to leave the snapshot: all are names inside it, found nowhere.
    let jar = {
        // The admin's session cookie, for raw requests.
        let mut c = Client::new(&server.url);
        let token = c.get("/login").csrf();
        let r = c.post(
            "/login",
            &[("user", "ana"), ("password", "admin-pw"), ("csrf", &token)],
        );
        let v = r.header("set-cookie").expect("session cookie");
        v.split(';').next().expect("cookie").to_string()
    };
    let long = format!("/browse/default/latest/{}", "n".repeat(5000));
    let attempts: Vec<Vec<u8>> = vec![
        b"/browse/default/latest/../../../../etc/passwd".to_vec(),
        b"/download/default/latest/../../../../etc/passwd".to_vec(),
        b"/download/default/latest/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_vec(),
        b"/download/default/latest%2F..%2F..%2Fetc%2Fpasswd".to_vec(),
        b"/download/..%2f..%2f..%2fetc%2fpasswd".to_vec(),
        b"/download/default/latest/etc/passwd%00.txt".to_vec(),
        b"/archive/default/latest/../../../etc?format=tar".to_vec(),
        b"/download//etc/passwd".to_vec(),
        long.into_bytes(),
    ];
    for a in &attempts {
        let (status, body) = raw_get(&server.url, a, &jar);
        assert!(
            [400, 404].contains(&status),
            "{}: status {status}",
            String::from_utf8_lossy(a)
        );
        assert!(
            !body.contains("root:x:0:0"),
            "{}",
            String::from_utf8_lossy(a)
        );
    }
    // Through the snapshot's own symlink, only the link itself is shown (it is not followed).
    std::os::unix::fs::symlink("/etc/passwd", src.join("link")).expect("symlink");
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let link = ana.get(&format!("/download/default/latest{}/link", url_path(&src)));
    assert_eq!(
        link.status,
        400,
        "a symlink does not download: {}",
        link.text()
    );
    assert!(!link.text().contains("root:x:0:0"));
    drop(server);

    // Listening beyond loopback needs TLS or a proxy in front.
    let out = env
        .cmd()
        .env("COFRE_CONFIG", env.path("cofre.toml"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve 0.0.0.0:0 without TLS"),
        "{err}"
    );
}

#[test]
fn login_attempts_are_rate_limited() {
    let env = Env::new();
    env.init();
    add_user(&env, "vic", "viewer", "right");
    add_user(&env, "other", "viewer", "x");
    let server = Server::start(&env, &[]);
    let mut c = Client::new(&server.url);
    for i in 0..5 {
        assert_eq!(c.login("vic", "wrong").status, 401, "attempt {i}");
    }
    let sixth = c.login("vic", "right");
    assert_eq!(
        sixth.status,
        429,
        "even the right password waits: {}",
        sixth.text()
    );
    assert!(sixth.header("retry-after").is_some());
    // Another user from the same address waits too (the address is limited).
    assert_eq!(c.login("other", "x").status, 429);
}

#[test]
fn an_admin_restores_to_the_server_and_replaces_files_only_when_asked() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("sub/a.txt"), b"first").expect("write");
    std::fs::write(src.join("b.bin"), common::noise(200_000, 9)).expect("write");
    env.ok(&["ingest", src.to_str().expect("utf-8")]);
    let (_server, mut c) = logged_in(&env, "ana", "admin");
    let page = c.get(&format!("/browse/default/latest{}/", url_path(&src)));
    assert!(
        page.text().contains("action=\"/restore\""),
        "admin sees the restore form"
    );
    let token = page.csrf();
    let target = env.path("restored");
    let t = target.to_str().expect("utf-8");
    let path = format!("/default/latest{}", url_path(&src));
    let r = c.post(
        "/restore",
        &[("csrf", &token), ("path", &path), ("target", t)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let diffs = compare_trees(&src, &common::restored(&target, &src));
    assert!(diffs.is_empty(), "{diffs:#?}");

    // A target with something in it: refused unless replacing was asked for.
    let mine = common::restored(&target, &src).join("sub/a.txt");
    std::fs::write(&mine, b"edited since").expect("write");
    let again = c.post(
        "/restore",
        &[("csrf", &token), ("path", &path), ("target", t)],
    );
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(std::fs::read(&mine).expect("read"), b"edited since");
    let relative = c.post(
        "/restore",
        &[
            ("csrf", &token),
            ("path", &path),
            ("target", "restored"),
            ("overwrite", "yes"),
        ],
    );
    assert_eq!(relative.status, 400);
    let replace = c.post(
        "/restore",
        &[
            ("csrf", &token),
            ("path", &path),
            ("target", t),
            ("overwrite", "yes"),
        ],
    );
    assert_eq!(replace.status, 200, "{}", replace.text());
    assert_eq!(std::fs::read(&mine).expect("read"), b"first");
}

#[test]
fn https_with_a_certificate_and_secure_cookies() {
    let env = Env::new();
    env.init();
    add_user(&env, "ana", "viewer", "pw");
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let server = Server::start(
        &env,
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let out = Command::new("curl")
        .args(["-s", "-i", "--cacert"])
        .arg(&cert)
        .arg(format!("{}/login", server.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/2 200"),
        "{text}"
    );
    assert!(
        text.contains("; Secure"),
        "cookies are Secure over HTTPS: {text}"
    );
    // Plain HTTP to the TLS port gets no page.
    let plain = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(server.url.replace("https://", "http://") + "/login")
        .output()
        .expect("curl");
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
}
