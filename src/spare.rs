//! A buffer kept per thread for reuse, in a thread-local slot: the decrypted bytes of a blob
//! (`repo::compress::with_scratch`) and a read's assembled reply (`vfs::reader::spare`).
//! Each was a fresh allocation per use, which glibc either mapped afresh (a page fault per
//! 4 KiB) or placed between the mount's long-lived chunks (holes its arenas grew by).

use std::cell::Cell;
use std::thread::LocalKey;

pub(crate) type Slot = LocalKey<Cell<Vec<u8>>>;

/// An empty buffer with room for `cap` bytes: the slot's, when it holds one.
pub(crate) fn take(slot: &'static Slot, cap: usize) -> Vec<u8> {
    let mut v = slot.take();
    v.clear();
    v.reserve_exact(cap);
    v
}

/// Keeps `v` in the slot if it is larger than the one held meanwhile (an empty reply must
/// not replace a 1 MiB buffer; nor a nested use's small buffer the outer one), and not
/// larger than `keep`.
pub(crate) fn give_back(slot: &'static Slot, v: Vec<u8>, keep: usize) {
    if v.capacity() > keep {
        return;
    }
    let held = slot.take();
    slot.set(if held.capacity() >= v.capacity() {
        held
    } else {
        v
    });
}
