//! `cofre init`.

use cofre::error::Result;
use cofre::Compression;
use cofre::Session;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// How new blobs are compressed by default: lz4, zstd, zstd:LEVEL or none.
    #[arg(long, value_parser = Compression::parse)]
    compression: Option<Compression>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let s = Session::init(ctx.open.clone(), a.compression)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"id": s.id(), "location": s.location()}))?;
    } else {
        println!("created repository {} at {}", s.id(), s.location());
        println!("keep the password safe: without it the data cannot be recovered");
    }
    Ok(0)
}
