//! `cofre generate DIR` (hidden; for packaging): man pages, shell completions and the
//! systemd units, all from the definitions the binary itself uses, so a package can never
//! document flags the binary does not have. Writes DIR/man/*.1, DIR/completions/{cofre.bash,
//! _cofre, cofre.fish} and DIR/systemd/cofre.{service,timer} (for /usr/bin/cofre and
//! /etc/cofre/cofre.toml).

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use cofre::error::{Error, Result};
use cofre::{service_unit, timer_unit, Every};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write man/, completions/ and systemd/.
    dir: PathBuf,
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    std::fs::write(path, data).map_err(|e| Error::io(path, e))
}

/// `cofre.1`, and `cofre-<sub>.1` for each subcommand (and theirs: `cofre-key-add.1`).
fn man_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<()> {
    let mut page = Vec::new();
    let cmd = cmd.clone().name(name.to_string());
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .map_err(Error::Os)?;
    write(&dir.join(format!("{name}.1")), &page)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}

pub fn run(a: &Args) -> Result<i32> {
    let mut cmd = crate::Cli::command();
    cmd.build();
    man_pages(&cmd, "cofre", &a.dir.join("man"))?;
    for (shell, file) in [
        (Shell::Bash, "cofre.bash"),
        (Shell::Zsh, "_cofre"),
        (Shell::Fish, "cofre.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, "cofre", &mut script);
        write(&a.dir.join("completions").join(file), &script)?;
    }
    let (exe, config) = (
        Path::new("/usr/bin/cofre"),
        Path::new("/etc/cofre/cofre.toml"),
    );
    let systemd = a.dir.join("systemd");
    write(
        &systemd.join("cofre.service"),
        service_unit(exe, config).as_bytes(),
    )?;
    write(
        &systemd.join("cofre.timer"),
        timer_unit("cofre", Every::DEFAULT).as_bytes(),
    )?;
    write(
        &systemd.join("cofre-serve.service"),
        cofre::serve_unit(exe, config).as_bytes(),
    )?;
    println!(
        "wrote man pages, completions and systemd units under {}",
        a.dir.display()
    );
    Ok(0)
}
