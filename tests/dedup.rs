//! Deduplication: unchanged data adds almost nothing; a dump with 1% of rows changed
//! adds a small fraction of its size.

mod common;
use common::*;

fn sql_dump(rows: &[String]) -> Vec<u8> {
    let mut out = String::from("--\n-- PostgreSQL database dump\n--\nCOPY public.orders (id, customer, amount, note) FROM stdin;\n");
    for r in rows {
        out.push_str(r);
        out.push('\n');
    }
    out.push_str("\\.\n");
    out.into_bytes()
}

fn row(i: usize, version: u32) -> String {
    let n = noise(24, (i as u64) << 8 | version as u64);
    format!(
        "{i}\tcustomer-{}\t{}.{:02}\tnote {} v{version}",
        i % 9973,
        (i * 37) % 100_000,
        i % 100,
        hex::encode(n)
    )
}

#[test]
fn unchanged_tree_adds_under_one_percent() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..50 {
        let p = src.join(format!("d{}/f{i}", i % 5));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, noise(200_000 + i * 1000, i as u64)).expect("write");
    }
    env.init();
    let s = src.to_str().expect("utf-8");
    env.ok(&["ingest", s]);
    let first = env.repo_size();
    // Same content again, but with fresh inodes and times: read again, deduplicated.
    let copy = env.path("copy");
    std::fs::rename(&src, &copy).expect("rename");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&copy)
        .arg(&src)
        .status()
        .expect("cp");
    assert!(status.success());
    let report = env.json(&["ingest", s]);
    assert!(
        report["summary"]["bytes_read"].as_u64().expect("read") > 10_000_000,
        "{report}"
    );
    let growth = env.repo_size() - first;
    assert!(
        growth * 100 < first,
        "unchanged re-ingest added {growth} bytes to {first}"
    );
}

#[test]
fn one_percent_changed_rows_dedup() {
    let env = Env::new();
    let dumps = env.path("dumps");
    std::fs::create_dir_all(&dumps).expect("mkdir");
    // ~40 MB of rows.
    let mut rows: Vec<String> = (0..470_000).map(|i| row(i, 0)).collect();
    let dump = dumps.join("app.sql");
    std::fs::write(&dump, sql_dump(&rows)).expect("write");
    let size = std::fs::metadata(&dump).expect("stat").len();
    assert!(size > 40_000_000, "dump is {size} bytes");
    env.init();
    let d = dumps.to_str().expect("utf-8");
    env.ok(&["ingest", d]);
    let before = env.repo_size();

    // 1% of rows changed, as an application does: updates to recent and hot records
    // (in 47 runs of 100 rows spread over the table), plus 1% new rows at the end.
    for run in 0..47 {
        let start = run * 9_973 % 469_900;
        for (k, r) in rows.iter_mut().enumerate().skip(start).take(100) {
            *r = row(k, 1);
        }
    }
    rows.extend((470_000..474_700).map(|i| row(i, 0)));
    std::fs::write(&dump, sql_dump(&rows)).expect("write");
    let report = env.json(&["ingest", d]);
    assert_eq!(
        report["summary"]["changed_files"].as_u64(),
        Some(1),
        "{report}"
    );
    let added = env.repo_size() - before;
    assert!(
        added * 100 < size * 15,
        "1% changed rows added {added} bytes for a {size}-byte dump"
    );
}
