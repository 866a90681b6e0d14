//! Point-in-time recovery against a real PostgreSQL: WAL archived with `cofre wal-push`
//! while pgbench runs, base backups taken with pg_basebackup as a set, and `cofre pitr`
//! bringing the cluster back to a chosen second — on timeline 1 and, after a promotion,
//! on timeline 2 — with exactly the rows committed before it.

mod common;
use common::pg::Postgres;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The `postgres` user's uid and gid.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a number")
    };
    (id("-u"), id("-g"))
}

/// A test area the `postgres` user owns: the repository, catalog and spool are its, as
/// they are when PostgreSQL runs `cofre wal-push` itself.
struct Area {
    env: Env,
}

impl Area {
    fn new() -> Area {
        let env = Env::new();
        let (uid, gid) = postgres_ids();
        std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::os::unix::fs::chown(env.dir.path(), Some(uid), Some(gid)).expect("chown");
        let pw = env.path("password");
        std::fs::write(&pw, PASSWORD).expect("password file");
        std::os::unix::fs::chown(&pw, Some(uid), Some(gid)).expect("chown");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Area { env }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.env.path(rel)
    }

    /// The options every cofre call here starts with (also in archive_command).
    fn globals(&self) -> Vec<String> {
        vec![
            "--repo".into(),
            self.path("repo").display().to_string(),
            "--password-file".into(),
            self.path("password").display().to_string(),
            "--catalog".into(),
            self.path("cache/catalog.db").display().to_string(),
        ]
    }

    /// cofre as the postgres user, with `globals` (not yet run).
    fn command(&self, globals: &[String]) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_cofre"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", self.env.dir.path())
        .env("XDG_CACHE_HOME", self.path("cache"))
        .args(globals);
        c
    }

    /// `cofre args` as the postgres user.
    fn cofre(&self, args: &[&str]) -> Output {
        self.command(&self.globals())
            .args(args)
            .output()
            .expect("cofre")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cofre(args);
        assert!(out.status.success(), "cofre {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn archive_command(&self) -> String {
        let mut words = vec![env!("CARGO_BIN_EXE_cofre").to_string()];
        words.extend(self.globals());
        words.extend(["wal-push", "--set", "db", "--spool"].map(String::from));
        words.push(self.path("spool").display().to_string());
        words.extend(["--flush-every", "1s", "%p"].map(String::from));
        words.join(" ")
    }

    /// A cluster archiving into this area's repository.
    fn cluster(&self) -> Postgres {
        self.cluster_archiving_with(&self.archive_command())
    }

    fn cluster_archiving_with(&self, archive_command: &str) -> Postgres {
        let conf = format!(
            "\nwal_level = replica\narchive_mode = on\narchive_command = '{archive_command}'\n\
             track_commit_timestamp = on\nlog_timezone = 'UTC'\nmax_wal_size = 256MB\n"
        );
        Postgres::start_with(&self.path("pg"), &conf)
    }

    /// Waits until `sql`'s server has archived everything up to now and the flusher has
    /// stored the spool.
    fn wait_archived(&self, psql: &dyn Fn(&str) -> String) {
        let last = psql("select pg_walfile_name(pg_switch_wal())");
        let spool = self.path("spool");
        let done = wait_for(Duration::from_secs(90), || {
            let archived = psql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
            let waiting = std::fs::read_dir(&spool)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with('0'))
                        .count()
                })
                .unwrap_or(0);
            archived.as_str() >= last.as_str() && waiting == 0
        });
        assert!(
            done,
            "WAL up to {last} archived and flushed: {}",
            self.flusher_log()
        );
    }

    /// A base backup of `pg` as a snapshot of set db.
    fn base_backup(&self, pg: &Postgres) -> String {
        self.ok(&[
            "ingest",
            "--set",
            "db",
            "--stdin-name",
            "/pg/base.tar",
            "--stdin-from-command",
            &basebackup_command(pg),
        ])
    }

    /// The names of set db's WAL files in the repository, in order.
    fn archived_names(&self) -> Vec<String> {
        let spool = self.path("spool").display().to_string();
        let listed = self.ok(&["--json", "wal", "list", "--set", "db", "--spool", &spool]);
        let v: serde_json::Value = serde_json::from_str(&listed).expect("json");
        v["archived"]
            .as_array()
            .expect("list")
            .iter()
            .map(|e| e["name"].as_str().expect("name").to_string())
            .collect()
    }

    fn flusher_log(&self) -> String {
        std::fs::read_to_string(self.path("spool/flusher.log")).unwrap_or_default()
    }
}

