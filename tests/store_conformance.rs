//! The store conformance suite on every store available without services.

use std::sync::Arc;

use cofre::store::fault::{FaultStore, Faults};
use cofre::store::local::LocalStore;
use cofre::store::memory::MemoryStore;
use cofre::store::{conformance, DynStore};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn memory_store_conforms() {
    rt().block_on(conformance::run(Arc::new(MemoryStore::new())))
        .expect("memory store");
}

#[test]
fn local_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    // A missing root (an unplugged disk) is an error, never an empty repository.
    let missing = rt().block_on(cofre::store::Store::list(
        &LocalStore::new(&root),
        "snapshots/",
    ));
    assert!(missing.is_err(), "{missing:?}");
    std::fs::create_dir(&root).expect("mkdir");
    rt().block_on(conformance::run(Arc::new(LocalStore::new(root))))
        .expect("local store");
}

#[test]
fn fault_store_without_faults_conforms() {
    let inner: DynStore = Arc::new(MemoryStore::new());
    let store = Arc::new(FaultStore::new(inner, Faults::default()));
    rt().block_on(conformance::run(store))
        .expect("pass-through fault store");
}

#[test]
fn conformance_suite_catches_a_broken_store() {
    // A store that flips bits must fail the suite: the suite can fail.
    let inner: DynStore = Arc::new(MemoryStore::new());
    let store = Arc::new(FaultStore::new(
        inner,
        Faults {
            flip_bits: true,
            ..Faults::default()
        },
    ));
    assert!(rt().block_on(conformance::run(store)).is_err());
}

#[test]
fn local_store_leaves_no_temp_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::new(dir.path());
    let rt = rt();
    use cofre::store::Store;
    rt.block_on(store.put("data/aa/x", vec![1; 1000]))
        .expect("put");
    let names: Vec<_> = std::fs::read_dir(dir.path().join("data/aa"))
        .expect("dir")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("x")]);
}
