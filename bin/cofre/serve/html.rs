//! The page frame and the small pieces every page shows: sizes, times, links into the
//! layout, the size plot. Server-rendered (maud checks the templates at compile time), no
//! script at all (the CSP forbids it), one embedded stylesheet.

use maud::{html, Markup, DOCTYPE};

use super::auth::Login;

pub const STYLE: &str = include_str!("style.css");

/// A whole page: header with the user and logout (a POST with its CSRF token), main, title.
pub fn page(title: &str, who: Option<&Login>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cofre" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        a.brand href="/" { "cofre" }
                        @if who.is_some() {
                            a href="/browse/" { "Browse" }
                            a href="/search" { "Search" }
                            a href="/diff" { "Compare" }
                        }
                    }
                    @if let Some(l) = who {
                        form.logout method="post" action="/logout" {
                            span { (l.user) " (" (l.role.as_str()) ")" }
                            input type="hidden" name="csrf" value=(l.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// `1.5 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `2026-12-04T10:00:00Z` → `2026-12-04 10:00:00 UTC`.
pub fn when(rfc3339: &str) -> String {
    let t = rfc3339.get(..19).unwrap_or(rfc3339).replace('T', " ");
    format!("{t} UTC")
}

/// A path's components as percent-encoded segments, for a URL.
pub fn url_path(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The breadcrumb of a layout path: each component links to its directory.
pub fn crumbs(path: &str) -> Markup {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    html! {
        nav.crumbs aria-label="Breadcrumb" {
            ol {
                li { a href="/browse/" { "all sets" } }
                @for (i, p) in parts.iter().enumerate() {
                    li {
                        @if i + 1 == parts.len() {
                            span aria-current="page" { (p) }
                        } @else {
                            a href={ "/browse/" (url_path(&parts[..=i].join("/"))) "/" } { (p) }
                        }
                    }
                }
            }
        }
    }
}

/// A message in a box: what went wrong and what to do.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { p class={ "notice " (kind) } role=(if kind == "error" { "alert" } else { "status" }) { (text) } }
}

/// Snapshot size and bytes added over time, as inline SVG: one point per snapshot, a
/// line for the size and bars for what each added. Text equivalent in `aria-label` and
/// the table beside it.
/// `points` are (Unix time, size, bytes added); `span` the first and last times as shown.
pub fn size_plot(points: &[(i64, u64, u64)], span: (&str, &str), label: &str) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 160.0;
    const PAD: f64 = 30.0;
    if points.is_empty() {
        return html! {};
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let secs = (t1 - t0).max(1) as f64;
    let top = points
        .iter()
        .map(|p| p.1.max(p.2))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |t: i64| PAD + (t - t0) as f64 / secs * (W - 2.0 * PAD);
    let y = |v: u64| H - PAD - v as f64 / top * (H - 2.0 * PAD);
    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
        .collect();
    let bar_w = ((W - 2.0 * PAD) / points.len() as f64 * 0.6).clamp(1.0, 12.0);
    html! {
        svg.plot viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(label) {
            line x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) class="axis" {}
            @for p in points {
                rect class="added" x=(format!("{:.1}", x(p.0) - bar_w / 2.0)) y=(format!("{:.1}", y(p.2)))
                    width=(format!("{bar_w:.1}")) height=(format!("{:.1}", H - PAD - y(p.2))) {}
            }
            polyline class="size" points=(line.join(" ")) {}
            text x=(PAD) y="14" class="label" { "size " (size(top as u64)) " max" }
            text x=(PAD) y=(H - 8.0) class="label" { (when(span.0)) }
            text x=(W - PAD) y=(H - 8.0) class="label end" { (when(span.1)) }
        }
    }
}
