//! `cofre config validate|show`.

use clap::Subcommand;

use cofre::error::{Error, Result};

use crate::Ctx;

#[derive(Subcommand)]
pub enum Cmd {
    /// Parse and check the file; errors name the table and key.
    Validate,
    /// The parsed file with defaults filled in (--json for JSON).
    Show,
}

/// Validates the file (`--config`, `COFRE_CONFIG` or the default location) and prints it
/// resolved (`show`: flags and environment over the file over defaults, as every command
/// sees it) or a one-line verdict (`validate`).
pub fn run(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    let show = matches!(cmd, Cmd::Show);
    let Some((path, mut cfg)) = cofre::load_config(ctx.config_path.as_deref())? else {
        return Err(Error::InvalidArgument(format!(
            "no configuration file at {} (give --config FILE)",
            cofre::default_config_path().display()
        )));
    };
    if show {
        // `context()` already resolved these; show what commands will use.
        let open = &ctx.open;
        cfg.repository = open.repo.clone();
        cfg.catalog = open.catalog.clone();
        cfg.password_file = open.password.file.clone();
        cfg.password_command = open.password.command.clone();
        // Which source gives the password (never the password itself), in the order
        // `PasswordSource::get` tries them.
        let from = match (
            &cfg.password_command,
            &cfg.password_file,
            &open.password.env,
        ) {
            (Some(_), _, _) => "password_command",
            (None, Some(_), _) => "password_file",
            (None, None, Some(_)) => "COFRE_PASSWORD",
            (None, None, None) => "prompt",
        };
        if ctx.json {
            let mut v = serde_json::to_value(&cfg)
                .map_err(|e| Error::corrupt("configuration", e.to_string()))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("password_from".into(), from.into());
            }
            ctx.print_json(&v)?;
        } else {
            let text = toml::to_string_pretty(&cfg)
                .map_err(|e| Error::corrupt("configuration", e.to_string()))?;
            print!("# password from: {from}\n{text}");
        }
    } else {
        println!("{}: valid, {} set(s)", path.display(), cfg.sets.len());
    }
    Ok(0)
}
