//! `cofre log`, `find` and `diff` through the CLI, on snapshots of a real tree taken by
//! real ingests (the table tests beside `src/history/` cover every kind of change).

mod common;

use common::Env;

#[test]
fn log_find_and_diff_follow_a_file_through_three_snapshots() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    let conf = src.join("etc/app.conf");
    let s = src.to_str().expect("utf-8");
    std::fs::write(&conf, b"a=1\n").expect("write");
    std::fs::write(src.join("keep.txt"), b"same\n").expect("write");
    env.ok(&["ingest", s, "--time", "2026-12-01T10:00:00Z"]);
    std::fs::write(&conf, b"a=22\n").expect("write");
    std::fs::write(src.join("etc/new.conf"), b"n\n").expect("write");
    env.ok(&["ingest", s, "--time", "2026-12-02T10:00:00Z"]);
    std::fs::remove_file(&conf).expect("rm");
    env.ok(&["ingest", s, "--time", "2026-12-03T10:00:00Z"]);

    let path = conf.to_str().expect("utf-8");
    let log = env.json(&["log", path]);
    let changes: Vec<&str> = log
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v["change"].as_str().expect("change"))
        .collect();
    assert_eq!(changes, ["added", "content", "removed"], "{log:#}");
    assert_eq!(log[1]["entry"]["size"], 5);
    assert_eq!(
        log[1]["entry"]["blake3"],
        blake3::hash(b"a=22\n").to_hex().to_string()
    );

    let found = env.json(&["find", "*.conf"]);
    let paths: Vec<&str> = found
        .as_array()
        .expect("array")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    let new = src.join("etc/new.conf");
    assert_eq!(paths, [path, new.to_str().expect("utf-8")], "{found:#}");
    let found = env.json(&["find", "*.conf", "--since", "2026-12-02T12:00:00Z"]);
    assert_eq!(found.as_array().expect("array").len(), 1, "{found:#}");

    let snaps = env.json(&["snapshots"]);
    let id = |i: usize| snaps[i]["short_id"].as_str().expect("id").to_string();
    let d = env.json(&["diff", &id(0), &id(1)]);
    let entries: Vec<(String, String)> = d["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let p = e["path"].as_str().expect("path");
            let short = p.strip_prefix(s).unwrap_or(p).to_string();
            (short, e["change"].as_str().expect("change").to_string())
        })
        .collect();
    let want = [("/etc/app.conf", "content"), ("/etc/new.conf", "added")];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    assert_eq!(entries, want, "{d:#}");
    let text = env.ok(&["diff", &id(1), &id(2)]);
    assert!(text.contains(&format!("-    {path}")), "{text}");
    assert!(text.contains("0 added, 1 removed"), "{text}");
}
