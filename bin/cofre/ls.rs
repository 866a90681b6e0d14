//! `cofre ls`.

use cofre::error::Result;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// SNAPSHOT[:PATH]: an id prefix or `latest`, and a path in it.
    spec: String,
    #[arg(long)]
    set: Option<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let (snap, path) = crate::split_spec(&a.spec);
    let list = ctx.session()?.list(snap, path, a.set.as_deref())?;
    if ctx.json {
        return ctx.print_json(&list).map(|_| 0);
    }
    for e in &list {
        let link = e
            .target
            .as_ref()
            .map(|t| format!(" -> {t}"))
            .unwrap_or_default();
        println!(
            "{:<8} {:>5} {:<8} {:<8} {:>12} {} {}{}",
            e.kind,
            e.mode,
            e.user,
            e.group,
            e.size,
            &e.mtime[..e.mtime.len().min(19)],
            e.path,
            link
        );
    }
    Ok(0)
}
