//! A fault-injecting wrapper for reliability tests: fail the Nth call or a fraction of
//! calls, return short reads, flip bits, add delays. Never used outside tests.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{DynStore, ObjectInfo, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fail every put once this many puts have succeeded.
    pub fail_puts_after: Option<u64>,
    /// Fail this 1-based call number (any operation).
    pub fail_call: Option<u64>,
    /// Fail this fraction (0..1) of calls, drawn from a seeded generator.
    pub fail_fraction: f64,
    /// Return only the first half of every get.
    pub short_reads: bool,
    /// Flip one bit in every get.
    pub flip_bits: bool,
    pub delay: Option<Duration>,
    /// With `delay`: one call at a time, as over one slow connection, so that every call
    /// of a phase adds its delay (SIGKILL tests then land inside each phase).
    pub serial: bool,
    /// Fail every call of this operation ("put", "get", "list", "delete", "head") on keys
    /// (or listing prefixes) that start with this prefix.
    pub fail_op: Option<(&'static str, String)>,
    /// Seed for `fail_fraction`, so a failing run can be replayed.
    pub seed: u64,
    /// SIGKILL this process when this 1-based call is about to be made: a crash at an
    /// exact point of a command's work (tests/lifecycle_races.rs).
    pub kill_at_call: Option<u64>,
    /// Append `<n> <op> <key>` for every call here, so a test can see a command's calls
    /// and choose where to kill it.
    pub call_log: Option<std::path::PathBuf>,
    /// SIGSTOP this process at its first delete of a key under this prefix: a process
    /// paused right before it deletes (tests/concurrency.rs, a suspended VM's prune).
    pub stop_at_delete: Option<String>,
    /// Refuse every delete as S3 refuses a credential without `s3:DeleteObject` (the
    /// ingest-only role of docs/stores.md).
    pub refuse_deletes: bool,
}

pub struct FaultStore {
    inner: DynStore,
    faults: Faults,
    calls: AtomicU64,
    puts: AtomicU64,
    rng: Mutex<u64>,
    one_at_a_time: tokio::sync::Mutex<()>,
    stopped: std::sync::atomic::AtomicBool,
}

