//! `cofre stats`: how much the snapshots hold, how much the repository stores, what dedup and
//! compression save, and an estimated monthly bill from a documented, overridable price table
//! (docs/stats.md) — beside what the same history would cost stored as the users' scripts
//! store it (a compressed full copy per snapshot). Everything comes from the catalog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::{Error, Result};

/// Prices of one storage class, in dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub storage_gb_month: f64,
    pub put_per_1000: f64,
    #[serde(default)]
    pub get_per_1000: f64,
    /// Minimum storage duration: data deleted sooner is billed as if kept this long.
    #[serde(default)]
    pub min_days: u32,
}

const fn p(storage_gb_month: f64, put_per_1000: f64, get_per_1000: f64, min_days: u32) -> Price {
    Price {
        storage_gb_month,
        put_per_1000,
        get_per_1000,
        min_days,
    }
}

/// List prices (USD, first tier, one region: AWS us-east-1, GCS us multi-region), as of
/// 2026-11; `--prices FILE` overrides any of them. Class names are the storage classes the
/// packs were written with; `STANDARD` is every provider's default class.
pub fn builtin(provider: &str) -> Option<BTreeMap<String, Price>> {
    let table: &[(&str, Price)] = match provider {
        "aws" => &[
            ("STANDARD", p(0.023, 0.005, 0.0004, 0)),
            ("INTELLIGENT_TIERING", p(0.023, 0.005, 0.0004, 0)),
            ("STANDARD_IA", p(0.0125, 0.01, 0.001, 30)),
            ("ONEZONE_IA", p(0.01, 0.01, 0.001, 30)),
            ("GLACIER_IR", p(0.004, 0.02, 0.01, 90)),
            ("GLACIER", p(0.0036, 0.03, 0.0004, 90)),
            ("DEEP_ARCHIVE", p(0.00099, 0.05, 0.0004, 180)),
        ],
        // Azure Blob, LRS in East US: cofre's classes are written in Azure's access tiers
        // (docs/stores.md): STANDARD Hot, the IA classes Cool, GLACIER_IR Cold, the archive
        // classes Archive (writes and reads priced per 10,000 there: divided by 10 here).
        "azure" => &[
            ("STANDARD", p(0.018, 0.0065, 0.0005, 0)),
            ("STANDARD_IA", p(0.01, 0.013, 0.001, 30)),
            ("ONEZONE_IA", p(0.01, 0.013, 0.001, 30)),
            ("GLACIER_IR", p(0.0036, 0.0234, 0.013, 90)),
            ("GLACIER", p(0.002, 0.013, 0.65, 180)),
            ("DEEP_ARCHIVE", p(0.002, 0.013, 0.65, 180)),
        ],
        "b2" => &[("STANDARD", p(0.006, 0.0, 0.0004, 0))],
        "wasabi" => &[("STANDARD", p(0.0069, 0.0, 0.0, 90))],
        // GCS's own class names, and S3's as a `gs://` repository writes them
        // (`store::gcs::gcs_class`).
        "gcs" => &[
            ("STANDARD", p(0.026, 0.005, 0.0004, 0)),
            ("NEARLINE", p(0.015, 0.01, 0.001, 30)),
            ("STANDARD_IA", p(0.015, 0.01, 0.001, 30)),
            ("ONEZONE_IA", p(0.015, 0.01, 0.001, 30)),
            ("COLDLINE", p(0.007, 0.02, 0.01, 90)),
            ("GLACIER_IR", p(0.007, 0.02, 0.01, 90)),
            ("ARCHIVE", p(0.0025, 0.05, 0.05, 365)),
            ("GLACIER", p(0.0025, 0.05, 0.05, 365)),
            ("DEEP_ARCHIVE", p(0.0025, 0.05, 0.05, 365)),
        ],
        // A local directory: no bill.
        "local" => &[("STANDARD", p(0.0, 0.0, 0.0, 0))],
        _ => return None,
    };
    Some(table.iter().map(|(k, v)| (k.to_string(), *v)).collect())
}

/// `--prices FILE`: `[classes.NAME]` tables replacing or adding classes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    classes: BTreeMap<String, Price>,
}

pub fn prices(provider: &str, file: Option<&std::path::Path>) -> Result<BTreeMap<String, Price>> {
    let mut t = builtin(provider).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "provider {provider:?}: one of aws, azure, b2, wasabi, gcs, local"
        ))
    })?;
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
        let pf: PriceFile = toml::from_str(&text)
            .map_err(|e| Error::InvalidArgument(format!("{}: {}", f.display(), e.message())))?;
        t.extend(pf.classes);
    }
    Ok(t)
}

