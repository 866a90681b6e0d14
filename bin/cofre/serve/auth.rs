//! Who is asking: accounts from `[serve] users` (argon2 hashes), sessions in HttpOnly
//! SameSite=Strict cookies, a CSRF token per session on every POST, and a limit on failed
//! logins per client address and per user name. Sessions live in memory: a restart logs
//! everyone out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cofre::error::{Error, Result};
use cofre::{Role, ServeUser};
use maud::html;
use parking_lot::Mutex;
use rand::RngCore;

use super::html::{notice, page};
use super::App;

const SESSION_COOKIE: &str = "cofre_session";
const LOGIN_COOKIE: &str = "cofre_login";
/// A session ends this long after login.
const SESSION_LIFE: Duration = Duration::from_secs(8 * 3600);
/// Failed logins allowed per client address and per user name within `FAIL_WINDOW`.
const MAX_FAILS: usize = 5;
const FAIL_WINDOW: Duration = Duration::from_secs(300);

/// A logged-in user, as every page that needs one receives it.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub role: Role,
    /// Sent back in every form; a POST without it is refused.
    pub csrf: String,
    expires: Instant,
}

/// A logged-in admin (restores to the server).
pub struct Admin(pub Login);

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Login>>);

#[derive(Default)]
pub struct Limiter(Mutex<HashMap<String, Vec<Instant>>>);

/// Most addresses and user names the limiter tracks at once: beyond it (an attacker with
/// many addresses), logins wait for the window to pass rather than memory growing.
const MAX_KEYS: usize = 65_536;

impl Limiter {
    /// Counts a login attempt for `keys` before its password is checked, so attempts sent
    /// in parallel count too; or the seconds to wait, when one of them failed too often
    /// lately (or too many are tracked).
    fn attempt(&self, keys: &[String]) -> std::result::Result<(), u64> {
        let now = Instant::now();
        let mut m = self.0.lock();
        let fresh = |v: &mut Vec<Instant>| v.retain(|t| now.duration_since(*t) < FAIL_WINDOW);
        let mut wait = None;
        for k in keys {
            if let Some(v) = m.get_mut(k) {
                fresh(v);
                if v.len() >= MAX_FAILS {
                    let free = FAIL_WINDOW - now.duration_since(v[0]);
                    wait = wait.max(Some(free.as_secs() + 1));
                }
            }
        }
        if let Some(w) = wait {
            return Err(w);
        }
        if m.len() + keys.len() > MAX_KEYS {
            m.retain(|_, v| {
                fresh(v);
                !v.is_empty()
            });
            if m.len() + keys.len() > MAX_KEYS {
                return Err(FAIL_WINDOW.as_secs());
            }
        }
        for k in keys {
            m.entry(k.clone()).or_default().push(now);
        }
        Ok(())
    }

    /// The attempt succeeded: it no longer counts.
    fn succeeded(&self, keys: &[String]) {
        let mut m = self.0.lock();
        for k in keys {
            if let Some(v) = m.get_mut(k) {
                v.pop();
                if v.is_empty() {
                    m.remove(k);
                }
            }
        }
    }
}

