//! `cofre serve`: a web page to find and restore any version (docs/serve.md). Overview,
//! browse by set and date, a file's versions, search, compare, downloads (a file with
//! ranges, a directory as .tar or .zip) and, for an admin, a restore to the server. It
//! reads the repository and never writes to it (an admin's restore takes the same shared
//! lock as `cofre restore`). It uses only the library's public API: `Session` and what it
//! returns.

mod archive;
mod auth;
mod download;
mod html;
mod pages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cofre::error::{Error, Result};
use cofre::Role;
use cofre::{Config, Contents, Session};

use crate::Ctx;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Address and port to listen on [default: [serve] listen, else 127.0.0.1:8080].
    /// Beyond loopback it needs --tls-cert/--tls-key or --behind-proxy.
    #[arg(long)]
    listen: Option<String>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A reverse proxy in front terminates TLS (and sets X-Forwarded-For).
    #[arg(long)]
    behind_proxy: bool,
    /// Memory for decoded chunks while serving downloads, in MiB.
    #[arg(long)]
    cache_mib: Option<usize>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Set USER's password (asked on the terminal, or one line on stdin) in the
    /// configuration file's [[serve.users]], adding USER if new.
    Passwd {
        user: String,
        /// viewer (browse and download) or admin (also restore to the server).
        #[arg(long, value_parser = ["viewer", "admin"])]
        role: Option<String>,
    },
}

/// What every request handler shares.
pub struct App {
    session: Arc<Session>,
    contents: Contents,
    config: Config,
    sessions: auth::Sessions,
    limiter: auth::Limiter,
    /// Cookies get `Secure` (HTTPS here or at the proxy).
    secure: bool,
    behind_proxy: bool,
    cache_mib: usize,
    /// Password checks running at once.
    verifying: Arc<tokio::sync::Semaphore>,
    /// Downloads running at once: each holds a thread (an archive three) while its client
    /// reads; beyond this, 503.
    downloads: Arc<tokio::sync::Semaphore>,
    /// One restore to the server at a time (its target check and the restore go together).
    restoring: Arc<tokio::sync::Mutex<()>>,
}

/// Password checks at once (`App::verifying`) and downloads at once (`App::downloads`).
const VERIFYING: usize = 2;
const DOWNLOADS: usize = 16;

/// Runs `f` (catalog and store calls block) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::InvalidArgument(format!("request failed: {e}"))))
}

/// Headers on every response: no script, no framing, no sniffing, nothing cached (pages
/// and downloads show private data).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "content-security-policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cache-control", "no-store");
    r
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::STYLE,
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/style.css", get(style))
        .route("/browse/", get(pages::browse_root))
        .route("/browse/{*path}", get(pages::browse))
        .route("/download/{*path}", get(download::file))
        .route("/archive/{*path}", get(download::archive))
        .route("/search", get(pages::search))
        .route("/diff", get(pages::diff))
        .route("/diff/file", get(pages::file_diff))
        .route("/restore", post(download::restore))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(app)
}

/// Loopback is always allowed; anything else needs TLS here or at a proxy.
fn check_listen(addr: &SocketAddr, tls: bool, behind_proxy: bool) -> Result<()> {
    if addr.ip().is_loopback() || tls || behind_proxy {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "refusing to serve {addr} without TLS: give --tls-cert and --tls-key, or --behind-proxy when a proxy in front terminates TLS (or listen on 127.0.0.1)"
    )))
}

/// The password for `passwd`: asked twice on a terminal, else one line of stdin.
fn read_password(user: &str) -> Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let ask = |p: &str| rpassword::prompt_password(p).map_err(|e| Error::io("terminal", e));
        let a = ask(&format!("New password for {user}: "))?;
        if a != ask("Again: ")? {
            return Err(Error::InvalidArgument(
                "the passwords differ; nothing was changed".into(),
            ));
        }
        if a.is_empty() {
            return Err(Error::InvalidArgument(
                "an empty password; nothing was changed".into(),
            ));
        }
        return Ok(a);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Error::io("stdin", e))?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        return Err(Error::InvalidArgument(
            "empty password on stdin; nothing was changed".into(),
        ));
    }
    Ok(pw)
}

