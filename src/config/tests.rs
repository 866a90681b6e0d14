use super::*;

/// The example the operations issue asks to keep working, as docs/config.md shows it.
const EXAMPLE: &str = r#"
repository = "s3://acme-backups/host1"          # or a local path
password_file = "/etc/cofre/password"
metrics_file = "/var/lib/prometheus/node-exporter/cofre.prom"

[notify]
webhook = ["https://hooks.slack.com/services/T000/B000/XXXX"]
on = ["failure"]
ping = "https://hc-ping.com/uuid"

[sets.db]
command = "pg_dump -Fp app"
stdin_name = "/dumps/app.sql"
every = "4h"
keep = { within = "30d", weekly = 52 }
storage_class = "STANDARD_IA"

[sets.files]
paths = ["/etc", "/srv/app/models"]
exclude = ["*.tmp"]
every = "1d"
at = "02:00"
keep = { daily = 30, weekly = 52 }
hooks = { before = "systemctl is-active app", failure = "logger -t cofre failed" }

[sets.db.weekly]
at = "Sun 02:00"
keep = { weekly = 52 }
storage_class = "GLACIER_IR"
"#;

fn p(text: &str) -> std::result::Result<Config, String> {
    parse(text, Path::new("cofre.toml")).map_err(|e| e.to_string())
}

#[test]
fn the_documented_example_parses() {
    let cfg = p(EXAMPLE).expect("example");
    assert_eq!(cfg.repository.as_deref(), Some("s3://acme-backups/host1"));
    assert_eq!(cfg.notify.on, vec![NotifyOn::Failure]);
    let db = &cfg.sets["db"];
    assert_eq!(db.src.command.as_deref(), Some("pg_dump -Fp app"));
    assert_eq!(db.main.every.as_deref(), Some("4h"));
    let weekly = &db.classes["weekly"];
    assert_eq!(weekly.storage_class.as_deref(), Some("GLACIER_IR"));
    assert_eq!(
        Schedule::from_config(weekly.every.as_deref(), weekly.at.as_deref()),
        Ok(Schedule::Weekly(6, 7200))
    );
    let policy = db
        .main
        .keep
        .as_ref()
        .expect("keep")
        .policy()
        .expect("policy");
    assert_eq!(policy.weekly, 52);
    assert_eq!(policy.within, Span::parse("30d").expect("span"));
    assert_eq!(
        cfg.sets["files"].main.hooks.before.as_deref(),
        Some("systemctl is-active app")
    );
    // docs/config.md carries this example verbatim.
    let doc = include_str!("../../docs/config.md");
    for line in EXAMPLE.lines().filter(|l| !l.trim().is_empty()) {
        assert!(doc.contains(line), "docs/config.md lacks: {line}");
    }
}

