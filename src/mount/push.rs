//! Files pushed into the kernel's page cache ahead of a reader walking a directory.
//!
//! `cp -a`, `rsync` and `tar` read a directory's files one after the other, in listing
//! order. Each small file then costs a READ round trip that the reader waits on. When a
//! read starts at a file's first byte, the next files of its directory are read here, on
//! this thread, and handed to the kernel with FUSE_NOTIFY_STORE: the reader then finds
//! them in the page cache and sends no READ at all. While such a walk goes on, a directory
//! being listed gets its first files pushed the same way.
//!
//! A store waits (uninterruptibly, in the kernel) for any page of the file that a READ
//! still has locked. The READ is answered by the FUSE threads, so this costs a wait, never
//! a deadlock, while the process lives. Killed with SIGKILL at that moment, the process
//! could not exit until the connection is aborted (docs/mount.md, "Files pushed ahead").
//! Hence: no file is pushed once a READ of it has reached the mount; pushing stops before
//! the mount unmounts on SIGINT/SIGTERM; and the thread ends at the first failed store.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use lru::LruCache;
use parking_lot::Mutex;

use crate::vfs::ahead::Window;
use crate::vfs::Vfs;

/// How far ahead of the reader a read pushes, once the reader is seen going through a
/// directory. Files over 1 MiB are left to the kernel's own read-ahead, which reads them
/// in 1 MiB requests.
const WINDOW: Window = Window {
    files: 256,
    max_size: 1024 * 1024,
    bytes: 8 * 1024 * 1024,
};
/// The first read in a directory (a lone `cat` too) pushes this much only.
const FIRST: Window = Window {
    files: 16,
    max_size: 1024 * 1024,
    bytes: 1024 * 1024,
};
/// Files pushed, or read by READs, remembered so as not to push them (again).
const REMEMBERED: NonZeroUsize = NonZeroUsize::new(65536).unwrap();
/// A listing is taken for the next step of a walk when a file was read from its start
/// this recently; `find` and `ls` alone read no file, and push nothing.
const WALK: Duration = Duration::from_secs(1);

enum Job {
    /// A read from the first byte of this file.
    Read(u64),
    /// This directory is being listed; its entries numbered from the second value on may
    /// not have reached the kernel yet.
    Listed(u64, u64),
}

enum Push {
    Stored,
    Skipped,
    /// The file could not be read.
    Unread(crate::error::Error),
    /// The kernel refused the store.
    Refused(std::io::Error),
}

/// Inodes a READ reached the mount for, or that were pushed: never pushed (again).
type Seen = Arc<Mutex<LruCache<u64, ()>>>;

pub struct Pusher {
    tx: Sender<Job>,
    seen: Seen,
    stop: Arc<AtomicBool>,
    last_read: LastRead,
}

/// When the last read from a file's first byte reached the mount. A listing with no such
/// read within `WALK` before it is not sent to the thread: a `find` does not wake it once
/// per directory (13% of the mount's samples in `perf`), and listings alone (a `find` after
/// a `cat`) push for one second at most.
struct LastRead {
    born: Instant,
    /// Milliseconds after `born`; `u64::MAX` before any.
    ms: AtomicU64,
    /// `WALK` in milliseconds (`walk_ms`).
    window: u64,
}

