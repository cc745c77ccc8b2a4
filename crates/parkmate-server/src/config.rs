//! Configuration: defaults < optional `parkmate.toml` < environment (`PARKMATE_*`), validated once
//! at start-up into [`Settings`]. A bad value is an error naming its key; an unknown key is an error
//! too (a typo must not silently fall back to a default).
//!
//! Secrets: in development a missing JWT secret or API key is generated once, kept in
//! `<data_dir>/dev-secrets.toml` and announced with a warning; in production a missing or short one
//! refuses to start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Shortest secret accepted in production: 32 bytes, the HS256 key size.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Test,
    Production,
}

/// Where the booking domain's "now" comes from. `manual` only moves when told (end-to-end tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    System,
    Manual,
}

/// The configuration as written by a person: every key optional, names as in the docs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSettings {
    pub env: Environment,
    pub bind: String,
    pub database_url: String,
    pub jwt_secret: Option<String>,
    pub api_key: Option<String>,
    /// Comma-separated browser origins allowed to open sockets, besides the server's own origin.
    pub allowed_origins: String,
    pub max_connections: usize,
    pub queue_capacity: usize,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub max_frame_bytes: usize,
    pub read_buffer_bytes: usize,
    pub token_ttl_secs: u64,
    pub shutdown_grace_ms: u64,
    pub data_dir: PathBuf,
    pub web_dir: PathBuf,
    pub demo_data: bool,
    pub clock: ClockKind,
    pub log: String,
    /// `redis://…` (or `rediss://…`): fan out between the nodes of a cluster through Redis
    /// pub/sub. Unset: the in-process broker of a single node.
    pub redis_url: Option<String>,
    /// Every Redis key and channel of this cluster starts with this.
    pub redis_prefix: String,
    /// Serve the booking API; `false` runs the notification core alone.
    pub booking_api: bool,
    /// PEM certificate chain: with `tls_key`, this node serves `https://` and `wss://` itself.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            env: Environment::Development,
            bind: "127.0.0.1:8000".into(),
            database_url: "sqlite://data/parkmate.db".into(),
            jwt_secret: None,
            api_key: None,
            allowed_origins: "http://localhost:5173,http://127.0.0.1:5173".into(),
            // One process may hold 20,000 file descriptors here; leave room for the database,
            // the listener and HTTP clients.
            max_connections: 18_000,
            queue_capacity: 256,
            heartbeat_interval_ms: 20_000,
            heartbeat_timeout_ms: 45_000,
            write_timeout_ms: 10_000,
            max_frame_bytes: 4096,
            // Clients send little; tungstenite's 128 KiB default would cost ~137 KB per socket.
            read_buffer_bytes: 256,
            token_ttl_secs: 12 * 3600,
            shutdown_grace_ms: 5_000,
            data_dir: "data".into(),
            web_dir: "web/dist".into(),
            demo_data: true,
            clock: ClockKind::System,
            log: "info,sqlx=warn".into(),
            redis_url: None,
            redis_prefix: "parkmate".into(),
            booking_api: true,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub env: Environment,
    pub bind: SocketAddr,
    pub database_url: String,
    pub jwt_secret: SecretString,
    pub api_key: SecretString,
    pub allowed_origins: Vec<String>,
    /// Sockets this node holds at most; the next handshake gets 503.
    pub max_connections: usize,
    /// Frames queued per socket before it is closed as a slow consumer.
    pub queue_capacity: usize,
    pub heartbeat_interval: Duration,
    /// A peer silent for this long is dropped (4002).
    pub heartbeat_timeout: Duration,
    /// A write that takes longer means the peer stopped reading: the socket is dropped.
    pub write_timeout: Duration,
    pub max_frame_bytes: usize,
    pub read_buffer_bytes: usize,
    pub token_ttl: Duration,
    /// How long shutdown waits for sockets and queued writes to drain.
    pub shutdown_grace: Duration,
    pub data_dir: PathBuf,
    pub web_dir: PathBuf,
    pub demo_data: bool,
    pub clock: ClockKind,
    pub log: String,
    /// The cluster's Redis; may hold a password, hence secret. `None`: in-process broker.
    pub redis_url: Option<SecretString>,
    pub redis_prefix: String,
    pub booking_api: bool,
    /// Native TLS (`tls.rs`); `None`: plain HTTP, e.g. behind a TLS-terminating proxy.
    pub tls: Option<TlsFiles>,
    /// Set when a development secret was generated on this start, to tell the person.
    pub generated_secrets: bool,
}

