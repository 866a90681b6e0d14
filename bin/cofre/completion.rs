//! `cofre completion SHELL`: the completion script, from the same definitions as the parser.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;
use cofre::error::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

pub fn run(a: &Args) -> Result<i32> {
    let mut cmd = crate::Cli::command();
    // Into a buffer first: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "cofre", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Os(e)),
        _ => Ok(0),
    }
}
