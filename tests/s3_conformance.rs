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

    // A missing bucket is a clear, immediate error.
    let missing = cofre::store::open("s3://no-such-bucket-here/x", rt.handle()).expect("open");
    let err = rt
        .block_on(missing.list("snapshots/"))
        .expect_err("missing bucket");
    assert!(err.to_string().to_lowercase().contains("bucket"), "{err}");
}
