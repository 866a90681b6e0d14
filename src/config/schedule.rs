//! When a set's snapshot is due: `every = "4h"`, `at = "02:00"` (daily), `at = "Sun 02:00"`
//! (weekly), in UTC. Pure functions of the last snapshot's time and now, so a machine that
//! was off all night takes one snapshot when it comes back, not one per missed slot.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum Schedule {
    /// Only when asked for by name (`cofre run --set S`).
    #[default]
    Manual,
    /// This many seconds after the previous snapshot.
    Every(i64),
    /// Daily at this many seconds after midnight.
    Daily(i64),
    /// Weekly: day (0 = Monday) and seconds after its midnight.
    Weekly(u8, i64),
}

const DAY: i64 = 86_400;
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn parse_every(s: &str) -> Result<i64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("every = {s:?}: expected a number and a unit, e.g. 4h, 1d, 30m"))?;
    let mult = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => DAY,
        "w" => 7 * DAY,
        _ => return Err(format!("every = {s:?}: the unit must be m, h, d or w")),
    };
    if n <= 0 {
        return Err(format!("every = {s:?}: must be positive"));
    }
    Ok(n * mult)
}

fn parse_clock(s: &str, whole: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "at = {whole:?}: expected HH:MM (UTC), e.g. 02:00, or a day and a time, e.g. Sun 02:00"
        )
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60)
}

impl Schedule {
    pub fn from_config(every: Option<&str>, at: Option<&str>) -> Result<Schedule, String> {
        let every = every.map(parse_every).transpose()?;
        let Some(at) = at else {
            return Ok(every.map_or(Schedule::Manual, Schedule::Every));
        };
        let at = at.trim();
        let (day, clock) = match at.split_once(' ') {
            Some((d, c)) => {
                let d = DAYS
                    .iter()
                    .position(|x| x.eq_ignore_ascii_case(d.trim()))
                    .ok_or_else(|| {
                        format!("at = {at:?}: the day must be one of {}", DAYS.join(", "))
                    })?;
                (Some(d as u8), c.trim())
            }
            None => (None, at),
        };
        let secs = parse_clock(clock, at)?;
        match (day, every) {
            (Some(d), None | Some(604_800)) => Ok(Schedule::Weekly(d, secs)),
            (None, None | Some(DAY)) => Ok(Schedule::Daily(secs)),
            _ => Err(format!(
                "`at = {at:?}` goes with `every = \"1d\"` (or \"1w\" with a day), or alone"
            )),
        }
    }

    /// The latest scheduled slot at or before `now` (None for `Every` and `Manual`).
    fn slot(&self, now: i64) -> Option<i64> {
        match *self {
            Schedule::Daily(s) => {
                let today = now.div_euclid(DAY) * DAY + s;
                Some(if today <= now { today } else { today - DAY })
            }
            Schedule::Weekly(d, s) => {
                // 1970-01-01 was a Thursday (day 3 when Monday is 0).
                let days = now.div_euclid(DAY);
                let weekday = (days + 3).rem_euclid(7);
                let this_week = (days - weekday + d as i64) * DAY + s;
                Some(if this_week <= now {
                    this_week
                } else {
                    this_week - 7 * DAY
                })
            }
            _ => None,
        }
    }

    /// Whether a snapshot is due at `now`, the last one having been taken at `last`.
    /// `Every` allows a twentieth of the interval (at most 10 minutes) of timer jitter.
    pub fn due(&self, last: Option<i64>, now: i64) -> bool {
        match (*self, last) {
            (Schedule::Manual, _) => false,
            (_, None) => true,
            (Schedule::Every(d), Some(l)) => now - l >= d - (d / 20).min(600),
            (s, Some(l)) => s.slot(now).is_some_and(|slot| l < slot),
        }
    }

    /// For people: "every 4h", "daily 02:00", "weekly Sun 02:00", "manual".
    pub fn describe(&self) -> String {
        let clock = |s: i64| format!("{:02}:{:02}", s / 3600, s % 3600 / 60);
        match *self {
            Schedule::Manual => "manual".into(),
            Schedule::Every(d) if d % DAY == 0 => format!("every {}d", d / DAY),
            Schedule::Every(d) if d % 3600 == 0 => format!("every {}h", d / 3600),
            Schedule::Every(d) => format!("every {}m", d / 60),
            Schedule::Daily(s) => format!("daily {}", clock(s)),
            Schedule::Weekly(day, s) => format!("weekly {} {}", DAYS[day as usize], clock(s)),
        }
    }