/// 32 random bytes in hex: session ids and CSRF tokens.
fn token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Constant-time comparison of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(app: &App, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let secure = if app.secure { "; Secure" } else { "" };
    let v = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The client's address: the connection's, or behind a proxy the one it appended last to
/// X-Forwarded-For (earlier entries are the client's own claims).
fn client(app: &App, headers: &HeaderMap, peer: SocketAddr) -> String {
    // The last value of the last header line: a proxy that appends a line of its own
    // (HAProxy) and one that extends the client's line (nginx) both put theirs last.
    let forwarded = app.behind_proxy.then(|| {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    });
    forwarded.flatten().unwrap_or_else(|| peer.ip().to_string())
}

impl Sessions {
    fn get(&self, id: &str) -> Option<Login> {
        let mut m = self.0.lock();
        let now = Instant::now();
        m.retain(|_, l| l.expires > now);
        m.get(id).cloned()
    }
}

/// Pages need a login: without one a GET goes to the login page, anything else is 401.
impl FromRequestParts<Arc<App>> for Login {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> std::result::Result<Login, Response> {
        if let Some(l) = cookie(&parts.headers, SESSION_COOKIE).and_then(|id| app.sessions.get(id))
        {
            return Ok(l);
        }
        if parts.method == Method::GET {
            return Err(Redirect::to("/login").into_response());
        }
        Err((StatusCode::UNAUTHORIZED, "log in first").into_response())
    }
}

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> std::result::Result<Admin, Response> {
        let l = Login::from_request_parts(parts, app).await?;
        if l.role != Role::Admin {
            let body = page(
                "Not allowed",
                Some(&l),
                notice(
                    "error",
                    "Only an admin may do this; ask one, or log in as one.",
                ),
            );
            return Err((StatusCode::FORBIDDEN, body).into_response());
        }
        Ok(Admin(l))
    }
}

/// A POST's CSRF token against the session's: a 403 response when missing or wrong.
pub fn csrf_refusal(l: &Login, given: &str) -> Option<Response> {
    if same(&l.csrf, given) {
        return None;
    }
    Some(
        (
            StatusCode::FORBIDDEN,
            "the form's security token is missing or stale: reload the page and try again",
        )
            .into_response(),
    )
}

fn login_page(app: &App, form_token: &str, message: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        @if let Some(m) = message { (notice("error", m)) }
        form.login method="post" action="/login" {
            input type="hidden" name="csrf" value=(form_token);
            label for="user" { "User" }
            input id="user" name="user" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input id="password" name="password" type="password" autocomplete="current-password" required;
            button type="submit" { "Log in" }
        }
    };
    let mut r = (status, page("Log in", None, body)).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(app, LOGIN_COOKIE, form_token, "/login", 3600),
    );
    r
}

pub async fn login_form(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    // The form's token is kept across reloads; only one of ours (64 hex digits) is reused.
    let t = cookie(&headers, LOGIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
        .unwrap_or_else(token);
    login_page(&app, &t, None, StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

pub async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let form_token = cookie(&headers, LOGIN_COOKIE)
        .unwrap_or_default()
        .to_string();
    if form_token.is_empty() || !same(&form_token, &f.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "the login form's security token is missing or stale: reload the page",
        )
            .into_response();
    }
    // A name no account can have is a wrong name: it is counted against the address only,
    // and never kept (the limiter's memory is not the attacker's to fill).
    let plausible = !f.user.is_empty() && f.user.len() <= 64;
    let mut keys = vec![format!("addr:{}", client(&app, &headers, peer))];
    if plausible {
        keys.push(format!("user:{}", f.user));
    }
    if let Err(secs) = app.limiter.attempt(&keys) {
        let mut r = login_page(
            &app,
            &form_token,
            Some(&format!(
                "Too many failed logins: wait {secs} s and try again."
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let user = app
        .config
        .serve
        .users
        .iter()
        .find(|u| plausible && u.name == f.user)
        .cloned();
    // Two checks at a time (each takes argon2's 19 MiB and a core's worth of time): a flood
    // of logins queues here instead of taking the machine's memory.
    // The slot moves into the check: a client that disconnects drops this handler, not the
    // check, which holds its slot until it is done.
    let ok = match app.verifying.clone().acquire_owned().await {
        Ok(slot) => {
            let (u, pw) = (user.clone(), f.password);
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                verify(u.as_ref(), &pw)
            })
            .await
            .unwrap_or(false)
        }
        Err(_) => false,
    };
    let Some(user) = user.filter(|_| ok) else {
        let name: String = f.user.chars().take(64).collect();
        tracing::warn!("failed login for {name:?} from {}", &keys[0][5..]);
        return login_page(
            &app,
            &form_token,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        );
    };
    app.limiter.succeeded(&keys);
    let id = token();
    let l = Login {
        user: user.name.clone(),
        role: user.role,
        csrf: token(),
        expires: Instant::now() + SESSION_LIFE,
    };
    app.sessions.0.lock().insert(id.clone(), l);
    let mut r = Redirect::to("/").into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, SESSION_COOKIE, &id, "/", SESSION_LIFE.as_secs()),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, LOGIN_COOKIE, "", "/login", 0),
    );
    r
}