/// `cofre serve passwd USER`, if that is the command: it needs no repository, and may
/// create the configuration file it writes.
pub fn passwd(config: Option<&std::path::Path>, a: &Args) -> Option<Result<i32>> {
    let Some(Cmd::Passwd { user, role }) = &a.cmd else {
        return None;
    };
    let run = || {
        let path = config.map_or_else(cofre::default_config_path, |p| p.to_path_buf());
        let role = role.as_deref().map(|r| {
            if r == "admin" {
                Role::Admin
            } else {
                Role::Viewer
            }
        });
        if !cofre::valid_user_name(user) {
            return Err(Error::InvalidArgument(cofre::USER_NAME_RULE.into()));
        }
        let pw = read_password(user)?;
        auth::passwd(&path, user, role, &pw)?;
        eprintln!("password of {user} set in {}", path.display());
        Ok(0)
    };
    Some(run())
}

pub fn run(ctx: &Ctx, a: Args, rt: &tokio::runtime::Runtime) -> Result<i32> {
    let config = ctx.file.clone().unwrap_or_default();
    let s = &config.serve;
    if s.users.is_empty() {
        return Err(Error::InvalidArgument(
            "no one can log in: add a user with `cofre serve passwd USER --role admin` first"
                .into(),
        ));
    }
    let listen = a
        .listen
        .or_else(|| s.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let addr: SocketAddr = listen.parse().map_err(|_| {
        Error::InvalidArgument(format!(
            "--listen {listen}: give address:port, e.g. 127.0.0.1:8080"
        ))
    })?;
    let tls = match (
        a.tls_cert.or_else(|| s.tls_cert.clone()),
        a.tls_key.or_else(|| s.tls_key.clone()),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    let behind_proxy = a.behind_proxy || s.behind_proxy;
    check_listen(&addr, tls.is_some(), behind_proxy)?;
    let cache_mib = a
        .cache_mib
        .or(s.cache_mib)
        .unwrap_or(cofre::DEFAULT_CACHE_MIB);
    let session = Arc::new(ctx.session()?);
    let contents = session.contents(cache_mib, 1024)?;
    let app = Arc::new(App {
        session,
        contents,
        secure: tls.is_some() || behind_proxy,
        behind_proxy,
        cache_mib,
        config,
        sessions: Default::default(),
        limiter: Default::default(),
        verifying: Arc::new(tokio::sync::Semaphore::new(VERIFYING)),
        downloads: Arc::new(tokio::sync::Semaphore::new(DOWNLOADS)),
        restoring: Arc::new(tokio::sync::Mutex::new(())),
    });
    let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
    rt.block_on(async move {
        let handle = axum_server::Handle::new();
        let h = handle.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            h.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let announce = handle.clone();
        tokio::spawn(async move {
            if let Some(bound) = announce.listening().await {
                // Tests and scripts read the bound address (with --listen ...:0) from here.
                println!("listening on {scheme}://{bound}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
        });
        let served = match tls {
            Some((cert, key)) => {
                // Already installed is fine: the choice is the same.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                let cfg = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                    .await
                    .map_err(|e| Error::InvalidArgument(format!("TLS certificate {} or key {}: {e}", cert.display(), key.display())))?;
                axum_server::bind_rustls(addr, cfg).handle(handle).serve(service).await
            }
            None => axum_server::bind(addr).handle(handle).serve(service).await,
        };
        served.map_err(|e| Error::io(addr.to_string(), e))
    })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::check_listen;

    #[test]
    fn only_loopback_listens_without_tls() {
        let table = [
            ("127.0.0.1:8080", false, false, true),
            ("[::1]:8080", false, false, true),
            ("0.0.0.0:8080", false, false, false),
            ("192.168.1.5:8080", false, false, false),
            ("0.0.0.0:8443", true, false, true),
            ("0.0.0.0:8080", false, true, true),
        ];
        for (addr, tls, proxy, ok) in table {
            let a = addr.parse().expect("address");
            assert_eq!(
                check_listen(&a, tls, proxy).is_ok(),
                ok,
                "{addr} tls={tls} proxy={proxy}"
            );
        }
    }
}
