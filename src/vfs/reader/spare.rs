//! One reply buffer kept per thread. A read that spans chunks is assembled in a buffer of
//! up to 1 MiB (the kernel asks for that much at a time, and every file pushed ahead of a
//! reader is read whole); glibc maps each such buffer afresh and unmaps it when freed, so
//! every byte of it was a page fault: 55% of the mount's page faults during a cold
//! `cp -a` (`perf record -e page-faults`). The FUSE threads and the push thread now reuse
//! theirs, since a reply is copied into the kernel before its buffer is dropped.

use std::cell::Cell;

thread_local! {
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Larger buffers are freed, not kept (the largest read is 1 MiB; a file pushed ahead too).
const KEEP: usize = 2 << 20;

/// An empty buffer with room for `cap` bytes: this thread's spare, when it has one.
pub(super) fn take(cap: usize) -> Vec<u8> {
    crate::spare::take(&SPARE, cap)
}

/// Keeps `v` as this thread's spare (`crate::spare::give_back`).
pub(super) fn give_back(v: Vec<u8>) {
    crate::spare::give_back(&SPARE, v, KEEP);
}

#[cfg(test)]
mod tests {
    use super::super::ReadBuf;
    use super::*;

    /// An assembled reply's buffer comes back to its thread when the reply is dropped, and
    /// is handed out empty; one larger than `KEEP` is freed instead.
    #[test]
    fn a_dropped_reply_gives_its_buffer_back() {
        let mut v = take(1000);
        v.extend_from_slice(&[1; 1000]);
        let at = v.as_ptr();
        drop(ReadBuf::Owned(v));
        let again = take(10);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), at);
        drop(ReadBuf::Owned(again));
        // A smaller one (an empty reply at the end of a file) does not replace it.
        let v = take(1000);
        drop(ReadBuf::Owned(Vec::new()));
        drop(ReadBuf::Owned(v));
        drop(ReadBuf::Owned(Vec::with_capacity(10)));
        let last = take(0);
        assert_eq!(last.as_ptr(), at);
        drop(ReadBuf::Owned(last));
        drop(ReadBuf::Owned(Vec::with_capacity(2 * KEEP)));
        assert!(take(0).capacity() < 2 * KEEP);
    }
}
