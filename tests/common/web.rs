//! `cofre serve` for the tests: the real binary on a loopback port, and an HTTP client that
//! keeps cookies, sends forms and can send a request line exactly as given.

use std::io::{BufRead, Read, Write};
use std::process::{Child, Stdio};
use std::time::Duration;

use super::Env;

/// Adds (or updates) a user of `cofre serve` in the test's configuration file.
pub fn add_user(env: &Env, name: &str, role: &str, password: &str) {
    let mut c = env
        .cmd()
        .env("COFRE_CONFIG", env.path("cofre.toml"))
        .args(["serve", "passwd", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cofre serve passwd");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password");
    let out = c.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "serve passwd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `cofre serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    /// Starts `cofre serve --listen 127.0.0.1:0 <extra>` and waits (up to 60 s) for the
    /// address it prints.
    pub fn start(env: &Env, extra: &[&str]) -> Server {
        let mut child = env
            .cmd()
            .env("COFRE_CONFIG", env.path("cofre.toml"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start cofre serve");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("cofre serve printed its address within 60 s");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server { child, url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One response, read whole.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        let t = self.text();
        let at = t
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF token in {t}"));
        t[at + 19..].split('"').next().expect("token").to_string()
    }
}

/// An HTTP client with a cookie jar; follows no redirects, so tests see them.
pub struct Client {
    agent: ureq::Agent,
    pub base: String,
    cookies: Vec<(String, String)>,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .build();
        Client {
            agent: ureq::Agent::new_with_config(config),
            base: base.to_string(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, r: ureq::http::Response<ureq::Body>) -> Resp {
        let status = r.status().as_u16();
        let headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        for (k, v) in &headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let first = v.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            self.cookies.retain(|(n, _)| n != name);
            if !v.contains("Max-Age=0") {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
        let mut body = Vec::new();
        r.into_body()
            .into_reader()
            .read_to_end(&mut body)
            .expect("read body");
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A GET whose body may end early: the status (0 when the connection closed before
    /// one came), and the body or how reading it failed.
    pub fn get_partial(&mut self, path: &str) -> (u16, std::io::Result<Vec<u8>>) {
        let r = match self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .call()
        {
            Ok(r) => r,
            Err(e) => return (0, Err(std::io::Error::other(e.to_string()))),
        };
        let status = r.status().as_u16();
        let mut body = Vec::new();
        let read = r.into_body().into_reader().read_to_end(&mut body);
        (status, read.map(|_| body))
    }

    pub fn get(&mut self, path: &str) -> Resp {
        self.get_with(path, &[])
    }

    pub fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.call().expect("GET");
        self.take(r)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        let r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .send_form(form.iter().copied())
            .expect("POST");
        self.take(r)
    }

    /// Logs in through the form (token from the login page); returns the POST's response.
    pub fn login(&mut self, user: &str, password: &str) -> Resp {
        let token = self.get("/login").csrf();
        self.post(
            "/login",
            &[("user", user), ("password", password), ("csrf", &token)],
        )
    }
}

/// Sends `GET <target> HTTP/1.1` with `target` exactly as given (no normalization, as a
/// hostile client would); returns the status and the body.
pub fn raw_get(base: &str, target: &[u8], cookie: &str) -> (u16, String) {
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    s.write_all(&req).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}
