//! Stat'ing ahead of the walk. On a cold cache the walk waited for the disk at every
//! directory and every inode it stat'ed, one at a time: a no-change ingest of
//! bench/run.sh's corpus (17.6k entries) took 0.64-0.77 s cold against 0.30 s warm, most of
//! the difference in `statx` and `getdents64`. A thread walks the same tree in the same
//! order (names sorted, excluded paths skipped) and reads each directory and stats each
//! entry, only so that the kernel has them cached when the walker comes. It keeps nothing,
//! reads no file content (`readahead` does that, per directory) unless every file will be
//! read (`with_content`), and stays at most `LEAD` entries ahead of the walker, so that on
//! a tree of millions of entries it does not evict what it brought in before the walker
//! uses it. It stops when the walk ends. On a warm cache it only repeats the walker's
//! `getdents64` and `lstat` calls, on the other core.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use super::walk::Excludes;

/// Entries stat'ed ahead of the walker, at most.
const LEAD: u64 = 8192;
/// With content (`Lead::with_content`): entries ahead, at most; bytes asked for per file;
/// files asked for per directory. The lead counts entries the walker has *stat'ed*, and it
/// stats a whole directory before reading its files, so the lead alone does not bound what
/// is asked for ahead of what is read: in a flat directory of 200,000 files it would be all
/// of them. With 64 files per directory (the first ones, which the walker's own read-ahead
/// cannot start before it gets there; it covers the rest), what is asked for and not yet
/// read is at most 8 MiB per directory on the walker's path plus 64 MiB beyond it.
const CONTENT_LEAD: u64 = 512;
const CONTENT_PER_FILE: u64 = 128 << 10;
const CONTENT_FILES_PER_DIR: usize = 64;
/// The walker wakes a waiting prefetcher every this many entries.
const NOTIFY_EVERY: u64 = 64;

/// How far the walker is, shared with the thread ahead of it.
#[derive(Default)]
pub struct Lead {
    walked: AtomicU64,
    done: Mutex<bool>,
    moved: Condvar,
    /// Also ask the kernel for each file's first bytes (`CONTENT_PER_FILE`), `CONTENT_LEAD`
    /// entries ahead.
    content: bool,
}

impl Lead {
    /// A lead that also reads ahead the files' content: for an ingest that will read every
    /// file (no previous snapshot to compare with). The walker's own read-ahead stops at
    /// each subdirectory, so on a cold cache the first file of every directory was a wait
    /// for the disk: ~1 s of an initial ingest of bench/run.sh's corpus, 5.6-6.0 s cold
    /// against 4.7-4.9 s warm. Not for other ingests: they read only what changed, and
    /// this would read everything.
    pub fn with_content() -> Lead {
        Lead {
            content: true,
            ..Lead::default()
        }
    }

    fn lead(&self) -> u64 {
        if self.content {
            CONTENT_LEAD
        } else {
            LEAD
        }
    }

    /// The walker stat'ed one more entry.
    pub fn step(&self) {
        let n = self.walked.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(NOTIFY_EVERY) {
            // Under the lock, so a prefetcher between its check and its wait is not missed.
            let _g = self.done.lock();
            self.moved.notify_all();
        }
    }

    /// The walk is over (or failed): the thread ahead stops.
    pub fn finish(&self) {
        *self.done.lock() = true;
        self.moved.notify_all();
    }

    /// Waits until entry number `mine` is within `LEAD` of the walker; false once the walk
    /// is over.
    fn wait_for(&self, mine: u64) -> bool {
        let mut done = self.done.lock();
        while !*done && mine > self.walked.load(Ordering::Relaxed) + self.lead() {
            self.moved.wait(&mut done);
        }
        !*done
    }
}

