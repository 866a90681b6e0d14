//! Prometheus metrics in the text exposition format, for node_exporter's textfile
//! collector: written by `cofre run` when it ends (atomically) and printed by
//! `cofre metrics`. Every value comes from the local catalog and the run state, never from
//! listing the bucket. Names and alert rules: docs/monitoring.md.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::Result;
use crate::run::state;

/// One metric family: its samples as (labels, value).
struct Family {
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

#[derive(Default)]
struct Metrics(BTreeMap<&'static str, Family>);

impl Metrics {
    fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: f64,
    ) {
        let f = self.0.entry(name).or_insert_with(|| Family {
            help,
            samples: Vec::new(),
        });
        let labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        f.samples.push((labels, v));
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.0 {
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, v) in &f.samples {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let l = if l.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", l.join(","))
                };
                let _ = writeln!(out, "{name}{l} {}", number(*v));
            }
        }
        out
    }
}

/// Label values escape `\`, `"` and newlines (the text format's only escapes).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Every metric, for the sets and classes of `cfg`, at `now` (Unix seconds); `cost` is
/// `cofre stats`' monthly estimate when the caller could make one.
pub fn render(
    cfg: &Config,
    cat: &Catalog,
    state_dir: &Path,
    now: i64,
    cost: Option<f64>,
) -> Result<String> {
    let mut m = Metrics::default();
    if let Some(c) = cost {
        m.add(
            "cofre_estimated_monthly_cost_dollars",
            "Estimated monthly storage and request cost of the repository (cofre stats).",
            &[],
            c,
        );
    }
    for job in crate::run::jobs(cfg) {
        let l = [("set", job.set), ("class", job.tag.as_str())];
        let latest = crate::run::latest(cat, job.set, &job.tag)?;
        if let Some(s) = &latest {
            let sum = &s.manifest.summary;
            m.add(
                "cofre_last_success_timestamp_seconds",
                "Time of the newest snapshot of the set and class.",
                &l,
                s.manifest.time.0 as f64,
            );
            m.add(
                "cofre_snapshot_source_bytes",
                "Bytes of file content in the newest snapshot.",
                &l,
                sum.bytes as f64,
            );
            m.add(
                "cofre_snapshot_added_bytes",
                "Bytes the newest snapshot added to the repository (after dedup and compression).",
                &l,
                sum.bytes_added as f64,
            );
            m.add(
                "cofre_snapshot_files",
                "Files in the newest snapshot.",
                &l,
                sum.files as f64,
            );
        }
        if let Some(i) = job.schedule.interval() {
            m.add(
                "cofre_schedule_interval_seconds",
                "Nominal time between two snapshots of the set and class.",
                &l,
                i as f64,
            );
        }
        let last = latest.as_ref().map(|s| s.manifest.time.0);
        if let Some(next) = job.schedule.next(last, now) {
            m.add(
                "cofre_next_due_timestamp_seconds",
                "When the next snapshot of the set and class is due.",
                &l,
                next as f64,
            );
        }
        let st = state::load(state_dir, job.set);
        if let Some(c) = st.get(&job.tag) {
            if let Some(v) = c.last_result.and_then(state::Outcome::status_value) {
                m.add(
                    "cofre_last_run_status",
                    "How the last run ended: 0 failed, 1 partial, 2 ok.",
                    &l,
                    v as f64,
                );
                m.add(
                    "cofre_run_duration_seconds",
                    "How long the last run of the set and class took.",
                    &l,
                    c.duration_seconds,
                );
            }
            m.add(
                "cofre_last_run_timestamp_seconds",
                "When the last run of the set and class started.",
                &l,
                c.last_run as f64,
            );
        }
    }
    for (set, d) in crate::drill::record::load_local(state_dir) {
        let l = [("set", set.as_str())];
        if let Some(t) = d.last_success {
            m.add(
                "cofre_drill_last_success_timestamp_seconds",
                "When the last passing drill of the set ran.",
                &l,
                t as f64,
            );
        }
        m.add(
            "cofre_drill_rto_seconds",
            "Time to get the set back (mount and copy) in the last drill.",
            &l,
            d.rto_seconds,
        );
        m.add(
            "cofre_drill_status",
            "How the last drill of the set ended: 1 passed, 0 failed.",
            &l,
            if d.passed { 1.0 } else { 0.0 },
        );
    }
    for set in cfg.sets.keys() {
        let st = state::load(state_dir, set);
        for target in cfg.copy_targets(set) {
            let l = [("set", set.as_str()), ("target", target.as_str())];
            let c = st.get(&crate::run::copies::state_key(target));
            if let Some(t) = c.and_then(|c| c.last_success) {
                m.add(
                    "cofre_copy_last_success_timestamp_seconds",
                    "When the set's last copy to the target ended well.",
                    &l,
                    t as f64,
                );
            }
            if let Some(v) = c
                .and_then(|c| c.last_result)
                .and_then(state::Outcome::status_value)
            {
                m.add(
                    "cofre_copy_last_run_status",
                    "How the set's last copy to the target ended: 0 failed, 2 ok.",
                    &l,
                    v as f64,
                );
            }
            let lag = crate::run::copies::lag(cat, set, c.and_then(|c| c.through))?;
            m.add(
                "cofre_copy_lag_snapshots",
                "Snapshots of the set not yet known to be on the target.",
                &l,
                lag as f64,
            );
        }
    }
    for (repo, c) in state::load(state_dir, crate::run::CHECK_STATE) {
        let l = [("repository", repo.as_str())];
        if let Some(t) = c.last_success {
            m.add(
                "cofre_check_last_success_timestamp_seconds",
                "When the last scheduled check of the repository found no problem.",
                &l,
                t as f64,
            );
        }
        if let Some(v) = c.last_result.and_then(state::Outcome::status_value) {
            m.add(
                "cofre_check_last_run_status",
                "How the last scheduled check of the repository ended: 0 problems or failed, 2 ok.",
                &l,
                v as f64,
            );
        }
        m.add(
            "cofre_check_damaged_packs",
            "Damaged packs the scheduled checks found, until the part of the data holding each reads clean.",
            &l,
            c.damaged_packs() as f64,
        );
    }
    let mut per_set: BTreeMap<String, u64> = BTreeMap::new();
    for s in cat.snapshots(None)? {
        *per_set.entry(s.manifest.set).or_default() += 1;
    }
    for (set, n) in &per_set {
        m.add(
            "cofre_snapshots",
            "Snapshots of the set in the repository.",
            &[("set", set)],
            *n as f64,
        );
    }
    wal_metrics(&mut m, cfg, cat)?;
    for (class, bytes) in cat.stored_bytes_by_class()? {
        m.add(
            "cofre_repository_stored_bytes",
            "Bytes stored in packs, per storage class (compressed and encrypted).",
            &[("class", &class)],
            bytes as f64,
        );
    }
    Ok(m.render())
}

