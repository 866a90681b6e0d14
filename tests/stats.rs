//! `cofre stats` on a small repository computed by hand: sizes, dedup, and the price table
//! applied as docs/stats.md says (storage per class with minimum durations, writes, the
//! scripts' full copies).

mod common;

use common::*;

/// JSON numbers come back within an ulp or so (serde_json's float parsing is not exact).
fn close(v: &serde_json::Value, want: f64) {
    let got = v.as_f64().expect("a number");
    assert!(
        (got - want).abs() <= want.abs() * 1e-12,
        "{got} is not {want}"
    );
}

#[test]
fn stats_match_a_hand_computed_repository() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let content = noise(100_000, 7);
    std::fs::write(src.join("a"), &content).expect("write");
    std::fs::write(src.join("b"), &content).expect("write"); // the same chunks
    let s = src.to_str().expect("utf-8");
    env.ok(&["ingest", "-q", s]);
    env.ok(&["ingest", "-q", s]);
    let prices = env.path("prices.toml");
    let write_prices = |min_days: u32| {
        std::fs::write(
            &prices,
            format!(
                "[classes.STANDARD]\nstorage_gb_month = 1.0\nput_per_1000 = 1.0\nmin_days = {min_days}\n"
            ),
        )
        .expect("write");
    };
    write_prices(0);
    let p = prices.to_str().expect("utf-8");
    let v = env.json(&["stats", "--prices", p]);

    // By hand: 2 snapshots of 2 files of 100,000 bytes, all the same 100,000 bytes.
    assert_eq!(v["snapshots"], 2);
    assert_eq!(v["latest_bytes"], 200_000);
    assert_eq!(v["all_bytes"], 400_000);
    assert_eq!(v["unique_data_bytes"], 100_000);
    assert_eq!(v["dedup_ratio"], 4.0);
    assert_eq!(v["provider"], "local", "a local repository");
    // Stored bytes: what the metrics report from the same catalog.
    let metrics = env.run(&["metrics"]);
    let text = String::from_utf8_lossy(&metrics.stdout);
    let stored: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cofre_repository_stored_bytes{class=\"STANDARD\"} "))
        .expect("stored bytes metric")
        .parse()
        .expect("number");
    assert_eq!(v["stored_bytes"], stored);
    assert!(
        stored > 100_000 && stored < 110_000,
        "noise does not compress: {stored}"
    );
    let unique = 100_000 + v["unique_tree_bytes"].as_u64().expect("trees");
    let compression = unique as f64 / stored as f64;
    close(&v["compression_ratio"], compression);

    // The bill: $1 per GB-month, $1 per 1000 writes, no minimum duration.
    let snaps = env.json(&["snapshots"]);
    let added: u64 = snaps
        .as_array()
        .expect("a")
        .iter()
        .map(|s| s["bytes_added"].as_u64().expect("n"))
        .sum();
    assert_eq!(v["added_last_30_days"], added);
    let puts = added.div_ceil(8 * 1024 * 1024) + 4 * 2;
    assert_eq!(v["puts_per_month"], puts);
    close(&v["storage_dollars"], stored as f64 / 1e9);
    close(&v["request_dollars"], puts as f64 / 1000.0);
    close(
        &v["monthly_dollars"],
        stored as f64 / 1e9 + puts as f64 / 1000.0,
    );
    // The scripts' way: every snapshot as a compressed full copy.
    // (noise does not compress: a gzipped copy is as big as the data)
    let full = (400_000f64 / compression.max(1.0)) as u64;
    assert_eq!(v["full_copies_bytes"], full);
    close(&v["full_copies_monthly_dollars"], full as f64 / 1e9);

    // A 90-day minimum: the month's new data is billed for 90 days.
    write_prices(90);
    let v = env.json(&["stats", "--prices", p]);
    let billed = v["classes"][0]["billed_bytes"].as_u64().expect("billed");
    assert_eq!(billed, (added as f64 * 90.0 / 30.0) as u64);
    close(&v["storage_dollars"], billed as f64 / 1e9);

    // The built-in table by provider, and a set filter.
    let v = env.json(&["stats", "--provider", "aws"]);
    close(&v["storage_dollars"], stored as f64 / 1e9 * 0.023);
    let v = env.json(&["stats", "--set", "other"]);
    assert_eq!(v["snapshots"], 0);
    let out = env.run(&["stats", "--provider", "oracle"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("aws, azure, b2, wasabi, gcs"));
    // Azure's tiers (a local repository's data is all STANDARD: Hot).
    let v = env.json(&["stats", "--provider", "azure"]);
    close(&v["storage_dollars"], stored as f64 / 1e9 * 0.018);
    // The estimate is in the metrics.
    assert!(
        text.contains("cofre_estimated_monthly_cost_dollars 0"),
        "{text}"
    );
}
