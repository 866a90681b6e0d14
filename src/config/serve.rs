//! `[serve]`: where `cofre serve` listens and who may log in (docs/serve.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::locate::{key, Seg};

/// The web page to find and restore files.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    /// `address:port` (default 127.0.0.1:8080).
    pub listen: Option<String>,
    /// PEM certificate chain and key: HTTPS. Needed to listen beyond loopback, unless a
    /// proxy in front terminates TLS (`behind_proxy`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A reverse proxy in front terminates TLS and sets X-Forwarded-For.
    #[serde(default)]
    pub behind_proxy: bool,
    /// Memory for decoded chunks while serving downloads, in MiB.
    pub cache_mib: Option<usize>,
    /// Who may log in: `cofre serve passwd USER` writes an entry.
    #[serde(default)]
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// `viewer` browses and downloads; `admin` also restores to the server.
    pub role: Role,
    /// An argon2 hash in PHC form (`$argon2id$...`), never the password.
    pub password_hash: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }
}

/// What a user name may be, said where one is refused.
pub const USER_NAME_RULE: &str = "a user name is 1-64 letters, digits, `-`, `_`, `.` or `@`";

/// 1-64 letters, digits, `-`, `_`, `.` or `@`: `[[serve.users]]` and `cofre serve passwd`.
pub fn valid_user_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
    !name.is_empty() && name.len() <= 64 && name.chars().all(ok)
}

/// Names are unique and plain; hashes are argon2 PHC strings (a password pasted here by
/// mistake is refused rather than accepted as one).
pub(super) fn validate(s: &Serve) -> std::result::Result<(), (Vec<Seg>, String)> {
    let at = |i: usize, k: &str| vec![key("serve"), key("users"), Seg::Index(i), key(k)];
    for (i, u) in s.users.iter().enumerate() {
        if !valid_user_name(&u.name) {
            return Err((at(i, "name"), USER_NAME_RULE.into()));
        }
        if s.users[..i].iter().any(|o| o.name == u.name) {
            return Err((at(i, "name"), format!("user `{}` is listed twice", u.name)));
        }
        if !u.password_hash.starts_with("$argon2") {
            return Err((
                at(i, "password_hash"),
                format!(
                    "not an argon2 hash: run `cofre serve passwd {}` to set the password",
                    u.name
                ),
            ));
        }
    }
    if s.tls_cert.is_some() != s.tls_key.is_some() {
        return Err((
            vec![key("serve"), key("tls_cert")],
            "give both `tls_cert` and `tls_key`, or neither".into(),
        ));
    }
    Ok(())
}
