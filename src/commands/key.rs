//! `cofre key list|add|remove|passwd`.

use std::path::PathBuf;

use super::Context;
use crate::error::Result;
use crate::password::PasswordSource;
use crate::repo::keyfiles;

pub enum KeyAction {
    List,
    Add { new_password_file: Option<PathBuf> },
    Remove { id: String },
    Passwd { new_password_file: Option<PathBuf> },
}

/// The new password: from the file, else a prompt asked twice (as restic).
fn new_password(file: Option<PathBuf>) -> Result<Vec<u8>> {
    PasswordSource {
        file,
        ..Default::default()
    }
    .get_new()
}

pub fn key(ctx: &Context, action: KeyAction) -> Result<i32> {
    let repo = ctx.open_repo()?;
    match action {
        KeyAction::List => {
            let keys = keyfiles::list(&repo)?;
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
        KeyAction::Add { new_password_file } => {
            let id = keyfiles::add(&repo, &new_password(new_password_file)?)?;
            println!("added key {}", &id[..12]);
        }
        KeyAction::Remove { id } => {
            let id = keyfiles::remove(&repo, &id)?;
            println!("removed key {}", &id[..12]);
        }
        KeyAction::Passwd { new_password_file } => {
            let id = keyfiles::passwd(&repo, &new_password(new_password_file)?)?;
            println!("password changed (new key {})", &id[..12]);
        }
    }
    Ok(0)
}