/// The set's command: a base backup of `pg` as one tar stream.
fn basebackup_command(pg: &Postgres) -> String {
    format!(
        "{} -h {} -U postgres -D - -Ft -X none -c fast",
        pg.bin.join("pg_basebackup").display(),
        pg.sock.display()
    )
}

/// A restored cluster, stopped when dropped.
struct Restored {
    dir: PathBuf,
    port: u16,
}

impl Restored {
    fn psql(&self, sql: &str) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-XAtc", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "{sql}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(common::pg::pg_bin().join("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn pitr(area: &Area, to: &str, dir: &str, port: u16, extra: &[&str]) -> Restored {
    let target = area.path(dir);
    let bin = common::pg::pg_bin();
    let mut args = vec![
        "pitr",
        "--set",
        "db",
        "--to",
        to,
        "--target",
        target.to_str().expect("utf-8"),
        "--start",
        "--pg-bin",
        bin.to_str().expect("utf-8"),
    ];
    let port_s = port.to_string();
    args.extend(["--port", &port_s]);
    args.extend(extra);
    let out = area.cofre(&args);
    let r = Restored { dir: target, port };
    assert!(
        out.status.success(),
        "pitr to {to}: {out:?}\n{}",
        std::fs::read_to_string(r.dir.join("cofre-pitr.log")).unwrap_or_default()
    );
    r
}

fn markers(psql: &dyn Fn(&str) -> String) -> String {
    psql("select coalesce(string_agg(i::text, ',' order by i), '') from markers")
}

fn seq(r: std::ops::RangeInclusive<u32>) -> Vec<String> {
    r.map(|i| i.to_string()).collect()
}

#[test]
fn pitr_brings_back_every_row_committed_before_the_target_and_none_after() {
    let area = Area::new();
    let pg = area.cluster();
    let sock = pg.sock.display().to_string();
    let q = |sql: &str| pg.psql("postgres", sql);
    area.ok(&["init"]);
    q("create table markers (i int primary key)");
    q("create table keep as select g as x from generate_series(1, 1000) g");
    let basebackup = basebackup_command(&pg);
    let base_backup = || area.base_backup(&pg);
    base_backup();

    // pgbench writes WAL all along.
    let pgbench = pg.bin.join("pgbench");
    let pgbench = pgbench.to_str().expect("utf-8");
    common::pg::as_postgres(&[pgbench, "-h", &sock, "-i", "-s", "2", "-q", "postgres"]);
    let mut load = Command::new("runuser")
        .args([
            "-u", "postgres", "--", pgbench, "-h", &sock, "-c", "2", "-T", "6", "postgres",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pgbench");
    let now = |q: &dyn Fn(&str) -> String| {
        q("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    };
    let mark = |q: &dyn Fn(&str) -> String, r: std::ops::RangeInclusive<u32>| {
        for i in r {
            q(&format!("insert into markers values ({i})"));
        }
    };
    mark(&q, 1..=20);
    let t1 = now(&q);
    mark(&q, 21..=40);
    let t2 = now(&q);
    q("drop table keep");
    mark(&q, 41..=50);
    assert!(load.wait().expect("pgbench").success());
    area.wait_archived(&q);

    // Every commit is where the target puts it (commit timestamps tracked).
    let before = q(&format!(
        "select string_agg(i::text, ',' order by i) from markers \
         where pg_xact_commit_timestamp(xmin) <= '{t1}'"
    ));
    assert_eq!(before, seq(1..=20).join(","));

    // Back to t1, on a new data directory; the copy keeps archiving (it becomes timeline 2).
    let r1 = pitr(&area, &t1, "r1", 5491, &["--keep-archiving"]);
    assert_eq!(markers(&|s| r1.psql(s)), seq(1..=20).join(","));
    assert_eq!(r1.psql("select count(*) from keep"), "1000");
    assert_eq!(
        r1.psql("select timeline_id from pg_control_checkpoint()"),
        "2"
    );

    // Timeline 2 goes on and is archived: its history file too.
    let q1 = |s: &str| r1.psql(s);
    mark(&q1, 101..=105);
    let t3 = now(&q1);
    mark(&q1, 106..=110);
    area.wait_archived(&q1);
    let listed = area.archived_names();
    assert!(
        listed.contains(&"00000002.history".to_string()),
        "{listed:?}"
    );

    // Just before the drop, on timeline 1.
    let r2 = pitr(&area, &t2, "r2", 5492, &["--timeline", "1"]);
    assert_eq!(markers(&|s| r2.psql(s)), seq(1..=40).join(","));
    assert_eq!(
        r2.psql("select count(*) from keep"),
        "1000",
        "the dropped table is back"
    );
    assert_eq!(r2.psql("select current_setting('archive_mode')"), "off");
    drop(r2);

    // A time on timeline 2: replay follows the promotion through its history file.
    let r3 = pitr(&area, &t3, "r3", 5493, &[]);
    let mut want = seq(1..=20);
    want.extend(seq(101..=105));
    assert_eq!(markers(&|s| r3.psql(s)), want.join(","));

    drop(r3);
    drop(r1);

    // Retention: a second base backup, the first forgotten; WAL before the second one's
    // start goes, the rest replays to the end of timeline 1.
    let first = area.cofre(&["--json", "snapshots", "--set", "db"]);
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).expect("json");
    let first = first[0]["id"].as_str().expect("id").to_string();
    base_backup();
    mark(&q, 51..=55);
    area.wait_archived(&q);
    let before = area.archived_names();
    let out = area.ok(&["wal", "prune", "--set", "db", "--dry-run"]);
    assert!(out.contains("would delete"), "{out}");
    assert_eq!(area.archived_names(), before, "a dry run deletes nothing");
    area.ok(&["forget", &first]);
    let out = area.ok(&["--json", "wal", "prune", "--set", "db"]);
    let pruned: serde_json::Value = serde_json::from_str(&out).expect("json");
    let start = pruned["oldest_start"].as_str().expect("start").to_string();
    assert!(pruned["files_deleted"].as_u64() > Some(0), "{pruned}");
    let after = area.archived_names();
    assert!(after.contains(&"00000002.history".to_string()), "{after:?}");
    assert!(after.contains(&start), "{after:?}");
    assert!(
        !after.contains(&"000000010000000000000001".to_string()),
        "{after:?}"
    );
    let r4 = pitr(&area, "latest", "r4", 5494, &["--timeline", "1"]);
    assert_eq!(markers(&|s| r4.psql(s)), seq(1..=55).join(","));
    assert_eq!(
        r4.psql("select count(*) from pg_tables where tablename = 'keep'"),
        "0"
    );

    // Every remaining file reads back, and no gap is left where replay can start.
    let out = area.cofre(&["check", "--read-data"]);
    assert!(out.status.success(), "{out:?}");
    drop(r4);

    // The drill recovers the cluster to the end of the archive in a scratch cluster and
    // checks it there: it follows the timeline archiving now (1), not the restored copy's
    // (2); the RPO is the last archived WAL file's age, not the base backup's.
    let drilled = drill(&area, &basebackup, "latest");
    let report = &drilled[0];
    eprintln!("the drill's report: {report:#}");
    assert_eq!(report["passed"], true, "{report:#}");
    let pg = &report["pg"];
    assert_eq!(pg["checks"][0]["output"], "55", "{pg:#}");
    assert_eq!(pg["replay"]["ok"], true, "{pg:#}");
    // The RPO is the age of the last commit recovered (marker 55, committed just before
    // the last wait_archived), not the base backup's.
    let recovered = pg["recovered_unix"].as_i64().expect("recovered_unix");
    let rpo = report["rpo_seconds"].as_i64().expect("rpo_seconds");
    let drill_time = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (drill_time - recovered - rpo).abs() <= 60 && rpo < 600,
        "{report:#}"
    );
    // A point before every base backup fails the drill and says why.
    let drilled = drill(&area, &basebackup, "-1d");
    assert_eq!(drilled[0]["passed"], false, "{:#}", drilled[0]);
    let problems = drilled[0]["problems"].to_string();
    assert!(
        problems.contains("no base backup of set db ended before"),
        "{problems}"
    );

    // stats prices the WAL: its objects are its PUTs.
    let stats: serde_json::Value =
        serde_json::from_str(&area.ok(&["--json", "stats", "--provider", "aws"])).expect("json");
    let wal = &stats["wal"]["db"];
    let puts = wal["puts_per_month"].as_u64().expect("WAL PUTs");
    assert!(puts > 0, "{stats:#}");
    assert_eq!(Some(puts), wal["objects"].as_u64(), "{stats:#}");
    assert!(stats["puts_per_month"].as_u64().expect("PUTs") >= puts);
}

/// `cofre drill --set db` with a point-in-time `pg_drill` to `to`: the JSON reports.
fn drill(area: &Area, basebackup: &str, to: &str) -> serde_json::Value {
    let cfg = area.path("drill.toml");
    // The command reaches the recovered cluster through PGHOST, PGPORT and PGDATABASE.
    let command = "psql -XAtc 'select 1' | grep -qx 1";
    std::fs::write(
        &cfg,
        format!(
            "[sets.db]\ncommand = {basebackup:?}\nstdin_name = \"/pg/base.tar\"\nwal = true\n\
             rpo = \"10m\"\npg_drill = {{ to = {to:?}, checks = [\"select count(*) from markers\"], \
             command = {command:?} }}\n"
        ),
    )
    .expect("write config");
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(&cfg, Some(uid), Some(gid)).expect("chown");
    let mut globals = area.globals();
    globals.extend(["--config".into(), cfg.display().to_string()]);
    let out = area
        .command(&globals)
        .args(["--json", "drill", "--set", "db"])
        .output()
        .expect("drill");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The rules of archive_command and restore_command, without a server: the same name
/// with the same bytes is fine, with other bytes it fails (below exit 126); a name the
/// archive does not have gets exit 1, any other failure 126; a push or a flush killed
/// at any moment loses nothing and leaves nothing half-written.
#[test]
fn wal_push_and_fetch_follow_postgresqls_rules() {
    let area = Area::new();
    area.ok(&["init"]);
    let wal = area.path("pg_wal");
    std::fs::create_dir_all(&wal).expect("mkdir");
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(&wal, Some(uid), Some(gid)).expect("chown");
    let spool = area.path("spool");
    let spool_s = spool.to_str().expect("utf-8").to_string();
    let file = |name: &str, seed: u64| -> PathBuf {
        let p = wal.join(name);
        let mut data = noise(1 << 20, seed);
        data.extend(vec![0u8; 15 << 20]);
        std::fs::write(&p, data).expect("write");
        p
    };
    let push = |p: &Path, extra: &[&str]| -> Output {
        let mut args = vec![
            "wal-push",
            "--set",
            "db",
            "--spool",
            &spool_s,
            "--flush-every",
            "1h",
        ];
        args.extend(extra);
        args.push(p.to_str().expect("utf-8"));
        area.cofre(&args)
    };
    let a = file("000000010000000000000001", 1);
    assert!(push(&a, &[]).status.success());
    assert!(push(&a, &[]).status.success(), "the same bytes again: fine");
    let a2 = area.path("other/000000010000000000000001");
    std::fs::create_dir_all(a2.parent().expect("dir")).expect("mkdir");
    std::fs::write(&a2, b"other bytes").expect("write");
    let out = push(&a2, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("different content"),
        "{out:?}"
    );
    let bad = area.path("other/RECOVERYXLOG");
    std::fs::write(&bad, b"x").expect("write");
    assert_eq!(push(&bad, &[]).status.code(), Some(2));

    // Pushes killed at many moments: each file is in the spool whole or not at all, and
    // PostgreSQL's retry (the same push again) stores it.
    let names: Vec<String> = (2..14)
        .map(|i| format!("0000000100000000000000{i:02X}"))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let p = file(name, 100 + i as u64);
        let mut child = area
            .command(&area.globals())
            .args([
                "wal-push",
                "--set",
                "db",
                "--spool",
                &spool_s,
                "--flush-every",
                "1h",
            ])
            .arg(&p)
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(3 * i as u64));
        let _ = child.kill();
        let _ = child.wait();
        let spooled = spool.join(name);
        if spooled.exists() {
            assert_eq!(
                std::fs::read(&spooled).expect("read"),
                std::fs::read(&p).expect("read")
            );
        }
        assert!(push(&p, &[]).status.success(), "retry of {name}");
    }

    // Flushes killed at many moments, then one that finishes: every file is stored.
    for delay in [0u64, 20, 60, 150, 300] {
        let mut child = area
            .command(&area.globals())
            .args(["wal", "flush", "--set", "db", "--spool", &spool_s])
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
    }
    area.ok(&["wal", "flush", "--set", "db", "--spool", &spool_s]);
    let listed: serde_json::Value = serde_json::from_str(
        &area.ok(&["--json", "wal", "list", "--set", "db", "--spool", &spool_s]),
    )
    .expect("json");
    assert_eq!(listed["spool"], serde_json::json!([]));
    let mut archived: Vec<String> = listed["archived"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect();
    archived.dedup();
    let mut want = vec!["000000010000000000000001".to_string()];
    want.extend(names.iter().cloned());
    assert_eq!(archived, want);

    // Once archived, other bytes under the name still fail.
    assert_eq!(push(&a2, &[]).status.code(), Some(1));

    // wal-fetch: each file back exactly (the first from the store, later ones prefetched);
    // a missing name exits 1; a failure to read the repository exits 126.
    let fetch = |name: &str, dest: &Path, globals: &[String]| -> Output {
        area.command(globals)
            .args(["wal-fetch", "--set", "db", name])
            .arg(dest)
            .output()
            .expect("wal-fetch")
    };
    let dest = area.path("pg_wal/RECOVERYXLOG");
    for name in &want {
        let out = fetch(name, &dest, &area.globals());
        assert!(out.status.success(), "{name}: {out:?}");
        assert_eq!(
            std::fs::read(&dest).expect("read"),
            std::fs::read(wal.join(name)).expect("read"),
            "{name}"
        );
    }
    let out = fetch("00000002.history", &dest, &area.globals());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let mut wrong = area.globals();
    let pw2 = area.path("wrong-password");
    std::fs::write(&pw2, "not it").expect("write");
    std::fs::set_permissions(&pw2, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    wrong[3] = pw2.display().to_string();
    let out = fetch("0000000100000000000000FF", &dest, &wrong);
    assert_eq!(out.status.code(), Some(126), "{out:?}");

    // A segment that never reached the archive: check names it and what it breaks.
    assert!(area.cofre(&["check", "--read-data"]).status.success());
    for name in ["000000010000000000000010", "000000010000000000000012"] {
        assert!(push(&file(name, 7), &[]).status.success());
    }
    area.ok(&["wal", "flush", "--set", "db", "--spool", &spool_s]);
    let out = area.cofre(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WAL 00000001000000000000000E..00000001000000000000000F is missing")
            && err.contains("WAL 000000010000000000000011 is missing"),
        "{err}"
    );
}

/// archive_command's first try of every WAL file is `wal-push` killed (SIGKILL) at a
/// different moment, from before it starts copying to after it has finished; PostgreSQL
/// retries, and every committed row comes back from the archive, which holds each file
/// exactly once.
#[test]
fn wal_push_killed_under_postgresql_loses_nothing() {
    let area = Area::new();
    area.ok(&["init"]);
    let push = area.archive_command().replace(" %p", "");
    let script = area.path("kill-first-try.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             # $1 = %p, $2 = %f. The first try of each file is killed after 0-150 ms.\n\
             tries={dir}/tries; mkdir -p $tries\n\
             if [ ! -e $tries/$2 ]; then\n\
               touch $tries/$2\n\
               n=$(ls $tries | wc -l)\n\
               {push} \"$1\" & pid=$!\n\
               sleep $(( n * 13 % 150 ))e-3\n\
               kill -9 $pid; wait $pid\n\
               exit 1\n\
             fi\n\
             exec {push} \"$1\"\n",
            dir = area.path("").display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let pg = area.cluster_archiving_with(&format!("{} %p %f", script.display()));
    let q = |sql: &str| pg.psql("postgres", sql);
    q("create table markers (i int primary key, pad text)");
    area.base_backup(&pg);
    // Twelve segments, each with markers, each archived through a killed first try.
    for seg in 0..12u32 {
        q(&format!(
            "insert into markers select g, repeat('x', 200) from generate_series({}, {}) g",
            seg * 100 + 1,
            seg * 100 + 100
        ));
        q("select pg_switch_wal()");
    }
    area.wait_archived(&q);
    let tries = std::fs::read_dir(area.path("tries"))
        .expect("tries")
        .count();
    assert!(tries >= 12, "every file's first try was killed: {tries}");

    let r = pitr(&area, "latest", "restored", 5495, &[]);
    assert_eq!(
        r.psql("select count(*), min(i), max(i) from markers"),
        "1200|1|1200"
    );
    let names = area.archived_names();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names, unique, "each file archived once");
    let out = area.cofre(&["check", "--read-data"]);
    assert!(out.status.success(), "{out:?}");
}
