//! Helpers of loading: figment's errors rendered per key, and the development secrets file.

use std::path::Path;

use figment::Figment;
use figment::error::Kind;
use figment::providers::{Format, Toml};
use rand::RngCore;
use serde::Deserialize;

use super::{ConfigError, RENAMED, SECRET_KEYS, env_var};

/// Renders figment's errors one per line, each with the key, the variable that sets it, where the
/// value came from, and for a renamed key where it went. Secret values are never repeated.
pub(super) fn describe(errors: figment::Error) -> String {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            // figment's path ends at the field for some errors and at its parent for others.
            let mut path = e.path.clone();
            let field = match &e.kind {
                Kind::UnknownField(field, _) => Some(field.clone()),
                Kind::MissingField(field) => Some(field.to_string()),
                _ => None,
            };
            if let Some(field) = field
                && path.last() != Some(&field)
            {
                path.push(field);
            }
            let key = path.join(".");
            let what = if SECRET_KEYS.contains(&key.as_str()) {
                // figment reads `123` or `[a]` in a variable as a number or a list.
                format!(
                    "must be a string (the value is not shown: it is a secret; quote one that \
                     reads as a number or a list, e.g. {}='\"…\"')",
                    env_var(&key)
                )
            } else {
                e.kind.to_string()
            };
            let mut line = if key.is_empty() {
                what
            } else {
                format!("`{key}` ({}): {what}", env_var(&key))
            };
            if let Some(md) = &e.metadata {
                match &md.source {
                    Some(source) => line.push_str(&format!(" [in {source}]")),
                    None => line.push_str(&format!(" [in {}]", md.name)),
                }
            }
            if let Kind::UnknownField(..) = e.kind
                && let Some((old, now)) = RENAMED.iter().find(|(old, _)| *old == key)
            {
                line.push_str(&format!("; it was renamed `{now}` ({})", env_var(now)));
                if old.ends_with("_ms") || old.ends_with("_secs") {
                    line.push_str(", now a duration with its unit, such as \"20s\"");
                }
            }
            line
        })
        .collect();
    lines.join("\n")
}

/// `dev-vapid.toml`: the private key, and the public key a person may read (checked against it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DevVapid {
    pub(super) vapid_private_key: String,
    pub(super) vapid_public_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DevSecrets {
    pub(super) jwt_secret: String,
    pub(super) api_key: String,
}

pub(super) fn parse_dev_secrets(path: &Path, text: &str) -> Result<DevSecrets, ConfigError> {
    Figment::new()
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| ConfigError::DevSecretsMalformed {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

pub(super) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}