/// Checks a password against the user's hash; an unknown user costs the same time (a
/// hash of a fixed password is checked instead) so timing does not tell which names exist.
fn verify(user: Option<&ServeUser>, password: &str) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not a password").unwrap_or_default());
    let stored = user.map_or(dummy.as_str(), |u| u.password_hash.as_str());
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && user.is_some()
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(app): State<Arc<App>>,
    l: Login,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&l, &f.csrf) {
        return r;
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        app.sessions.0.lock().remove(id);
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&app, SESSION_COOKIE, "", "/", 0),
    );
    r
}

/// An argon2id hash of `password` in PHC form.
pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::InvalidArgument(format!("hashing the password: {e}")))
}

/// `cofre serve passwd USER`: sets USER's password hash (and role, if given; a new user
/// defaults to viewer) in the configuration file, keeping the rest of it as it is.
pub fn passwd(config: &Path, user: &str, role: Option<Role>, password: &str) -> Result<()> {
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(config, e)),
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", config.display())))?;
    let serve = doc
        .entry("serve")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .ok_or_else(|| {
            Error::InvalidArgument(format!("{}: `serve` must be a table", config.display()))
        })?;
    serve.set_implicit(true);
    let users = serve
        .entry("users")
        .or_insert_with(|| toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: `serve.users` must be [[serve.users]] tables",
                config.display()
            ))
        })?;
    let hash = hash(password)?;
    let found = users
        .iter_mut()
        .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(user));
    match found {
        Some(t) => {
            t["password_hash"] = toml_edit::value(hash);
            if let Some(r) = role {
                t["role"] = toml_edit::value(r.as_str());
            }
        }
        None => {
            let mut t = toml_edit::Table::new();
            t["name"] = toml_edit::value(user);
            t["role"] = toml_edit::value(role.unwrap_or(Role::Viewer).as_str());
            t["password_hash"] = toml_edit::value(hash);
            users.push(t);
        }
    }
    let out = doc.to_string();
    // What is written must load: a mistake is caught here, not at the next `cofre run`.
    cofre::parse_config(&out, config)?;
    if let Some(dir) = config.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    // Kept as readable as it was; a new file holds hashes, so only its owner reads it.
    let mode = std::fs::metadata(config).map_or(0o600, |m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o7777
    });
    cofre::write_atomic(config, out.as_bytes(), mode)
}

#[cfg(test)]
mod tests {
    use super::{Limiter, MAX_FAILS};

    #[test]
    fn attempts_count_before_the_check_and_successes_are_forgiven() {
        let l = Limiter::default();
        let keys = ["addr:10.0.0.1".to_string(), "user:ana".to_string()];
        // Attempts in flight count: the one after MAX_FAILS waits, whatever their outcome.
        for _ in 0..MAX_FAILS {
            assert!(l.attempt(&keys).is_ok());
        }
        assert!(l.attempt(&keys).is_err());
        // Another address for the same user waits too; another user from a fresh address not.
        assert!(l
            .attempt(&["addr:10.0.0.2".into(), "user:ana".into()])
            .is_err());
        assert!(l
            .attempt(&["addr:10.0.0.3".into(), "user:bo".into()])
            .is_ok());
        // A success takes its own attempt back.
        let m = Limiter::default();
        for _ in 0..MAX_FAILS - 1 {
            assert!(m.attempt(&keys).is_ok());
        }
        assert!(m.attempt(&keys).is_ok());
        m.succeeded(&keys);
        assert!(
            m.attempt(&keys).is_ok(),
            "four failures and a success leave room"
        );
        assert!(m.attempt(&keys).is_err());
    }
}
