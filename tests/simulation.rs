//! A deterministic simulation of the repository lifecycle (docs/prune.md "The simulation"),
//! in the manner of FoundationDB's and TigerBeetle's: three hosts (two share a hostname;
//! the third's clock may be off), each running a random program of ingest (STANDARD and
//! GLACIER classes mixed in one set, a file large enough for deltas), forget, prune,
//! repair index, check and catalog rebuild, as processes that can crash at any mutating
//! store call (before or after it lands) or be paused there while the clock runs past
//! the stale time. After every step: every committed, unforgotten snapshot restores byte
//! for byte, is readable at its own class, and `check` agrees.
//!
//! Seeded: a failure prints its seed; `COFRE_SIM_SEED=N` replays exactly that schedule
//! (which process runs, where it pauses or crashes, every clock), and `COFRE_SIM_SEEDS=N`
//! runs N seeds (CI: 10,000), from `COFRE_SIM_FIRST` (default 0).

mod sim;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cofre::catalog::Catalog;
use cofre::check::{check, ReadData};
use cofre::forget::{forget, ForgetOptions};
use cofre::ingest::{ingest, IngestOptions};
use cofre::prune::{prune, PruneOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use cofre::repo::index::{Reach, DEFAULT_CLASS};
use sim::checker::{master, read_source, restore, restore_with, Files};
use sim::store::{Fault, Thawed};
use sim::world::{Op, Proc, World};

struct Run {
    world: World,
    rng: StdRng,
    log: Vec<String>,
    /// Committed snapshots not forgotten: id → the files they must restore to.
    expected: HashMap<String, Files>,
    /// Snapshots a forget was asked to delete (they may be gone).
    forgetting: HashSet<String>,
    /// Per set, what an ingest in flight read (the source does not change under it).
    pending: HashMap<String, Files>,
    paused: Option<Proc>,
    /// Snapshot ids seen, so a new one is told from an old one.
    seen: BTreeSet<String>,
    /// Seeds the pool of shared file contents.
    pool: u64,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Run {
    fn fault(&mut self, what: &str) -> Fault {
        let x: f64 = self.rng.gen();
        // A prune paused after its last checks, right before it deletes index objects or
        // packs, is the schedule that found the windows docs/prune.md "Doomed lists" closes
        // (before the fix, seeds 3222 and 3853 left a reused blob in no index, seeds 772, 833
        // and 1208 lost a snapshot's pack): more of those.
        if what == "prune" && self.paused.is_none() && x < 0.25 {
            return Fault::PauseAtDelete(["index/", "data/"][self.rng.gen_range(0..2)]);
        }
        if self.paused.is_none() && x < 0.2 {
            Fault::Pause(self.rng.gen_range(1..30))
        } else if self.paused.is_none() && x < 0.3 {
            let at = ["index/", "data/", "snapshots/", "locks/"];
            Fault::PauseAtDelete(at[self.rng.gen_range(0..at.len())])
        } else if x < 0.45 {
            Fault::Crash(self.rng.gen_range(1..30), self.rng.gen())
        } else {
            Fault::None
        }
    }

    fn catalog_of(&self, host: usize) -> std::path::PathBuf {
        // A second process on a host whose first is paused uses its own catalog file: a
        // paused process may hold SQLite's write lock.
        let c = self.world.hosts[host].catalog.clone();
        match &self.paused {
            Some(p) if p.host == host => c.with_extension("second.db"),
            _ => c,
        }
    }

    fn start(&mut self, host: usize, what: String, op: Op) -> Result<(), String> {
        let fault = self.fault(&what);
        let nonce = self.rng.gen();
        self.log.push(format!("{what} on h{host} [{fault:?}]"));
        if std::env::var_os("COFRE_SIM_TRACE").is_some() {
            eprintln!("TRACE start {what} on h{host} [{fault:?}]");
        }
        let mut p = self.world.spawn(host, what, fault, nonce, op);
        let (paused, result) = self.world.wait(&mut p);
        if paused {
            self.paused = Some(p);
            return Ok(());
        }
        self.finished(&p.what, result)
    }

    fn finished(
        &mut self,
        what: &str,
        result: Option<Result<String, String>>,
    ) -> Result<(), String> {
        self.log.push(format!("  {what} -> {result:?}"));
        if std::env::var_os("COFRE_SIM_TRACE").is_some() {
            eprintln!("TRACE end {what} -> {result:?}");
        }
        if let Some(Err(e)) = &result {
            if e == "PANIC" {
                return Err(format!("{what} panicked"));
            }
        }
        self.reconcile()
    }

    /// New snapshots in the store belong to the ingest of their set that was in flight;
    /// snapshots gone must have been forgotten.
    fn reconcile(&mut self) -> Result<(), String> {
        let ids: BTreeSet<String> = self
            .world
            .base
            .snapshot_ids()
            .map_err(err)?
            .into_iter()
            .collect();
        for id in ids.difference(&self.seen.clone()) {
            let m = self.world.base.load_manifest(id).map_err(err)?;
            let files =
                self.pending.get(&m.set).cloned().ok_or_else(|| {
                    format!("snapshot {id} of set {} appeared from nowhere", m.set)
                })?;
            self.expected.insert(id.clone(), files);
            self.seen.insert(id.clone());
        }
        let gone: Vec<String> = self
            .expected
            .keys()
            .filter(|id| !ids.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if !self.forgetting.contains(&id) {
                return Err(format!("snapshot {id} vanished without a forget"));
            }
            self.expected.remove(&id);
        }
        Ok(())
    }

    fn invariants(&mut self) -> Result<(), String> {
        self.reconcile()?;
        let w = &self.world;
        let thawed = w.base.reopen(
            Arc::new(Thawed(w.store.clone())),
            w.base.env().clone(),
            w.rt.handle().clone(),
        );
        let indexes = thawed.load_indexes().map_err(err)?.readable;
        let mi = master(&indexes, |_| true);
        let mut ids: Vec<&String> = self.expected.keys().collect();
        ids.sort();
        for id in ids {
            let (files, colder) =
                restore(&thawed, &mi, id).map_err(|e| format!("snapshot {id}: {e}"))?;
            if files != self.expected[id] {
                return Err(format!("snapshot {id} does not restore to its source"));
            }
            if let Some(c) = colder {
                return Err(format!("snapshot {id}: {c}"));
            }
            // A self-contained snapshot restores from its own class's packs alone.
            let m = thawed.load_manifest(id).map_err(err)?;
            if let Reach::Class(class) = Reach::of(&m) {
                let own = master(&indexes, |c| c.unwrap_or(DEFAULT_CLASS) == class);
                let (files, _) = restore_with(&thawed, &mi, &own, id)
                    .map_err(|e| format!("snapshot {id} ({class}, self-contained): {e}"))?;
                if files != self.expected[id] {
                    return Err(format!("snapshot {id} does not restore from {class} alone"));
                }
            }
        }
        let report = check(&w.base, ReadData::None).map_err(err)?;
        if !report.errors.is_empty() {
            return Err(format!(
                "check disagrees with the restore: {:?}",
                report.errors
            ));
        }
        Ok(())
    }

    fn mutate(&mut self, host: usize) {
        let src = self.world.hosts[host].src.clone();
        let n = self.rng.gen_range(0..4);
        let path = src.join(format!("f{n}"));
        match self.rng.gen_range(0..5) {
            0 => {
                let _ = std::fs::remove_file(&path);
            }
            1 => {
                // The dump: large enough for deltas, a few bytes changed each time.
                let dump = src.join("dump.sql");
                let mut d = std::fs::read(&dump).unwrap_or_else(|_| {
                    let mut r = StdRng::seed_from_u64(self.rng.gen());
                    (0..300_000).map(|_| r.gen_range(b'a'..=b'z')).collect()
                });
                for _ in 0..3 {
                    let at = self.rng.gen_range(0..d.len());
                    d[at] = self.rng.gen_range(b'A'..=b'Z');
                }
                std::fs::write(&dump, d).expect("write dump");
            }
            2 => {
                // Content from a small pool shared by all hosts: files revert to what an
                // older (perhaps forgotten) snapshot held, and hosts dedup against each other.
                let k: u64 = self.rng.gen_range(0..4);
                let mut r = StdRng::seed_from_u64(self.pool ^ k);
                let data: Vec<u8> = (0..20_000 + k * 7_000).map(|_| r.gen()).collect();
                std::fs::write(&path, data).expect("write");
            }
            _ => {
                let len = self.rng.gen_range(0..40_000);
                let data: Vec<u8> = (0..len).map(|_| self.rng.gen()).collect();
                std::fs::write(&path, data).expect("write");
            }
        }
        self.log.push(format!("mutate h{host}/f{n}"));
    }

    fn step(&mut self) -> Result<(), String> {
        let host = self.rng.gen_range(0..3);
        // The source does not change under a paused ingest of it.
        let busy = self
            .paused
            .as_ref()
            .filter(|p| p.what.starts_with("ingest"))
            .map(|p| p.host);
        // While a process is paused, time passes more often: that is when its lock goes
        // stale and the others move in.
        // A paused prune meets, more often than chance would have it, a repair and an
        // ingest of what it is deleting (the windows docs/prune.md "Doomed lists" closes).
        let prune_paused = self.paused.as_ref().is_some_and(|p| p.what == "prune");
        let roll = match self.paused.is_some() && self.rng.gen_bool(0.3) {
            true => 88,
            false if prune_paused && self.rng.gen_bool(0.2) => 72,
            false => self.rng.gen_range(0..100),
        };
        match roll {
            0..=29 => {
                let set = format!("h{host}");
                if busy != Some(host) {
                    self.pending
                        .insert(set.clone(), read_source(&self.world.hosts[host].src));
                } else if !self.pending.contains_key(&set) {
                    return Ok(());
                }
                let glacier = self.rng.gen_bool(0.3);
                let class = glacier.then(|| "GLACIER".to_string());
                // Self-contained (the default for GLACIER) or sharing hotter data.
                let self_contained = Some(self.rng.gen_bool(0.7));
                let catalog = self.catalog_of(host);
                let what = format!("ingest {set} {}", class.as_deref().unwrap_or("STANDARD"));
                self.start(
                    host,
                    what,
                    Box::new(move |repo, h| {
                        let mut cat = Catalog::open(&catalog).map_err(err)?;
                        let opts = IngestOptions {
                            set,
                            tags: vec![],
                            time: None,
                            excludes: vec![],
                            paths: vec![h.src.clone()],
                            stream: None,
                            progress: None,
                            data_class: class,
                            self_contained,
                            compression: None,
                            atime: false,
                            delta: true,
                            retry_lock: Duration::ZERO,
                        };
                        ingest(repo, &mut cat, opts)
                            .map(|r| r.snapshot)
                            .map_err(err)
                    }),
                )
            }
            30..=44 if busy != Some(host) => {
                self.mutate(host);
                Ok(())
            }
            45..=54 => {
                // By time and set, never by id: an id hashes a random nonce, and the
                // schedule must be a function of the seed alone.
                let mut ids: Vec<((i64, u32), String, String)> = Vec::new();
                for i in self.expected.keys() {
                    if let Ok(m) = self.world.base.load_manifest(i) {
                        ids.push((m.time, m.set, i.clone()));
                    }
                }
                ids.sort();
                if ids.is_empty() {
                    return Ok(());
                }
                // Half the time the newest snapshot of a set: its data, now unused, is what
                // the next ingest of an unchanged source would reuse.
                let (time, set, id) = if self.rng.gen_bool(0.5) {
                    let set = format!("h{host}");
                    match ids.into_iter().rfind(|(_, s, _)| *s == set) {
                        Some(newest) => newest,
                        None => return Ok(()),
                    }
                } else {
                    let at = self.rng.gen_range(0..ids.len());
                    ids.swap_remove(at)
                };
                self.forgetting.insert(id.clone());
                self.start(
                    host,
                    format!("forget {set} of {}.{:09}", time.0, time.1),
                    Box::new(move |repo, _| {
                        let opts = ForgetOptions {
                            policy: Default::default(),
                            sets: vec![],
                            ids: vec![id],
                            tag: None,
                            dry_run: false,
                            retry_lock: Duration::ZERO,
                        };
                        forget(repo, &opts).map(|_| String::new()).map_err(err)
                    }),
                )
            }
            55..=69 => {
                let max_unused = self.rng.gen_range(0.0..20.0);
                self.start(
                    host,
                    "prune".into(),
                    Box::new(move |repo, _| {
                        let opts = PruneOptions {
                            max_unused_percent: max_unused,
                            dry_run: false,
                            retry_lock: Duration::ZERO,
                            // The memory store's: none (its clock runs hours, not days).
                            minimums: None,
                            now: None,
                            assume_forgotten: Vec::new(),
                        };
                        prune(repo, &opts)
                            .map(|r| format!("{:?}", r.done.map(|d| d.packs_deleted)))
                            .map_err(err)
                    }),
                )
            }
            70..=74 => self.start(
                host,
                "repair index".into(),
                Box::new(|repo, _| {
                    cofre::repair::repair_index(repo)
                        .map(|r| r.packs_reindexed.to_string())
                        .map_err(err)
                }),
            ),
            75..=79 => {
                let catalog = self.catalog_of(host);
                self.start(
                    host,
                    "catalog rebuild".into(),
                    Box::new(move |repo, _| {
                        cofre::catalog::sync::rebuild(&catalog, repo)
                            .map(|_| String::new())
                            .map_err(err)
                    }),
                )
            }
            80..=84 => self.start(
                host,
                "check".into(),
                Box::new(|repo, _| {
                    check(repo, ReadData::None)
                        .map(|r| format!("{} errors", r.errors.len()))
                        .map_err(err)
                }),
            ),
            85..=92 => {
                let secs = [60, 600, 1_900, 3_700, 7_300][self.rng.gen_range(0..5)];
                self.world.advance(secs);
                self.log.push(format!("clock +{secs}s"));
                Ok(())
            }
            _ => self.resume(),
        }
    }

    fn resume(&mut self) -> Result<(), String> {
        let Some(mut p) = self.paused.take() else {
            return Ok(());
        };
        // A process woken from a long pause: its refresher thread may run before its main
        // thread does (and then its time-based lock check passes); let it, half the time.
        let refresh_first = self.rng.gen_bool(0.5);
        self.log.push(format!(
            "resume {} (refresh first: {refresh_first})",
            p.what
        ));
        let refresh = p.refresher.lock().clone();
        if let (true, Some(r)) = (refresh_first, refresh) {
            p.ctl
                .bypass
                .store(true, std::sync::atomic::Ordering::SeqCst);
            r();
            p.ctl
                .bypass
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        p.ctl.resume();
        let (paused, result) = self.world.wait(&mut p);
        assert!(!paused, "a process pauses once");
        self.finished(&p.what, result)
    }
}

/// Runs one seed; on success returns its schedule (what ran where, with which fault).
fn run_seed(seed: u64) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().map_err(err)?;
    let mut rng = StdRng::seed_from_u64(seed);
    // Host 2's clock: right, a few minutes off, or 40 minutes off (refused).
    let skew = [0, 240, -300, 2_400][rng.gen_range(0..4)];
    let world = World::new(dir.path(), [0, rng.gen_range(-120..120), skew]);
    let mut run = Run {
        world,
        rng,
        log: vec![format!("host 2 clock skew {skew}s")],
        expected: HashMap::new(),
        forgetting: HashSet::new(),
        pending: HashMap::new(),
        paused: None,
        seen: BTreeSet::new(),
        pool: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    };
    for h in 0..3 {
        run.mutate(h);
        run.mutate(h);
    }
    let steps = run.rng.gen_range(8..20);
    let result = (|| {
        for _ in 0..steps {
            run.step()?;
            run.invariants()?;
        }
        run.resume()?;
        run.invariants()?;
        // Long after everything: a prune from a healthy host, then every snapshot again.
        run.world.advance(4 * 3_600);
        run.paused = None;
        run.start(
            0,
            "final prune".into(),
            Box::new(|repo, _| {
                prune(repo, &PruneOptions::default())
                    .map(|_| String::new())
                    .map_err(err)
            }),
        )?;
        run.resume()?;
        run.invariants()
    })();
    match result {
        Ok(()) => Ok(run
            .log
            .into_iter()
            .filter(|l| !l.starts_with("  "))
            .collect()),
        Err(e) => Err(format!(
            "seed {seed}: {e}\nschedule:\n  {}",
            run.log.join("\n  ")
        )),
    }
}

fn seeds() -> Vec<u64> {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(s) = var("COFRE_SIM_SEED") {
        return vec![s];
    }
    // `COFRE_SIM_FIRST=K`: seeds K.. (runs in parts add up to more distinct seeds).
    let first = var("COFRE_SIM_FIRST").unwrap_or(0);
    (first..first + var("COFRE_SIM_SEEDS").unwrap_or(10_000)).collect()
}

#[test]
fn the_lifecycle_loses_nothing_under_random_schedules_of_hosts_clocks_and_crashes() {
    let all = seeds();
    let started = std::time::Instant::now();
    // Two threads of seeds: the machine has two cores.
    let failures: Vec<String> = std::thread::scope(|s| {
        let halves: Vec<_> = [0, 1]
            .iter()
            .map(|k| {
                let mine: Vec<u64> = all.iter().copied().filter(|x| x % 2 == *k).collect();
                s.spawn(move || {
                    let mut out = Vec::new();
                    for seed in mine {
                        if let Err(e) = run_seed(seed) {
                            out.push(e);
                            if out.len() >= 3 {
                                break;
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().expect("seed thread"))
            .collect()
    });
    eprintln!(
        "simulation: {} seeds in {:.1} s, {} failed",
        all.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_seed_replays_the_same_schedule() {
    // The schedule (steps, hosts, faults, clocks) is a function of the seed alone.
    for seed in [3, 11] {
        let first = run_seed(seed).expect("seed runs clean");
        let again = run_seed(seed).expect("and again");
        assert_eq!(first, again, "seed {seed}");
    }
    assert_ne!(run_seed(3).ok(), run_seed(11).ok());
}