#[derive(Debug, Default, Serialize)]
pub struct SetStats {
    pub snapshots: u64,
    pub latest_bytes: u64,
    pub latest_files: u64,
    pub all_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct ClassCost {
    pub class: String,
    pub stored_bytes: u64,
    /// Bytes billed: the stored bytes, or what the minimum storage duration makes the
    /// month's new data cost, whichever is more.
    pub billed_bytes: u64,
    pub storage_dollars: f64,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub sets: BTreeMap<String, SetStats>,
    pub snapshots: u64,
    /// File content in the latest snapshot of each set, and in all snapshots.
    pub latest_bytes: u64,
    pub all_bytes: u64,
    /// Distinct data chunks before compression (what dedup leaves).
    pub unique_data_bytes: u64,
    pub unique_tree_bytes: u64,
    /// Compressed and encrypted blob bytes in packs.
    pub stored_bytes: u64,
    pub stored_by_class: BTreeMap<String, u64>,
    /// Per class other than the default, the bytes it stores that another class holds too:
    /// the price of self-contained snapshots (a weekly full in GLACIER beside the 4-hourly
    /// STANDARD data).
    pub also_in_other_classes: BTreeMap<String, u64>,
    pub dedup_ratio: f64,
    /// Of whole blobs: bytes before compression / stored.
    pub compression_ratio: f64,
    /// Chunks stored as deltas: the bytes they rebuild, what they store, and the ratio.
    pub delta_chunk_bytes: u64,
    pub delta_stored_bytes: u64,
    pub delta_ratio: f64,
    /// Bytes the snapshots of the last 30 days added.
    pub added_last_30_days: u64,
    pub snapshots_last_30_days: u64,
    pub provider: String,
    pub classes: Vec<ClassCost>,
    pub puts_per_month: u64,
    pub storage_dollars: f64,
    pub request_dollars: f64,
    pub monthly_dollars: f64,
    /// The users' scripts: a compressed full copy of every kept snapshot, in STANDARD.
    pub full_copies_bytes: u64,
    pub full_copies_monthly_dollars: f64,
    /// What deleting, today, every pack still inside its class's minimum storage duration
    /// would be billed anyway (prune keeps them: docs/s3.md "Minimum storage durations").
    /// None when the packs were not listed (the metrics' estimate).
    pub early_deletion: Option<EarlyDeletion>,
    /// Each set's archived PostgreSQL WAL (`wal/` objects; docs/pitr.md), already counted
    /// in the totals above it is priced in.
    pub wal: BTreeMap<String, WalStats>,
}

/// One set's WAL archive and its share of the bill. Its objects are not packs: each one
/// flush of the spool, so the flush interval sets the PUT count.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct WalStats {
    pub objects: u64,
    pub files: u64,
    /// As PostgreSQL wrote it, and as stored (compressed, encrypted).
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    /// Objects written in the last 30 days: the month's PUTs.
    pub puts_per_month: u64,
    pub storage_dollars: f64,
    pub request_dollars: f64,
}

/// Adds each set's WAL (`usage` counted over the last 30 days) to `s`: its storage and
/// PUTs priced as STANDARD, where the flusher writes them.
pub fn add_wal(
    s: &mut Stats,
    usage: BTreeMap<String, crate::wal::index::WalUsage>,
    sets: &[String],
    prices: &BTreeMap<String, Price>,
) {
    let standard = prices
        .get("STANDARD")
        .copied()
        .unwrap_or(p(0.0, 0.0, 0.0, 0));
    for (set, u) in usage {
        if !sets.is_empty() && !sets.contains(&set) {
            continue;
        }
        let w = WalStats {
            objects: u.objects,
            files: u.files,
            raw_bytes: u.raw_bytes,
            stored_bytes: u.stored_bytes,
            puts_per_month: u.objects_since,
            storage_dollars: u.stored_bytes as f64 / GB * standard.storage_gb_month,
            request_dollars: u.objects_since as f64 / 1000.0 * standard.put_per_1000,
        };
        s.storage_dollars += w.storage_dollars;
        s.request_dollars += w.request_dollars;
        s.monthly_dollars += w.storage_dollars + w.request_dollars;
        s.puts_per_month += w.puts_per_month;
        s.wal.insert(set, w);
    }
}

/// Packs younger than their class's minimum storage duration, and what deleting them now
/// would still cost: the storage of their remaining days.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct EarlyDeletion {
    pub packs: u64,
    pub bytes: u64,
    pub dollars: f64,
}

