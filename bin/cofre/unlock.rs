//! `cofre unlock`.

use cofre::error::Result;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Remove every lock, even live ones: only when no other cofre uses the repository.
    #[arg(long)]
    remove_all: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let removed = ctx.session()?.unlock(a.remove_all)?;
    if ctx.json {
        ctx.print_json(&removed)?;
    } else {
        for r in &removed {
            println!("removed {r}");
        }
        println!("{} lock(s) removed", removed.len());
    }
    Ok(0)
}
