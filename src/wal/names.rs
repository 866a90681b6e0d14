//! PostgreSQL's WAL file names, the only names `wal-push` and `wal-fetch` accept (so a
//! name can never be a path): segments `TTTTTTTTLLLLLLLLSSSSSSSS`, timeline histories
//! `TTTTTTTT.history`, backup history files `<segment>.OOOOOOOO.backup`, and the
//! `<segment>.partial` a promotion leaves.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Segment,
    History,
    Backup,
    Partial,
}

/// A checked WAL file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalName(String);

fn hex_upper(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl WalName {
    pub fn parse(name: &str) -> Option<WalName> {
        let ok = match name.split_once('.') {
            None => hex_upper(name, 24),
            Some((t, "history")) => hex_upper(t, 8),
            Some((seg, "partial")) => hex_upper(seg, 24),
            Some((seg, rest)) => {
                hex_upper(seg, 24)
                    && rest
                        .split_once('.')
                        .is_some_and(|(off, ext)| ext == "backup" && hex_upper(off, 8))
            }
        };
        ok.then(|| WalName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> Kind {
        match self.0.rsplit_once('.') {
            None => Kind::Segment,
            Some((_, "history")) => Kind::History,
            Some((_, "partial")) => Kind::Partial,
            Some(_) => Kind::Backup,
        }
    }

    /// The timeline the file belongs to.
    pub fn timeline(&self) -> u32 {
        u32::from_str_radix(&self.0[..8], 16).unwrap_or(0)
    }

    /// The segment's position in its timeline's sequence (log × segments per log + seg),
    /// for a segment, a partial or a backup file; None for a history file.
    pub fn position(&self, segment_size: u64) -> Option<u64> {
        if self.kind() == Kind::History {
            return None;
        }
        let log = u64::from_str_radix(&self.0[8..16], 16).ok()?;
        let seg = u64::from_str_radix(&self.0[16..24], 16).ok()?;
        Some(log * per_log(segment_size) + seg)
    }
}

/// Segments per 4 GiB "log" of WAL (256 for the default 16 MiB segments).
pub fn per_log(segment_size: u64) -> u64 {
    (0x1_0000_0000 / segment_size.max(1)).max(1)
}

/// The name of segment `position` of `timeline`.
pub fn segment_name(timeline: u32, position: u64, segment_size: u64) -> String {
    let per = per_log(segment_size);
    format!("{timeline:08X}{:08X}{:08X}", position / per, position % per)
}

/// A WAL location `X/Y` (as `pg_current_wal_lsn()` prints it) as a number.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_classified() {
        let cases: &[(&str, Option<Kind>)] = &[
            ("000000010000000000000002", Some(Kind::Segment)),
            ("00000002.history", Some(Kind::History)),
            (
                "000000010000000000000002.00000028.backup",
                Some(Kind::Backup),
            ),
            ("000000010000000000000002.partial", Some(Kind::Partial)),
            ("00000001000000000000000", None),
            ("000000010000000000000002a", None),
            ("00000001000000000000000g", None),
            ("000000010000000000000002.history", None),
            ("0000000G.history", None),
            ("000000010000000000000002.0028.backup", None),
            ("../../etc/passwd", None),
            ("", None),
            ("RECOVERYXLOG", None),
        ];
        for (name, want) in cases {
            assert_eq!(WalName::parse(name).map(|n| n.kind()), *want, "{name}");
        }
    }

    #[test]
    fn positions_and_names_round_trip() {
        let mib16 = 16 << 20;
        let cases: &[(&str, u64, u64, u32)] = &[
            ("000000010000000000000002", mib16, 2, 1),
            ("0000000300000001000000FF", mib16, 256 + 255, 3),
            ("000000010000000200000003", 1 << 30, 2 * 4 + 3, 1),
        ];
        for (name, size, pos, tli) in cases {
            let n = WalName::parse(name).expect("valid");
            assert_eq!(n.position(*size), Some(*pos), "{name}");
            assert_eq!(n.timeline(), *tli);
            assert_eq!(segment_name(*tli, *pos, *size), *name);
        }
        assert_eq!(parse_lsn("0/2000028"), Some(0x200_0028));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("x"), None);
    }
}