    /// The nominal time between two snapshots (None for `Manual`).
    pub fn interval(&self) -> Option<i64> {
        match *self {
            Schedule::Manual => None,
            Schedule::Every(d) => Some(d),
            Schedule::Daily(_) => Some(DAY),
            Schedule::Weekly(..) => Some(7 * DAY),
        }
    }

    /// When the next snapshot will be due (for `schedule status`), None for `Manual`.
    pub fn next(&self, last: Option<i64>, now: i64) -> Option<i64> {
        if self.due(last, now) {
            return Some(now);
        }
        match *self {
            Schedule::Manual => None,
            Schedule::Every(d) => last.map(|l| l + d - (d / 20).min(600)),
            Schedule::Daily(_) => self.slot(now).map(|s| s + DAY),
            Schedule::Weekly(..) => self.slot(now).map(|s| s + 7 * DAY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-23 is a Monday; times are seconds since the epoch (UTC).
    const MON: i64 = 1_795_392_000;
    const H: i64 = 3600;

    #[test]
    fn schedules_parse() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Result<Schedule, ()>);
        let cases: [Case; 10] = [
            (Some("4h"), None, Ok(Schedule::Every(4 * H))),
            (Some("30m"), None, Ok(Schedule::Every(1800))),
            (None, None, Ok(Schedule::Manual)),
            (Some("1d"), Some("02:00"), Ok(Schedule::Daily(2 * H))),
            (None, Some("23:59"), Ok(Schedule::Daily(23 * H + 59 * 60))),
            (None, Some("Sun 02:00"), Ok(Schedule::Weekly(6, 2 * H))),
            (Some("1w"), Some("mon 00:30"), Ok(Schedule::Weekly(0, 1800))),
            (Some("4h"), Some("02:00"), Err(())),
            (None, Some("25:00"), Err(())),
            (Some("4x"), None, Err(())),
        ];
        for (every, at, want) in cases {
            assert_eq!(
                Schedule::from_config(every, at).map_err(|_| ()),
                want,
                "{every:?} {at:?}"
            );
        }
    }

    #[test]
    fn due_catches_up_once_and_not_before_time() {
        let every4 = Schedule::Every(4 * H);
        let daily2 = Schedule::Daily(2 * H);
        let sun2 = Schedule::Weekly(6, 2 * H);
        let cases = [
            // (schedule, last, now, due)
            (every4, None, MON, true),
            (every4, Some(MON), MON + 3 * H, false),
            (every4, Some(MON), MON + 4 * H - 300, true), // timer jitter: 5 minutes early
            (every4, Some(MON), MON + 4 * H - 1200, false),
            (every4, Some(MON), MON + 30 * H, true),
            (daily2, Some(MON + 2 * H), MON + 25 * H, false), // before Tuesday 02:00
            (daily2, Some(MON + 2 * H), MON + 26 * H, true),
            // Off all night: last Monday 02:00, back Wednesday 09:00: due once...
            (daily2, Some(MON + 2 * H), MON + 57 * H, true),
            // ...and after that catch-up snapshot, not again until Thursday 02:00.
            (daily2, Some(MON + 57 * H), MON + 60 * H, false),
            (daily2, Some(MON + 57 * H), MON + 74 * H, true),
            (sun2, Some(MON - 22 * H), MON + 5 * 24 * H, false), // last Sunday 02:00, now Saturday
            (sun2, Some(MON - 22 * H), MON + 6 * 24 * H + 2 * H, true),
            (Schedule::Manual, None, MON, false),
        ];
        for (s, last, now, want) in cases {
            assert_eq!(s.due(last, now), want, "{s:?} last {last:?} now {now}");
        }
    }

    #[test]
    fn next_due_times() {
        let daily2 = Schedule::Daily(2 * H);
        assert_eq!(
            daily2.next(Some(MON + 2 * H), MON + 3 * H),
            Some(MON + 26 * H)
        );
        assert_eq!(
            Schedule::Every(4 * H).next(Some(MON), MON + H),
            Some(MON + 4 * H - 600)
        );
        assert_eq!(
            Schedule::Weekly(6, 2 * H).next(Some(MON - 22 * H), MON),
            Some(MON + 6 * 24 * H + 2 * H)
        );
        assert_eq!(Schedule::Manual.next(None, MON), None);
    }
}
