//! `cofre init`.

use std::path::PathBuf;

use cofre::error::Result;
use cofre::{Compression, LockMode, ObjectLock};
use cofre::{OpenOptions, PasswordSource, Session};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// How new blobs are compressed by default: lz4, zstd, zstd:LEVEL or none.
    #[arg(long, value_parser = Compression::parse, conflicts_with = "copy_params_from")]
    compression: Option<Compression>,
    /// Share this repository's keys and chunker (with a password of its own), so that
    /// `cofre copy` can fill the new one with its snapshots as they are.
    #[arg(long, value_name = "REPO")]
    copy_params_from: Option<String>,
    /// The password of the --copy-params-from repository, from this file (else
    /// COFRE_FROM_PASSWORD, else asked).
    #[arg(long, requires = "copy_params_from")]
    from_password_file: Option<PathBuf>,
    /// Keep every snapshot's objects under S3 Object Lock (governance or compliance), so
    /// that no credential can delete or overwrite them for a while (docs/object-lock.md).
    /// The bucket must have been made with Object Lock enabled.
    #[arg(long, value_name = "MODE")]
    object_lock: Option<LockMode>,
    /// With --object-lock: every object is locked this many days when written, and kept
    /// locked at least this far ahead while a kept snapshot needs it.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=36500), requires = "object_lock")]
    lock_days: u32,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let lock = a.object_lock.map(|mode| ObjectLock {
        mode,
        days: a.lock_days,
    });
    let s = match &a.copy_params_from {
        None => Session::init(ctx.open.clone(), a.compression, lock)?,
        Some(from) => {
            let from = Session::open(OpenOptions {
                repo: Some(from.clone()),
                password: PasswordSource {
                    file: a.from_password_file.clone(),
                    env: std::env::var("COFRE_FROM_PASSWORD").ok(),
                    command: None,
                },
                catalog: None,
                ..ctx.open.clone()
            })?;
            Session::init_copying(ctx.open.clone(), &from, lock)?
        }
    };
    if ctx.json {
        ctx.print_json(&serde_json::json!({"id": s.id(), "location": s.location()}))?;
    } else {
        println!("created repository {} at {}", s.id(), s.location());
        if let Some(from) = &a.copy_params_from {
            println!(
                "it shares {from}'s keys: `cofre copy --to {}` fills it",
                s.location()
            );
        }
        if let Some(mode) = a.object_lock {
            println!(
                "every object is written under S3 Object Lock ({mode:?}, {} days); `cofre lock extend` keeps what kept snapshots need locked",
                a.lock_days
            );
        }
        println!("keep the password safe: without it the data cannot be recovered");
    }
    Ok(0)
}
