//! `cofre mount`.

use std::path::PathBuf;
use std::time::Duration;

use cofre::error::Result;
use cofre::Session;
use cofre::{MountOptions, Xattrs};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    mountpoint: PathBuf,
    /// Only these sets (repeatable).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Let other users in, with the original permissions enforced.
    #[arg(long)]
    allow_other: bool,
    /// Name snapshot directories in local time instead of UTC.
    #[arg(long)]
    local_time: bool,
    /// Memory for decoded chunks and the pack data fetched for them, in MiB.
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
    /// On-disk cache of fetched data for S3 repositories, in MiB (0: none).
    #[arg(long, default_value_t = 2048)]
    cache_size: u64,
    /// Keep decoded files on the local disk, up to this many MiB (0: none), so that the
    /// kernel reads them again without the mount (FUSE passthrough). Plaintext of the
    /// backed-up files: see docs/mount.md "The file cache".
    #[arg(long, default_value_t = 0, value_name = "MIB")]
    file_cache: u64,
    /// Smallest file kept in the file cache, in KiB: below it, keeping and opening a
    /// file costs more than decoding it.
    #[arg(long, default_value_t = 256, value_name = "KIB")]
    file_cache_min: u64,
    /// Tell the kernel there are no extended attributes at all, so that `cp -a` and
    /// `rsync -X` stop asking for each entry; refused when a snapshot has xattrs or ACLs.
    /// Without it, the same is done when no snapshot has any at mount time (and when the
    /// catalog cannot tell, xattrs stay on, where this flag refuses); a snapshot with xattrs
    /// arriving then ends the mount (mount again).
    #[arg(long, conflicts_with = "xattrs")]
    no_xattrs: bool,
    /// Answer xattr requests even when no snapshot has xattrs: a mount that stays up when
    /// snapshots with xattrs arrive, and shows the hidden `user.cofre.blake3`
    /// (docs/mount.md "Extended attributes").
    #[arg(long)]
    xattrs: bool,
    /// Seconds between checks for new snapshots.
    #[arg(long, default_value_t = 2)]
    poll_secs: u64,
}

impl From<&Args> for MountOptions {
    fn from(a: &Args) -> MountOptions {
        MountOptions {
            allow_other: a.allow_other,
            local_time: a.local_time,
            sets: a.sets.clone(),
            cache_bytes: a.cache_mib * 1024 * 1024,
            poll: Duration::from_secs(a.poll_secs.max(1)),
            disk_cache: None,
            file_cache: None,
            file_cache_min: a.file_cache_min * 1024,
            xattrs: match (a.xattrs, a.no_xattrs) {
                (true, _) => Xattrs::All,
                (_, true) => Xattrs::None,
                _ => Xattrs::Auto,
            },
        }
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    // A reader waits at most ~3 x 15 s for a dead server, then gets EIO.
    let s3 = cofre::S3Options {
        attempts: 3,
        attempt_timeout: Duration::from_secs(15),
        ..Default::default()
    };
    let session = Session::open_with(ctx.open.clone(), s3)?;
    session.mount(
        &a.mountpoint,
        MountOptions::from(&a),
        a.cache_size,
        a.file_cache,
    )?;
    Ok(0)
}