/// `WALK`; in a build with test hooks, `COFRE_TEST_PUSH_WALK_MS` if set: a test on a loaded
/// machine (a dozen mounts on two cores) cannot promise that its read and its listing reach
/// the mount within a second, and the walk's window is not what it tests.
#[cfg(feature = "test-hooks")]
fn walk_ms() -> u64 {
    std::env::var("COFRE_TEST_PUSH_WALK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(WALK.as_millis() as u64)
}

#[cfg(not(feature = "test-hooks"))]
fn walk_ms() -> u64 {
    WALK.as_millis() as u64
}

impl LastRead {
    fn mark(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.ms.store(ms, Ordering::Relaxed);
    }

    /// Within `WALK` of the last read: a reader is walking.
    fn recent(&self) -> bool {
        let last = self.ms.load(Ordering::Relaxed);
        let now = self.born.elapsed().as_millis() as u64;
        last != u64::MAX && now.saturating_sub(last) < self.window
    }
}

impl Pusher {
    pub fn start(vfs: Arc<Vfs>, notifier: fuser::Notifier) -> Pusher {
        let (tx, rx) = bounded(1024);
        let seen: Seen = Arc::new(Mutex::new(LruCache::new(REMEMBERED)));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        std::thread::spawn(move || run(&vfs, &notifier, &rx, &s, &st));
        Pusher {
            tx,
            seen,
            stop,
            last_read: LastRead {
                born: Instant::now(),
                ms: AtomicU64::new(u64::MAX),
                window: walk_ms(),
            },
        }
    }

    /// A READ of `ino` at `offset` reached the mount.
    pub fn read(&self, ino: u64, offset: u64) {
        self.seen.lock().put(ino, ());
        if offset == 0 {
            self.last_read.mark();
            // Full: the thread is behind; this job is dropped, the reader's READs go on.
            let _ = self.tx.try_send(Job::Read(ino));
        }
    }

    /// Directory `ino` is being listed, and the kernel has made the inodes of the entries
    /// it was sent so far, those numbered below `upto`: sent only during a walk.
    pub fn listed(&self, ino: u64, upto: u64) {
        if self.last_read.recent() {
            let _ = self.tx.try_send(Job::Listed(ino, upto));
        } else {
            tracing::debug!("push: listing of inode {ino} outside a walk");
        }
    }

    /// No store after this one (the mount is about to be unmounted).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn run(vfs: &Vfs, notifier: &fuser::Notifier, rx: &Receiver<Job>, seen: &Seen, stop: &AtomicBool) {
    // The directory of the last read, or the last listing of the walk.
    let mut last_dir: Option<u64> = None;
    // For a listing in `last_dir`, the bound of what its pushes took (`Job::Listed`); all
    // numbers after a read there, whose own pushes take what follows it.
    let mut listed_upto = u64::MAX;
    let mut queued = None;
    while !stop.load(Ordering::SeqCst) {
        let job = match queued.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                // The session has ended.
                Err(_) => return,
            },
        };
        let window = match job {
            Job::Read(ino) => {
                let dir = vfs.parent_of(ino);
                // A second read in the same directory: the reader walks it.
                let walking = last_dir.is_some() && last_dir == dir;
                last_dir = dir;
                listed_upto = u64::MAX;
                let w = vfs.files_after(ino, if walking { &WINDOW } else { &FIRST });
                tracing::debug!("push: read of inode {ino}: {} files after it", w.len());
                w
            }
            // Nothing more of a listing pushed from, or a directory the reader is in.
            Job::Listed(dir, upto) if last_dir == Some(dir) && upto <= listed_upto => continue,
            // The walk's next directory (`Pusher::listed` sends only those), or more of the
            // one being listed: its first files (those pushed already are in `seen`).
            Job::Listed(dir, upto) => {
                last_dir = Some(dir);
                listed_upto = upto;
                let w = vfs.first_files(dir, upto, &FIRST);
                tracing::debug!("push: listing of inode {dir}: {} files", w.len());
                w
            }
        };
        // Later parts of the listing being pushed (a directory listed in three requests or
        // more): they do not stop this push, and what they make pushable follows it.
        let mut later = 0;
        for next in window {
            // A newer job: the reader went past what is pushed, or elsewhere.
            let mut newer = None;
            for job in rx.try_iter() {
                match job {
                    Job::Listed(d, upto) if Some(d) == last_dir => later = later.max(upto),
                    other => newer = Some(other),
                }
            }
            if let Some(newer) = newer {
                tracing::debug!("push: a newer job; the rest of this window is left");
                queued = Some(newer);
                break;
            }
            if seen.lock().contains(&next.ino) {
                tracing::debug!("push of inode {}: read or pushed before", next.ino);
                continue;
            }
            let outcome = vfs.while_held(&next, || {
                let data = match vfs.read_whole(&next) {
                    Ok(d) => d,
                    Err(e) => return Push::Unread(e),
                };
                // Checked last: a READ of this file that reached the mount meanwhile
                // locks pages the store would wait for.
                if stop.load(Ordering::SeqCst) || seen.lock().put(next.ino, ()).is_some() {
                    return Push::Skipped;
                }
                match notifier.store(fuser::INodeNo(next.ino), 0, &data) {
                    Ok(()) => Push::Stored,
                    Err(e) => Push::Refused(e),
                }
            });
            match outcome {
                // None: not held, since the kernel does not hold the number (yet), or it
                // stands for another entry now.
                None => tracing::debug!("push of inode {}: not held", next.ino),
                Some(Push::Stored) => tracing::debug!("push of inode {}: stored", next.ino),
                Some(Push::Skipped) => tracing::debug!("push of inode {}: skipped", next.ino),
                // The reader's own READ gets the error, if it comes.
                Some(Push::Unread(e)) => tracing::debug!("push of inode {}: {e}", next.ino),
                Some(Push::Refused(e)) => {
                    // The session is gone (ENODEV), or the kernel refuses: stop pushing.
                    tracing::debug!("push of inode {}: {e}; no more pushes", next.ino);
                    return;
                }
            }
        }
        if queued.is_none() && later > listed_upto {
            queued = last_dir.map(|d| Job::Listed(d, later));
        }
    }
}
