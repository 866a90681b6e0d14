//! cofre's FUSE mounts as the kernel lists them (/proc/self/mountinfo), and detaching one:
//! shared by the mount (a dead mount left by a killed process) and the drill (the mounts of
//! a killed drill's scratch directory).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The mount points of cofre's FUSE mounts: in mountinfo, the mount point is field 5
/// (octal escapes), and after `-` come the type and the source (`cofre:<store>`).
pub(crate) fn cofre_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            let ours = f.get(sep + 1)?.starts_with("fuse") && f.get(sep + 2)?.starts_with("cofre:");
            let mp = PathBuf::from(unescape(f.get(4)?));
            ours.then_some(mp)
        })
        .collect()
}

/// Detaches the mount at `mountpoint` (as `fusermount3 -u -z`); whether that worked.
pub(crate) fn detach(mountpoint: &Path) -> bool {
    std::process::Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(mountpoint)
        .status()
        .is_ok_and(|s| s.success())
}

fn unescape(field: &str) -> OsString {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(o)) => {
                out.push(o.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        let cases = [
            (r"/tmp/a\040b", "/tmp/a b"),
            (r"/tmp/tab\011x", "/tmp/tab\tx"),
            (r"/tmp/back\134slash", r"/tmp/back\slash"),
            ("/plain", "/plain"),
            (r"/short\04", r"/short\04"),
        ];
        for (field, want) in cases {
            assert_eq!(unescape(field), want, "{field}");
        }
    }
}
