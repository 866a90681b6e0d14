//! Downloads and the admin's restore: a file (with HTTP ranges, so a large one resumes),
//! a directory as a streamed .tar or .zip, and a restore to a path on the server. Bytes
//! are produced on a blocking thread and handed to the response through a bounded
//! channel, so memory stays flat whatever the size; a read error ends the response early
//! (the client sees a broken download, never wrong bytes).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cofre::error::Error;
use cofre::{Browse, RestoreOptions};
use maud::html;

use super::auth::{csrf_refusal, Admin, Login};
use super::html::{notice, page, size};
use super::pages::error_page;
use super::{blocking, App};

/// Bytes per message to the response, and messages in flight.
const PIECE: usize = 256 << 10;
const IN_FLIGHT: usize = 8;

/// How long a client may stop reading before its download is given up (and its thread
/// freed).
const STALL: std::time::Duration = std::time::Duration::from_secs(120);

/// `Write` into a response body. The last full piece is held back until `finish`: a
/// producer that fails (a chunk that does not match, a walk that breaks) never gets its
/// last bytes out, whatever a writer's `Drop` appends after the failure (tar and zip
/// writers write their end markers when dropped), so a failed download is always short.
pub struct ToBody {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
    held: Option<Bytes>,
    /// A send failed (the client went away or stalled): later writes (a writer's `Drop`)
    /// fail at once instead of waiting out the stall again.
    failed: bool,
}

impl ToBody {
    fn push(&mut self, piece: Bytes) -> std::io::Result<()> {
        let sent = self.try_push(piece);
        self.failed |= sent.is_err();
        sent
    }

    fn try_push(&self, piece: Bytes) -> std::io::Result<()> {
        use tokio::sync::mpsc::error::TrySendError;
        if self.failed {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the download already failed",
            ));
        }
        let start = std::time::Instant::now();
        let mut item = Ok(piece);
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "the client went away",
                    ))
                }
                Err(TrySendError::Full(back)) => {
                    if start.elapsed() > STALL {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the client stopped reading",
                        ));
                    }
                    item = back;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }

    /// Sends what is left: only after the producer succeeded.
    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(h) = self.held.take() {
            self.push(h)?;
        }
        if !self.buf.is_empty() {
            let last = Bytes::from(std::mem::take(&mut self.buf));
            self.push(last)?;
        }
        Ok(())
    }
}

impl Write for ToBody {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= PIECE {
            let full = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
            if let Some(before) = self.held.replace(full) {
                self.push(before)?;
            }
        }
        Ok(n)
    }

    /// Nothing: pieces go out as they fill, the last at `finish`.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The pieces of a download, ending with an error unless its producer said it finished:
/// a producer that failed, panicked or gave up on a stalled client only drops its sender
/// (it never blocks to report), and the body still ends broken, not short and clean.
struct Pieces {
    rx: tokio_stream::wrappers::ReceiverStream<std::io::Result<Bytes>>,
    done: Arc<std::sync::atomic::AtomicBool>,
    ended: bool,
}

impl tokio_stream::Stream for Pieces {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match std::pin::Pin::new(&mut self.rx).poll_next(cx) {
            Poll::Ready(None) => {
                self.ended = true;
                match self.done.load(std::sync::atomic::Ordering::SeqCst) {
                    true => Poll::Ready(None),
                    false => Poll::Ready(Some(Err(std::io::Error::other("the download failed")))),
                }
            }
            other => other,
        }
    }
}

/// A body written by `produce` on a blocking thread, which holds `slot` (one of the
/// server's download slots) until it is done. A failure, or a panic, ends the body with an
/// error after the bytes sent so far.
fn streamed(
    slot: tokio::sync::OwnedSemaphorePermit,
    produce: impl FnOnce(&mut ToBody) -> std::io::Result<()> + Send + 'static,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = done.clone();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut w = ToBody {
            tx,
            buf: Vec::with_capacity(PIECE),
            held: None,
            failed: false,
        };
        let run = std::panic::AssertUnwindSafe(|| produce(&mut w).and_then(|()| w.finish()));
        let result = std::panic::catch_unwind(run)
            .unwrap_or_else(|_| Err(std::io::Error::other("the download failed (see the log)")));
        match result {
            // Set before the sender is dropped (with `w`): the body then ends cleanly.
            Ok(()) => finished.store(true, std::sync::atomic::Ordering::SeqCst),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => tracing::warn!("download stopped: {e}"),
        }
    });
    let rx = tokio_stream::wrappers::ReceiverStream::new(rx);
    Body::from_stream(Pieces {
        rx,
        done,
        ended: false,
    })
}

