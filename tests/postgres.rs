//! The main job, for real: a PostgreSQL database dumped with pg_dump through
//! `--stdin-from-command`, then restored with pg_restore from the mount, row for row.

mod common;
use common::pg::{as_postgres, Postgres};
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const FINGERPRINT: &str = "select count(*) || ':' || md5(string_agg(id || ',' || customer || ',' || amount || ',' || note, ';' order by id)) from orders";

/// A cluster in the test's directory with database `app` holding `rows` orders.
fn orders_database(env: &Env, rows: u32) -> Postgres {
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let pg = Postgres::start(&env.path("pg"));
    pg.psql("postgres", "create database app");
    pg.psql(
        "app",
        &format!(
            "create table orders (id bigint primary key, customer text, amount numeric(12,2), note text); \
             insert into orders select i, 'customer-' || (i % 997), (i * 37 % 100000) / 100.0, md5(i::text) \
             from generate_series(1, {rows}) i;"
        ),
    );
    pg
}

#[test]
fn pg_dump_ingest_mount_pg_restore() {
    let env = Env::new();
    let pg = orders_database(&env, 200_000);
    pg.psql("app", "create index on orders (customer)");
    let before = pg.psql("app", FINGERPRINT);
    assert!(before.starts_with("200000:"), "{before}");
    env.init();
    let sock = pg.sock.display().to_string();
    let dump = format!("runuser -u postgres -- pg_dump -h {sock} -Fc app");
    env.ok(&[
        "ingest",
        "--set",
        "db",
        "--stdin-name",
        "/dumps/app.dump",
        "--stdin-from-command",
        &dump,
    ]);

    // A failing pg_dump (no such database) is never a backup.
    let bad = format!("runuser -u postgres -- pg_dump -h {sock} -Fc no_such_db");
    let out = env.run(&[
        "ingest",
        "--set",
        "db",
        "--stdin-name",
        "/dumps/app.dump",
        "--stdin-from-command",
        &bad,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no_such_db"),
        "{out:?}"
    );
    assert_eq!(
        env.json(&["snapshots", "--set", "db"])
            .as_array()
            .expect("list")
            .len(),
        1
    );

    // Restore from the mount into a new database, as the monthly drill does.
    let m = Mount::start(&env, "mnt", &[]);
    let file = m.dir.join("db/latest/dumps/app.dump");
    pg.psql("postgres", "create database restored");
    let restore = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat '{}' | runuser -u postgres -- pg_restore -h {sock} -d restored --exit-on-error",
            file.display()
        ))
        .output()
        .expect("pg_restore");
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    assert_eq!(pg.psql("restored", FINGERPRINT), before);
    assert_eq!(
        pg.psql(
            "restored",
            "select count(*) from pg_indexes where tablename = 'orders'"
        ),
        "2"
    );
    m.stop();
}

