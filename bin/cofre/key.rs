//! `cofre key list|add|remove|passwd`.

use std::path::PathBuf;

use clap::Subcommand;
use cofre::error::Result;
use cofre::PasswordSource;

use crate::Ctx;

#[derive(Subcommand)]
pub enum Cmd {
    /// List key files; `*` marks the one in use.
    List,
    /// Add a password.
    Add {
        /// Read the new password from this file (else prompt).
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key (not the one in use, never the last).
    Remove { id: String },
    /// Change the password in use: adds a key with the new password, removes the old one.
    Passwd {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
}

/// The new password: from the file, else a prompt asked twice (as restic).
fn new_password(file: Option<PathBuf>) -> Result<Vec<u8>> {
    PasswordSource {
        file,
        ..Default::default()
    }
    .get_new()
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List => {
            let keys = s.keys()?;
            if ctx.json {
                ctx.print_json(&keys)?;
            } else {
                for k in keys {
                    let mark = if k.current { "*" } else { " " };
                    println!(
                        "{mark} {}  {}  {}@{}",
                        &k.id[..12],
                        k.created,
                        k.username,
                        k.hostname
                    );
                }
            }
        }
        Cmd::Add { new_password_file } => {
            let id = s.add_key(&new_password(new_password_file)?)?;
            println!("added key {}", &id[..12]);
        }
        Cmd::Remove { id } => {
            let id = s.remove_key(&id)?;
            println!("removed key {}", &id[..12]);
        }
        Cmd::Passwd { new_password_file } => {
            let id = s.change_password(&new_password(new_password_file)?)?;
            println!("password changed (new key {})", &id[..12]);
        }
    }
    Ok(0)
}
