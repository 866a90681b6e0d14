//! `cofre mount`: serve every snapshot read-only until SIGINT/SIGTERM or `fusermount3 -u`.

mod fs;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, MountOption, SessionACL};

use crate::catalog::pool::Pool;
use crate::catalog::{sync, Catalog};
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::vfs::diskcache::DiskCache;
use crate::vfs::Vfs;

pub struct MountOptions {
    pub allow_other: bool,
    pub local_time: bool,
    pub sets: Vec<String>,
    pub cache_bytes: usize,
    /// On-disk blob cache (directory, byte limit), for remote stores.
    pub disk_cache: Option<(std::path::PathBuf, u64)>,
    /// How often to look for new snapshots in the store.
    pub poll: Duration,
}

/// Pulls new snapshots from the store into the catalog and the layout, until `stop`.
fn refresher(
    vfs: Arc<Vfs>,
    repo: Arc<Repository>,
    catalog: std::path::PathBuf,
    poll: Duration,
    stop: Arc<AtomicBool>,
) {
    let mut cat = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(poll);
        if cat.is_none() {
            cat = Catalog::open(&catalog)
                .inspect_err(|e| tracing::warn!("catalog: {e}"))
                .ok();
        }
        if let Some(c) = cat.as_mut() {
            if let Err(e) = sync::sync(c, &repo) {
                tracing::warn!("catalog sync: {e}");
            }
        }
        match vfs.refresh() {
            Ok(true) => tracing::info!("snapshot list changed"),
            Ok(false) => {}
            Err(e) => tracing::warn!("refresh: {e}"),
        }
    }
}

pub fn mount(
    repo: Repository,
    catalog: &Path,
    mountpoint: &Path,
    opts: MountOptions,
) -> Result<()> {
    let mut cat = Catalog::open(catalog)?;
    sync::sync(&mut cat, &repo)?;
    drop(cat);
    let rt = repo.runtime().clone();
    let disk = match &opts.disk_cache {
        Some((dir, limit)) => {
            Some(DiskCache::open(dir.clone(), *limit).map_err(|e| Error::io(dir, e))?)
        }
        None => None,
    };
    let repo = Arc::new(repo);
    let vfs = Arc::new(Vfs::new(
        repo.clone(),
        Pool::new(catalog.to_path_buf()),
        opts.local_time,
        opts.sets.clone(),
        opts.cache_bytes,
        disk,
    )?);

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("cofre:{}", repo.store().location())),
        MountOption::Subtype("cofre".into()),
        MountOption::RO,
        MountOption::NoAtime,
        MountOption::Dev,
        MountOption::Suid,
    ];
    if opts.allow_other {
        // Other users see the files, but only as the original modes allow.
        config.mount_options.push(MountOption::DefaultPermissions);
        config.acl = SessionACL::All;
    }
    config.n_threads = Some(4);
    config.clone_fd = true;
    let fs = fs::CofreFs {
        vfs: vfs.clone(),
        zero_message_open: false,
    };
    let mut session =
        fuser::Session::new(fs, mountpoint, &config).map_err(|e| Error::io(mountpoint, e))?;
    let mut unmounter = session.unmount_callable();

    let stop = Arc::new(AtomicBool::new(false));
    let refresh = {
        let (vfs, repo, stop, cat) = (
            vfs.clone(),
            repo.clone(),
            stop.clone(),
            catalog.to_path_buf(),
        );
        std::thread::spawn(move || refresher(vfs, repo, cat, opts.poll, stop))
    };
    let mp = mountpoint.display().to_string();
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("unmounting {mp}");
        if let Err(e) = unmounter.unmount() {
            tracing::error!("unmount {mp}: {e}");
        }
    });
    eprintln!(
        "mounted {} at {} (read-only); Ctrl-C or `fusermount3 -u {}` to unmount",
        repo.store().location(),
        mountpoint.display(),
        mountpoint.display()
    );
    let result = session.run().map_err(|e| Error::io(mountpoint, e));
    stop.store(true, Ordering::Relaxed);
    let _ = refresh.join();
    result
}