/// The users' main job from the configuration file: `cofre run` dumps the database every
/// 4 hours with `pg_dump -Fp`; the dump from the repository loads into a new database
/// row for row, and a dump that fails is never a snapshot (the set fails, exit 1).
#[test]
fn pg_dump_set_runs_from_the_configuration() {
    let env = Env::new();
    let pg = orders_database(&env, 50_000);
    let before = pg.psql("app", FINGERPRINT);
    env.init();
    let sock = pg.sock.display().to_string();
    let cfg = env.path("cofre.toml");
    let write_cfg = |db: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[sets.db]\ncommand = \"runuser -u postgres -- pg_dump -h {sock} -Fp {db}\"\n\
                 stdin_name = \"/dumps/app.sql\"\nevery = \"4h\"\nkeep = {{ within = \"30d\" }}\n"
            ),
        )
        .expect("write config");
    };
    write_cfg("app");
    let run = |now: &str| {
        env.cmd()
            .env("COFRE_CONFIG", &cfg)
            .args(["run", "--now", now])
            .output()
            .expect("run")
    };
    let out = run("2026-11-23T00:00:00Z");
    assert!(out.status.success(), "{out:?}");

    write_cfg("no_such_db");
    let out = run("2026-11-23T04:00:00Z");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no_such_db"),
        "{out:?}"
    );
    let snaps = env.json(&["snapshots", "--set", "db"]);
    assert_eq!(snaps.as_array().expect("list").len(), 1, "{snaps}");
    assert_eq!(snaps[0]["tags"], serde_json::json!(["4h"]), "{snaps}");

    let target = env.path("restored");
    env.ok(&[
        "restore",
        "latest:/dumps/app.sql",
        "--set",
        "db",
        "--target",
        target.to_str().expect("utf-8"),
    ]);
    let sql = target.join("dumps/app.sql");
    std::fs::set_permissions(&sql, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(target.join("dumps"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    pg.psql("postgres", "create database restored");
    as_postgres(&[
        "psql",
        "-h",
        &sock,
        "-d",
        "restored",
        "-v",
        "ON_ERROR_STOP=1",
        "-q",
        "-f",
        sql.to_str().expect("utf-8"),
    ]);
    assert_eq!(pg.psql("restored", FINGERPRINT), before);
}

/// The monthly drill's database part, against the real server: the set's dump is restored
/// from the mount into a scratch database, the check queries and a user command run there,
/// and the scratch database is dropped; a dump that does not restore fails the drill.
#[test]
fn drill_restores_the_dump_into_a_scratch_database() {
    let env = Env::new();
    let pg = orders_database(&env, 20_000);
    let before = pg.psql("app", FINGERPRINT);
    env.init();
    let sock = pg.sock.display().to_string();
    let cfg = env.path("cofre.toml");
    let tmp = env.path("tmp");
    std::fs::create_dir_all(&tmp).expect("mkdir");
    let write_cfg = |command: &str| {
        std::fs::write(
            &cfg,
            format!(
                r#"[sets.db]
command = {command:?}
stdin_name = "/dumps/app.dump"
every = "4h"
pg_drill = {{ dsn = "host={sock} user=postgres", checks = ["SELECT count(*) FROM orders", "SELECT 1 FROM orders LIMIT 1"], command = "test \"$(psql \"$COFRE_DRILL_DSN\" -XAt -c 'select count(*) from orders')\" = 20000" }}
"#
            ),
        )
        .expect("write config");
    };
    write_cfg(&format!("runuser -u postgres -- pg_dump -h {sock} -Fc app"));
    let cmd = |args: &[&str]| {
        env.cmd()
            .env("COFRE_CONFIG", &cfg)
            .env("TMPDIR", &tmp)
            .args(args)
            .output()
            .expect("cofre")
    };
    let out = cmd(&["run", "--now", "2026-11-23T00:00:00Z"]);
    assert!(out.status.success(), "{out:?}");
    // The incident: the database is gone.
    pg.psql("postgres", "drop database app");

    let out = cmd(&["--json", "drill"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    let p = &v[0]["pg"];
    assert_eq!(p["passed"], true, "{p:#}");
    assert_eq!(p["format"], "custom (pg_restore)");
    assert_eq!(p["checks"][0]["output"], "20000");
    assert_eq!(p["command"]["ok"], true);
    for step in [&p["restore"], &p["checks"][0], &p["command"]] {
        assert!(step["seconds"].as_f64() > Some(0.0), "{step}");
    }
    // The scratch database is gone again; the restored data was the original's.
    let dbs = pg.psql(
        "postgres",
        "select string_agg(datname, ',') from pg_database",
    );
    assert!(!dbs.contains("cofre_drill"), "{dbs}");
    assert!(before.starts_with("20000:"));

    // A dump that does not restore fails the drill, and says so.
    write_cfg("printf 'PGDMP this is not a dump'");
    let out = cmd(&["run", "--now", "2026-11-23T04:00:00Z"]);
    assert!(out.status.success(), "{out:?}");
    let out = cmd(&["--json", "drill"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert_eq!(v[0]["pg"]["passed"], false);
    assert_eq!(
        v[0]["mismatches"],
        serde_json::json!([]),
        "the bytes themselves are intact"
    );
    let problem = v[0]["problems"][0].as_str().expect("problem");
    assert!(problem.starts_with("PostgreSQL: pg_restore"), "{problem}");
    let dbs = pg.psql(
        "postgres",
        "select string_agg(datname, ',') from pg_database",
    );
    assert!(
        !dbs.contains("cofre_drill"),
        "dropped after a failure too: {dbs}"
    );
}
