//! `cofre mount`: serve every snapshot read-only until SIGINT/SIGTERM or `fusermount3 -u`.

mod counts;
mod fs;
pub(crate) mod mounts;
mod opens;
mod push;

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
use mounts::detach;

pub struct MountOptions {
    pub allow_other: bool,
    pub local_time: bool,
    pub sets: Vec<String>,
    pub cache_bytes: usize,
    /// On-disk blob cache (directory, byte limit), for remote stores.
    pub disk_cache: Option<(std::path::PathBuf, u64)>,
    /// Cache of decoded files (directory, byte limit), read by the kernel through FUSE
    /// passthrough: plaintext on the local disk, so off unless asked for
    /// (docs/mount.md "The file cache").
    pub file_cache: Option<(std::path::PathBuf, u64)>,
    /// Files smaller than this are not kept in the file cache: for them, creating the
    /// entry and opening it cost more than decoding (docs/benchmarks.md).
    pub file_cache_min: u64,
    /// How often to look for new snapshots in the store.
    pub poll: Duration,
    /// How extended-attribute requests are answered (docs/mount.md "Extended attributes").
    pub xattrs: Xattrs,
}

/// What the mount tells the kernel about extended attributes. The kernel takes an ENOSYS
/// from `listxattr` or `getxattr` as "this filesystem has none" and stops sending that
/// request for the life of the mount: a round trip less per entry of a `cp -a`, but it
/// cannot be told otherwise later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Xattrs {
    /// The default: when some snapshot has xattrs or ACLs, as `All`; otherwise the kernel is
    /// told there are none, neither to list (`cp -a` and `rsync -X` ask twice per entry)
    /// nor by name (the ACL probe `cp -a` makes on each entry): a fifth of a cold `cp -a`
    /// of small files (docs/benchmarks.md "No xattr round trips by default"). The hidden
    /// `user.cofre.blake3` then needs `--xattrs`. A snapshot with xattrs that arrives later
    /// ends such a mount, saying why.
    #[default]
    Auto,
    /// Listings and values, whatever the snapshots hold (`--xattrs`): a mount that stays up
    /// when snapshots with xattrs may arrive, and answers the hidden hash.
    All,
    /// Neither listings nor values (`--no-xattrs`): refused when a snapshot has xattrs.
    None,
}

/// The kernel was told there are no xattrs and cannot be told otherwise: a copy of the new
/// snapshot would silently lack them, so it is never shown and the mount ends instead
/// (SIGTERM: the handler unmounts as for Ctrl-C); `mount` says why.
fn end_for_xattrs() {
    // SAFETY: signalling this process.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
}

