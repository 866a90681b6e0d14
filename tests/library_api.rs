//! A small front end written against the public API only (`cofre::Session` and what it
//! returns): create a repository, back up, list snapshots, browse by path as the mount
//! shows them, restore a file and a tree. If a front end needs more than this, the API is
//! missing something. The crate docs quote it.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cofre::{Browse, IngestOptions, OpenOptions, Progress, RestoreOptions, Session};

#[derive(Default)]
struct Count {
    files: AtomicU64,
    bytes: AtomicU64,
}

impl Progress for Count {
    fn add_file(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }
    fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

fn options(dir: &Path, password: &str) -> OpenOptions {
    OpenOptions {
        catalog: Some(dir.join("catalog.db")),
        ..OpenOptions::new(dir.join("repo").to_string_lossy(), password)
    }
}

/// A server shares one session between request threads.
#[test]
fn a_session_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Session>();
    shareable::<OpenOptions>();
}

#[test]
fn a_front_end_backs_up_browses_and_restores_through_the_session() {
    let env = common::Env::new();
    let dir = env.dir.path();
    let src = dir.join("src");
    common::make_awkward_tree(&src);

    // Back up, counting progress as a web page would.
    let session = Session::init(options(dir, common::PASSWORD), None, None).expect("init");
    let count = Arc::new(Count::default());
    let mut opts = IngestOptions::new("web", vec![src.clone()]);
    opts.progress = Some(count.clone());
    let report = session.ingest(opts).expect("ingest");
    assert!(!report.partial, "{:?}", report.warnings);
    assert!(count.files.load(Ordering::Relaxed) > 10, "no files counted");
    assert_eq!(
        count.bytes.load(Ordering::Relaxed),
        report.summary.bytes_read,
        "progress and report disagree on the bytes read"
    );
    drop(session);

    // Another front end opens the same repository.
    let session = Session::open(options(dir, common::PASSWORD)).expect("open");
    let snaps = session.snapshots(None).expect("snapshots");
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        (snaps[0].set.as_str(), snaps[0].id.as_str()),
        ("web", report.snapshot.as_str())
    );

    // Browse as the mount shows it: the root, the set, then into the latest snapshot.
    let Browse::Layout { entries } = session.browse("/").expect("browse /") else {
        panic!("/ is not a layout directory");
    };
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ids", "web"]);
    let inside = format!("/web/latest{}", src.display());
    let Browse::Dir {
        snapshot, entries, ..
    } = session.browse(&inside).expect("browse dir")
    else {
        panic!("{inside} is not a directory");
    };
    assert_eq!(snapshot.id, report.snapshot);
    let mut want: Vec<String> = std::fs::read_dir(&src)
        .expect("read_dir")
        .map(|e| {
            format!(
                "{}/{}",
                src.display(),
                e.expect("entry").file_name().to_string_lossy()
            )
        })
        .collect();
    want.sort();
    let mut got: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
    got.sort();
    assert_eq!(got, want, "one level of the source, as listed");

    // A file: its entry carries the content hash a page can show.
    let file = src.join("small.txt");
    let Browse::File { entry, .. } = session
        .browse(&format!("/web/latest{}", file.display()))
        .expect("browse file")
    else {
        panic!("small.txt is not a file");
    };
    let bytes = std::fs::read(&file).expect("read source");
    assert_eq!(entry.size, bytes.len() as u64);
    assert_eq!(
        entry.blake3,
        Some(blake3::hash(&bytes).to_hex().to_string())
    );

    // `ls` of the whole tree lists what is on disk: the directory, then all below it.
    let listed = session
        .list("latest", &src.to_string_lossy(), None)
        .expect("list");
    let mut got: Vec<std::path::PathBuf> = listed.iter().map(|e| e.os_path()).collect();
    got.sort();
    let mut want = common::walk(&src);
    want.push(src.clone());
    want.sort();
    assert_eq!(got, want);

    // Restore one file, then the whole tree, and compare them with the source.
    let target = dir.join("one");
    let done = session
        .restore(&RestoreOptions {
            snapshot: "latest".into(),
            path: file.to_string_lossy().into_owned(),
            set: Some("web".into()),
            target: target.clone(),
            cache_mib: 32,
        })
        .expect("restore file");
    assert!(done.report.errors.is_empty(), "{:?}", done.report.errors);
    assert_eq!(
        std::fs::read(common::restored(&target, &file)).expect("restored"),
        bytes
    );
    let target = dir.join("all");
    let done = session
        .restore(&RestoreOptions {
            snapshot: snapshot.short_id.clone(),
            path: "/".into(),
            set: None,
            target: target.clone(),
            cache_mib: 32,
        })
        .expect("restore tree");
    assert!(done.report.errors.is_empty(), "{:?}", done.report.errors);
    let diffs = common::compare_trees(&src, &common::restored(&target, &src));
    assert!(diffs.is_empty(), "restored tree differs: {diffs:#?}");

    // Errors are typed, with the CLI's exit codes.
    let err = session
        .browse("/web/latest/no/such/path")
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, cofre::Error::NoSuchPath(_)), "{err}");
    drop(session);
    let wrong = Session::open(options(dir, "not the password"))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(wrong, cofre::Error::WrongPassword), "{wrong}");
    assert_eq!(wrong.exit_code(), 12);
}
