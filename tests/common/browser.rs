//! A real browser for the tests: Debian's Chromium, headless, driven by chromedriver over
//! the W3C WebDriver protocol (plain HTTP and JSON, so no client library is needed), and
//! axe-core (from npm, installed by integration/install-deps.sh) run in each page.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// Where install-deps.sh puts axe-core; COFRE_AXE overrides.
const AXE: &str = "/opt/cofre-test/node_modules/axe-core/axe.min.js";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    pub downloads: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium that saves downloads into `downloads`.
    pub fn start(downloads: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver; integration/install-deps.sh)");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let up = super::wait_for(Duration::from_secs(30), || {
            agent.get(format!("{base}/status")).call().is_ok()
        });
        assert!(up, "chromedriver did not start within 30 s");
        std::fs::create_dir_all(downloads).expect("downloads dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1200,900", "--disable-gpu"],
                "prefs": {
                    "download.default_directory": downloads.to_str().expect("utf-8"),
                    "download.prompt_for_download": false,
                }
            }
        }}});
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            agent,
            downloads: downloads.to_path_buf(),
        };
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"].as_str().expect("session id").to_string();
        b
    }

    /// One WebDriver command; returns its `value`, panicking on a WebDriver error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = match self.session.is_empty() {
            true => format!("{}{path}", self.base),
            false => format!("{}/session/{}{path}", self.base, self.session),
        };
        let r = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, b) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(serde_json::to_vec(&b.unwrap_or(json!({}))).expect("json")),
        };
        let mut r = r.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .expect("WebDriver response");
        let v: Value = serde_json::from_slice(&body).expect("WebDriver JSON");
        if let Some(err) = v["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {err}: {}",
                v["value"]["message"]
            );
        }
        v["value"].clone()
    }

    /// Resizes the window (a phone: 390 × 844).
    pub fn window(&self, width: u32, height: u32) {
        let rect = json!({"width": width, "height": height});
        self.call("POST", "/window/rect", Some(rect));
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn find(&self, using: &str, value: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": using, "value": value})),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .expect("element id")
            .to_string()
    }

    /// Clicks the first element matching a CSS selector.
    pub fn click(&self, css: &str) {
        let id = self.find("css selector", css);
        self.call("POST", &format!("/element/{id}/click"), None);
    }

    /// Clicks the link whose whole text is `text`.
    pub fn click_link(&self, text: &str) {
        let id = self.find("link text", text);
        self.call("POST", &format!("/element/{id}/click"), None);
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find("css selector", css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.script("return document.body.innerText;")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits (up to 30 s) until the page's text contains `want` (a click that submits a
    /// form can return before the next page is there); returns the text.
    pub fn wait_text(&self, want: &str) -> String {
        let mut text = String::new();
        let found = super::wait_for(Duration::from_secs(30), || {
            text = self.text();
            text.contains(want)
        });
        assert!(found, "the page never showed {want:?}; it shows: {text}");
        text
    }

    pub fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    /// axe-core's violations of impact serious or critical on the current page.
    pub fn serious_violations(&self) -> Vec<String> {
        let path = std::env::var("COFRE_AXE").unwrap_or_else(|_| AXE.to_string());
        let src = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("axe-core at {path}: {e} (integration/install-deps.sh installs it)")
        });
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": src, "args": []})),
        );
        let js = "const done = arguments[arguments.length - 1];\
                  axe.run(document).then(r => done(JSON.stringify(r.violations.map(v => \
                  [v.id, v.impact, v.nodes.length, v.help])))).catch(e => done('error: ' + e));";
        let v = self.call(
            "POST",
            "/execute/async",
            Some(json!({"script": js, "args": []})),
        );
        let text = v.as_str().unwrap_or("");
        assert!(!text.starts_with("error"), "axe-core failed: {text}");
        let list: Vec<Value> = serde_json::from_str(text).expect("axe result");
        list.iter()
            .filter(|v| matches!(v[1].as_str(), Some("serious") | Some("critical")))
            .map(|v| v.to_string())
            .collect()
    }

    /// Saves a PNG of the window.
    pub fn screenshot(&self, to: &Path) {
        use base64::Engine;
        let v = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("png");
        std::fs::write(to, png).expect("write screenshot");
    }

    /// Waits (up to 60 s) for a finished download named `name` and returns its path.
    pub fn downloaded(&self, name: &str) -> PathBuf {
        let p = self.downloads.join(name);
        let done = super::wait_for(Duration::from_secs(60), || {
            p.exists() && !self.downloads.join(format!("{name}.crdownload")).exists()
        });
        assert!(
            done,
            "{name} was not downloaded within 60 s: {:?}",
            std::fs::read_dir(&self.downloads)
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
        p
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