/// `packs`: (class, bytes, age in days by the store's clock).
pub fn early_deletion(
    packs: &[(&str, u64, f64)],
    prices: &BTreeMap<String, Price>,
) -> EarlyDeletion {
    let mut e = EarlyDeletion::default();
    for (class, bytes, age) in packs {
        let Some(price) = prices.get(*class) else {
            continue;
        };
        let left = price.min_days as f64 - age;
        if left <= 0.0 {
            continue;
        }
        e.packs += 1;
        e.bytes += bytes;
        e.dollars += *bytes as f64 / GB * price.storage_gb_month * left / 30.0;
    }
    e
}

const GB: f64 = 1e9;
const MONTH_SECS: i64 = 30 * 86_400;
/// Objects written per snapshot besides data packs: tree pack, index, manifest, lock.
pub const PUTS_PER_SNAPSHOT: u64 = 4;

pub fn stats(
    cat: &Catalog,
    sets: &[String],
    provider: &str,
    prices: &BTreeMap<String, Price>,
    pack_size: u64,
    now: i64,
) -> Result<Stats> {
    let mut per_set: BTreeMap<String, SetStats> = BTreeMap::new();
    let (mut added, mut recent) = (0u64, 0u64);
    for s in cat.snapshots(None)? {
        let m = &s.manifest;
        if !sets.is_empty() && !sets.contains(&m.set) {
            continue;
        }
        let e = per_set.entry(m.set.clone()).or_default();
        e.snapshots += 1;
        e.all_bytes += m.summary.bytes;
        // Snapshots come oldest first: the last one seen is the latest.
        e.latest_bytes = m.summary.bytes;
        e.latest_files = m.summary.files;
        if now - m.time.0 <= MONTH_SECS {
            added += m.summary.bytes_added;
            recent += 1;
        }
    }
    let (unique_data, unique_tree) = cat.unique_raw_bytes()?;
    let stored_by_class: BTreeMap<String, u64> = cat.stored_bytes_by_class()?.into_iter().collect();
    let stored: u64 = stored_by_class.values().sum();
    let all_bytes: u64 = per_set.values().map(|s| s.all_bytes).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    // Compression is measured on whole blobs: deltas are counted apart, or the scripts'
    // full copies below would be credited with what deltas save.
    let ((whole_raw, whole_stored), (delta_raw, delta_stored)) = cat.stored_by_encoding()?;
    let compression = ratio(whole_raw, whole_stored);

    let mut classes = Vec::new();
    let mut storage_dollars = 0.0;
    for (class, &bytes) in &stored_by_class {
        let price = prices
            .get(class)
            .or_else(|| prices.get("STANDARD"))
            .copied();
        let price = price.unwrap_or(p(0.0, 0.0, 0.0, 0));
        // The month's new data, shared among classes as their stored bytes are.
        let new = added as f64 * ratio(bytes, stored);
        let billed = (bytes as f64).max(new * price.min_days as f64 / 30.0) as u64;
        let dollars = billed as f64 / GB * price.storage_gb_month;
        storage_dollars += dollars;
        classes.push(ClassCost {
            class: class.clone(),
            stored_bytes: bytes,
            billed_bytes: billed,
            storage_dollars: dollars,
        });
    }
    let puts = added.div_ceil(pack_size.max(1)) + PUTS_PER_SNAPSHOT * recent;
    let standard = prices
        .get("STANDARD")
        .copied()
        .unwrap_or(p(0.0, 0.0, 0.0, 0));
    let request_dollars = puts as f64 / 1000.0 * standard.put_per_1000;
    let full_copies = (all_bytes as f64 / compression.max(1.0)) as u64;
    Ok(Stats {
        snapshots: per_set.values().map(|s| s.snapshots).sum(),
        latest_bytes: per_set.values().map(|s| s.latest_bytes).sum(),
        all_bytes,
        sets: per_set,
        unique_data_bytes: unique_data,
        unique_tree_bytes: unique_tree,
        stored_bytes: stored,
        stored_by_class,
        also_in_other_classes: cat.bytes_also_in_other_classes()?.into_iter().collect(),
        dedup_ratio: ratio(all_bytes, unique_data),
        compression_ratio: compression,
        delta_chunk_bytes: delta_raw,
        delta_stored_bytes: delta_stored,
        delta_ratio: ratio(delta_raw, delta_stored),
        added_last_30_days: added,
        snapshots_last_30_days: recent,
        provider: provider.to_string(),
        classes,
        puts_per_month: puts,
        storage_dollars,
        request_dollars,
        monthly_dollars: storage_dollars + request_dollars,
        full_copies_bytes: full_copies,
        full_copies_monthly_dollars: full_copies as f64 / GB * standard.storage_gb_month,
        early_deletion: None,
        wal: BTreeMap::new(),
    })
}