/// The WAL archive of each set with `wal = true`, as this machine's WAL index knows it
/// (the flusher records every object it stores; `check` and `wal-fetch` sync it).
fn wal_metrics(m: &mut Metrics, cfg: &Config, cat: &Catalog) -> Result<()> {
    let wal_sets: Vec<&String> = cfg
        .sets
        .iter()
        .filter(|(_, s)| s.src.wal == Some(true))
        .map(|(n, _)| n)
        .collect();
    if wal_sets.is_empty() {
        return Ok(());
    }
    let index = crate::wal::WalIndex::open(&crate::wal::index::path_for(cat.path()))?;
    for set in wal_sets {
        let (summary, _) = crate::wal::check::summarize(set, &index.all(set)?, None);
        let l = [("set", set.as_str())];
        if let Some(t) = summary.last_pushed {
            m.add(
                "cofre_wal_last_archived_timestamp_seconds",
                "When the newest WAL file in the repository was handed to wal-push.",
                &l,
                t as f64,
            );
        }
        m.add(
            "cofre_wal_archive_gap",
            "Runs of missing WAL segments: replay cannot pass them (cofre check names them).",
            &l,
            summary.gaps.len() as f64,
        );
        m.add(
            "cofre_wal_archived_files",
            "WAL files of the set in the repository.",
            &l,
            summary.files as f64,
        );
    }
    Ok(())
}

/// Writes the metrics where node_exporter reads them: replaced atomically, world-readable
/// (they name sets and sizes, never paths or secrets).
pub fn write(path: &Path, text: &str) -> Result<()> {
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_once_with_escaped_labels() {
        let mut m = Metrics::default();
        m.add("cofre_b", "B.", &[("set", "a\"b\\c\nd")], 1.5);
        m.add("cofre_a", "A.", &[("set", "x")], 3.0);
        m.add("cofre_a", "A.", &[("set", "y")], 1e20);
        m.add("cofre_c", "C.", &[], 0.0);
        assert_eq!(
            m.render(),
            "# HELP cofre_a A.\n# TYPE cofre_a gauge\ncofre_a{set=\"x\"} 3\ncofre_a{set=\"y\"} 100000000000000000000\n\
             # HELP cofre_b B.\n# TYPE cofre_b gauge\ncofre_b{set=\"a\\\"b\\\\c\\nd\"} 1.5\n\
             # HELP cofre_c C.\n# TYPE cofre_c gauge\ncofre_c 0\n"
        );
    }
}