/// Pulls new snapshots from the store into the catalog and the layout, until `stop`.
fn refresher(
    vfs: Arc<Vfs>,
    repo: Arc<Repository>,
    catalog: std::path::PathBuf,
    poll: Duration,
    stop: Arc<AtomicBool>,
    notifier: fuser::Notifier,
    // Set by the vfs (`Vfs::shown_snapshots`) on a mount that told the kernel there are no
    // xattrs, when a snapshot with xattrs is in the catalog: the mount ends.
    xattrs_arrived: Arc<AtomicBool>,
) {
    // After a failed rebuild (store unreachable, disk full), the next one waits this long
    // whatever the requests say.
    let mut no_rebuild_before = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Every `poll`, or at once when a request found the catalog damaged.
        let started = std::time::Instant::now();
        let mut damaged = false;
        while started.elapsed() < poll && !stop.load(Ordering::Relaxed) && !damaged {
            std::thread::sleep(Duration::from_millis(100).min(poll));
            if xattrs_arrived.load(Ordering::SeqCst) {
                return end_for_xattrs();
            }
            damaged = std::time::Instant::now() >= no_rebuild_before && vfs.take_damaged_catalog();
        }
        // Opened afresh each time: a connection kept open would go on writing into a
        // catalog file that `catalog rebuild` has replaced.
        let synced = Catalog::open(&catalog).and_then(|mut c| sync::sync(&mut c, &repo));
        match synced {
            Ok(_) => {}
            Err(e) if sync::is_damaged(&e) => {
                vfs.note_damaged_catalog(&e);
                damaged = true;
            }
            Err(e) => tracing::warn!("catalog sync: {e}"),
        }
        let mut rebuilt = false;
        if damaged && std::time::Instant::now() >= no_rebuild_before {
            // Built beside the damaged file and renamed over it; `vfs.refresh` below sees
            // the new generation and switches (vfs/remap.rs).
            match sync::rebuild(&catalog, &repo) {
                Ok(_) => {
                    tracing::warn!("the catalog was rebuilt; the mount reads the new one");
                    rebuilt = true;
                }
                Err(e) => {
                    tracing::warn!("catalog rebuild failed ({e}); trying again in 30 s");
                    no_rebuild_before = std::time::Instant::now() + Duration::from_secs(30);
                }
            }
        }
        match vfs.refresh() {
            Ok(inv) if inv.is_empty() => {}
            Ok(inv) => {
                tracing::info!("snapshot list changed");
                invalidate(&notifier, &inv);
            }
            Err(_) if xattrs_arrived.load(Ordering::SeqCst) => return end_for_xattrs(),
            Err(e) => tracing::warn!("refresh: {e}"),
        }
        if rebuilt {
            // Requests that met the old file before the switch need no second rebuild.
            vfs.take_damaged_catalog();
        }
        vfs.trim_memory();
    }
}

/// Drops what the kernel cached of the old layout at once, instead of after its 1 s TTL:
/// `latest` first, then the changed names, then the directories' attributes and listings.
/// Sent from this thread, never from a FUSE callback (the kernel may wait on one).
fn invalidate(notifier: &fuser::Notifier, inv: &crate::vfs::Invalidations) {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    for (parent, name) in &inv.entries {
        // ENOENT: the kernel never cached it; nothing to drop.
        let _ = notifier.inval_entry(fuser::INodeNo(*parent), OsStr::from_bytes(name));
    }
    for dir in &inv.dirs {
        let _ = notifier.inval_inode(fuser::INodeNo(*dir), 0, 0);
    }
}

/// Whether `mountpoint` is a cofre mount left behind by a killed process.
fn is_our_stale_mount(mountpoint: &Path) -> bool {
    let Ok(abs) = std::fs::canonicalize(mountpoint.parent().unwrap_or(Path::new("/"))) else {
        return false;
    };
    let want = abs.join(mountpoint.file_name().unwrap_or_default());
    mounts::cofre_mounts().contains(&want)
}

/// A mount whose process was killed leaves "Transport endpoint is not connected" behind.
/// When it was a cofre mount, detach it (as `fusermount3 -u` would); otherwise say how.
fn clear_stale_mountpoint(mountpoint: &Path) -> Result<()> {
    match std::fs::metadata(mountpoint) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {}
        _ => return Ok(()),
    }
    let hint = || {
        Error::io(
            mountpoint,
            std::io::Error::other(format!(
                "a dead FUSE mount is still there (its process was killed); run `fusermount3 -u {}` and try again",
                mountpoint.display()
            )),
        )
    };
    if !is_our_stale_mount(mountpoint) {
        return Err(hint());
    }
    tracing::warn!(
        "{}: removing the mount a killed cofre left behind",
        mountpoint.display()
    );
    if detach(mountpoint) && std::fs::metadata(mountpoint).is_ok() {
        Ok(())
    } else {
        Err(hint())
    }
}

