use super::*;
use time::macros::datetime;

#[test]
fn spans_parse_as_restic_writes_them() {
    let s = |y, m, d, h| Span {
        years: y,
        months: m,
        days: d,
        hours: h,
    };
    let cases: [(&str, Result<Span, ()>); 8] = [
        ("30d", Ok(s(0, 0, 30, 0))),
        ("1y6m", Ok(s(1, 6, 0, 0))),
        ("2h", Ok(s(0, 0, 0, 2))),
        ("1y2m3d4h", Ok(s(1, 2, 3, 4))),
        ("", Err(())),
        ("5", Err(())),
        ("3w", Err(())),
        ("d", Err(())),
    ];
    for (text, want) in cases {
        assert_eq!(Span::parse(text).map_err(|_| ()), want, "{text:?}");
    }
}

#[test]
fn spans_subtract_like_go_add_date() {
    let cases = [
        (
            "1m",
            datetime!(2026-03-31 10:00 UTC),
            datetime!(2026-03-03 10:00 UTC),
        ),
        (
            "1y",
            datetime!(2024-02-29 00:00 UTC),
            datetime!(2023-03-01 00:00 UTC),
        ),
        (
            "30d",
            datetime!(2026-03-01 04:00 UTC),
            datetime!(2026-01-30 04:00 UTC),
        ),
        (
            "2h",
            datetime!(2026-01-01 01:00 UTC),
            datetime!(2025-12-31 23:00 UTC),
        ),
        (
            "1y1m1d1h",
            datetime!(2026-01-01 00:00 UTC),
            datetime!(2024-11-29 23:00 UTC),
        ),
    ];
    for (span, from, want) in cases {
        assert_eq!(
            Span::parse(span).unwrap().before(from),
            want,
            "{span} before {from}"
        );
    }
}

/// Four snapshots a day (00, 06, 12, 18 UTC) from Thursday 2026-01-01 to 2026-01-10.
fn history() -> Vec<Item> {
    (0..40)
        .map(|i| Item {
            time: datetime!(2026-01-01 00:00 UTC) + time::Duration::hours(6 * i),
            tags: match i {
                5 => vec!["keep".into()],
                6 => vec!["a".into()],
                7 => vec!["a".into(), "b".into()],
                _ => vec![],
            },
        })
        .collect()
}

fn kept(p: &Policy) -> Vec<String> {
    let items = history();
    let now = datetime!(2026-06-01 00:00 UTC);
    let mut out: Vec<_> = apply(&items, p, now)
        .iter()
        .zip(&items)
        .filter(|(d, _)| d.keep)
        .map(|(_, i)| format!("{:02}-{:02}h", i.time.day(), i.time.hour()))
        .collect();
    out.sort();
    out
}

#[test]
fn each_flag_keeps_what_restic_keeps() {
    let span = |s: &str| Span::parse(s).unwrap();
    let cases: Vec<(&str, Policy, Vec<&str>)> = vec![
        (
            "last 3",
            Policy {
                last: 3,
                ..Default::default()
            },
            vec!["10-06h", "10-12h", "10-18h"],
        ),
        (
            "hourly 2",
            Policy {
                hourly: 2,
                ..Default::default()
            },
            vec!["10-12h", "10-18h"],
        ),
        (
            "daily 3",
            Policy {
                daily: 3,
                ..Default::default()
            },
            vec!["08-18h", "09-18h", "10-18h"],
        ),
        // ISO weeks: 2025-W01 ends Sunday 4 January.
        (
            "weekly 3",
            Policy {
                weekly: 3,
                ..Default::default()
            },
            vec!["04-18h", "10-18h"],
        ),
        (
            "monthly 2",
            Policy {
                monthly: 2,
                ..Default::default()
            },
            vec!["10-18h"],
        ),
        (
            "yearly 1",
            Policy {
                yearly: 1,
                ..Default::default()
            },
            vec!["10-18h"],
        ),
        (
            "within 1d",
            Policy {
                within: span("1d"),
                ..Default::default()
            },
            vec!["10-00h", "10-06h", "10-12h", "10-18h"],
        ),
        (
            "within-daily 3d",
            Policy {
                within_daily: span("3d"),
                ..Default::default()
            },
            vec!["08-18h", "09-18h", "10-18h"],
        ),
        (
            "within-hourly 12h",
            Policy {
                within_hourly: span("12h"),
                ..Default::default()
            },
            vec!["10-12h", "10-18h"],
        ),
        (
            "within-weekly 2m",
            Policy {
                within_weekly: span("2m"),
                ..Default::default()
            },
            vec!["04-18h", "10-18h"],
        ),
        (
            "within-monthly 1y",
            Policy {
                within_monthly: span("1y"),
                ..Default::default()
            },
            vec!["10-18h"],
        ),
        (
            "within-yearly 1y",
            Policy {
                within_yearly: span("1y"),
                ..Default::default()
            },
            vec!["10-18h"],
        ),
        (
            "tag keep",
            Policy {
                tags: vec![vec!["keep".into()]],
                ..Default::default()
            },
            vec!["02-06h"],
        ),
        (
            "tags a AND b",
            Policy {
                tags: vec![vec!["a".into(), "b".into()]],
                ..Default::default()
            },
            vec!["02-18h"],
        ),
        (
            "tags a OR keep",
            Policy {
                tags: vec![vec!["a".into()], vec!["keep".into()]],
                ..Default::default()
            },
            vec!["02-06h", "02-12h", "02-18h"],
        ),
        (
            "daily 2 + last 1",
            Policy {
                daily: 2,
                last: 1,
                ..Default::default()
            },
            vec!["09-18h", "10-18h"],
        ),
    ];
    for (name, policy, want) in cases {
        assert_eq!(kept(&policy), want, "{name}");
    }
}

#[test]
fn an_empty_policy_keeps_everything() {
    assert_eq!(kept(&Policy::default()).len(), 40);
}

#[test]
fn a_snapshot_in_the_future_is_not_the_newest() {
    let mut items = history();
    items.push(Item {
        time: datetime!(2027-01-01 00:00 UTC),
        tags: vec![],
    });
    let p = Policy {
        within: Span::parse("1d").unwrap(),
        ..Default::default()
    };
    let now = datetime!(2026-06-01 00:00 UTC);
    let d = apply(&items, &p, now);
    // The four of 10 January (within a day of the newest past snapshot) and the future one.
    assert_eq!(d.iter().filter(|d| d.keep).count(), 5);
    assert_eq!(d[39].reasons, vec!["within 1d".to_string()]);
}

#[test]
fn reasons_name_every_rule_that_keeps() {
    let items = history();
    let p = Policy {
        last: 1,
        daily: 1,
        ..Default::default()
    };
    let d = apply(&items, &p, datetime!(2026-06-01 00:00 UTC));
    assert_eq!(d[39].reasons, vec!["last snapshot", "daily snapshot"]);
    assert!(!d[0].keep && d[0].reasons.is_empty());
}
