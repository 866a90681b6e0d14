//! The progress line on a terminal: files, bytes, rate and ETA (once the size is known).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    bytes: AtomicU64,
    total: AtomicU64,
    total_known: AtomicBool,
    /// Between the library's `begin` and `end`: the line is drawn only then, so log lines
    /// of the lock wait and the catalog's sync are not torn by it.
    active: AtomicBool,
    stop: AtomicBool,
}

impl cofre::Progress for Counters {
    fn begin(&self) {
        self.active.store(true, Ordering::Relaxed);
    }
    fn end(&self) {
        self.active.store(false, Ordering::Relaxed);
    }
    fn set_total(&self, bytes: u64) {
        self.total.store(bytes, Ordering::Relaxed);
        self.total_known.store(true, Ordering::Relaxed);
    }
    fn add_file(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }
    fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

/// Draws the line every 250 ms until dropped, then clears it.
pub struct Line {
    c: Arc<Counters>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn human(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

impl Line {
    /// The line, and the counters to hand to the library.
    pub fn start() -> (Line, Arc<dyn cofre::Progress>) {
        let c = Arc::new(Counters::default());
        let c2 = c.clone();
        let thread = std::thread::spawn(move || {
            let mut start = None;
            let mut drawn = false;
            while !c2.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                if !c2.active.load(Ordering::Relaxed) {
                    if std::mem::take(&mut drawn) {
                        eprint!("\r\x1b[K");
                    }
                    continue;
                }
                drawn = true;
                let start = *start.get_or_insert_with(Instant::now);
                let (files, bytes) = (
                    c2.files.load(Ordering::Relaxed),
                    c2.bytes.load(Ordering::Relaxed),
                );
                let secs = start.elapsed().as_secs_f64().max(0.001);
                let rate = bytes as f64 / secs;
                let eta = if c2.total_known.load(Ordering::Relaxed) && rate > 0.0 {
                    let left = c2.total.load(Ordering::Relaxed).saturating_sub(bytes) as f64 / rate;
                    format!(", ETA {}s", left.ceil())
                } else {
                    String::new()
                };
                eprint!(
                    "\r\x1b[K{files} files, {}, {}/s{eta}",
                    human(bytes as f64),
                    human(rate)
                );
                let _ = std::io::stderr().flush();
            }
            if drawn {
                eprint!("\r\x1b[K");
            }
        });
        let line = Line {
            c: c.clone(),
            thread: Some(thread),
        };
        (line, c)
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.c.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