/// The provider whose prices apply: the flag, the file's `provider`, else `default` (by
/// where the repository is: `OpenOptions::default_provider`).
pub fn provider(
    flag: Option<String>,
    file: Option<&crate::config::Config>,
    default: &str,
) -> String {
    crate::config::resolve(flag, file.and_then(|f| f.provider.as_ref()))
        .unwrap_or_else(|| default.to_string())
}

/// Whose prices, and the table: resolved before the repository is opened, so a bad flag
/// or price file is a usage error before any password is asked for.
#[derive(Debug, Clone)]
pub struct Pricing {
    pub provider: String,
    pub table: BTreeMap<String, Price>,
}

impl Pricing {
    /// `provider_flag` (default: the file's, else `default`: `aws` for an S3 repository,
    /// `azure` for Azure Blob, `local` otherwise), priced from `prices_flag` (a TOML table; default: the file's,
    /// else the built-in one).
    pub fn resolve(
        file: Option<&crate::config::Config>,
        provider_flag: Option<String>,
        prices_flag: Option<std::path::PathBuf>,
        default: &str,
    ) -> Result<Pricing> {
        let provider = provider(provider_flag, file, default);
        let price_file = crate::config::resolve(prices_flag, file.and_then(|f| f.prices.as_ref()));
        let table = prices(&provider, price_file.as_deref())?;
        Ok(Pricing { provider, table })
    }
}

impl crate::session::Session {
    /// Sizes, ratios and the monthly bill of `sets` (all when empty).
    pub fn stats(&self, pricing: &Pricing, sets: &[String]) -> Result<Stats> {
        let cat = self.synced_catalog()?;
        // The packs' ages are the store's: one listing.
        let now = crate::ingest::now().0;
        let mut young = Vec::new();
        for (id, o) in self.repository().pack_listing()? {
            let class = match o.class {
                Some(c) => c,
                None => cat.pack_class(&id)?,
            };
            let age = o.modified.map_or(0.0, |m| (now - m) as f64 / 86_400.0);
            young.push((class, o.size, age));
        }
        let young: Vec<(&str, u64, f64)> =
            young.iter().map(|(c, b, a)| (c.as_str(), *b, *a)).collect();
        let mut s = stats(
            &cat,
            sets,
            &pricing.provider,
            &pricing.table,
            self.repository().config.pack_size as u64,
            now,
        )?;
        s.early_deletion = Some(early_deletion(&young, &pricing.table));
        // WAL objects: one more listing, of `wal/` (the index reads new objects' headers).
        let mut wal = self.wal_index()?;
        wal.sync(self.repository())?;
        add_wal(&mut s, wal.usage(now - MONTH_SECS)?, sets, &pricing.table);
        Ok(s)
    }

