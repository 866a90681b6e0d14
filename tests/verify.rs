//! Scheduled verification: `[check]` in the file makes `cofre run` check the repository and
//! its `copy_to` target, reading a rotating part of the packs, so that every pack is read
//! once per cycle; a bit flipped in the copy is reported on the day its part comes up,
//! naming the file, and by the metrics from then on.

mod common;
use common::*;

use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

/// The check job of repository `repo` in a run's results.
fn check_job<'a>(v: &'a serde_json::Value, repo: &str) -> &'a serde_json::Value {
    v.as_array()
        .expect("results")
        .iter()
        .find(|r| r["class"] == "check" && r["set"] == repo)
        .unwrap_or_else(|| panic!("no check of {repo} in {v}"))
}

/// The data part (1-based, of `m`) a pack falls in: its id's first four bytes mod `m`, as
/// `check --read-data-subset n/m` chooses (docs/config.md).
fn part_of(pack: &Path, m: u32) -> u32 {
    let name = pack
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let first = u32::from_str_radix(&name[..8], 16).expect("hex");
    first % m + 1
}

/// Data pack files of a local repository (tree packs included).
fn packs(repo: &Path) -> Vec<PathBuf> {
    walk(&repo.join("data"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
}

#[test]
fn run_checks_a_rotating_part_of_both_repositories_and_finds_a_flipped_bit_on_its_day() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..12 {
        std::fs::write(src.join(format!("f{i}")), noise(3 << 20, i)).expect("write");
    }
    let target = env.path("offsite");
    {
        let mut to = env.other_host("target-host");
        to.url = Some(s(&target).to_string());
        to.init_copying_from(&env);
    }
    let prom = env.path("cofre.prom");
    let cfg = env.path("cofre.toml");
    std::fs::write(
        &cfg,
        format!(
            "metrics_file = {prom:?}\ncopy_to = [{target:?}]\n\n\
             [check]\nevery = \"1d\"\nread_data = \"1/3\"\n\n\
             [sets.files]\npaths = [{src:?}]\nevery = \"1d\"\n"
        ),
    )
    .expect("config");
    let here = s(&env.repo()).to_string();
    let there = s(&target).to_string();

    // Day 1 takes and copies the snapshot, then checks both, part 1 of 3.
    let (code, v) = env.run_at(&cfg, "2026-12-01T04:00:00Z");
    assert_eq!(code, 0, "{v}");
    for repo in [&here, &there] {
        let r = check_job(&v, repo);
        assert_eq!(r["action"], "done", "{v}");
        assert!(
            r["reason"].as_str().expect("reason").contains("part 1/3"),
            "{r}"
        );
    }
    // Nothing new in the sources from here on: the parts rotate, one a day.
    let flipped = packs(&target)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).expect("stat").len())
        .expect("a pack in the copy");
    let bad_day = part_of(&flipped, 3); // day 2, 3 or 4 reads part 2, 3, 1
    let mut bytes = std::fs::read(&flipped).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&flipped, &bytes).expect("flip a bit");

    let mut found = false;
    for day in 2..=4u32 {
        let (code, v) = env.run_at(&cfg, &format!("2026-12-0{day}T04:00:00Z"));
        let part = (day - 1) % 3 + 1;
        let ours = check_job(&v, &here);
        assert_eq!(ours["action"], "done", "day {day}: {v}");
        assert!(
            ours["reason"]
                .as_str()
                .expect("reason")
                .contains(&format!("part {part}/3")),
            "day {day}: {ours}"
        );
        let copy = check_job(&v, &there);
        let text = std::fs::read_to_string(&prom).expect("metrics");
        let damaged = format!("cofre_check_damaged_packs{{repository=\"{there}\"}} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&damaged))
            .unwrap_or_else(|| panic!("no {damaged} in\n{text}"));
        if part == bad_day {
            found = true;
            assert_ne!(code, 0, "day {day}: {v}");
            assert_eq!(copy["action"], "failed", "day {day}: {v}");
            let why = copy["reason"].as_str().expect("reason");
            assert!(
                why.contains("affected: ") && why.contains("/src/f"),
                "the damage names a file: {why}"
            );
        } else {
            assert_eq!(code, 0, "day {day}: {v}");
            assert_eq!(copy["action"], "done", "day {day}: {v}");
        }
        // Reported from the day its part is read, and still on the days after.
        let want = if found { " 1" } else { " 0" };
        assert!(line.ends_with(want), "day {day}: {line}");
        // Not due again the same day.
        let (_, again) = env.run_at(&cfg, &format!("2026-12-0{day}T05:00:00Z"));
        assert_eq!(check_job(&again, &here)["action"], "not due");
    }
    assert!(found, "the damaged pack's part came up within the cycle");
}

/// `cofre check --against` between a repository and its copy, with `env`'s password on
/// both: (exit code, report, stderr).
fn check_against(env: &Env, target: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let out = env
        .cmd()
        .env("COFRE_TO_PASSWORD", PASSWORD)
        .args(["--json", "check", "--against", s(target)])
        .args(extra)
        .output()
        .expect("check --against");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ids_of(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn check_against_names_what_each_side_lacks_and_what_is_damaged_and_the_copy_drills() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_awkward_tree(&src);
    let ingest = |n: u64| {
        std::fs::write(src.join("generation"), noise(200_000, n)).expect("write");
        env.ok(&["ingest", "-q", "--set", "files", s(&src)]);
        env.json(&["snapshots", "--set", "files"])
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .next_back()
            .expect("latest")
    };
    let (first, second) = (ingest(1), ingest(2));
    let target = env.path("offsite");
    let mut to = env.other_host("target-host");
    to.url = Some(s(&target).to_string());
    to.init_copying_from(&env);
    copy_into(&env, &to, &[]);
    // Afterwards the source takes one more and forgets the first (kept on the copy).
    let third = ingest(3);
    env.ok(&["forget", &first]);

    let (code, v, err) = check_against(&env, &target, &["--read-data"]);
    assert_eq!(code, 0, "{v:#}\n{err}");
    let c = &v["comparison"];
    assert_eq!(c["in_both"], 1, "{c:#}");
    assert_eq!(ids_of(&c["only_source"]), vec![third.clone()], "{c:#}");
    assert_eq!(ids_of(&c["only_target"]), vec![first.clone()], "{c:#}");
    assert_eq!(c["differ"], serde_json::json!([]));
    assert_eq!(v["target"]["errors"], serde_json::json!([]));
    assert!(
        v["target"]["packs_read"].as_u64().expect("read") > 0,
        "{v:#}"
    );

    // The monthly drill, from the copy: its latest `files` snapshot, every file verified.
    let out = to
        .cmd()
        .args(["--json", "drill", "--set", "files"])
        .output()
        .expect("drill");
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(out.status.code(), Some(0), "{d:#}");
    assert_eq!(d[0]["passed"], true, "{d:#}");
    assert!(
        second.starts_with(d[0]["snapshot"].as_str().expect("id")),
        "{d:#}"
    );

    // A manifest damaged on the copy: the comparison names it, and the check fails.
    let manifest = target.join("snapshots").join(&second);
    let mut bytes = std::fs::read(&manifest).expect("manifest");
    bytes[40] ^= 0x01;
    std::fs::write(&manifest, bytes).expect("damage");
    let (code, v, err) = check_against(&env, &target, &[]);
    assert_eq!(code, 1, "{v:#}\n{err}");
    let errors = v["comparison"]["errors"].to_string();
    assert!(errors.contains(&second), "{v:#}");
    assert_eq!(v["comparison"]["in_both"], 0, "{v:#}");
}