#[test]
fn mistakes_are_named_with_their_line_and_key() {
    // (file, what the message must contain: "cofre.toml:LINE: KEY" and the reason)
    let cases = [
        ("repo = \"x\"", "cofre.toml:1: repo: unknown field `repo`"),
        (
            "[sets.db]\npaths = [\"/a\"]\nevry = \"4h\"",
            "cofre.toml:3: sets.db.evry: unknown key `evry` in [sets.db]",
        ),
        (
            "[sets.db]\npaths = [\"/a\"]\n[sets.db.weekly]\nkeep_weekly = 3",
            "cofre.toml:4: sets.db.weekly.keep_weekly: unknown field `keep_weekly`",
        ),
        (
            "[sets.db]\nevery = \"4h\"",
            "cofre.toml:1: sets.db: give `paths` or `command`",
        ),
        (
            "[sets.db]\ncommand = \"pg_dump\"",
            "cofre.toml:2: sets.db.command: `command` needs `stdin_name`",
        ),
        (
            "[sets.db]\npaths = [\"/a\"]\nevery = \"4 hours\"",
            "cofre.toml:3: sets.db.every: every = \"4 hours\"",
        ),
        (
            "[sets.db]\npaths = [\"/a\"]\n\nkeep = { within = \"30 days\" }",
            "cofre.toml:4: sets.db.keep:",
        ),
        (
            "[sets.db]\npaths = [\"/a\"]\nkeep = { dayly = 3 }",
            "cofre.toml:3: sets.db.keep.dayly: unknown field `dayly`",
        ),
        (
            "[sets.db]\npaths = [\"/a\"]\nkeep = { daily = \"x\" }",
            "cofre.toml:3: sets.db.keep.daily: invalid type",
        ),
        (
            "[notify]\non = [\"always\"]",
            "cofre.toml:2: notify.on[0]: unknown variant `always`",
        ),
        (
            "[notify]\nwebhook = [\n \"https://a\",\n 3]",
            "cofre.toml:4: notify.webhook[1]: expected a URL",
        ),
        (
            "[notify]\nwebhook = [\"hooks.slack.com/x\"]",
            "cofre.toml:2: notify.webhook[0]: \"hooks.slack.com/x\" is not an http",
        ),
        (
            "[notify]\ntimeout_seconds = -1",
            "cofre.toml:2: notify.timeout_seconds",
        ),
        (
            "[sets.d]\npaths = [\"/a\"]\nping = \"x\"",
            "cofre.toml:3: sets.d.ping:",
        ),
        (
            "[sets.d]\ncommand = \"pg_dump\"\nstdin_name = \"/d.sql\"\npg_drill = { dsn = \"postgresql://u@h/db\" }",
            "cofre.toml:4: sets.d.pg_drill: dsn: give libpq's key=value form",
        ),
        (
            "[sets.d]\ncommand = \"pg_dump\"\nstdin_name = \"/d.sql\"\npg_drill = { checks = [] }",
            "cofre.toml:4: sets.d.pg_drill: give `dsn`",
        ),
        (
            "[sets.d]\ncommand = \"pg_basebackup\"\nstdin_name = \"/b.tar\"\npg_drill = { to = \"-1h\" }",
            "cofre.toml:4: sets.d.pg_drill: to: a point-in-time drill needs `wal = true`",
        ),
        (
            "[sets.d]\ncommand = \"pg_basebackup\"\nstdin_name = \"/b.tar\"\nwal = true\npg_drill = { to = \"1h\" }",
            "cofre.toml:5: sets.d.pg_drill: to: \"1h\": latest, or how long",
        ),
        (
            "[sets.d]\npaths = [\"/a\"]\nrto = \"30 minutes\"",
            "cofre.toml:3: sets.d.rto: \"30 minutes\"",
        ),
        (
            "[sets.d]\npaths = [\"/a\"]\ncompression = \"gzip\"",
            "cofre.toml:3: sets.d.compression: compression \"gzip\"",
        ),
        (
            "[sets.\"a b\"]\npaths = [\"/a\"]",
            "cofre.toml:1: sets.a b: a set name",
        ),
        ("repository = \"x\"\npassword_file = ", "cofre.toml:2: "),
        (
            "[sets.db]\npaths = \"/a\"",
            "cofre.toml:2: sets.db.paths: invalid type",
        ),
        (
            "[sets.db]\npaths = [\"/a\"]\n[sets.db.weekly]\nat = \"Sun 2\"",
            "cofre.toml:4: sets.db.weekly.at: at = \"Sun 2\"",
        ),
    ];
    for (text, want) in cases {
        let err = p(text).expect_err(text);
        assert!(err.contains(want), "{text:?}:\n got: {err}\nwant: {want}");
    }
}

#[test]
fn flags_win_over_the_file() {
    let file = Some("s3://from-file".to_string());
    assert_eq!(
        resolve(Some("/flag".to_string()), file.as_ref()).as_deref(),
        Some("/flag")
    );
    assert_eq!(
        resolve(None, file.as_ref()).as_deref(),
        Some("s3://from-file")
    );
    assert_eq!(resolve::<String>(None, None), None);
}