/// Calls `Lead::finish` when dropped: the walk's every exit, a panic included, lets the
/// thread ahead end (the scope it runs in waits for it).
pub struct FinishOnDrop<'a>(pub &'a Lead);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Walks `targets` (absolute, normalized, nested ones merged: the walker's, in its order)
/// as the walker will, ahead of it. Each target counts as one entry, as the walker stats
/// it, except `/`, which it does not. Errors are the walker's to report.
pub fn run(targets: &[PathBuf], excludes: &Excludes, lead: &Lead) {
    let mut count = 0;
    for target in targets {
        if target.parent().is_some() {
            count += 1;
            if !lead.wait_for(count) {
                return;
            }
        }
        if std::fs::symlink_metadata(target).is_ok_and(|m| m.is_dir())
            && !dir(target, excludes, lead, &mut count)
        {
            return;
        }
    }
}

/// One directory: its entries stat'ed, then its subdirectories in name order (the walker's
/// order). False once the walk is over.
fn dir(path: &Path, excludes: &Excludes, lead: &Lead, count: &mut u64) -> bool {
    let Ok(rd) = std::fs::read_dir(path) else {
        return true;
    };
    let mut names: Vec<OsString> = rd.flatten().map(|e| e.file_name()).collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut subdirs = Vec::new();
    let mut advised = 0;
    for name in names {
        let p = path.join(&name);
        if excludes.matches(&p) {
            continue;
        }
        *count += 1;
        if !lead.wait_for(*count) {
            return false;
        }
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => subdirs.push(p),
            Ok(m) if wants_content(lead, &m, advised) => {
                // The walker opens and reads it itself; this only starts the disk read.
                if let Ok(f) = super::walk::open_source(&p) {
                    super::readahead::advise(&f, m.len().min(CONTENT_PER_FILE));
                }
                advised += 1;
            }
            _ => {}
        }
    }
    subdirs.iter().all(|d| dir(d, excludes, lead, count))
}

/// Whether to ask for the first bytes of an entry, the `advised`-th of its directory: a
/// non-empty regular file (never a device or a FIFO), within the directory's share.
fn wants_content(lead: &Lead, m: &std::fs::Metadata, advised: usize) -> bool {
    lead.content && m.is_file() && m.len() > 0 && advised < CONTENT_FILES_PER_DIR
}

/// Stats the first `LEAD` entries of an ingest's walk on a thread of its own, started
/// before the repository is opened: deriving its key (argon2, 64 MiB, three passes) takes
/// about 0.2 s of one core before anything else can start, a third of a no-change ingest
/// of bench/run.sh's corpus, and a cold cache then made the walk wait for the disk at its
/// start. The ingest's own thread ahead takes over when the walk starts. Stops when
/// dropped; nothing for a stream, or for options the ingest will refuse anyway.
pub struct Prewarm(std::sync::Arc<Lead>);

impl Prewarm {
    pub fn start(opts: &super::IngestOptions) -> Option<Prewarm> {
        if opts.stream.is_some() {
            return None;
        }
        let excludes = super::excludes(&opts.excludes).ok()?;
        let targets = super::walk_targets(&opts.paths).ok()?;
        // Never advanced: it stops `LEAD` entries in, within what the walk keeps cached.
        let lead = std::sync::Arc::new(Lead::default());
        let ahead = lead.clone();
        std::thread::Builder::new()
            .name("prewarm".into())
            .spawn(move || run(&targets, &excludes, &ahead))
            .ok()?;
        Some(Prewarm(lead))
    }
}

impl Drop for Prewarm {
    fn drop(&mut self) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_ahead_waits_for_the_walker_and_stops_with_it() {
        for (lead, ahead) in [
            (Lead::default(), LEAD),
            (Lead::with_content(), CONTENT_LEAD),
        ] {
            // Within the lead: no wait.
            assert!(lead.wait_for(ahead));
            std::thread::scope(|s| {
                let t = s.spawn(|| lead.wait_for(ahead + NOTIFY_EVERY));
                for _ in 0..NOTIFY_EVERY {
                    lead.step();
                }
                assert!(t.join().unwrap_or(false), "woken by the walker's steps");
                let t = s.spawn(|| lead.wait_for(10 * ahead));
                lead.finish();
                assert!(
                    !t.join().unwrap_or(true),
                    "woken, and told to stop, by the end of the walk"
                );
            });
        }
    }

    #[test]
    fn content_is_asked_for_regular_files_only_and_64_per_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        let empty = dir.path().join("e");
        std::fs::write(&empty, b"").expect("write");
        let md = |p: &Path| std::fs::symlink_metadata(p).expect("lstat");
        let (content, plain) = (Lead::with_content(), Lead::default());
        // (lead, entry, files already asked for in the directory, wanted)
        let cases: [(&Lead, std::fs::Metadata, usize, bool); 6] = [
            (&content, md(&file), 0, true),
            (&content, md(&file), CONTENT_FILES_PER_DIR - 1, true),
            (&content, md(&file), CONTENT_FILES_PER_DIR, false),
            (&content, md(&empty), 0, false),
            (&content, md(dir.path()), 0, false),
            (&plain, md(&file), 0, false),
        ];
        for (i, (lead, m, advised, want)) in cases.iter().enumerate() {
            assert_eq!(wants_content(lead, m, *advised), *want, "case {i}");
        }
        // A device node is never opened (reading /dev/zero's first bytes would be harmless,
        // a tape's would not).
        assert!(!wants_content(&content, &md(Path::new("/dev/null")), 0));
    }
}
