//! The one conformance suite every store passes (memory, local, and S3 later).
//! Returns a description of the first violated expectation.

use super::{DynStore, StoreError};

fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

pub async fn run(store: DynStore) -> Result<(), String> {
    let e = |e: StoreError| e.to_string();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();

    check(
        matches!(
            store.get("data/ab/missing", None).await,
            Err(StoreError::NotFound(_))
        ),
        "get of a missing key must be NotFound",
    )?;
    check(
        matches!(
            store.head("data/ab/missing").await,
            Err(StoreError::NotFound(_))
        ),
        "head of a missing key must be NotFound",
    )?;
    check(
        store.list("data/").await.map_err(e)?.is_empty(),
        "list of an empty prefix must be empty",
    )?;

    store.put("data/ab/abcd", data.clone()).await.map_err(e)?;
    store.put("data/cd/cdef", b"x".to_vec()).await.map_err(e)?;
    store
        .put("snapshots/0001", b"snap".to_vec())
        .await
        .map_err(e)?;
    store.put("empty", Vec::new()).await.map_err(e)?;

    check(
        store.get("data/ab/abcd", None).await.map_err(e)? == data,
        "full get returns what was put",
    )?;
    check(
        store.get("data/ab/abcd", Some(10..20)).await.map_err(e)? == data[10..20],
        "ranged get returns the range",
    )?;
    check(
        store
            .get("data/ab/abcd", Some(99_990..100_000))
            .await
            .map_err(e)?
            == data[99_990..],
        "ranged get to the end",
    )?;
    check(
        store
            .get("data/ab/abcd", Some(99_990..100_010))
            .await
            .is_err(),
        "ranged get past the end is an error",
    )?;
    check(
        store.get("empty", None).await.map_err(e)?.is_empty(),
        "empty object",
    )?;
    check(
        store.head("data/ab/abcd").await.map_err(e)? == 100_000,
        "head gives the size",
    )?;

    let listed = store.list("data/").await.map_err(e)?;
    let keys: Vec<_> = listed.iter().map(|o| o.key.as_str()).collect();
    check(
        keys == ["data/ab/abcd", "data/cd/cdef"],
        &format!("list data/ sorted, got {keys:?}"),
    )?;
    check(listed[0].size == 100_000, "list gives sizes")?;
    // A prefix that ends inside a name, not at a `/`: only keys that start with it.
    let partial = store.list("data/c").await.map_err(e)?;
    let keys: Vec<_> = partial.iter().map(|o| o.key.as_str()).collect();
    check(
        keys == ["data/cd/cdef"],
        &format!("list data/c, got {keys:?}"),
    )?;
    let snaps = store.list("snapshots/").await.map_err(e)?;
    check(
        snaps.len() == 1 && snaps[0].key == "snapshots/0001",
        "list by prefix",
    )?;

    // Idempotent re-put of identical content (write-once, content-named objects).
    store.put("data/cd/cdef", b"x".to_vec()).await.map_err(e)?;
    check(
        store.get("data/cd/cdef", None).await.map_err(e)? == b"x",
        "re-put keeps content",
    )?;

    // Conditional create: exactly one writer wins (init's config).
    store
        .put_if_absent("config-test", b"first".to_vec())
        .await
        .map_err(e)?;
    check(
        matches!(
            store.put_if_absent("config-test", b"second".to_vec()).await,
            Err(StoreError::Exists(_))
        ),
        "put_if_absent over an existing object must be Exists",
    )?;
    check(
        store.get("config-test", None).await.map_err(e)? == b"first",
        "put_if_absent keeps the first object",
    )?;
    store.delete("config-test").await.map_err(e)?;

    store.delete("data/cd/cdef").await.map_err(e)?;
    check(
        matches!(
            store.get("data/cd/cdef", None).await,
            Err(StoreError::NotFound(_))
        ),
        "deleted object is gone",
    )?;
    store.delete("data/cd/cdef").await.map_err(e)?;
    check(
        store.list("data/").await.map_err(e)?.len() == 1,
        "list after delete",
    )?;

    // Cleanup so the suite can run against a shared bucket.
    for k in ["data/ab/abcd", "snapshots/0001", "empty"] {
        store.delete(k).await.map_err(e)?;
    }
    check(
        store.list("").await.map_err(e)?.is_empty(),
        "store empty after cleanup",
    )?;
    Ok(())
}

/// Two repositories whose prefixes are a string prefix of one another (`…/host1` and
/// `…/host10`, as `a` and `b`) never see each other's objects.
pub async fn sibling_prefixes(a: DynStore, b: DynStore) -> Result<(), String> {
    let e = |e: StoreError| e.to_string();
    b.put("config", b"b's".to_vec()).await.map_err(e)?;
    b.put("data/ab/x", vec![1]).await.map_err(e)?;
    check(
        a.list("").await.map_err(e)?.is_empty(),
        "a sibling's objects listed",
    )?;
    check(
        a.list("data/").await.map_err(e)?.is_empty(),
        "a sibling's data listed",
    )?;
    check(
        matches!(a.get("config", None).await, Err(StoreError::NotFound(_))),
        "a sibling's config read",
    )?;
    a.put("config", b"a's".to_vec()).await.map_err(e)?;
    let keys: Vec<String> = b
        .list("")
        .await
        .map_err(e)?
        .into_iter()
        .map(|o| o.key)
        .collect();
    check(keys == ["config", "data/ab/x"], "b lists only its own")?;
    check(
        b.get("config", None).await.map_err(e)? == b"b's",
        "b reads its own",
    )?;
    for (s, k) in [(&a, "config"), (&b, "config"), (&b, "data/ab/x")] {
        s.delete(k).await.map_err(e)?;
    }
    Ok(())
}

/// A listing longer than one page of the service's (1,000 on S3 and GCS, 5,000 on Azure)
/// is complete and sorted.
pub async fn listing_pages(store: DynStore, n: usize) -> Result<(), String> {
    use futures::{StreamExt, TryStreamExt};
    let e = |e: StoreError| e.to_string();
    let keys: Vec<String> = (0..n).map(|i| format!("k/{i:05}")).collect();
    // 32 calls at a time: an emulator refuses thousands of connections at once.
    futures::stream::iter(keys.iter().map(|k| store.put(k, vec![1])))
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .map_err(e)?;
    let listed: Vec<String> = store
        .list("k/")
        .await
        .map_err(e)?
        .into_iter()
        .map(|o| o.key)
        .collect();
    check(
        listed == keys,
        "a listing of several pages is complete and sorted",
    )?;
    futures::stream::iter(keys.iter().map(|k| store.delete(k)))
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .map_err(e)
        .map(|_| ())
}
