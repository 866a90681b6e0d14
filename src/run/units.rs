//! What `cofre schedule install` writes: a systemd service and timer that call `cofre run`
//! every few minutes (`cofre run` itself decides which sets are due), or one crontab line.
//! Pure text; the command writes, enables and removes it.

use std::path::Path;

/// How often the timer fires: minutes dividing an hour, or whole hours dividing a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every(u32);

impl Every {
    pub const DEFAULT: Every = Every(15);

    /// `15m`, `1h`; the timer must fire on the same minutes every hour (or hours every
    /// day), as both systemd's and cron's calendars count.
    pub fn parse(s: &str) -> Result<Every, String> {
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u32 = num
            .parse()
            .map_err(|_| format!("{s:?}: expected e.g. 15m or 1h"))?;
        let minutes = match unit {
            "m" | "min" => n,
            "h" => n * 60,
            _ => return Err(format!("{s:?}: the unit must be m or h")),
        };
        let ok = (minutes > 0 && minutes < 60 && 60 % minutes == 0)
            || (minutes >= 60 && minutes % 60 == 0 && 24 % (minutes / 60) == 0);
        if !ok {
            return Err(format!(
                "{s:?}: choose minutes that divide an hour (5m, 15m, 30m) or hours that divide a day (1h, 4h)"
            ));
        }
        Ok(Every(minutes))
    }

    /// systemd's `OnCalendar=`.
    pub fn on_calendar(self) -> String {
        match self.0 {
            m if m < 60 => format!("*-*-* *:00/{m}:00"),
            m => format!("*-*-* 00/{}:00:00", m / 60),
        }
    }

    /// The five time fields of a crontab line.
    pub fn cron_fields(self) -> String {
        match self.0 {
            1 => "* * * * *".into(),
            m if m < 60 => format!("*/{m} * * * *"),
            60 => "0 * * * *".into(),
            m => format!("0 */{} * * *", m / 60),
        }
    }
}

/// A word for a shell command line: quoted when it holds anything but safe characters.
pub fn shell_word(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The command the timer runs.
pub fn command(exe: &Path, config: &Path) -> String {
    format!(
        "{} --config {} run",
        shell_word(&exe.to_string_lossy()),
        shell_word(&config.to_string_lossy())
    )
}

/// systemd quotes ExecStart= words with double quotes; `%` is a specifier and `$` an
/// expansion, both doubled to stay literal.
fn exec_word(s: &str) -> String {
    let s = s.replace('%', "%%").replace('$', "$$");
    if s.chars().any(|c| c.is_whitespace() || "\"'\\;".contains(c)) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

pub fn service(exe: &Path, config: &Path) -> String {
    format!(
        "# Written by `cofre schedule install`; `cofre schedule remove` deletes it.
[Unit]
Description=cofre backups: every set that is due (cofre run)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={} --config {} run
# Backups yield to the machine's real work.
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
",
        exec_word(&exe.to_string_lossy()),
        exec_word(&config.to_string_lossy())
    )
}

/// The long-running unit of `cofre serve` (`schedule install --serve`). Not sandboxed with
/// ProtectSystem: an admin's restore writes where the admin says.
pub fn serve_service(exe: &Path, config: &Path) -> String {
    format!(
        "# Written by `cofre schedule install --serve`; `cofre schedule remove --serve` deletes it.
[Unit]
Description=cofre serve: the web page to find and restore any backed-up version
Wants=network-online.target
After=network-online.target

[Service]
ExecStart={} --config {} serve
Restart=on-failure
RestartSec=5
NoNewPrivileges=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
",
        exec_word(&exe.to_string_lossy()),
        exec_word(&config.to_string_lossy())
    )
}

pub fn timer(name: &str, every: Every) -> String {
    format!(
        "# Written by `cofre schedule install`; `cofre schedule remove` deletes it.
[Unit]
Description=Start {name}.service: cofre decides which sets are due

[Timer]
OnCalendar={}
# A run missed while the machine was off starts at boot; cofre catches up once.
Persistent=true
# Many machines on one bucket do not all start on the same second.
RandomizedDelaySec=60
AccuracySec=1s

[Install]
WantedBy=timers.target
",
        every.on_calendar()
    )
}

/// A line for `crontab -e` (`%` is a newline to cron, so it is escaped).
pub fn cron_line(exe: &Path, config: &Path, every: Every) -> String {
    format!(
        "{} {}",
        every.cron_fields(),
        command(exe, config).replace('%', "\\%")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_render() {
        // (input, OnCalendar, cron fields) or an error
        let ok = [
            ("15m", "*-*-* *:00/15:00", "*/15 * * * *"),
            ("1m", "*-*-* *:00/1:00", "* * * * *"),
            ("30m", "*-*-* *:00/30:00", "*/30 * * * *"),
            ("1h", "*-*-* 00/1:00:00", "0 * * * *"),
            ("60m", "*-*-* 00/1:00:00", "0 * * * *"),
            ("4h", "*-*-* 00/4:00:00", "0 */4 * * *"),
        ];
        for (s, cal, cron) in ok {
            let e = Every::parse(s).expect(s);
            assert_eq!(
                (e.on_calendar().as_str(), e.cron_fields().as_str()),
                (cal, cron),
                "{s}"
            );
        }
        for bad in ["7m", "5h", "0m", "15", "15s", "h", "90m"] {
            assert!(Every::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn odd_paths_stay_one_word() {
        let exe = Path::new("/opt/my tools/cofre");
        let cfg = Path::new("/etc/cofre/100%.toml");
        assert_eq!(
            cron_line(exe, cfg, Every::DEFAULT),
            "*/15 * * * * '/opt/my tools/cofre' --config /etc/cofre/100\\%.toml run"
        );
        assert!(service(exe, cfg)
            .contains("ExecStart=\"/opt/my tools/cofre\" --config /etc/cofre/100%%.toml run"));
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