/// Where the node's certificate and key are; read and checked by `tls::server_config` at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(Box<figment::Error>),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("cannot read or write development secrets at {path}: {source}")]
    DevSecrets {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Settings {
    /// Loads defaults < `file` (if it exists) < `PARKMATE_*` environment, then validates.
    pub fn load(file: &Path) -> Result<Settings, ConfigError> {
        let raw: RawSettings = Figment::new()
            .merge(Toml::file(file))
            // PARKMATE_CONFIG names the file itself (read by the CLI), so it is not a setting.
            .merge(Env::prefixed("PARKMATE_").ignore(&["config"]))
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        raw.validate()
    }
}

#[derive(Serialize, Deserialize)]
struct DevSecrets {
    jwt_secret: String,
    api_key: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl RawSettings {
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let bind: SocketAddr = self.bind.parse().map_err(|e| {
            invalid(
                "bind",
                format!("`{}` is not an address:port ({e})", self.bind),
            )
        })?;
        if !self.database_url.contains("://") && !self.database_url.starts_with("sqlite:") {
            return Err(invalid(
                "database_url",
                format!("`{}` is not a URL", self.database_url),
            ));
        }
        let positive = |key, v: u64| {
            if v == 0 {
                Err(invalid(key, "must be greater than 0"))
            } else {
                Ok(v)
            }
        };
        positive("max_connections", self.max_connections as u64)?;
        positive("queue_capacity", self.queue_capacity as u64)?;
        positive("heartbeat_interval_ms", self.heartbeat_interval_ms)?;
        positive("write_timeout_ms", self.write_timeout_ms)?;
        positive("token_ttl_secs", self.token_ttl_secs)?;
        if self.heartbeat_timeout_ms <= self.heartbeat_interval_ms {
            return Err(invalid(
                "heartbeat_timeout_ms",
                "must be longer than heartbeat_interval_ms",
            ));
        }
        if !(256..=1 << 20).contains(&self.max_frame_bytes) {
            return Err(invalid(
                "max_frame_bytes",
                "must be between 256 and 1048576",
            ));
        }
        if !(256..=1 << 20).contains(&self.read_buffer_bytes) {
            return Err(invalid(
                "read_buffer_bytes",
                "must be between 256 and 1048576",
            ));
        }
        let allowed_origins: Vec<String> = self
            .allowed_origins
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        for o in &allowed_origins {
            if !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(invalid(
                    "allowed_origins",
                    format!("`{o}` is not an http(s) origin"),
                ));
            }
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis+unix://")
                || url.starts_with("unix://"))
        {
            // Not echoed: the URL may carry a password.
            return Err(invalid(
                "redis_url",
                "must be a redis://, rediss:// or unix:// URL",
            ));
        }
        if self.redis_prefix.is_empty()
            || !self
                .redis_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-:.".contains(&b))
        {
            return Err(invalid(
                "redis_prefix",
                "must be non-empty letters, digits, `_`, `-`, `:` or `.`",
            ));
        }
        let tls = match (self.tls_cert, self.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                if cert.as_os_str().is_empty() {
                    return Err(invalid("tls_cert", "must be a path to a PEM file"));
                }
                if key.as_os_str().is_empty() {
                    return Err(invalid("tls_key", "must be a path to a PEM file"));
                }
                Some(TlsFiles { cert, key })
            }
            // Half a TLS configuration is a mistake, not a request for plain HTTP.
            (Some(_), None) => {
                return Err(invalid(
                    "tls_key",
                    "is required when tls_cert is set (PARKMATE_TLS_CERT and PARKMATE_TLS_KEY go together)",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_cert",
                    "is required when tls_key is set (PARKMATE_TLS_CERT and PARKMATE_TLS_KEY go together)",
                ));
            }
        };
        let production = self.env == Environment::Production;
        if production && self.clock == ClockKind::Manual {
            return Err(invalid(
                "clock",
                "a manual clock is for tests and refused in production",
            ));
        }

        let mut generated_secrets = false;
        let (jwt_secret, api_key) = match (self.jwt_secret, self.api_key) {
            (Some(s), Some(k)) => (s, k),
            (s, k) if production => {
                let key = if s.is_none() { "jwt_secret" } else { "api_key" };
                let _ = k;
                return Err(invalid(
                    key,
                    "is required when env = production (PARKMATE_JWT_SECRET, PARKMATE_API_KEY)",
                ));
            }
            (s, k) => {
                let (dev, fresh) = dev_secrets(&self.data_dir)?;
                generated_secrets = fresh;
                (s.unwrap_or(dev.jwt_secret), k.unwrap_or(dev.api_key))
            }
        };
        if production {
            if jwt_secret.len() < MIN_SECRET_LEN {
                return Err(invalid(
                    "jwt_secret",
                    format!("must be at least {MIN_SECRET_LEN} bytes in production"),
                ));
            }
            if api_key.len() < MIN_SECRET_LEN {
                return Err(invalid(
                    "api_key",
                    format!("must be at least {MIN_SECRET_LEN} bytes in production"),
                ));
            }
        }
        if jwt_secret.is_empty() {
            return Err(invalid("jwt_secret", "must not be empty"));
        }
        if api_key.is_empty() {
            return Err(invalid("api_key", "must not be empty"));
        }

        Ok(Settings {
            env: self.env,
            bind,
            database_url: self.database_url,
            jwt_secret: SecretString::from(jwt_secret),
            api_key: SecretString::from(api_key),
            allowed_origins,
            max_connections: self.max_connections,
            queue_capacity: self.queue_capacity,
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
            heartbeat_timeout: Duration::from_millis(self.heartbeat_timeout_ms),
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            max_frame_bytes: self.max_frame_bytes,
            read_buffer_bytes: self.read_buffer_bytes,
            token_ttl: Duration::from_secs(self.token_ttl_secs),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            data_dir: self.data_dir,
            web_dir: self.web_dir,
            demo_data: self.demo_data,
            clock: self.clock,
            log: self.log,
            redis_url: self.redis_url.map(SecretString::from),
            redis_prefix: self.redis_prefix,
            booking_api: self.booking_api,
            tls,
            generated_secrets,
        })
    }
}

