//! How many requests of each kind the kernel sent, logged at unmount (`-v`): where the time
//! of a slow `cp -a` or `find` went is first a matter of how many round trips it took.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy)]
pub enum Op {
    Lookup,
    Getattr,
    Open,
    Read,
    Opendir,
    Readdir,
    Readdirplus,
    Getxattr,
    Listxattr,
    Readlink,
    Lseek,
    Forget,
    Release,
}

const OPS: [Op; 13] = [
    Op::Lookup,
    Op::Getattr,
    Op::Open,
    Op::Read,
    Op::Opendir,
    Op::Readdir,
    Op::Readdirplus,
    Op::Getxattr,
    Op::Listxattr,
    Op::Readlink,
    Op::Lseek,
    Op::Forget,
    Op::Release,
];

#[derive(Default)]
pub struct Counts([AtomicU64; OPS.len()]);

impl Counts {
    pub fn add(&self, op: Op) {
        self.0[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// "lookup 12, read 3400, …" for the kinds that were sent at all.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = OPS
            .iter()
            .zip(&self.0)
            .map(|(op, n)| (op, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .map(|(op, n)| format!("{} {n}", format!("{op:?}").to_lowercase()))
            .collect();
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_what_was_sent() {
        let c = Counts::default();
        assert_eq!(c.summary(), "");
        c.add(Op::Read);
        c.add(Op::Read);
        c.add(Op::Listxattr);
        assert_eq!(c.summary(), "read 2, listxattr 1");
    }
}