#[test]
fn the_readme_example_parses() {
    let readme = include_str!("../../README.md");
    let start = readme.find("```toml\n").expect("a toml block in README") + 8;
    let text = &readme[start..start + readme[start..].find("```").expect("block end")];
    let cfg = p(text).expect("README's configuration");
    assert_eq!(cfg.sets.len(), 2);
    assert_eq!(
        cfg.sets["db"].classes["weekly"]
            .keep
            .as_ref()
            .map(|k| k.weekly),
        Some(52)
    );
    assert_eq!(cfg.sets["files"].main.prune, Some(true));
}

#[test]
fn loading_parses_schedules_policies_and_durations_once() {
    let text = format!("{EXAMPLE}\n[sets.www]\npaths = [\"/srv\"]\nrto = \"30m\"\nrpo = \"4h\"\ndrill_every = \"7d\"\n");
    let cfg = p(&text).expect("parse");
    // (set, class or "" for the main one) -> the schedule it was given.
    let table: &[(&str, &str, Schedule)] = &[
        ("db", "", Schedule::Every(4 * 3600)),
        ("db", "weekly", Schedule::Weekly(6, 7200)),
        ("files", "", Schedule::Daily(7200)),
        ("www", "", Schedule::Manual),
    ];
    for (set, class, want) in table {
        let s = &cfg.sets[*set];
        let c = if class.is_empty() {
            &s.main
        } else {
            &s.classes[*class]
        };
        assert_eq!(c.schedule, *want, "{set} {class}");
    }
    let policy = cfg.sets["db"].main.policy.as_ref().expect("db keeps");
    assert_eq!(
        (policy.weekly, policy.within),
        (52, Span::parse("30d").expect("span"))
    );
    assert!(cfg.sets["www"].main.policy.is_none());
    let www = &cfg.sets["www"].src;
    assert_eq!(
        (www.rto_secs, www.rpo_secs, www.drill_every_secs),
        (Some(1800), Some(4 * 3600), Some(7 * 86_400))
    );
    assert_eq!(cfg.sets["db"].src.rto_secs, None);
}

#[test]
fn wal_keys_parse_or_name_what_is_wrong() {
    let base = "[sets.pg]\ncommand = \"pg_basebackup -D - -Ft -X none\"\nstdin_name = \"/pg/base.tar\"\nwal = true\n";
    // (extra keys, flush seconds, spool) or the key an error names.
    type Want<'a> = Result<(Option<u64>, Option<&'a str>), &'a str>;
    let table: &[(&str, Want)] = &[
        ("", Ok((None, None))),
        ("wal_flush = \"30s\"\n", Ok((Some(30), None))),
        (
            "wal_flush = \"0s\"\nwal_spool = \"/var/lib/postgresql/spool\"\n",
            Ok((Some(0), Some("/var/lib/postgresql/spool"))),
        ),
        ("wal_flush = \"soon\"\n", Err("wal_flush")),
        ("wal_spol = \"/x\"\n", Err("wal_spol")),
    ];
    for (extra, want) in table {
        let got = p(&format!("{base}{extra}"));
        match (got, want) {
            (Ok(cfg), Ok((secs, spool))) => {
                let src = &cfg.sets["pg"].src;
                assert_eq!(src.wal, Some(true));
                assert_eq!(src.wal_flush_secs, *secs, "{extra}");
                assert_eq!(
                    src.wal_spool.as_deref(),
                    spool.map(std::path::Path::new),
                    "{extra}"
                );
            }
            (Err(e), Err(key)) => assert!(e.to_string().contains(key), "{extra}: {e}"),
            (got, want) => panic!("{extra}: got {:?}, want {want:?}", got.map(|_| ())),
        }
    }
}

