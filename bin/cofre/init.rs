//! `cofre init`.

use std::path::PathBuf;

use cofre::error::Result;
use cofre::Compression;
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
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let s = match &a.copy_params_from {
        None => Session::init(ctx.open.clone(), a.compression)?,
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
            Session::init_copying(ctx.open.clone(), &from)?
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
        println!("keep the password safe: without it the data cannot be recovered");
    }
    Ok(0)
}
