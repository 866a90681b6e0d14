//! The pages: overview, browse (the mount's layout), a file and its versions, search,
//! compare. Each handler asks the session (on a blocking thread: the catalog and the store
//! are synchronous) and renders what it returns.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cofre::error::Error;
use cofre::{Browse, Change, Entry, FindOptions, SnapshotInfo, Version};
use maud::{html, Markup};

use super::auth::Login;
use super::html::{crumbs, encode, notice, page, size, size_plot, url_path, when};
use super::{blocking, App};

/// Entries per page of a directory.
const PAGE: usize = 200;
/// Most search results and differences one page lists.
const SHOWN: usize = 1000;

/// An error as a page: a missing path is 404, a bad argument 400, anything else 500.
pub fn error_page(l: Option<&Login>, e: &Error) -> Response {
    let status = match e {
        Error::NoSuchPath(_) | Error::NoSnapshot(_) => StatusCode::NOT_FOUND,
        Error::InvalidArgument(_) | Error::AmbiguousSnapshot(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let title = if status == StatusCode::NOT_FOUND {
        "Not found"
    } else {
        "Something went wrong"
    };
    (status, page(title, l, notice("error", &e.to_string()))).into_response()
}

/// How a set's backups are doing against its schedule: green while not due, amber while
/// less than one interval late, red later, when its last run failed, or when it was never
/// backed up.
fn health(row: &cofre::StatusRow, now: i64) -> (&'static str, String) {
    // A copy to a second repository: how many snapshots it is behind.
    if let Some(lag) = row.lag_snapshots {
        return match (&row.error, lag) {
            (Some(e), _) => ("red", format!("last copy failed: {e}")),
            (None, 0) => ("green", "copy up to date".into()),
            (None, n) => ("amber", format!("copy {n} snapshot(s) behind")),
        };
    }
    if let Some(e) = &row.error {
        return ("red", format!("last run failed: {e}"));
    }
    let Some(last) = row.last_snapshot.as_deref().map(unix) else {
        return ("red", "never backed up".into());
    };
    let ago = fmt_age(now - last);
    match (row.overdue_secs, row.interval_secs) {
        (_, None) => ("green", format!("last backup {ago} ago (taken by hand)")),
        (None, _) => ("green", format!("last backup {ago} ago")),
        (Some(late), Some(every)) if late <= every => {
            ("amber", format!("due: last backup {ago} ago"))
        }
        (Some(_), Some(_)) => ("red", format!("overdue: last backup {ago} ago")),
    }
}

fn fmt_age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn unix(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map_or(0, |d| d.unix_timestamp())
}

pub async fn overview(State(app): State<Arc<App>>, l: Login) -> Response {
    let a = app.clone();
    let got = blocking(move || {
        let snaps = a.session.snapshots(None)?;
        let status = match a.config.sets.is_empty() {
            true => Vec::new(),
            false => a.session.schedule_status(&a.config, None)?,
        };
        // A bill or a drill history that cannot be read leaves its part out, not the page.
        let cost = a
            .session
            .synced_catalog()
            .ok()
            .and_then(|c| a.session.monthly_cost(Some(&a.config), &c));
        let drills = a.session.drill_history().unwrap_or_default();
        Ok((snaps, status, cost, drills, a.session.last_check()))
    })
    .await;
    let (snaps, status, cost, drills, check) = match got {
        Ok(v) => v,
        Err(e) => return error_page(Some(&l), &e),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut sets: Vec<&str> = snaps.iter().map(|s| s.set.as_str()).collect();
    sets.sort();
    sets.dedup();
    let body = html! {
        @if !status.is_empty() {
            section aria-labelledby="health" {
                h2 id="health" { "Backups" }
                table {
                    thead { tr { th scope="col" { "Set" } th scope="col" { "Class" } th scope="col" { "Schedule" } th scope="col" { "Health" } th scope="col" { "Next due" } } }
                    tbody {
                        @for r in &status {
                            @let (color, text) = health(r, now);
                            tr {
                                td { a href={ "/browse/" (encode(&r.set)) "/" } { (r.set) } }
                                td { (r.class) } td { (r.schedule) }
                                td { span class={ "dot " (color) } aria-hidden="true" {} span.health { (color) ": " (text) } }
                                td { (r.next_due.as_deref().map(when).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
        @for set in &sets {
            @let of: Vec<&SnapshotInfo> = snaps.iter().filter(|s| s.set == *set).collect();
            @let points: Vec<(i64, u64, u64)> = of.iter().map(|s| (unix(&s.time), s.bytes, s.bytes_added)).collect();
            @if let Some(last) = of.last() {
                section aria-labelledby={ "set-" (set) } {
                    h2 id={ "set-" (set) } { "Set " a href={ "/browse/" (encode(set)) "/" } { (set) } }
                    p { (of.len()) " snapshots; latest " (when(&last.time)) ": " (last.files) " files, " (size(last.bytes)) ", " (size(last.bytes_added)) " new." }
                    (size_plot(&points, (&of[0].time, &last.time), &format!("Size of set {set} over {} snapshots, up to {} (line), and bytes each added (bars)", of.len(), size(last.bytes))))
                }
            }
        }
        @if sets.is_empty() { (notice("info", "No snapshots yet: run `cofre run` or `cofre ingest`.")) }
        section aria-labelledby="drills" {
            h2 id="drills" { "Recovery drills" }
            @if drills.is_empty() { p { "No drill has run yet (`cofre drill`)." } }
            @else {
                ul {
                    @for d in drills.iter().rev().take(5) {
                        li { (when(&d.time)) ", set " (d.set) ": " strong { (if d.passed { "passed" } else { "FAILED" }) } ", " (d.files) " files, " (size(d.bytes)) }
                    }
                }
            }
        }
        section aria-labelledby="check" {
            h2 id="check" { "Last check" }
            @match &check {
                None => p { "No check has run on this machine yet (`cofre check --read-data-subset 5%`)." },
                Some(c) => p {
                    (when(&c.time)) ", " (c.read) ": " (c.snapshots) " snapshots, " (c.packs_read) " packs read, "
                    strong { @if c.problems == 0 { "no problems" } @else { (c.problems) " problems" } }
                    @if let Some(f) = &c.first_problem { " (first: " (f) ")" }
                    "."
                },
            }
        }
        @if let Some(c) = cost {
            section aria-labelledby="bill" { h2 id="bill" { "Storage bill" } p { "About $" (format!("{c:.2}")) " a month (`cofre stats` for the detail)." } }
        }
    };
    page("Overview", Some(&l), body).into_response()
}

#[derive(serde::Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    page: usize,
}

pub async fn browse_root(app: State<Arc<App>>, l: Login, q: Query<PageQuery>) -> Response {
    browse(app, l, Path(String::new()), q).await
}

pub async fn browse(
    State(app): State<Arc<App>>,
    l: Login,
    Path(path): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let a = app.clone();
    let p = path.clone();
    match blocking(move || a.session.browse(&p)).await {
        Ok(Browse::Layout { entries }) => layout_page(&l, &path, &entries),
        Ok(Browse::Dir {
            snapshot, entries, ..
        }) => dir_page(&l, &path, &snapshot, &entries, q.page),
        Ok(Browse::File { snapshot, entry }) => file_page(app, l, path, snapshot, *entry).await,
        Err(e) => error_page(Some(&l), &e),
    }
}

fn layout_page(l: &Login, path: &str, entries: &[(String, Option<SnapshotInfo>)]) -> Response {
    let base = url_path(path);
    let href = |name: &str| match base.is_empty() {
        true => format!("/browse/{}/", encode(name)),
        false => format!("/browse/{base}/{}/", encode(name)),
    };
    let body = html! {
        (crumbs(path))
        ul.listing {
            @for (name, snap) in entries {
                li {
                    a href=(href(name)) { (name) "/" }
                    @if let Some(s) = snap { " — " (when(&s.time)) ", " (s.files) " files, " (size(s.bytes)) " (" (s.short_id) ")" }
                }
            }
        }
    };
    let title = if path.trim_matches('/').is_empty() {
        "All sets".to_string()
    } else {
        path.trim_matches('/').to_string()
    };
    page(&title, Some(l), body).into_response()
}

fn dir_page(
    l: &Login,
    path: &str,
    snap: &SnapshotInfo,
    entries: &[Entry],
    page_no: usize,
) -> Response {
    let base = url_path(path);
    let pages = entries.len().div_ceil(PAGE).max(1);
    let page_no = page_no.min(pages - 1);
    let shown =
        &entries[(page_no * PAGE).min(entries.len())..((page_no + 1) * PAGE).min(entries.len())];
    let body = html! {
        (crumbs(path))
        p { "Snapshot " (snap.short_id) " of set " (snap.set) ", " (when(&snap.time)) "." }
        p.actions {
            a href={ "/archive/" (base) "?format=tar" } download { "Download as .tar" }
            a href={ "/archive/" (base) "?format=zip" } download { "Download as .zip" }
        }
        @if l.role == cofre::Role::Admin { (restore_form(l, path)) }
        table {
            caption { (entries.len()) " entries" @if pages > 1 { ", page " (page_no + 1) " of " (pages) } }
            thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Size" } th scope="col" { "Modified" } th scope="col" { "Mode" } } }
            tbody {
                @for e in shown {
                    @let name = e.path.rsplit('/').next().unwrap_or(&e.path);
                    tr {
                        td { a href={ "/browse/" (base) "/" (encode(name)) @if e.is_dir { "/" } } { (name) @if e.is_dir { "/" } } }
                        td { (e.kind) } td.num { (size(e.size)) } td { (when(&e.mtime)) } td { (e.mode) }
                    }
                }
            }
        }
        @if pages > 1 {
            nav.pages aria-label="Pages" {
                @if page_no > 0 { a href={ "?page=" (page_no - 1) } rel="prev" { "Previous page" } }
                @if page_no + 1 < pages { a href={ "?page=" (page_no + 1) } rel="next" { "Next page" } }
            }
        }
    };
    let title = path
        .trim_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    page(&title, Some(l), body).into_response()
}

fn restore_form(l: &Login, path: &str) -> Markup {
    html! {
        details.restore {
            summary { "Restore to this server…" }
            form method="post" action="/restore" {
                input type="hidden" name="csrf" value=(l.csrf);
                input type="hidden" name="path" value=(path);
                label for="target" { "Target directory on the server (absolute path)" }
                input id="target" name="target" required placeholder="/srv/restore";
                label { input type="checkbox" name="overwrite" value="yes"; " Replace files already in the target" }
                button type="submit" { "Restore" }
            }
        }
    }
}

/// The layout path of `inner` in the snapshot `id` (`ids/<id>/...`): the whole id, which
/// leads there even after another snapshot's id shares its first eight characters.
fn at_snapshot(id: &str, inner: &str) -> String {
    format!("ids/{id}/{}", url_path(inner))
}

async fn file_page(
    app: Arc<App>,
    l: Login,
    path: String,
    snap: SnapshotInfo,
    e: Entry,
) -> Response {
    let (a, inner, set) = (app.clone(), e.path.clone(), snap.set.clone());
    let versions = blocking(move || a.session.log(&inner, Some(&set)))
        .await
        .unwrap_or_default();
    let here = versions
        .iter()
        .position(|v| v.first.time <= snap.time && snap.time <= v.last.time);
    let body = html! {
        (crumbs(&path))
        dl.meta {
            dt { "Snapshot" } dd { (snap.short_id) ", set " (snap.set) ", " (when(&snap.time)) }
            dt { "Type" } dd { (e.kind) }
            dt { "Size" } dd { (size(e.size)) " (" (e.size) " bytes)" }
            dt { "Mode" } dd { (e.mode) }
            dt { "Owner" } dd { (e.user) " (" (e.uid) ") : " (e.group) " (" (e.gid) ")" }
            dt { "Modified" } dd { (when(&e.mtime)) }
            @if let Some(t) = &e.target { dt { "Target" } dd { code { (t) } } }
            @if let Some(h) = &e.blake3 { dt { "blake3" } dd { code.hash { (h) } } }
        }
        @if e.kind == "file" {
            p.actions { a href={ "/download/" (url_path(&path)) } download { "Download" } }
        }
        section aria-labelledby="versions" {
            h2 id="versions" { "Versions" }
            (versions_table(&e.path, &versions, here))
        }
    };
    page(&e.path, Some(&l), body).into_response()
}

fn change_word(c: Change) -> &'static str {
    match c {
        Change::Added => "added",
        Change::Removed => "removed",
        Change::Content => "changed",
        Change::Metadata => "metadata changed",
        Change::Type => "type changed",
    }
}

/// A file's versions, newest first, each linking to its first snapshot; text files link
/// to a diff with the version before.
fn versions_table(path: &str, versions: &[Version], here: Option<usize>) -> Markup {
    html! {
        table.versions {
            thead { tr { th scope="col" { "Since" } th scope="col" { "Change" } th scope="col" { "Size" } th scope="col" { "blake3" } th scope="col" { "Snapshots" } th scope="col" { "Compare" } } }
            tbody {
                @for (i, v) in versions.iter().enumerate().rev() {
                    tr aria-current=[(Some(i) == here).then_some("true")] {
                        td { a href={ "/browse/" (at_snapshot(&v.first.id, path)) } { (when(&v.first.time)) } }
                        td { (change_word(v.change)) }
                        td.num { (v.entry.as_ref().map(|e| size(e.size)).unwrap_or_default()) }
                        td { code { (v.entry.as_ref().and_then(|e| e.blake3.as_deref()).map(|h| &h[..12.min(h.len())]).unwrap_or("-")) } }
                        td { (v.first.short_id) @if v.snapshots > 1 { " … " (v.last.short_id) " (" (v.snapshots) ")" } }
                        td {
                            @if let (Some(prev), Some(_)) = (i.checked_sub(1).map(|j| &versions[j]), &v.entry) {
                                @if prev.entry.as_ref().is_some_and(|e| e.kind == "file") {
                                    a href={ "/diff/file?a=" (encode(&format!("/{}", at_snapshot(&prev.first.id, path)))) "&b=" (encode(&format!("/{}", at_snapshot(&v.first.id, path)))) } { "diff with previous" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    set: Option<String>,
    prefix: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// `2026-12-04` (a day, UTC) as Unix seconds at its start, or at its end for `until`.
fn day(s: Option<&str>, end: bool) -> Result<Option<i64>, Error> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &fmt)
        .map_err(|_| Error::InvalidArgument(format!("{s}: give a day as YYYY-MM-DD")))?;
    let t = d.midnight().assume_utc().unix_timestamp();
    Ok(Some(if end { t + 86_399 } else { t }))
}

pub async fn search(
    State(app): State<Arc<App>>,
    l: Login,
    Query(q): Query<SearchQuery>,
) -> Response {
    let empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let found = if q.q.is_empty() {
        Ok(Vec::new())
    } else {
        let opts = day(q.since.as_deref(), false).and_then(|since| {
            Ok(FindOptions {
                set: empty(&q.set),
                since,
                until: day(q.until.as_deref(), true)?,
                path_prefix: empty(&q.prefix),
            })
        });
        let (a, pattern) = (app.clone(), q.q.clone());
        match opts {
            Ok(opts) => blocking(move || a.session.find(&pattern, &opts)).await,
            Err(e) => Err(e),
        }
    };
    let v = |s: &Option<String>| s.clone().unwrap_or_default();
    let body = html! {
        form.search method="get" action="/search" role="search" {
            label for="q" { "Name (a glob: *.conf, report-??.pdf)" } input id="q" name="q" value=(q.q) required;
            label for="set" { "Set" } input id="set" name="set" value=(v(&q.set));
            label for="prefix" { "Under path" } input id="prefix" name="prefix" value=(v(&q.prefix)) placeholder="/srv/app";
            label for="since" { "Since (day)" } input id="since" name="since" type="date" value=(v(&q.since));
            label for="until" { "Until (day)" } input id="until" name="until" type="date" value=(v(&q.until));
            button type="submit" { "Search" }
        }
        @match &found {
            Err(e) => (notice("error", &e.to_string())),
            Ok(f) if f.is_empty() && !q.q.is_empty() => p { "Nothing matches " code { (q.q) } "." },
            Ok(f) => {
                @if f.len() > SHOWN {
                    (notice("info", &format!("{} paths match; the first {SHOWN} are shown. Narrow the search, or use `cofre find --json` for all.", f.len())))
                }
                @for r in f.iter().take(SHOWN) {
                    section.found {
                        h2 { (r.path) }
                        (versions_table(&r.path, &r.versions, None))
                    }
                }
            }
        }
    };
    page("Search", Some(&l), body).into_response()
}

#[derive(serde::Deserialize, Default)]
pub struct DiffQuery {
    a: Option<String>,
    b: Option<String>,
    path: Option<String>,
}

pub async fn diff(State(app): State<Arc<App>>, l: Login, Query(q): Query<DiffQuery>) -> Response {
    let a2 = app.clone();
    let snaps = blocking(move || a2.session.snapshots(None))
        .await
        .unwrap_or_default();
    let path = q
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    let result = match (
        q.a.clone().filter(|s| !s.is_empty()),
        q.b.clone().filter(|s| !s.is_empty()),
    ) {
        (Some(a), Some(b)) => {
            let (s, p) = (app.clone(), path.clone());
            Some(blocking(move || s.session.diff(&a, &b, &p, None)).await)
        }
        _ => None,
    };
    let select = |name: &str, label: &str, chosen: &Option<String>| {
        html! {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                @for s in snaps.iter().rev() {
                    option value=(s.id) selected[chosen.as_deref() == Some(s.id.as_str())] { (s.set) " " (when(&s.time)) " (" (s.short_id) ")" }
                }
            }
        }
    };
    let body = html! {
        form.diff method="get" action="/diff" {
            (select("a", "From snapshot", &q.a)) (select("b", "To snapshot", &q.b))
            label for="path" { "Only under path" } input id="path" name="path" value=(path);
            button type="submit" { "Compare" }
        }
        @match &result {
            None => {},
            Some(Err(e)) => (notice("error", &e.to_string())),
            Some(Ok(d)) => {
                @if d.entries.len() > SHOWN {
                    (notice("info", &format!("The first {SHOWN} of {} differences are listed; `cofre diff --json` gives all.", d.entries.len())))
                }
                p { (d.added) " added, " (d.removed) " removed, " (d.changed) " changed (" (d.metadata_only) " metadata only); +" (size(d.bytes_added)) ", −" (size(d.bytes_removed)) "." }
                table {
                    thead { tr { th scope="col" { "Change" } th scope="col" { "Path" } th scope="col" { "Type" } th scope="col" { "Before" } th scope="col" { "After" } } }
                    tbody {
                        @for e in d.entries.iter().take(SHOWN) {
                            tr {
                                td { (change_word(e.change)) }
                                td {
                                    @if e.change == Change::Removed { (e.path) }
                                    @else { a href={ "/browse/" (at_snapshot(&d.to.id, &e.path)) } { (e.path) } }
                                }
                                td { (e.kind) }
                                td.num { (e.size_before.map(size).unwrap_or_default()) }
                                td.num { (e.size_after.map(size).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Compare snapshots", Some(&l), body).into_response()
}

#[derive(serde::Deserialize)]
pub struct FileDiffQuery {
    a: String,
    b: String,
}

/// Most bytes of each side of a text diff.
const TEXT_MAX: u64 = 4 << 20;

/// Two versions of a text file (layout paths), as a unified diff.
pub async fn file_diff(
    State(app): State<Arc<App>>,
    l: Login,
    Query(q): Query<FileDiffQuery>,
) -> Response {
    let a = app.clone();
    let (pa, pb) = (q.a.clone(), q.b.clone());
    let texts = blocking(move || {
        let read = |p: &str| -> cofre::error::Result<String> {
            let Browse::File { entry, .. } = a.session.browse(p)? else {
                return Err(Error::InvalidArgument(format!("{p} is not a file")));
            };
            if entry.size > TEXT_MAX {
                return Err(Error::InvalidArgument(format!(
                    "{p} is over {}: download both versions to compare them",
                    size(TEXT_MAX)
                )));
            }
            let mut s = Vec::new();
            std::io::Read::read_to_end(&mut a.contents.open(&entry, 0, u64::MAX)?, &mut s)
                .map_err(|e| Error::io(p, e))?;
            String::from_utf8(s).map_err(|_| {
                Error::InvalidArgument(format!("{p} is not text (UTF-8): download it to compare"))
            })
        };
        let (x, y) = (read(&pa)?, read(&pb)?);
        // A diff's worst case is quadratic: past the deadline `similar` gives a coarser
        // (still correct) diff instead of holding a thread.
        let d = similar::TextDiff::configure()
            .timeout(std::time::Duration::from_secs(2))
            .diff_lines(&x, &y);
        let text = d
            .unified_diff()
            .context_radius(3)
            .header(&pa, &pb)
            .to_string();
        Ok(text)
    })
    .await;
    let body = match texts {
        Err(e) => return error_page(Some(&l), &e),
        Ok(text) => {
            html! {
                @if text.is_empty() { p { "The two versions have the same text." } }
                @else {
                    pre.diff tabindex="0" aria-label="Unified diff" {
                        @for line in text.lines() {
                            @let class = match line.as_bytes().first() { Some(b'+') => "add", Some(b'-') => "del", Some(b'@') => "hunk", _ => "" };
                            span class=(class) { (line) } "\n"
                        }
                    }
                }
            }
        }
    };
    page("Compare versions", Some(&l), body).into_response()
}

#[cfg(test)]
mod tests {
    use super::health;

    fn row(
        last: Option<&str>,
        overdue: Option<i64>,
        every: Option<i64>,
        error: Option<&str>,
    ) -> cofre::StatusRow {
        cofre::StatusRow {
            set: "db".into(),
            class: "4h".into(),
            schedule: "every 4h".into(),
            last_snapshot: last.map(str::to_string),
            last_run: None,
            result: None,
            error: error.map(str::to_string),
            next_due: None,
            overdue_secs: overdue,
            interval_secs: every,
            lag_snapshots: None,
        }
    }

    #[test]
    fn health_is_green_amber_or_red_by_how_late_a_set_is() {
        // 2026-12-05T12:00:00Z
        let now = 1_796_472_000;
        let last = Some("2026-12-05T10:00:00Z");
        let h = 4 * 3600;
        let table = [
            (
                row(last, None, Some(h), None),
                "green",
                "last backup 2 h ago",
            ),
            (row(last, Some(60), Some(h), None), "amber", "due"),
            (row(last, Some(h), Some(h), None), "amber", "due"),
            (row(last, Some(h + 1), Some(h), None), "red", "overdue"),
            (
                row(
                    Some("2026-11-05T10:00:00Z"),
                    Some(30 * 86_400),
                    Some(h),
                    None,
                ),
                "red",
                "30 days",
            ),
            (row(None, None, Some(h), None), "red", "never backed up"),
            (
                row(last, None, Some(h), Some("disk full")),
                "red",
                "disk full",
            ),
            (
                row(last, Some(99 * h), None, None),
                "green",
                "taken by hand",
            ),
        ];
        for (r, color, says) in table {
            let (c, text) = health(&r, now);
            assert_eq!(c, color, "{text}");
            assert!(text.contains(says), "{text} should say {says}");
        }
    }
}