pub fn mount(
    repo: Arc<Repository>,
    catalog: &Path,
    mountpoint: &Path,
    opts: MountOptions,
) -> Result<()> {
    clear_stale_mountpoint(mountpoint)?;
    let cat = sync::open_synced(catalog, &repo)?;
    // `Auto` leaves xattrs on unless the check succeeds and says there are none;
    // `--no-xattrs` is refused unless it does.
    let has_xattrs = cat.any_xattrs();
    drop(cat);
    let (list_xattrs, get_xattrs) = match opts.xattrs {
        Xattrs::All => (true, true),
        Xattrs::Auto => {
            let some = !matches!(has_xattrs, Ok(false));
            (some, some)
        }
        Xattrs::None => (false, false),
    };
    let xattrs_arrived = Arc::new(AtomicBool::new(false));
    if opts.xattrs == Xattrs::None {
        match &has_xattrs {
            Ok(false) => {}
            Ok(true) => {
                return Err(Error::InvalidArgument(
                    "--no-xattrs: snapshots in this repository have extended attributes or \
                     ACLs, which a copy would then lack; mount without it"
                        .into(),
                ))
            }
            Err(e) => {
                return Err(Error::InvalidArgument(format!(
                    "--no-xattrs: cannot tell whether a snapshot has xattrs ({e}); mount \
                     without it"
                )))
            }
        }
    }
    let rt = repo.runtime().clone();
    let disk = match &opts.disk_cache {
        Some((dir, limit)) => match DiskCache::open(dir.clone(), *limit) {
            Ok(c) => Some(c),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tracing::warn!(
                    "{}: another mount of this repository uses the disk cache; this one \
                     runs without it (every read goes to the store)",
                    dir.display()
                );
                None
            }
            Err(e) => return Err(Error::io(dir, e)),
        },
        None => None,
    };
    let file_cache = match &opts.file_cache {
        Some((dir, limit)) => match crate::vfs::filecache::FileCache::open(dir.clone(), *limit) {
            Ok(c) => Some(c),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tracing::warn!(
                    "{}: another mount of this repository uses the file cache; this one \
                     runs without it",
                    dir.display()
                );
                None
            }
            Err(e) => return Err(Error::io(dir, e)),
        },
        None => None,
    };
    // Where passthrough is refused, every open handle of a cached file holds a descriptor
    // in the mount.
    if file_cache.is_some() {
        crate::restore::raise_fd_limit(65536);
    }
    let opens = file_cache
        .clone()
        .map(|c| opens::Opens::new(c, opts.file_cache_min));
    let vfs = Arc::new(
        Vfs::new(
            repo.clone(),
            Pool::reader(catalog.to_path_buf()),
            opts.local_time,
            opts.sets.clone(),
            opts.cache_bytes,
            disk,
            // Either request off: the kernel was told there are none, for good.
            (!(list_xattrs && get_xattrs)).then(|| xattrs_arrived.clone()),
        )
        .map_err(|e| {
            if xattrs_arrived.load(Ordering::SeqCst) {
                arrived_error(opts.xattrs, "not mounted")
            } else {
                e
            }
        })?,
    );

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("cofre:{}", repo.store().location())),
        MountOption::Subtype("cofre".into()),
        MountOption::RO,
        MountOption::NoAtime,
        // Old snapshots hold setuid binaries and device nodes: never honour them.
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if opts.allow_other {
        // Other users see the files, but only as the original modes allow.
        config.mount_options.push(MountOption::DefaultPermissions);
        config.acl = SessionACL::All;
    }
    let pusher = Arc::new(std::sync::OnceLock::new());
    config.n_threads = Some(4);
    config.clone_fd = true;
    let fs = fs::CofreFs {
        vfs: vfs.clone(),
        zero_message_open: false,
        zero_message_opendir: false,
        posix_acl: opts.allow_other,
        list_xattrs,
        get_xattrs,
        counts: Default::default(),
        pusher: pusher.clone(),
        opens,
    };
    // Listening before the mount exists: a SIGTERM that comes as soon as the mount shows
    // (a drill killed at once, its mount told by PR_SET_PDEATHSIG) would otherwise kill the
    // process by default and leave a dead mount behind.
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        let _rt = rt.enter();
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    let mut session =
        fuser::Session::new(fs, mountpoint, &config).map_err(|e| Error::io(mountpoint, e))?;
    let mut unmounter = session.unmount_callable();
    if file_cache.is_none() {
        let _ = pusher.set(push::Pusher::start(vfs.clone(), session.notifier()));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let refresh = {
        let (vfs, repo, stop, cat) = (
            vfs.clone(),
            repo.clone(),
            stop.clone(),
            catalog.to_path_buf(),
        );
        let notifier = session.notifier();
        let arrived = xattrs_arrived.clone();
        std::thread::spawn(move || refresher(vfs, repo, cat, opts.poll, stop, notifier, arrived))
    };
    let mp = mountpoint.to_path_buf();
    let pushing = pusher.clone();
    rt.spawn(async move {
        let (Ok(mut int), Ok(mut term)) = signals else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("unmounting {}", mp.display());
        // No push waits on a READ while the kernel tears the mount down (mount/push.rs).
        if let Some(p) = pushing.get() {
            p.stop();
        }
        if let Err(e) = unmounter.unmount() {
            // Busy: a reader still has a file open (the copier of a drill that was killed,
            // say). Asked to stop, the mount goes anyway, lazily, as `fusermount3 -u -z`:
            // open files get errors, and the process ends when the kernel lets go.
            tracing::warn!("unmount {}: {e}; detaching it", mp.display());
            if !detach(&mp) {
                tracing::error!(
                    "{}: could not detach; run `fusermount3 -u -z {}`",
                    mp.display(),
                    mp.display()
                );
            }
        }
    });
    eprintln!(
        "mounted {} at {} (read-only); Ctrl-C or `fusermount3 -u {}` to unmount",
        repo.store().location(),
        mountpoint.display(),
        mountpoint.display()
    );
    if !list_xattrs && opts.xattrs == Xattrs::Auto {
        // Said on every such mount: it ends when a snapshot with xattrs arrives.
        eprintln!(
            "no snapshot has xattrs or ACLs: xattrs are off (faster copies; the hidden \
             hash needs --xattrs); a snapshot with xattrs arriving ends this mount (--xattrs \
             keeps it up)"
        );
    }
    let result = session.run().map_err(|e| Error::io(mountpoint, e));
    // The session can end with the kernel still listing our mount (seen once in CI under
    // load: the process exited after SIGTERM and mountinfo still had it). Never leave a dead
    // mount behind.
    if is_our_stale_mount(mountpoint) && !detach(mountpoint) && is_our_stale_mount(mountpoint) {
        tracing::warn!(
            "{}: still mounted; run `fusermount3 -u {}`",
            mountpoint.display(),
            mountpoint.display()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = refresh.join();
    // Sealed only after a clean end: a session that ended in error (a FUSE thread that
    // panicked) may not have joined every thread, and one could still be filling.
    if let Some(c) = file_cache.filter(|_| result.is_ok()) {
        // The next mount then trusts these entries without hashing them.
        if let Err(e) = c.seal() {
            tracing::warn!("file cache: not sealed ({e}); the next mount checks each entry");
        }
    }
    if xattrs_arrived.load(Ordering::SeqCst) {
        return Err(arrived_error(opts.xattrs, "unmounted"));
    }
    result
}

/// Why a mount that told the kernel there are no xattrs ended (or did not start).
fn arrived_error(mode: Xattrs, what: &str) -> Error {
    Error::InvalidArgument(if mode == Xattrs::None {
        format!(
            "a new snapshot has extended attributes or ACLs, which this --no-xattrs mount \
             cannot show: {what}; mount again without --no-xattrs"
        )
    } else {
        format!(
            "a new snapshot has extended attributes or ACLs, which this mount cannot show (it \
             started when no snapshot had any, and told the kernel so): {what}; mount again, \
             or with --xattrs to stay up when they arrive"
        )
    })
}
