//! `cofre config validate|show`.

use std::path::PathBuf;

use super::Context;
use crate::config;
use crate::error::{Error, Result};

/// Validates the file (`--config`, `COFRE_CONFIG` or the default location) and prints it
/// resolved (`show`) or a one-line verdict (`validate`).
pub fn config(ctx: &Context, file: Option<PathBuf>, show: bool) -> Result<i32> {
    let Some((path, cfg)) = config::load(file.as_deref())? else {
        return Err(Error::InvalidArgument(format!(
            "no configuration file at {} (give --config FILE)",
            config::default_path().display()
        )));
    };
    if show {
        if ctx.json {
            ctx.print_json(&cfg)?;
        } else {
            let text = toml::to_string_pretty(&cfg)
                .map_err(|e| Error::corrupt("configuration", e.to_string()))?;
            print!("{text}");
        }
    } else {
        println!("{}: valid, {} set(s)", path.display(), cfg.sets.len());
    }
    Ok(0)
}
