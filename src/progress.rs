//! How long-running operations report progress to a front end. The library only counts;
//! drawing (a terminal line, a web page, nothing) is the front end's.

/// Called from worker threads while an operation runs: implementations must be cheap
/// (an atomic add) and must not block.
pub trait Progress: Send + Sync {
    /// The counted part begins (after the lock and the catalog's sync, which can wait).
    fn begin(&self) {}
    /// The counted part is over (what follows, the commit, is short).
    fn end(&self) {}
    /// The total input size in bytes, once known (it is summed on another thread while the
    /// operation runs, so it may arrive late or never).
    fn set_total(&self, _bytes: u64) {}
    /// One more file done.
    fn add_file(&self) {}
    /// `n` more bytes of input read.
    fn add_bytes(&self, _n: u64) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