/// The page for a download refused because every slot is taken.
fn busy(l: &Login) -> Response {
    let msg = "Too many downloads are running: try again in a minute.";
    let body = page("Busy", Some(l), notice("error", msg));
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

/// `attachment; filename*=UTF-8''name` (RFC 6266), with a plain ASCII fallback.
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let v = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        super::html::encode(name)
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// A single byte range of a `size`-byte file: `Ok(None)` for none (or one this server
/// answers whole: several ranges, other units), `Err(())` when it cannot be satisfied.
pub fn parse_range(h: Option<&str>, size: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(spec) = h.and_then(|h| h.strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| ());
    let (start, end) = match (a.trim().is_empty(), b.trim().is_empty()) {
        // The last n bytes.
        (true, false) => {
            let n = num(b)?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size)
        }
        (false, true) => (num(a)?, size),
        (false, false) => (num(a)?, num(b)?.saturating_add(1).min(size)),
        (true, true) => return Err(()),
    };
    if start >= size || start >= end {
        return Err(());
    }
    Ok(Some((start, end)))
}

pub async fn file(
    State(app): State<Arc<App>>,
    l: Login,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let a = app.clone();
    let entry = match blocking(move || a.session.browse(&path)).await {
        Ok(Browse::File { entry, .. }) if entry.kind == "file" => *entry,
        Ok(_) => {
            return error_page(
                Some(&l),
                &Error::InvalidArgument(
                    "only a file downloads as it is: a directory downloads as .tar or .zip".into(),
                ),
            )
        }
        Err(e) => return error_page(Some(&l), &e),
    };
    let size = entry.size;
    let etag = entry.blake3.as_ref().map(|h| format!("\"{h}\""));
    // A resumed download asks for the rest of the same version only (If-Range).
    let same = match (
        headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()),
        &etag,
    ) {
        (None, _) => true,
        (Some(v), Some(t)) => v == t,
        (Some(_), None) => false,
    };
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| same);
    let range = match parse_range(asked, size) {
        Ok(r) => r,
        Err(()) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}"))
                    .unwrap_or_else(|_| HeaderValue::from_static("")),
            );
            return r;
        }
    };
    let (start, end) = range.unwrap_or((0, size));
    let a = app.clone();
    let e = entry.clone();
    let reader = match blocking(move || a.contents.open(&e, start, end)).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(&l), &e),
    };
    let Ok(slot) = app.downloads.clone().try_acquire_owned() else {
        return busy(&l);
    };
    let body = streamed(slot, move |w| std::io::copy(&mut { reader }, w).map(|_| ()));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    let name = entry.path.rsplit('/').next().unwrap_or("file").to_string();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_DISPOSITION, disposition(&name));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(t) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        h.insert(header::ETAG, t);
    }
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        let cr = format!("bytes {start}-{}/{size}", end - 1);
        r.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&cr).unwrap_or_else(|_| HeaderValue::from_static("")),
        );
    }
    r
}

#[derive(serde::Deserialize)]
pub struct ArchiveQuery {
    #[serde(default)]
    format: String,
}