impl FaultStore {
    pub fn new(inner: DynStore, faults: Faults) -> Self {
        FaultStore {
            inner,
            calls: AtomicU64::new(0),
            puts: AtomicU64::new(0),
            rng: Mutex::new(
                0x9E37_79B9_7F4A_7C15 ^ faults.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1,
            ),
            faults,
            one_at_a_time: tokio::sync::Mutex::new(()),
            stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    async fn before(&self, op: &'static str, key: &str) -> Result<(), StoreError> {
        if let Some(d) = self.faults.delay {
            let _one = match self.faults.serial {
                true => Some(self.one_at_a_time.lock().await),
                false => None,
            };
            tokio::time::sleep(d).await;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(log) = &self.faults.call_log {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let _ = writeln!(f, "{n} {op} {key}");
            }
        }
        let stop_here = op == "delete"
            && self
                .faults
                .stop_at_delete
                .as_ref()
                .is_some_and(|p| key.starts_with(p.as_str()));
        if stop_here && !self.stopped.swap(true, Ordering::SeqCst) {
            // SAFETY: signalling ourselves; the process continues on SIGCONT.
            unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
        }
        if self.faults.kill_at_call == Some(n) {
            // SAFETY: signalling ourselves; nothing runs after SIGKILL.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        let injected = || StoreError::Backend {
            op,
            key: key.to_string(),
            msg: "injected fault".to_string(),
        };
        if self.faults.fail_call == Some(n) {
            return Err(injected());
        }
        if let Some((o, prefix)) = &self.faults.fail_op {
            if *o == op && key.starts_with(prefix.as_str()) {
                return Err(injected());
            }
        }
        if self.faults.fail_fraction > 0.0 {
            let mut s = self.rng.lock();
            // xorshift: deterministic so a failing test can be replayed.
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            if (*s % 1_000_000) as f64 / 1_000_000.0 < self.faults.fail_fraction {
                return Err(injected());
            }
        }
        Ok(())
    }
}

impl FaultStore {
    async fn before_put(&self, key: &str) -> Result<(), StoreError> {
        self.before("put", key).await?;
        match self.faults.fail_puts_after {
            Some(limit) if self.puts.load(Ordering::SeqCst) >= limit => Err(StoreError::Backend {
                op: "put",
                key: key.to_string(),
                msg: "injected write failure".to_string(),
            }),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Store for FaultStore {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.before_put(key).await?;
        self.inner.put(key, data).await?;
        self.puts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn put_class(&self, key: &str, data: Vec<u8>, class: &str) -> Result<(), StoreError> {
        self.before_put(key).await?;
        self.inner.put_class(key, data, class).await?;
        self.puts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.before_put(key).await?;
        self.inner.put_if_absent(key, data).await?;
        self.puts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.before("get", key).await?;
        let mut data = self.inner.get(key, range).await?;
        if self.faults.short_reads {
            data.truncate(data.len() / 2);
        }
        if self.faults.flip_bits && !data.is_empty() {
            let i = data.len() / 2;
            data[i] ^= 0x10;
        }
        Ok(data)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.before("list", prefix).await?;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.before("delete", key).await?;
        if self.faults.refuse_deletes {
            return Err(refused(key));
        }
        self.inner.delete(key).await
    }

    async fn head(&self, key: &str) -> Result<u64, StoreError> {
        self.before("head", key).await?;
        self.inner.head(key).await
    }

    async fn thaw(
        &self,
        key: &str,
        days: u32,
        tier: super::ThawTier,
    ) -> Result<super::ThawState, StoreError> {
        self.inner.thaw(key, days, tier).await
    }

    async fn thaw_state(&self, key: &str) -> Result<super::ThawState, StoreError> {
        self.inner.thaw_state(key).await
    }

    async fn object_lock_enabled(&self) -> Result<bool, StoreError> {
        self.inner.object_lock_enabled().await
    }

    async fn put_retained(
        &self,
        key: &str,
        data: Vec<u8>,
        class: Option<&str>,
        keep: super::Retention,
        if_absent: bool,
    ) -> Result<(), StoreError> {
        self.before_put(key).await?;
        self.inner
            .put_retained(key, data, class, keep, if_absent)
            .await?;
        self.puts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn retained_until(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        self.before("head", key).await?;
        self.inner.retained_until(key, version).await
    }

    async fn retain(
        &self,
        key: &str,
        version: Option<&str>,
        keep: super::Retention,
    ) -> Result<(), StoreError> {
        self.before("retain", key).await?;
        self.inner.retain(key, version, keep).await
    }

    async fn versions(&self, prefix: &str) -> Result<Vec<super::Version>, StoreError> {
        self.before("list", prefix).await?;
        self.inner.versions(prefix).await
    }

    async fn delete_version(&self, key: &str, version: &str) -> Result<(), StoreError> {
        self.before("delete", key).await?;
        if self.faults.refuse_deletes {
            return Err(refused(key));
        }
        self.inner.delete_version(key, version).await
    }

    async fn get_version(&self, key: &str, version: &str) -> Result<Vec<u8>, StoreError> {
        self.before("get", key).await?;
        self.inner.get_version(key, version).await
    }

    async fn restore_version(
        &self,
        key: &str,
        version: &str,
        class: Option<&str>,
        keep: Option<super::Retention>,
    ) -> Result<(), StoreError> {
        self.before_put(key).await?;
        self.inner.restore_version(key, version, class, keep).await
    }

    fn location(&self) -> String {
        format!("fault({})", self.inner.location())
    }
}

/// What S3 answers a credential without `s3:DeleteObject`.
fn refused(key: &str) -> StoreError {
    StoreError::Backend {
        op: "delete",
        key: key.to_string(),
        msg: "HTTP 403 AccessDenied: Access Denied".into(),
    }
}
