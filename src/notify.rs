//! Notifications when a run ends: webhooks (a Slack-compatible `{"text": ...}` body or the
//! run's whole result as JSON) and Healthchecks-style pings (`/start` when work begins, the
//! URL itself on success, `/<exit code>` on failure), so a backup that never ran is noticed
//! by the monitor. Every request has a time limit; a notifier that fails or hangs is
//! reported on stderr and never changes the run's result.

use std::time::Duration;

use serde::Serialize;

use crate::config::{Notify, NotifyOn, WebhookFormat};
use crate::run::JobResult;

pub struct Notifier {
    agent: ureq::Agent,
    cfg: Notify,
    host: String,
}

/// The generic JSON body (`format = "json"`).
#[derive(Serialize)]
struct RunReport<'a> {
    host: &'a str,
    status: &'static str,
    exit_code: i32,
    time: String,
    jobs: Vec<&'a JobResult>,
}

impl Notifier {
    pub fn new(cfg: &Notify) -> Notifier {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(cfg.timeout_seconds.max(1))))
            .http_status_as_error(true)
            .build()
            .new_agent();
        Notifier {
            agent,
            cfg: cfg.clone(),
            host: crate::ingest::host_and_user().0,
        }
    }

    fn post(&self, what: &str, url: &str, content_type: &str, body: &[u8]) {
        let sent = self
            .agent
            .post(url)
            .header("Content-Type", content_type)
            .header("User-Agent", concat!("cofre/", env!("CARGO_PKG_VERSION")))
            .send(body);
        if let Err(e) = sent {
            // Never the URL itself: a webhook's path is its secret.
            let host = url.split('/').nth(2).unwrap_or("?");
            tracing::warn!("{what} to {host} failed: {e} (the backup's result is unchanged)");
        }
    }

    /// `/start` on a Healthchecks-style URL: work begins.
    pub fn ping_start(&self, url: &str) {
        self.post(
            "ping",
            &format!("{}/start", url.trim_end_matches('/')),
            "text/plain",
            b"",
        );
    }

    /// The URL on success, `/<exit code>` otherwise; the summary goes along as the body.
    pub fn ping_end(&self, url: &str, exit_code: i32, results: &[&JobResult]) {
        let base = url.trim_end_matches('/');
        let url = match exit_code {
            0 => base.to_string(),
            c => format!("{base}/{c}"),
        };
        self.post(
            "ping",
            &url,
            "text/plain",
            summary(&self.host, results).as_bytes(),
        );
    }

    /// Webhooks for a run whose jobs are `results` (those that ran), by `on`.
    pub fn run_ended(&self, results: &[&JobResult], exit_code: i32) {
        if results.is_empty() || self.cfg.webhook.is_empty() {
            return;
        }
        let failed = exit_code != 0;
        let want = if failed {
            NotifyOn::Failure
        } else {
            NotifyOn::Success
        };
        if !self.cfg.on.contains(&want) {
            return;
        }
        let text = summary(&self.host, results);
        let report = RunReport {
            host: &self.host,
            status: if failed { "failure" } else { "success" },
            exit_code,
            time: crate::ingest::format_time(crate::ingest::now()),
            jobs: results.to_vec(),
        };
        for hook in &self.cfg.webhook {
            let body = match hook.format() {
                WebhookFormat::Slack => serde_json::json!({ "text": text }),
                WebhookFormat::Json => serde_json::json!(report),
            };
            self.post(
                "webhook",
                hook.url(),
                "application/json",
                body.to_string().as_bytes(),
            );
        }
    }
}

/// One line per job: what the Slack message and the ping body say.
pub fn summary(host: &str, results: &[&JobResult]) -> String {
    let failed = results.iter().filter(|r| r.exit_code != 0).count();
    let head = match failed {
        0 => format!("cofre on {host}: {} ok", results.len()),
        n => format!("cofre on {host}: {n} of {} failed", results.len()),
    };
    let mut lines = vec![head];
    for r in results {
        use crate::run::Action;
        let what = match (r.action, &r.snapshot) {
            (Action::Done, Some(id)) if r.exit_code == 0 => {
                format!("ok, snapshot {}", &id[..8.min(id.len())])
            }
            (Action::Done, Some(id)) => format!(
                "partial (exit {}), snapshot {}: some files were not read",
                r.exit_code,
                &id[..8.min(id.len())]
            ),
            (Action::Skipped, _) => format!("skipped: {}", r.reason),
            _ => format!("FAILED (exit {}): {}", r.exit_code, r.reason),
        };
        lines.push(format!("{}/{}: {what}", r.set, r.class));
    }
    lines.join("\n")
}