#[test]
fn serve_tables_parse_or_name_what_is_wrong() {
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    let user = |name: &str, role: &str, h: &str| {
        format!("[[serve.users]]\nname = \"{name}\"\nrole = \"{role}\"\npassword_hash = \"{h}\"\n")
    };
    let table: Vec<(String, std::result::Result<usize, &str>)> = vec![
        ("".into(), Ok(0)),
        ("[serve]\nlisten = \"0.0.0.0:8443\"\n".into(), Ok(0)),
        (
            user("ana", "admin", hash) + &user("bo", "viewer", hash),
            Ok(2),
        ),
        (user("ana", "root", hash), Err("unknown variant `root`")),
        (
            user("ana", "viewer", "hunter2"),
            Err("cofre serve passwd ana"),
        ),
        (user("a b", "viewer", hash), Err("a user name is")),
        (
            user("ana", "viewer", hash) + &user("ana", "admin", hash),
            Err("listed twice"),
        ),
        (
            "[serve]\ntls_cert = \"/c.pem\"\n".into(),
            Err("both `tls_cert` and `tls_key`"),
        ),
        ("[serve]\nport = 8080\n".into(), Err("unknown field `port`")),
    ];
    for (text, want) in table {
        match (p(&text), want) {
            (Ok(cfg), Ok(n)) => assert_eq!(cfg.serve.users.len(), n, "{text}"),
            (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }
    let cfg = p(&user("ana", "admin", hash)).expect("parses");
    assert_eq!(cfg.serve.users[0].role, Role::Admin);
}

#[test]
fn copy_targets_come_from_the_set_else_the_file() {
    let base = "copy_to = [\"s3://offsite/host1\", \"/mnt/usb/cofre\"]\n";
    // (set table, targets of set `a`)
    let table: &[(&str, &[&str])] = &[
        ("", &["s3://offsite/host1", "/mnt/usb/cofre"]),
        ("copy_to = [\"s3://other/x\"]", &["s3://other/x"]),
        ("copy_to = []", &[]),
    ];
    for (set, want) in table {
        let text = format!("{base}[sets.a]\npaths = [\"/etc\"]\n{set}\n");
        let cfg = p(&text).unwrap_or_else(|e| panic!("{set}: {e}"));
        assert_eq!(cfg.copy_targets("a"), *want, "{set}");
    }
    // A location cofre cannot open is named with its line and key.
    let e = p("copy_to = [\"ftp://nope\"]\n").expect_err("ftp");
    assert!(e.contains("cofre.toml:1: copy_to[0]:"), "{e}");
    let e =
        p("[sets.a]\npaths = [\"/etc\"]\ncopy_to = [\"/ok\", \"gopher://x\"]\n").expect_err("set");
    assert!(e.contains("cofre.toml:3: sets.a.copy_to[1]:"), "{e}");
}

#[test]
fn a_class_says_whether_it_is_self_contained() {
    let text = |v: &str| {
        format!("[sets.db]\ncommand = \"pg_dump\"\nstdin_name = \"db.sql\"\n[sets.db.weekly]\nstorage_class = \"DEEP_ARCHIVE\"\n{v}")
    };
    // (line, parsed value or error fragment)
    let cases = [
        ("", Ok(None)),
        ("self_contained = false", Ok(Some(false))),
        ("self_contained = true", Ok(Some(true))),
        ("self_contained = \"yes\"", Err("self_contained")),
    ];
    for (line, want) in cases {
        let got = p(&text(line)).map(|c| c.sets["db"].classes["weekly"].self_contained);
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "{line}"),
            (Err(e), Err(frag)) => assert!(e.contains(frag), "{line}: {e}"),
            (g, w) => panic!("{line}: {g:?}, wanted {w:?}"),
        }
    }
}

#[test]
fn pitr_drill_targets_parse() {
    let cases: &[(&str, Result<Option<u64>, &str>)] = &[
        ("latest", Ok(None)),
        ("-1h", Ok(Some(3600))),
        ("-90s", Ok(Some(90))),
        ("-2d", Ok(Some(172_800))),
        ("1h", Err("latest, or how long")),
        ("-1w", Err("the unit must be")),
        ("-", Err("expected a number")),
    ];
    for (text, want) in cases {
        match (parse_drill_to(text), want) {
            (Ok(got), Ok(w)) => assert_eq!(got, *w, "{text}"),
            (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
            (got, _) => panic!("{text}: {got:?}, want {want:?}"),
        }
    }
}
