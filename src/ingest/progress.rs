//! The progress line on a terminal: files, bytes, rate and ETA (once the size scan is done).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Counters {
    files: AtomicU64,
    bytes: AtomicU64,
    total: AtomicU64,
    total_known: AtomicBool,
    stop: AtomicBool,
}

pub struct Progress {
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

impl Progress {
    /// Shows a line on stderr only when it is a terminal; `scan` sums the input size for the ETA.
    pub fn start(enabled: bool, scan: Option<Box<dyn FnOnce() -> u64 + Send>>) -> Progress {
        let c = Arc::new(Counters::default());
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { c, thread: None };
        }
        if let Some(scan) = scan {
            let c2 = c.clone();
            std::thread::spawn(move || {
                c2.total.store(scan(), Ordering::Relaxed);
                c2.total_known.store(true, Ordering::Relaxed);
            });
        }
        let c2 = c.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            while !c2.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
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
            eprint!("\r\x1b[K");
        });
        Progress {
            c,
            thread: Some(thread),
        }
    }

    pub fn add_file(&self) {
        self.c.files.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, n: u64) {
        self.c.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.c.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
