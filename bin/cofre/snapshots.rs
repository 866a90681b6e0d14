//! `cofre snapshots`.

use cofre::error::Result;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    set: Option<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let list = ctx.session()?.snapshots(a.set.as_deref())?;
    if ctx.json {
        return ctx.print_json(&list).map(|_| 0);
    }
    println!(
        "{:<8}  {:<20}  {:<12}  {:>8}  {:>12}  {:<12}  paths",
        "id", "time", "set", "files", "bytes", "tags"
    );
    for s in &list {
        println!(
            "{:<8}  {:<20}  {:<12}  {:>8}  {:>12}  {:<12}  {}",
            s.short_id,
            &s.time[..s.time.len().min(19)],
            s.set,
            s.files,
            s.bytes,
            s.tags.join(","),
            s.paths.join(" ")
        );
    }
    println!("{} snapshots", list.len());
    Ok(0)
}