/// A directory of a snapshot, and everything below it, as .tar or .zip.
pub async fn archive(
    State(app): State<Arc<App>>,
    l: Login,
    Path(path): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> Response {
    let zip = match q.format.as_str() {
        "zip" => true,
        "tar" | "" => false,
        f => {
            return error_page(
                Some(&l),
                &Error::InvalidArgument(format!("format {f:?}: choose tar or zip")),
            )
        }
    };
    let a = app.clone();
    let found = blocking(move || match a.session.browse(&path)? {
        Browse::Dir {
            snapshot,
            path: inner,
            ..
        } => Ok((snapshot, inner)),
        _ => Err(Error::InvalidArgument(
            "choose a directory inside a snapshot to download".into(),
        )),
    })
    .await;
    let (snap, inner) = match found {
        Ok(v) => v,
        Err(e) => return error_page(Some(&l), &e),
    };
    // The archive's top directory: the directory's own name, or set-date for a snapshot's root.
    let top = match inner
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
    {
        Some(n) => n.to_string(),
        None => format!(
            "{}-{}",
            snap.set,
            snap.time.get(..10).unwrap_or("").replace(['-', ':'], "")
        ),
    };
    let Ok(slot) = app.downloads.clone().try_acquire_owned() else {
        return busy(&l);
    };
    let a = app.clone();
    let t = top.clone();
    let body = streamed(slot, move |w| {
        super::archive::write_archive(w, &a, &snap.id, &inner, &t, zip)
    });
    let mut r = Response::new(body);
    let h = r.headers_mut();
    let (ext, ctype) = if zip {
        ("zip", "application/zip")
    } else {
        ("tar", "application/x-tar")
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        header::CONTENT_DISPOSITION,
        disposition(&format!("{top}.{ext}")),
    );
    r
}

#[derive(serde::Deserialize)]
pub struct RestoreForm {
    #[serde(default)]
    csrf: String,
    path: String,
    target: String,
    overwrite: Option<String>,
}

/// An admin restores a file or directory of a snapshot to a directory on the server: the
/// same restore as `cofre restore` (never writes through a symlink out of the target).
/// A target with anything in it is refused unless the form says to replace.
pub async fn restore(
    State(app): State<Arc<App>>,
    Admin(l): Admin,
    Form(f): Form<RestoreForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&l, &f.csrf) {
        return r;
    }
    let target = PathBuf::from(&f.target);
    if !target.is_absolute() || f.target.contains('\0') {
        return error_page(
            Some(&l),
            &Error::InvalidArgument(format!(
                "{:?}: give an absolute path on the server",
                f.target
            )),
        );
    }
    let replace = f.overwrite.as_deref() == Some("yes");
    // One restore at a time, its target checked right before it: two restores into the
    // same empty directory cannot both pass the check. (Another program writing into the
    // target meanwhile is the admin's to avoid.)
    // Owned and moved into the blocking call: a client that disconnects drops this handler,
    // not the restore, which keeps the lock until it is done.
    let one = app.restoring.clone().lock_owned().await;
    let (a, path, t) = (app.clone(), f.path.clone(), target.clone());
    let cache_mib = app.cache_mib;
    let done = blocking(move || {
        let _one = one;
        let in_use = match std::fs::read_dir(&t) {
            Ok(mut d) => d.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(&t, e)),
        };
        if in_use && !replace {
            return Ok(None);
        }
        let (snapshot, inner) = match a.session.browse(&path)? {
            Browse::Dir { snapshot, path, .. } => (snapshot, path),
            Browse::File { snapshot, entry } => (snapshot, entry.path),
            Browse::Layout { .. } => {
                return Err(Error::InvalidArgument(
                    "choose a snapshot, or a path in one, to restore".into(),
                ))
            }
        };
        let opts = RestoreOptions {
            snapshot: snapshot.id,
            path: inner,
            set: None,
            target: t,
            cache_mib,
        };
        a.session.restore(&opts).map(Some)
    })
    .await;
    match done {
        Err(e) => error_page(Some(&l), &e),
        Ok(None) => {
            let msg = format!("{} is not empty: choose an empty directory, or tick \"Replace files already in the target\"", target.display());
            (
                StatusCode::CONFLICT,
                page("Not restored", Some(&l), notice("error", &msg)),
            )
                .into_response()
        }
        Ok(Some(o)) => {
            let r = &o.report;
            tracing::info!(
                "{} restored {} to {}: {} files, {} errors",
                l.user,
                f.path,
                target.display(),
                r.files,
                r.errors.len()
            );
            let body = html! {
                (notice(if r.errors.is_empty() { "ok" } else { "error" }, &format!("{} files, {} directories, {} restored to {}.", r.files, r.dirs, size(r.bytes), target.display())))
                @if !r.errors.is_empty() { h2 { "Not restored" } ul { @for e in &r.errors { li { (e) } } } }
                @if !r.warnings.is_empty() { h2 { "Restored without some metadata" } ul { @for w in &r.warnings { li { (w) } } } }
            };
            page("Restored", Some(&l), body).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::{parse_range, ToBody, PIECE};

    #[test]
    fn a_producer_that_fails_never_sends_its_last_piece() {
        for (succeeds, pieces) in [(false, 1), (true, 3)] {
            let (tx, mut rx) = tokio::sync::mpsc::channel(8);
            let mut w = ToBody {
                tx,
                buf: Vec::new(),
                held: None,
                failed: false,
            };
            // Two full pieces and a few bytes: what a tar's end marker written on drop is.
            w.write_all(&vec![7u8; 2 * PIECE + 10]).expect("write");
            if succeeds {
                w.finish().expect("finish");
            }
            drop(w);
            let mut got = 0;
            while let Ok(Ok(_)) = rx.try_recv() {
                got += 1;
            }
            assert_eq!(got, pieces, "succeeds: {succeeds}");
        }
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        type Want = Result<Option<(u64, u64)>, ()>;
        let table: &[(Option<&str>, u64, Want)] = &[
            (None, 100, Ok(None)),
            (Some("bytes=0-9"), 100, Ok(Some((0, 10)))),
            (Some("bytes=90-"), 100, Ok(Some((90, 100)))),
            (Some("bytes=-10"), 100, Ok(Some((90, 100)))),
            (Some("bytes=-1000"), 100, Ok(Some((0, 100)))),
            (Some("bytes=50-1000"), 100, Ok(Some((50, 100)))),
            (Some("bytes=100-"), 100, Err(())),
            (Some("bytes=5-2"), 100, Err(())),
            (Some("bytes=-0"), 100, Err(())),
            (Some("bytes=x-2"), 100, Err(())),
            (Some("bytes=-"), 100, Err(())),
            (Some("bytes=0-1,5-6"), 100, Ok(None)),
            (Some("items=0-1"), 100, Ok(None)),
            (Some("bytes=0-"), 0, Err(())),
        ];
        for (h, size, want) in table {
            assert_eq!(parse_range(*h, *size), *want, "{h:?} of {size}");
        }
    }
}
