//! Where the password comes from: a command, a file, the environment, or a terminal prompt.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct PasswordSource {
    pub command: Option<String>,
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

fn trim_newline(mut s: Vec<u8>) -> Vec<u8> {
    while s.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        s.pop();
    }
    s
}

impl PasswordSource {
    /// A new password (`key add`, `key passwd`): from the file, else asked twice on the
    /// terminal. Never from COFRE_PASSWORD: that is the current one.
    pub fn get_new(&self) -> Result<Vec<u8>> {
        if let Some(f) = &self.file {
            let data = std::fs::read(f).map_err(|e| Error::io(f, e))?;
            return Ok(trim_newline(data));
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::InvalidArgument(
                "no new password: use --new-password-file or run on a terminal".into(),
            ));
        }
        let p =
            rpassword::prompt_password("new password: ").map_err(|e| Error::io("terminal", e))?;
        let again = rpassword::prompt_password("again: ").map_err(|e| Error::io("terminal", e))?;
        if again != p {
            return Err(Error::InvalidArgument("the passwords do not match".into()));
        }
        Ok(p.into_bytes())
    }

    /// `confirm` asks twice on a terminal (for `init`).
    pub fn get(&self, confirm: bool) -> Result<Vec<u8>> {
        if let Some(cmd) = &self.command {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| Error::PasswordCommand(format!("{cmd}: {e}")))?;
            if !out.status.success() {
                return Err(Error::PasswordCommand(format!(
                    "`{cmd}` exited with {}",
                    out.status
                )));
            }
            return Ok(trim_newline(out.stdout));
        }
        if let Some(f) = &self.file {
            let data = std::fs::read(f).map_err(|e| Error::io(f, e))?;
            return Ok(trim_newline(data));
        }
        if let Some(p) = &self.env {
            return Ok(p.as_bytes().to_vec());
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::NoPassword);
        }
        let p = rpassword::prompt_password("repository password: ")
            .map_err(|e| Error::io("terminal", e))?;
        if confirm {
            let again =
                rpassword::prompt_password("again: ").map_err(|e| Error::io("terminal", e))?;
            if again != p {
                return Err(Error::InvalidArgument("the passwords do not match".into()));
            }
        }
        Ok(p.into_bytes())
    }
}
