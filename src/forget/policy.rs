//! The retention policy, a pure function of snapshot times and tags, with restic's
//! (0.14) meaning so that a policy moved from restic keeps the same snapshots:
//! - snapshots are walked newest first;
//! - `--keep-last n`: the n newest; `--keep-hourly/daily/weekly/monthly/yearly n`: the
//!   newest snapshot of each of the n most recent hours/days/ISO weeks/months/years that
//!   have a snapshot;
//! - `--keep-within D`: every snapshot newer than (newest snapshot − D);
//! - `--keep-within-daily D` (and hourly, …): the newest of each day within D of the newest;
//! - `--keep-tag a,b`: every snapshot that has all of a and b (repeatable, any list);
//! - "the newest snapshot" ignores snapshots in the future; an empty policy keeps all.
//!
//! Calendar buckets are in UTC (cofre stores snapshot times in UTC).

use time::{Date, Month, OffsetDateTime};

/// A calendar span as restic writes it: `1y2m3d4h` (years, months, days, hours).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub years: i32,
    pub months: i32,
    pub days: i32,
    pub hours: i32,
}

impl Span {
    pub fn parse(s: &str) -> Result<Span, String> {
        let mut span = Span::default();
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err("empty duration".into());
        }
        while !rest.is_empty() {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let n: i32 = rest[..end].parse().map_err(|_| {
                format!("{s:?}: expected a number before each unit, e.g. 30d or 1y6m")
            })?;
            let unit = rest[end..]
                .chars()
                .next()
                .ok_or_else(|| format!("{s:?}: no unit after {n} (use y, m, d or h)"))?;
            match unit {
                'y' => span.years = n,
                'm' => span.months = n,
                'd' => span.days = n,
                'h' => span.hours = n,
                u => return Err(format!("{s:?}: unknown unit {u:?} (use y, m, d or h)")),
            }
            rest = &rest[end + 1..];
        }
        Ok(span)
    }

    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }

    /// `t` minus this span, calendar-wise and normalized as Go's `AddDate` (31 March
    /// minus one month is 3 March), then minus the hours.
    pub fn before(&self, t: OffsetDateTime) -> OffsetDateTime {
        let m0 = t.year() as i64 * 12 + (t.month() as i64 - 1)
            - self.years as i64 * 12
            - self.months as i64;
        let (year, month) = (m0.div_euclid(12) as i32, (m0.rem_euclid(12) + 1) as u8);
        let first = Month::try_from(month)
            .ok()
            .and_then(|m| Date::from_calendar_date(year, m, 1).ok());
        let Some(first) = first else {
            return OffsetDateTime::UNIX_EPOCH;
        };
        let days = t.day() as i64 - 1 - self.days as i64;
        first.midnight().assume_utc()
            + time::Duration::days(days)
            + (t - t.date().midnight().assume_utc())
            - time::Duration::hours(self.hours as i64)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Span,
    pub within_hourly: Span,
    pub within_daily: Span,
    pub within_weekly: Span,
    pub within_monthly: Span,
    pub within_yearly: Span,
    /// Keep snapshots that carry every tag of any of these lists.
    pub tags: Vec<Vec<String>>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.last + self.hourly + self.daily + self.weekly + self.monthly + self.yearly == 0
            && [
                self.within,
                self.within_hourly,
                self.within_daily,
                self.within_weekly,
                self.within_monthly,
                self.within_yearly,
            ]
            .iter()
            .all(Span::is_zero)
            && self.tags.is_empty()
    }
}

/// What the policy sees of a snapshot.
#[derive(Debug, Clone)]
pub struct Item {
    pub time: OffsetDateTime,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    /// The rules that keep it (empty when removed).
    pub reasons: Vec<String>,
}

type Bucket = fn(OffsetDateTime, usize) -> i64;

fn hour(t: OffsetDateTime, _: usize) -> i64 {
    day(t, 0) * 100 + t.hour() as i64
}
fn day(t: OffsetDateTime, _: usize) -> i64 {
    month(t, 0) * 100 + t.day() as i64
}
fn week(t: OffsetDateTime, _: usize) -> i64 {
    let (y, w, _) = t.to_iso_week_date();
    y as i64 * 100 + w as i64
}
fn month(t: OffsetDateTime, _: usize) -> i64 {
    t.year() as i64 * 100 + t.month() as i64
}
fn year(t: OffsetDateTime, _: usize) -> i64 {
    t.year() as i64
}
fn each(_: OffsetDateTime, nr: usize) -> i64 {
    nr as i64
}

/// Decides for every item (result in input order). `now` only excludes future snapshots
/// from being "the newest".
pub fn apply(items: &[Item], p: &Policy, now: OffsetDateTime) -> Vec<Decision> {
    let mut out = vec![
        Decision {
            keep: true,
            reasons: vec!["policy is empty".into()],
        };
        items.len()
    ];
    if p.is_empty() || items.is_empty() {
        return out;
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|a, b| items[*b].time.cmp(&items[*a].time)); // stable: ties keep input order
    let latest = items
        .iter()
        .map(|i| i.time)
        .filter(|t| *t < now)
        .max()
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);

    let mut counted: [(u32, Bucket, Option<i64>, &str); 6] = [
        (p.last, each, None, "last snapshot"),
        (p.hourly, hour, None, "hourly snapshot"),
        (p.daily, day, None, "daily snapshot"),
        (p.weekly, week, None, "weekly snapshot"),
        (p.monthly, month, None, "monthly snapshot"),
        (p.yearly, year, None, "yearly snapshot"),
    ];
    let mut within: [(Span, Bucket, Option<i64>, &str); 5] = [
        (p.within_hourly, hour, None, "hourly within"),
        (p.within_daily, day, None, "daily within"),
        (p.within_weekly, week, None, "weekly within"),
        (p.within_monthly, month, None, "monthly within"),
        (p.within_yearly, year, None, "yearly within"),
    ];
    for (nr, &i) in order.iter().enumerate() {
        let cur = &items[i];
        let mut reasons = Vec::new();
        for list in &p.tags {
            if list.iter().all(|t| cur.tags.contains(t)) {
                reasons.push(format!("has tags [{}]", list.join(", ")));
            }
        }
        if !p.within.is_zero() && cur.time > p.within.before(latest) {
            reasons.push(format!("within {}", p.within));
        }
        for (count, bucket, last, why) in counted.iter_mut() {
            if *count > 0 {
                let val = bucket(cur.time, nr);
                if Some(val) != *last {
                    *last = Some(val);
                    *count -= 1;
                    reasons.push(why.to_string());
                }
            }
        }
        for (span, bucket, last, why) in within.iter_mut() {
            if !span.is_zero() && cur.time > span.before(latest) {
                let val = bucket(cur.time, nr);
                if Some(val) != *last {
                    *last = Some(val);
                    reasons.push(format!("{why} {span}"));
                }
            }
        }
        out[i] = Decision {
            keep: !reasons.is_empty(),
            reasons,
        };
    }
    out
}

#[cfg(test)]
mod tests;
