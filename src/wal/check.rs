//! What the WAL archive can and cannot replay: per set and timeline, the segments that
//! are missing between the first and the last archived one (a gap stops replay there:
//! no time after it can be reached from a base backup taken before it), timelines whose
//! history file is missing, and names archived twice with different bytes. With
//! `read_all`, every stored body is fetched and checked against its hash.

use std::collections::BTreeMap;

use serde::Serialize;

use super::index::{Located, WalIndex};
use super::names::{segment_name, Kind, WalName};
use super::object;
use crate::error::Result;
use crate::repo::Repository;

/// Segments missing from one timeline of one set.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gap {
    pub set: String,
    pub first_missing: String,
    pub last_missing: String,
    /// When the segment before the gap was pushed (Unix seconds): no later time can be
    /// reached by replay from a base backup older than `until`.
    pub from: i64,
    /// When the segment after the gap was pushed: base backups taken after it are whole.
    pub until: i64,
}

#[derive(Debug, Default, Serialize)]
pub struct SetWal {
    pub set: String,
    pub files: usize,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub timelines: Vec<u32>,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Unix seconds the newest archived file was pushed.
    pub last_pushed: Option<i64>,
    pub gaps: Vec<Gap>,
    /// Worth knowing, not an error (a timeline whose history file was never archived:
    /// replay on it works; following it from an earlier timeline does not).
    pub warnings: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct WalCheck {
    pub sets: Vec<SetWal>,
    pub objects: usize,
    pub objects_read: usize,
    pub errors: Vec<String>,
}

fn when(t: i64) -> String {
    crate::ingest::format_time((t, 0))
}

impl Gap {
    pub fn describe(&self) -> String {
        let which = match self.first_missing == self.last_missing {
            true => self.first_missing.clone(),
            false => format!("{}..{}", self.first_missing, self.last_missing),
        };
        format!(
            "set {}: WAL {which} is missing: replay stops there, so times from {} on cannot be \
             recovered from a base backup taken before {} (take a new base backup)",
            self.set,
            when(self.from),
            when(self.until)
        )
    }
}

/// The gaps and summary of one set's files (sorted by name, as the index gives them).
/// Segments before `since` (the start of the oldest base backup: no replay reads them)
/// are left out of the gap search: retention deletes whole objects, so some may remain.
pub fn summarize(set: &str, files: &[Located], since: Option<&str>) -> (SetWal, Vec<String>) {
    let mut s = SetWal {
        set: set.to_string(),
        ..SetWal::default()
    };
    let mut errors = Vec::new();
    let mut by_name: BTreeMap<&str, Vec<&Located>> = BTreeMap::new();
    for l in files {
        by_name.entry(&l.entry.name).or_default().push(l);
    }
    // The most common segment size (16 MiB unless the cluster was made otherwise).
    let mut sizes: BTreeMap<u64, usize> = BTreeMap::new();
    for (name, copies) in &by_name {
        if copies.windows(2).any(|w| w[0].entry.id != w[1].entry.id) {
            errors.push(format!(
                "set {set}: {name} is archived more than once with different bytes"
            ));
        }
        let l = copies[0];
        s.files += 1;
        s.raw_bytes += l.entry.raw_len;
        s.stored_bytes += l.entry.len;
        s.last_pushed = s.last_pushed.max(Some(l.entry.pushed));
        if WalName::parse(name).map(|n| n.kind()) == Some(Kind::Segment) {
            *sizes.entry(l.entry.raw_len).or_default() += 1;
        }
    }
    let seg_size = sizes
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or(16 << 20, |(s, _)| *s);
    // Per timeline: positions of its segments (and the .partial that ends it).
    let mut lines: BTreeMap<u32, BTreeMap<u64, i64>> = BTreeMap::new();
    let mut histories = Vec::new();
    let since_name = since.and_then(WalName::parse);
    let since = since_name
        .as_ref()
        .and_then(|n| n.position(seg_size))
        .unwrap_or(0);
    for (name, copies) in &by_name {
        let Some(n) = WalName::parse(name) else {
            continue;
        };
        if n.position(seg_size).is_some_and(|p| p < since) {
            continue;
        }
        match n.kind() {
            Kind::History => histories.push(n.timeline()),
            Kind::Segment | Kind::Partial => {
                if let Some(p) = n.position(seg_size) {
                    lines
                        .entry(n.timeline())
                        .or_default()
                        .insert(p, copies[0].entry.pushed);
                }
            }
            Kind::Backup => {}
        }
    }
    s.timelines = lines.keys().copied().collect();
    s.first = by_name.keys().next().map(|n| n.to_string());
    s.last = by_name
        .keys()
        .rfind(|n| !n.ends_with(".history"))
        .map(|n| n.to_string());
    for (tli, positions) in &lines {
        if *tli > 1 && !histories.contains(tli) {
            s.warnings.push(format!(
                "set {set}: timeline {tli} has no {tli:08X}.history in the archive: replay \
                 from a base backup of an earlier timeline cannot follow it"
            ));
        }
        let v: Vec<(&u64, &i64)> = positions.iter().collect();
        // The oldest base backup's own timeline must be whole from its start on.
        if since_name.as_ref().is_some_and(|n| n.timeline() == *tli) {
            if let Some((first, at)) = v.first().copied() {
                if *first > since {
                    s.gaps.push(Gap {
                        set: set.to_string(),
                        first_missing: segment_name(*tli, since, seg_size),
                        last_missing: segment_name(*tli, first - 1, seg_size),
                        from: *at,
                        until: *at,
                    });
                }
            }
        }
        for w in v.windows(2) {
            let ((a, at), (b, bt)) = (w[0], w[1]);
            if *b > a + 1 {
                s.gaps.push(Gap {
                    set: set.to_string(),
                    first_missing: segment_name(*tli, a + 1, seg_size),
                    last_missing: segment_name(*tli, b - 1, seg_size),
                    from: *at,
                    until: *bt,
                });
            }
        }
    }
    errors.extend(s.gaps.iter().map(Gap::describe));
    (s, errors)
}

/// Checks every set's WAL in the repository (the index synced first); `oldest_start`
/// gives the WAL file a set's oldest base backup starts in.
pub fn check(
    repo: &Repository,
    index: &mut WalIndex,
    read_all: bool,
    oldest_start: &dyn Fn(&str) -> Result<Option<String>>,
) -> Result<WalCheck> {
    index.sync(repo)?;
    let objects = index.objects()?;
    let mut report = WalCheck {
        objects: objects.len(),
        ..WalCheck::default()
    };
    let mut sets: Vec<String> = objects.iter().map(|(_, _, s)| s.clone()).collect();
    sets.sort();
    sets.dedup();
    for set in sets {
        let files = index.all(&set)?;
        let since = oldest_start(&set)?;
        let (summary, errors) = summarize(&set, &files, since.as_deref());
        report.sets.push(summary);
        report.errors.extend(errors);
        if read_all {
            read_every_body(repo, &files, &mut report);
        }
    }
    Ok(report)
}

/// Fetches each object whole once, checks its name, and decodes every body of it.
fn read_every_body(repo: &Repository, files: &[Located], report: &mut WalCheck) {
    let mut per_object: BTreeMap<&str, Vec<&Located>> = BTreeMap::new();
    for l in files {
        per_object.entry(&l.object).or_default().push(l);
    }
    let keys: Vec<String> = per_object.values().map(|ls| ls[0].key()).collect();
    for ((ls, key), got) in per_object.values().zip(&keys).zip(repo.get_many(&keys)) {
        report.objects_read += 1;
        let bytes = match got {
            Ok(b) => b,
            Err(e) => {
                report.errors.push(format!("{key}: {e}"));
                continue;
            }
        };
        if !key.ends_with(blake3::hash(&bytes).to_hex().as_str()) {
            report
                .errors
                .push(format!("{key}: content does not match its name"));
            continue;
        }
        for l in ls {
            let r = l.range();
            let body = bytes
                .get(r.start as usize..r.end as usize)
                .unwrap_or_default();
            if let Err(e) = object::decode_body(repo.keys(), key, &l.entry, body) {
                report.errors.push(format!("{}: {e}", l.entry.name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::object::Entry;

    fn file(name: &str, pushed: i64, id: &str) -> Located {
        Located {
            object: "o".into(),
            object_size: 0,
            body_start: 0,
            entry: Entry {
                name: name.into(),
                offset: 0,
                len: 10,
                raw_len: if name.contains('.') { 300 } else { 16 << 20 },
                id: id.into(),
                pushed,
            },
        }
    }

    #[test]
    fn gaps_timelines_and_conflicts_are_found() {
        type Case<'a> = (
            &'a [(&'a str, i64, &'a str)],
            Vec<(&'a str, &'a str, i64, i64)>,
            usize,
        );
        let cases: Vec<Case> = vec![
            // Whole: no gap, no error.
            (
                &[
                    ("000000010000000000000001", 1, "a"),
                    ("000000010000000000000002", 2, "b"),
                    ("000000010000000000000002.00000028.backup", 2, "c"),
                    ("000000010000000000000003", 3, "d"),
                ],
                vec![],
                0,
            ),
            // One missing, and a run of two across a log boundary (…FF, 1/00).
            (
                &[
                    ("000000010000000000000001", 1, "a"),
                    ("000000010000000000000003", 3, "b"),
                    ("0000000100000000000000FE", 4, "c"),
                    ("000000010000000100000001", 5, "d"),
                ],
                vec![
                    ("000000010000000000000002", "000000010000000000000002", 1, 3),
                    ("000000010000000000000004", "0000000100000000000000FD", 3, 4),
                    ("0000000100000000000000FF", "000000010000000100000000", 4, 5),
                ],
                3,
            ),
            // A promotion: timeline 2 starts at segment 3 with its history; the .partial
            // ends timeline 1. No gap.
            (
                &[
                    ("000000010000000000000002", 1, "a"),
                    ("000000010000000000000003.partial", 2, "b"),
                    ("00000002.history", 2, "c"),
                    ("000000020000000000000003", 3, "d"),
                    ("000000020000000000000004", 4, "e"),
                ],
                vec![],
                0,
            ),
            // Timeline 3 without its history (a warning); a name twice with other bytes.
            (
                &[
                    ("000000030000000000000005", 1, "a"),
                    ("000000030000000000000006", 2, "b"),
                    ("000000030000000000000006", 2, "x"),
                ],
                vec![],
                1,
            ),
        ];
        // Before the oldest base backup's start, a gap does not matter.
        let located: Vec<Located> = [
            "000000010000000000000001",
            "000000010000000000000005",
            "000000010000000000000006",
        ]
        .iter()
        .map(|n| file(n, 1, n))
        .collect();
        assert_eq!(summarize("db", &located, None).0.gaps.len(), 1);
        assert!(summarize("db", &located, Some("000000010000000000000005"))
            .0
            .gaps
            .is_empty());
        for (files, want_gaps, want_errors) in cases {
            let located: Vec<Located> = files.iter().map(|(n, t, id)| file(n, *t, id)).collect();
            let (s, errors) = summarize("db", &located, None);
            let got: Vec<_> = s
                .gaps
                .iter()
                .map(|g| {
                    (
                        g.first_missing.as_str(),
                        g.last_missing.as_str(),
                        g.from,
                        g.until,
                    )
                })
                .collect();
            assert_eq!(got, want_gaps, "{files:?}");
            assert_eq!(errors.len(), want_errors, "{files:?}: {errors:?}");
            let no_history = files.iter().any(|f| f.0.starts_with("00000003"));
            assert_eq!(s.warnings.len(), usize::from(no_history), "{files:?}");
        }
    }
}
