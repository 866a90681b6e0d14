//! Files pushed into the kernel's page cache ahead of a reader walking a directory.
//!
//! `cp -a`, `rsync` and `tar` read a directory's files one after the other, in listing
//! order. Each small file then costs a READ round trip that the reader waits on. When a
//! read starts at a file's first byte, the next files of its directory are read here, on
//! this thread, and handed to the kernel with FUSE_NOTIFY_STORE: the reader then finds
//! them in the page cache and sends no READ at all. While such a walk goes on, a directory
//! being listed gets its first files pushed the same way.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::vfs::ahead::Window;
use crate::vfs::Vfs;

/// How far ahead of the reader one read pushes. Files over 1 MiB are left to the kernel's
/// own read-ahead, which reads them in 1 MiB requests.
const WINDOW: Window = Window {
    files: 256,
    max_size: 1024 * 1024,
    bytes: 8 * 1024 * 1024,
};
/// Files pushed already, not pushed again (a file read after its push was dropped from
/// the page cache is read the usual way).
const REMEMBERED: NonZeroUsize = NonZeroUsize::new(65536).unwrap();
/// A listing is taken for the next step of a walk when a file was read from its start
/// this recently; `find` and `ls` alone read no file, and push nothing.
const WALK: Duration = Duration::from_secs(1);

enum Job {
    /// A read from the first byte of this file.
    Read(u64),
    /// This directory is being listed.
    Listed(u64),
}

pub struct Pusher {
    tx: Sender<Job>,
}

impl Pusher {
    pub fn start(vfs: Arc<Vfs>, notifier: fuser::Notifier) -> Pusher {
        let (tx, rx) = bounded(1024);
        std::thread::spawn(move || run(&vfs, &notifier, &rx));
        Pusher { tx }
    }

    /// A read of `ino` at `offset` reached the mount.
    pub fn read(&self, ino: u64, offset: u64) {
        if offset == 0 {
            // Full: the thread is behind, and the newest jobs are the ones that matter.
            let _ = self.tx.try_send(Job::Read(ino));
        }
    }

    /// Directory `ino` was listed from its start.
    pub fn listed(&self, ino: u64) {
        let _ = self.tx.try_send(Job::Listed(ino));
    }
}

fn run(vfs: &Vfs, notifier: &fuser::Notifier, rx: &Receiver<Job>) {
    let mut pushed = lru::LruCache::new(REMEMBERED);
    let mut last_read: Option<Instant> = None;
    let mut queued = None;
    loop {
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
                last_read = Some(Instant::now());
                pushed.put(ino, ());
                vfs.files_after(ino, &WINDOW)
            }
            Job::Listed(dir) if last_read.is_some_and(|t| t.elapsed() < WALK) => {
                vfs.first_files(dir, &WINDOW)
            }
            Job::Listed(_) => continue,
        };
        for next in window {
            // A newer job: the reader went past what is pushed, or elsewhere.
            if let Some(newer) = rx.try_iter().last() {
                queued = Some(newer);
                break;
            }
            if pushed.put(next.ino, ()).is_some() {
                continue;
            }
            let stored = vfs.while_held(&next, || {
                let data = vfs.read(next.ino, 0, next.size as u32)?;
                notifier
                    .store(fuser::INodeNo(next.ino), 0, &data)
                    .map_err(|e| crate::error::Error::io("push", e))
            });
            if let Some(Err(e)) = stored {
                // The reader's own read gets the error, if it comes.
                tracing::debug!("push of inode {}: {e}", next.ino);
            }
        }
    }
}