/// Reads `<data_dir>/dev-secrets.toml`, creating it with fresh random values the first time.
fn dev_secrets(data_dir: &Path) -> Result<(DevSecrets, bool), ConfigError> {
    let path = data_dir.join("dev-secrets.toml");
    let io = |source| ConfigError::DevSecrets {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secrets: DevSecrets = Figment::new()
                .merge(Toml::string(&text))
                .extract()
                .map_err(|e| ConfigError::Parse(Box::new(e)))?;
            Ok((secrets, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(io)?;
            let secrets = DevSecrets {
                jwt_secret: random_hex(32),
                api_key: random_hex(24),
            };
            let text = format!(
                "# Generated for development by `parkmate`; production sets PARKMATE_JWT_SECRET and PARKMATE_API_KEY.\n\
                 jwt_secret = \"{}\"\napi_key = \"{}\"\n",
                secrets.jwt_secret, secrets.api_key
            );
            write_private(&path, &text).map_err(io)?;
            Ok((secrets, true))
        }
        Err(e) => Err(io(e)),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
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

impl Settings {
    pub fn api_key(&self) -> &str {
        self.api_key.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(dir: &Path) -> RawSettings {
        RawSettings {
            data_dir: dir.to_owned(),
            ..RawSettings::default()
        }
    }

    #[test]
    fn development_generates_secrets_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = raw(dir.path()).validate().unwrap();
        assert!(a.generated_secrets);
        let b = raw(dir.path()).validate().unwrap();
        assert!(!b.generated_secrets);
        assert_eq!(a.jwt_secret.expose_secret(), b.jwt_secret.expose_secret());
        assert!(
            !format!("{a:?}").contains(a.jwt_secret.expose_secret()),
            "Debug must redact secrets"
        );
    }

    #[test]
    fn production_requires_long_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = raw(dir.path());
        r.env = Environment::Production;
        let err = r.clone().validate().unwrap_err().to_string();
        assert!(err.contains("jwt_secret"), "{err}");
        r.jwt_secret = Some("short".into());
        r.api_key = Some("k".repeat(40));
        let err = r.clone().validate().unwrap_err().to_string();
        assert!(err.contains("jwt_secret") && err.contains("32"), "{err}");
        r.jwt_secret = Some("s".repeat(40));
        assert!(r.validate().is_ok());
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = raw(dir.path());
        r.bind = "nowhere".into();
        assert!(r.validate().unwrap_err().to_string().contains("`bind`"));
        let mut r = raw(dir.path());
        r.redis_url = Some("http://secret@x".into());
        let err = r.validate().unwrap_err().to_string();
        assert!(
            err.contains("redis_url") && !err.contains("secret"),
            "{err}"
        );
        let mut r = raw(dir.path());
        r.redis_prefix = "has space".into();
        assert!(
            r.validate()
                .unwrap_err()
                .to_string()
                .contains("redis_prefix")
        );
        let mut r = raw(dir.path());
        r.allowed_origins = "ftp://x".into();
        assert!(
            r.validate()
                .unwrap_err()
                .to_string()
                .contains("allowed_origins")
        );
    }

    #[test]
    fn tls_needs_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = raw(dir.path());
        r.tls_cert = Some("cert.pem".into());
        let err = r.clone().validate().unwrap_err().to_string();
        assert!(
            err.contains("`tls_key`") && err.contains("PARKMATE_TLS_KEY"),
            "{err}"
        );
        r.tls_cert = None;
        r.tls_key = Some("key.pem".into());
        let err = r.clone().validate().unwrap_err().to_string();
        assert!(err.contains("`tls_cert`"), "{err}");
        r.tls_cert = Some("".into());
        let err = r.clone().validate().unwrap_err().to_string();
        assert!(err.contains("`tls_cert`"), "{err}");
        r.tls_cert = Some("cert.pem".into());
        let s = r.validate().unwrap();
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                cert: "cert.pem".into(),
                key: "key.pem".into()
            })
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn file_and_environment_layer_over_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "parkmate.toml",
                "bind = \"127.0.0.1:9000\"\nqueue_capacity = 64\n",
            )?;
            jail.set_env("PARKMATE_QUEUE_CAPACITY", "32");
            jail.set_env(
                "PARKMATE_DATA_DIR",
                jail.directory().join("d").display().to_string(),
            );
            let s = Settings::load(Path::new("parkmate.toml")).unwrap();
            assert_eq!(s.bind.port(), 9000);
            assert_eq!(s.queue_capacity, 32);
            jail.set_env("PARKMATE_QUEUE_CAPACITY", "lots");
            let err = Settings::load(Path::new("parkmate.toml"))
                .unwrap_err()
                .to_string()
                .to_lowercase();
            assert!(err.contains("queue_capacity"), "{err}");
            jail.set_env("PARKMATE_QUEUE_CAPACITY", "32");
            // The CLI's own variable is not a setting.
            jail.set_env("PARKMATE_CONFIG", "parkmate.toml");
            assert!(Settings::load(Path::new("parkmate.toml")).is_ok());
            jail.set_env("PARKMATE_QUEUE_CAPACTY", "32");
            let err = Settings::load(Path::new("parkmate.toml"))
                .unwrap_err()
                .to_string()
                .to_lowercase();
            assert!(err.contains("queue_capacty"), "{err}");
            Ok(())
        });
    }
}
