//! The store conformance suite against a real S3 server (Garage on loopback).
//! Its own test binary: it sets the AWS environment for the in-process SDK.

mod common;
use common::*;

use std::sync::Arc;

#[test]
fn s3_store_conforms_on_garage() {
    let garage = Garage::start();
    for (k, v) in &garage.vars {
        // Single-threaded here: this is the only test in this binary.
        std::env::set_var(k, v);
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("s3://{}/conformance", garage.bucket);
    let store = cofre::store::open(&url, rt.handle()).expect("open s3 store");
    rt.block_on(cofre::store::conformance::run(store.clone()))
        .expect("S3 store conforms");
    let sibling = |p: &str| {
        let url = format!("s3://{}/siblings/{p}", garage.bucket);
        cofre::store::open(&url, rt.handle()).expect("open")
    };
    rt.block_on(cofre::store::conformance::sibling_prefixes(
        sibling("host1"),
        sibling("host10"),
    ))
    .expect("sibling prefixes kept apart");

    // Pagination: more keys than one LIST page (1000).
    let many = format!("s3://{}/many", garage.bucket);
    let s3 = Arc::new(
        rt.block_on(cofre::store::s3::S3Store::new(&many, Default::default()))
            .expect("s3"),
    );
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..1100 {
            let s = s3.clone();
            tasks.push(tokio::spawn(async move {
                cofre::store::Store::put(&*s, &format!("k/{i:05}"), vec![1]).await
            }));
        }
        for t in tasks {
            t.await.expect("join").expect("put");
        }
        let listed = cofre::store::Store::list(&*s3, "k/").await.expect("list");
        assert_eq!(listed.len(), 1100);
        assert_eq!(listed[1099].key, "k/01099");
    });

    faults_in_front_of_s3(&garage, &rt);

    // A missing bucket is a clear, immediate error.
    let missing = cofre::store::open("s3://no-such-bucket-here/x", rt.handle()).expect("open");
    let err = rt
        .block_on(missing.list("snapshots/"))
        .expect_err("missing bucket");
    assert!(err.to_string().to_lowercase().contains("bucket"), "{err}");
}

/// Failures, delays and truncated bodies in front of S3 never yield a snapshot that does not
/// restore exactly, and truncated reads are detected, never returned as data.
fn faults_in_front_of_s3(garage: &Garage, rt: &tokio::runtime::Runtime) {
    use cofre::catalog::Catalog;
    use cofre::ingest::ingest;
    use cofre::repo::Repository;
    use cofre::store::fault::{FaultStore, Faults};

    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..6 {
        std::fs::write(src.join(format!("f{i}")), noise(2_500_000, 50 + i)).expect("write");
    }
    let url = format!("s3://{}/faults", garage.bucket);
    let s3 = cofre::store::open(&url, rt.handle()).expect("open");
    let clean = Arc::new(Repository::init(s3.clone(), rt.handle().clone(), b"pw").expect("init"));
    let opts = || ingest_opts(&src);
    let (mut ok, mut failed) = (0, 0);
    for round in 0..10u64 {
        std::fs::write(src.join("changing"), noise(1_000_000, 900 + round)).expect("write");
        let faults = Faults {
            fail_fraction: 0.05,
            seed: round,
            delay: Some(std::time::Duration::from_millis(2)),
            ..Faults::default()
        };
        let faulty = Arc::new(FaultStore::new(s3.clone(), faults));
        let mut cat = Catalog::open(&env.path(&format!("cat-{round}.db"))).expect("cat");
        let result = Repository::open(faulty, rt.handle().clone(), b"pw")
            .and_then(|r| ingest(&r, &mut cat, opts()));
        match result {
            Ok(report) => {
                ok += 1;
                let target = env.path(&format!("r{round}"));
                cofre::restore::restore(&clean, &report.snapshot, "/", &target).expect("restore");
                assert_eq!(
                    compare_trees(&src, &restored(&target, &src)),
                    Vec::<String>::new()
                );
            }
            Err(e) => {
                failed += 1;
                assert!(e.to_string().contains("injected"), "{e}");
            }
        }
    }
    assert!(
        failed > 0 && ok > 0,
        "want both outcomes: {ok} ok, {failed} failed"
    );
    let check = cofre::check::check(&clean, cofre::check::ReadData::All).expect("check");
    assert_eq!(check.errors, Vec::<String>::new());

    // Truncated bodies: restore fails loudly instead of writing wrong bytes.
    let snap = clean.snapshot_ids().expect("ids").into_iter().next();
    if let Some(snap) = snap {
        let short = Arc::new(FaultStore::new(
            s3.clone(),
            Faults {
                short_reads: true,
                ..Faults::default()
            },
        ));
        let target = env.path("short");
        let r = Repository::open(short, rt.handle().clone(), b"pw")
            .and_then(|r| cofre::restore::restore(&Arc::new(r), &snap, "/", &target));
        assert!(r.is_err(), "a truncating store must not restore");
    }
}