    /// The monthly estimate for the metrics; a bad price table is a warning there, not a
    /// failed backup.
    pub fn monthly_cost(&self, file: Option<&crate::config::Config>, cat: &Catalog) -> Option<f64> {
        let provider = provider(None, file, self.options().default_provider());
        let table = file.and_then(|f| f.prices.as_deref());
        let pack_size = self.repository().config.pack_size as u64;
        let now = crate::ingest::now().0;
        let r = prices(&provider, table).and_then(|p| {
            let mut s = stats(cat, &[], &provider, &p, pack_size, now)?;
            // The WAL as this machine's index knows it (the flusher records what it stores).
            let index = crate::wal::index::path_for(cat.path());
            if index.exists() {
                match crate::wal::WalIndex::open(&index).and_then(|i| i.usage(now - MONTH_SECS)) {
                    Ok(usage) => add_wal(&mut s, usage, &[], &p),
                    Err(e) => tracing::warn!("WAL left out of the cost estimate: {e}"),
                }
            }
            Ok(s)
        });
        match r {
            Ok(s) => Some(s.monthly_dollars),
            Err(e) => {
                tracing::warn!("cost estimate left out of the metrics: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_deletion_counts_the_days_left_of_each_minimum() {
        let aws = builtin("aws").expect("aws");
        let gb = 1_000_000_000;
        // (packs: class, bytes, age in days) → (packs, bytes, dollars)
        type Case<'a> = (&'a [(&'a str, u64, f64)], (u64, u64, f64));
        let cases: [Case; 5] = [
            (&[("STANDARD", gb, 1.0)], (0, 0, 0.0)),
            (&[("GLACIER", gb, 90.0)], (0, 0, 0.0)),
            // 60 of 90 days left at $0.0036/GB-month.
            (&[("GLACIER", gb, 30.0)], (1, gb, 0.0036 * 2.0)),
            (
                &[("DEEP_ARCHIVE", 2 * gb, 0.0), ("STANDARD_IA", gb, 29.0)],
                (2, 3 * gb, 0.00099 * 2.0 * 6.0 + 0.0125 / 30.0),
            ),
            (&[("UNPRICED", gb, 0.0)], (0, 0, 0.0)),
        ];
        for (packs, (n, bytes, dollars)) in cases {
            let e = early_deletion(packs, &aws);
            assert_eq!((e.packs, e.bytes), (n, bytes), "{packs:?}");
            assert!((e.dollars - dollars).abs() < 1e-9, "{packs:?}: {e:?}");
        }
    }

    #[test]
    fn wal_is_priced_by_its_objects_and_puts() {
        use crate::wal::index::WalUsage;
        let aws = builtin("aws").expect("aws");
        let usage = |objects, stored, since| WalUsage {
            objects,
            stored_bytes: stored,
            files: objects * 40,
            raw_bytes: stored * 3,
            objects_since: since,
        };
        // (usage per set, sets asked for) → (sets priced, PUTs, dollars)
        type Case<'a> = (Vec<(&'a str, WalUsage)>, &'a [&'a str], (usize, u64, f64));
        let cases: Vec<Case> = vec![
            (vec![], &[], (0, 0, 0.0)),
            // A flush a minute for 30 days, 1 GB kept: 43,200 PUTs.
            (
                vec![("db", usage(50_000, 1_000_000_000, 43_200))],
                &[],
                (1, 43_200, 0.023 + 43.2 * 0.005),
            ),
            // A flush an hour: 720 PUTs.
            (
                vec![("db", usage(1_000, 2_000_000_000, 720))],
                &["db"],
                (1, 720, 0.046 + 0.72 * 0.005),
            ),
            (
                vec![("db", usage(1, 0, 1)), ("other", usage(1, 0, 1))],
                &["other"],
                (1, 1, 0.005 / 1000.0),
            ),
        ];
        for (u, sets, (n, puts, dollars)) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let cat = Catalog::open(&dir.path().join("c.db")).expect("catalog");
            let mut s = stats(&cat, &[], "aws", &aws, 1 << 24, 0).expect("stats");
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            let u: BTreeMap<String, WalUsage> =
                u.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            add_wal(&mut s, u, &sets, &aws);
            assert_eq!((s.wal.len(), s.puts_per_month), (n, puts), "{sets:?}");
            assert!(
                (s.monthly_dollars - dollars).abs() < 1e-9,
                "{sets:?}: {s:?}"
            );
        }
    }

    #[test]
    fn price_tables() {
        let aws = builtin("aws").expect("aws");
        assert_eq!(aws["GLACIER_IR"].min_days, 90);
        assert_eq!(aws["STANDARD"].storage_gb_month, 0.023);
        for p in ["azure", "b2", "wasabi", "gcs", "local"] {
            assert!(builtin(p).expect(p).contains_key("STANDARD"), "{p}");
        }
        // Every class cofre can write on Azure has a price (the tiers of docs/stores.md).
        let azure = builtin("azure").expect("azure");
        for class in [
            "STANDARD_IA",
            "ONEZONE_IA",
            "GLACIER_IR",
            "GLACIER",
            "DEEP_ARCHIVE",
        ] {
            assert!(azure.contains_key(class), "{class}");
        }
        // And on GCS, each class a `gs://` repository can write, priced as the class it becomes.
        let gcs = builtin("gcs").expect("gcs");
        for class in ["STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE"] {
            let as_gcs = crate::store::gcs::gcs_class(class).expect("a GCS class");
            assert_eq!(gcs[class], gcs[as_gcs], "{class}");
        }
        assert!(builtin("oracle").is_none());
        let dir = std::env::temp_dir().join(format!("cofre-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("p.toml");
        std::fs::write(
            &f,
            "[classes.STANDARD]\nstorage_gb_month = 1.5\nput_per_1000 = 2\n",
        )
        .expect("w");
        let t = prices("aws", Some(&f)).expect("prices");
        assert_eq!(t["STANDARD"], p(1.5, 2.0, 0.0, 0));
        assert_eq!(t["GLACIER_IR"].min_days, 90, "others kept");
        std::fs::write(&f, "[classes.STANDARD]\nstorage = 1\n").expect("w");
        assert!(prices("aws", Some(&f)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
