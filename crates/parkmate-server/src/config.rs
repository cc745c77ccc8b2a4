//! Configuration: defaults < optional `parkmate.toml` < environment (`PARKMATE_*`), into one typed
//! [`Settings`]. Each setting is written once: its field, type, default and doc sit together, and
//! its type is most of its validation (`NonZeroUsize`, durations such as `"20s"`, addresses,
//! enums, and small checked types such as [`BufferBytes`] or [`RedisUrl`]). [`Settings::validate`]
//! checks only what a type cannot say (one setting against another, production's refusals) and
//! touches no file. A bad value is an error naming its key and variable; an unknown key is an
//! error too (a typo must not silently fall back to a default).
//!
//! Environment variables follow one rule: `PARKMATE_<SECTION>_<KEY>` sets `key` of `[section]`
//! (`PARKMATE_WS_QUEUE_CAPACITY` → `ws.queue_capacity`), `PARKMATE_<KEY>` a top-level key.
//!
//! Production is safe by default: a setting whose default suits development only (demo accounts,
//! `?token=` on the socket, localhost origins, `/metrics` on the public address) defaults to the
//! safe side when `env = production`, and setting the unsafe side explicitly stops the start with
//! an error naming the key (`docs/security.md` lists them all).
//!
//! Secrets: in production a missing or short JWT secret or API key refuses to start. In
//! development they may be left out: `parkmate serve` then generates them once into
//! `<data_dir>/dev-secrets.toml` ([`Settings::generate_dev_secrets`], an explicit step of `serve`
//! only), and client commands read that file if it exists ([`Settings::use_dev_secrets`]) but never
//! create it.
//!
//! Over 500 lines on purpose: every setting's field, type, default and doc sit together here by
//! design (one place to read them all); value types, loading helpers and tests live in config/.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

mod load;
#[cfg(test)]
mod tests;
mod values;

use load::{DevSecrets, DevVapid, describe, parse_dev_secrets, random_hex, write_private};
pub use values::*;

/// Shortest secret accepted in production: 32 bytes, the HS256 key size.
pub const MIN_SECRET_LEN: usize = 32;

/// Every environment variable of the settings starts with this.
pub const ENV_PREFIX: &str = "PARKMATE_";

/// The shortest notification retention production accepts.
const MIN_PRODUCTION_RETENTION: Duration = Duration::from_secs(86_400);

/// The `[section]`s of [`Settings`]: `PARKMATE_<SECTION>_<KEY>` sets `section.key`. No top-level
/// key starts with one of these followed by `_` (a test holds the list to the struct).
const SECTIONS: &[&str] = &[
    "database", "http", "ws", "limits", "redis", "tls", "booking", "metrics", "push",
];

/// Settings that moved when they became sections, old key → new key: an old name is still an
/// error (no silent fallback), but one that says where the setting went.
const RENAMED: &[(&str, &str)] = &[
    ("database_url", "database.url"),
    ("allowed_origins", "ws.allowed_origins"),
    ("max_connections", "ws.max_connections"),
    ("queue_capacity", "ws.queue_capacity"),
    ("heartbeat_interval_ms", "ws.heartbeat_interval"),
    ("heartbeat_timeout_ms", "ws.heartbeat_timeout"),
    ("write_timeout_ms", "ws.write_timeout"),
    ("max_frame_bytes", "ws.max_frame_bytes"),
    ("read_buffer_bytes", "ws.read_buffer_bytes"),
    ("token_ttl_secs", "token_ttl"),
    ("shutdown_grace_ms", "shutdown_grace"),
    ("redis_url", "redis.url"),
    ("redis_prefix", "redis.prefix"),
    ("tls_cert", "tls.cert"),
    ("tls_key", "tls.key"),
    ("booking_api", "booking.api"),
    ("demo_data", "booking.demo_data"),
];

/// Keys whose values are never repeated in an error message.
const SECRET_KEYS: &[&str] = &[
    "jwt_secret",
    "api_key",
    "redis.url",
    "metrics.token",
    "push.vapid_private_key",
];

/// `ws.allowed_origins` outside production when not set: the Vite dev server of `web/`.
static DEV_ORIGINS: LazyLock<AllowedOrigins> =
    LazyLock::new(|| AllowedOrigins::of(["http://localhost:5173", "http://127.0.0.1:5173"]));
/// `ws.allowed_origins` in production when not set: none besides the server's own.
static NO_ORIGINS: LazyLock<AllowedOrigins> = LazyLock::new(|| AllowedOrigins::of([]));

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Test,
    Production,
}

/// Where the booking domain's "now" comes from. `manual` only moves when told (end-to-end tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    #[default]
    System,
    Manual,
}

/// How log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event for people; ANSI colours only when stdout is a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, …), for log shippers.
    Json,
}

/// Everything the server can be told. Top-level keys, then one struct per `[section]`.
#[derive(Debug, Clone, SmartDefault, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `production` refuses to start without long secrets, and refuses the manual clock.
    pub env: Environment,
    /// The listen address.
    #[default(SocketAddr::from(([127, 0, 0, 1], 8000)))]
    pub bind: SocketAddr,
    /// Log filter (`RUST_LOG` overrides it).
    #[default("info,sqlx=warn")]
    pub log: String,
    /// `text` (one human line per event; coloured only on a terminal) or `json` (one JSON object
    /// per line, for log shippers).
    pub log_format: LogFormat,
    /// Where the development secrets live.
    #[default("data")]
    pub data_dir: PathBuf,
    /// The built web client.
    #[default("web/dist")]
    pub web_dir: PathBuf,
    pub clock: ClockKind,
    /// HS256 key of user tokens; required (≥ 32 bytes) in production.
    #[cfg_attr(test, serde(skip_serializing))]
    pub jwt_secret: Option<SecretString>,
    /// The backends' bearer key for `POST /api/notifications`; required (≥ 32 bytes) in
    /// production.
    #[cfg_attr(test, serde(skip_serializing))]
    pub api_key: Option<SecretString>,
    /// Lifetime of the tokens the server mints.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(12 * 3600))]
    pub token_ttl: Duration,
    /// The drain before a stop: the node answers `/readyz` 503, refuses new sockets (503) and
    /// closes its open ones with 1012 in waves spread over this long, so their clients reconnect
    /// to the other nodes a few at a time rather than all at once. A node holding no socket skips
    /// it. `0s` closes every socket at once.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(3))]
    pub shutdown_drain: Duration,
    /// How long shutdown waits, after the drain, for requests in flight, sockets and queued
    /// writes.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(5))]
    pub shutdown_grace: Duration,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub ws: WsSettings,
    pub limits: LimitsSettings,
    pub redis: RedisSettings,
    /// Native TLS (`tls.rs`); `None`: plain HTTP, e.g. behind a TLS-terminating proxy.
    pub tls: Option<TlsFiles>,
    pub booking: BookingSettings,
    pub metrics: MetricsSettings,
    pub push: PushSettings,
}

/// `[push]`: Web Push to a person's browsers when no open socket of theirs saw a notification
/// (`docs/push.md`). Push is on when the node has a VAPID key pair: configured, or in development
/// the one `parkmate serve` generates into `<data_dir>/dev-vapid.toml`.
#[derive(Debug, Clone, SmartDefault, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// Send Web Push. Unset: on when a VAPID private key is configured (or, outside production,
    /// generated). `true` without `vapid_private_key` is refused in production; `false` turns it
    /// off (the subscription routes then answer 404 `push_disabled`).
    #[cfg_attr(test, serde(skip_serializing))]
    pub enabled: Option<bool>,
    /// The application server's VAPID private key (RFC 8292): base64url of the 32-byte P-256
    /// scalar, as `web-push generate-vapid-keys` prints it. A secret: whoever holds it can push
    /// to every subscribed browser (with their endpoints). Changing it invalidates every
    /// subscription (browsers bind a subscription to the public key).
    #[cfg_attr(test, serde(skip_serializing))]
    pub vapid_private_key: Option<SecretString>,
    /// The public half, checked against the private key at start-up when given (a mismatched pair
    /// would be refused by browsers only later, silently). Derived when unset.
    pub vapid_public_key: Option<String>,
    /// The contact put in every VAPID token (`sub`): `mailto:` or `https:`. Required in
    /// production when push is on (push services use it to reach the operator); a placeholder
    /// outside production.
    pub vapid_subject: Option<String>,
    /// How long a notification waits for an `ack` from one of its person's sockets before it is
    /// pushed. Urgent events (`booking_expiring`, `booking_expired`) do not wait.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(10))]
    pub escalation_window: Duration,
    /// Push subscriptions (browsers, devices) one person may register; the next one answers 409
    /// `too_many_subscriptions`. Each costs a push request per escalated notification.
    #[default(NonZeroUsize::new(10).expect("non-zero"))]
    pub max_subscriptions_per_user: NonZeroUsize,
    /// How long the push service keeps a message for an offline browser (the `TTL` header). A
    /// parking notice an hour old is not worth showing.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(3600))]
    pub ttl: Duration,
}

/// The VAPID contact used outside production when `push.vapid_subject` is unset.
pub const DEV_VAPID_SUBJECT: &str = "mailto:dev@parkmate.invalid";

/// `[http]`: connections before they become sockets, and request bodies.
#[derive(Debug, Clone, SmartDefault, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// A request head (request line and headers) must arrive within this, counted from the
    /// connection's first byte wait or the previous response: a peer that trickles a head, or a
    /// keep-alive connection left idle, is closed after it. Bounds what a slowloris can hold.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(10))]
    pub header_read_timeout: Duration,
    /// HTTP connections open at once (not counting upgraded sockets, which `ws.max_connections`
    /// caps): past it the node stops accepting until one closes, so connections waiting for
    /// their head cannot take the file descriptors the sockets need. With the socket cap and the
    /// database it must fit the process's descriptor limit (20,000 here).
    #[default(NonZeroUsize::new(1024).expect("non-zero"))]
    pub max_connections: NonZeroUsize,
    /// Largest request body (the publish API's, the booking API's): 413 `payload_too_large`
    /// above it, decided from `Content-Length` before a byte is read. 64 KiB holds the largest
    /// valid publish (a 2,000-character message, 16 KiB of `data`, 1,000 user ids).
    #[default(BufferBytes(64 * 1024))]
    pub max_body_bytes: BufferBytes,
    /// Proxies (addresses or networks) whose `X-Forwarded-For` is believed for per-address
    /// limits. Empty: the peer of the connection is the client. Behind nginx, list nginx here,
    /// or every client shares nginx's address and its limits.
    pub trusted_proxies: TrustedProxyList,
}

/// `[limits]`: rate limits (`"N/s"`, `"N/min"`, `"N/h"`, or `"off"`; a burst of N, refilled
/// evenly) and the password-hashing bound. Over a rate: 429 `rate_limited` with `Retry-After`.
#[derive(Debug, Clone, SmartDefault, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// `POST /api/auth/login` per client address: slows password guessing across accounts.
    #[default(RateSetting::of("30/min"))]
    pub login_per_ip: RateSetting,
    /// `POST /api/auth/login` per email address: slows guessing one account's password from
    /// many addresses. (It also lets someone spend another person's attempts: a tradeoff every
    /// per-account limit makes; the per-address limit bounds it.)
    #[default(RateSetting::of("10/min"))]
    pub login_per_account: RateSetting,
    /// `POST /api/auth/register` per client address: accounts are cheap to make, and each one
    /// brings `ws.max_connections_per_user` more sockets.
    #[default(RateSetting::of("20/h"))]
    pub register_per_ip: RateSetting,
    /// `POST /api/notifications` for the API key: a leaked key or a backend in a loop cannot bury
    /// the store. Below the ~17,000/s one node stores (BENCHMARKS.md), so a flood is refused
    /// rather than queued.
    #[default(RateSetting::of("10000/s"))]
    pub publish: RateSetting,
    /// WebSocket handshakes per client address, counted before anything else is checked (a
    /// flood of bad tokens costs one map lookup each).
    #[default(RateSetting::of("300/min"))]
    pub handshakes_per_ip: RateSetting,
    /// Frames a client may send on one socket (`ping`, `mark_read`, `mark_all_read` each cost
    /// a store call). Over it a frame is answered with an `error` frame `rate_limited` and not
    /// run; ten refusals in a row close the socket with 4009.
    #[default(RateSetting::of("10/s"))]
    pub client_frames: RateSetting,
    /// Password hashes (argon2id, ~19 MiB and tens of ms of CPU each) computed at once, for
    /// login and register together.
    #[default(NonZeroUsize::new(4).expect("non-zero"))]
    pub password_hashes: NonZeroUsize,
    /// How long a login or register waits for a hashing slot before it is answered 503
    /// `overloaded` with `Retry-After`.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(2))]
    pub password_hash_wait: Duration,
}

/// `[metrics]`: who may read `/metrics`.
#[derive(Debug, Clone, SmartDefault, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `/metrics` on this address of its own (e.g. an internal interface) and not on
    /// `bind`.
    pub bind: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>` on `/metrics` (Prometheus' `authorization`).
    #[cfg_attr(test, serde(skip_serializing))]
    pub token: Option<SecretString>,
}

/// `[database]`
#[derive(Debug, Clone, SmartDefault, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://…`, or `postgres://…` for a cluster.
    #[default(DatabaseUrl("sqlite://data/parkmate.db".into()))]
    pub url: DatabaseUrl,
    /// How long a notification is kept: older ones are deleted by the leader in small batches
    /// (inbox, replay with `since` and unread counts then no longer see them). `0s` keeps
    /// everything. Production refuses less than a day: a phone offline over a weekend must
    /// still catch up.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(90 * 86_400))]
    pub retention: Duration,
}

/// `[ws]`: the sockets.
#[derive(Debug, Clone, SmartDefault, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct WsSettings {
    /// Browser origins allowed to open sockets besides the server's own: a list, or one
    /// comma-separated string (as an environment variable is). Unset: the Vite dev server's
    /// (`http://localhost:5173`, `http://127.0.0.1:5173`) outside production, none in production.
    #[cfg_attr(test, serde(skip_serializing))]
    pub allowed_origins: Option<AllowedOrigins>,
    /// Sockets this node holds at most; the next handshake gets 503. One process may hold 20,000
    /// file descriptors here: the default leaves room for the database, the listener and HTTP
    /// clients.
    #[default(NonZeroUsize::new(18_000).expect("non-zero"))]
    pub max_connections: NonZeroUsize,
    /// Sockets one user may hold on this node (tabs, devices); the next handshake gets 429. So
    /// one account cannot take the node's slots.
    #[default(NonZeroUsize::new(20).expect("non-zero"))]
    pub max_connections_per_user: NonZeroUsize,
    /// Sockets one client address may hold on this node (see `http.trusted_proxies`); the next
    /// handshake gets 429. Room for an office behind one NAT address; IPv6 counts per /64.
    #[default(NonZeroUsize::new(256).expect("non-zero"))]
    pub max_connections_per_ip: NonZeroUsize,
    /// Accept the token as `?token=` (proxies log query strings). Unset: yes outside production,
    /// no in production, where `true` is refused: browsers send `Sec-WebSocket-Protocol:
    /// bearer.<jwt>`, other clients `Authorization`.
    #[cfg_attr(test, serde(skip_serializing))]
    pub query_token: Option<bool>,
    /// How often an open socket re-checks the account behind a token this server minted: a
    /// changed role, a deleted account or revoked tokens close it with 4003.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(60))]
    pub account_check_interval: Duration,
    /// Byte budget of one replay page (message and data of the notifications a reconnecting
    /// socket is sent at once; a page also stops at 500 notifications). Bounds the memory a
    /// reconnect storm takes, whatever the notifications' sizes.
    #[default(BufferBytes(256 * 1024))]
    pub replay_page_bytes: BufferBytes,
    /// Frames queued per socket before it is closed as a slow consumer (4008).
    #[default(NonZeroUsize::new(256).expect("non-zero"))]
    pub queue_capacity: NonZeroUsize,
    /// How often the server pings each socket.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(20))]
    pub heartbeat_interval: Duration,
    /// A peer silent for this long is dropped (4002); longer than `heartbeat_interval`.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(45))]
    pub heartbeat_timeout: Duration,
    /// A write that takes longer means the peer stopped reading: the socket is dropped.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(10))]
    pub write_timeout: Duration,
    /// Largest client message; a larger one closes the socket with 1009.
    #[default(BufferBytes(4096))]
    pub max_frame_bytes: BufferBytes,
    /// Per-socket read buffer. Clients send little; tungstenite's 128 KiB default would cost
    /// ~137 KB per socket, and a larger frame just takes more reads.
    #[default(BufferBytes(256))]
    pub read_buffer_bytes: BufferBytes,
    /// Handshakes worked on at once, from the token check to the end of the greeting and replay;
    /// the next ones wait their turn (FIFO). A memory knob with a price in time, so off by
    /// default (1,024, what `http.max_connections` already allows): with 512 handshakes in
    /// flight, 32 turns lowered the memory peak while a crowd arrives (~4.4 KiB per socket read
    /// 2 s after it instead of ~5.5; once idle, past the first heartbeat, ~4 KiB either way), but
    /// an 18k reconnect storm took ~2.4 s instead of ~1.8: a turn is held across several
    /// scheduling hops, so few turns bound the arrival rate (BENCHMARKS.md, "Handshake turns").
    #[default(NonZeroUsize::new(1024).expect("non-zero"))]
    pub max_handshakes_in_flight: NonZeroUsize,
    /// How long a handshake may wait for its turn before it is refused 503 `busy` (with
    /// `Retry-After`), so a queue that does not move sends clients elsewhere instead of holding them.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(10))]
    pub handshake_queue_timeout: Duration,
}

/// `[redis]`: fan-out between the nodes of a cluster.
#[derive(Debug, Clone, SmartDefault, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://…` (or `rediss://…`, `unix://…`): fan out through Redis pub/sub. Unset: the
    /// in-process broker of a single node.
    #[cfg_attr(test, serde(skip_serializing))]
    pub url: Option<RedisUrl>,
    /// Every Redis key and channel of this cluster starts with this.
    #[default(RedisPrefix("parkmate".into()))]
    pub prefix: RedisPrefix,
    /// PEM certificates to verify a `rediss://` server with, instead of the system's roots (a
    /// private CA, a self-signed server).
    pub ca_cert: Option<PathBuf>,
}

/// `[tls]`: the node's certificate and key, read and checked by `tls::server_config` at
/// start-up. Both or neither: half a TLS configuration is a mistake, not a request for plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
}

/// `[booking]`: the parking domain.
#[derive(Debug, Clone, SmartDefault, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct BookingSettings {
    /// Serve the booking API; `false` runs the notification core alone (without its tables).
    #[default(true)]
    pub api: bool,
    /// Seed demo accounts and lots on an empty database. Unset: yes outside production, no in
    /// production, where `true` is refused (the demo passwords are in the README).
    #[cfg_attr(test, serde(skip_serializing))]
    pub demo_data: Option<bool>,
    /// Bookings one driver may hold at once (`requested` or `confirmed`); the next create or
    /// renewal answers 409 `too_many_bookings`.
    #[default(NonZeroU32::new(2).expect("non-zero"))]
    pub max_active_per_driver: NonZeroU32,
    /// How long an unapproved request holds its slot before it lapses (slot released, online
    /// payments refunded, the driver told).
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(15 * 60))]
    pub request_hold: Duration,
    /// How old a charge or refund left unsettled (a crash, a gateway outage) must be before the
    /// leader's recovery settles it. Longer than any gateway call a request may still be waiting
    /// for.
    #[serde(with = "humantime_serde")]
    #[default(Duration::from_secs(10 * 60))]
    pub payment_grace: Duration,
}

impl BookingSettings {
    /// The rules the booking domain enforces.
    pub fn rules(&self) -> parkmate_domain::BookingRules {
        parkmate_domain::BookingRules {
            max_active_per_driver: self.max_active_per_driver,
            request_hold: self.request_hold,
            payment_grace: self.payment_grace,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The files or variables do not fit [`Settings`]; one line per problem, each naming its key
    /// and variable.
    #[error("configuration: {0}")]
    Parse(String),
    #[error("configuration key `{key}` ({var}): {message}", var = env_var(key))]
    Invalid { key: &'static str, message: String },
    #[error("no {key} configured: set {var}{hint}", var = env_var(key), hint = match dev_file {
        Some(path) => format!(", or start `parkmate serve` once to generate development secrets in {}", path.display()),
        None => String::new(),
    })]
    MissingSecret {
        key: &'static str,
        /// The development secrets file that would have provided it (not in production).
        dev_file: Option<PathBuf>,
    },
    #[error("cannot read or write development secrets at {path}: {source}")]
    DevSecrets {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("development secrets at {path} are malformed: {message}")]
    DevSecretsMalformed { path: PathBuf, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Whether a Redis URL is plain `redis://` to a host other than this machine: notifications
/// (and the password, if the URL has one) would cross a network in clear text.
pub fn redis_is_plaintext_off_host(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("redis://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let local = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !local
}

/// The environment variable that sets `key` (`ws.queue_capacity` → `PARKMATE_WS_QUEUE_CAPACITY`).
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// The key a variable sets, given its name without the prefix: the inverse of [`env_var`].
fn setting_key(var: &str) -> String {
    let var = var.to_ascii_lowercase();
    SECTIONS
        .iter()
        .find_map(|s| {
            let rest = var.strip_prefix(s)?.strip_prefix('_')?;
            Some(format!("{s}.{rest}"))
        })
        .unwrap_or(var)
}

impl Settings {
    /// Loads defaults < `file` (if it exists) < `PARKMATE_*` environment, then validates. Writes
    /// nothing. `not_settings` are variables of the same prefix that belong to someone else (the
    /// command line's own, such as `PARKMATE_CONFIG`): they are skipped rather than refused.
    pub fn load(file: &Path, not_settings: &[String]) -> Result<Settings, ConfigError> {
        let skipped: Vec<String> = not_settings
            .iter()
            .filter_map(|v| v.strip_prefix(ENV_PREFIX))
            .map(str::to_owned)
            .collect();
        let env = Env::prefixed(ENV_PREFIX)
            .filter(move |var| !skipped.iter().any(|s| var == s.as_str()))
            .map(|var| setting_key(var.as_str()).into());
        let settings: Settings = Figment::new()
            .merge(Toml::file(file))
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Parse(describe(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// What the types cannot say: one setting against another, and production's refusals.
    /// Touches no file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |key, d: Duration| {
            if d.is_zero() {
                Err(invalid(key, "must be longer than 0s"))
            } else {
                Ok(())
            }
        };
        positive("token_ttl", self.token_ttl)?;
        positive("ws.heartbeat_interval", self.ws.heartbeat_interval)?;
        positive("ws.write_timeout", self.ws.write_timeout)?;
        positive("booking.request_hold", self.booking.request_hold)?;
        positive("booking.payment_grace", self.booking.payment_grace)?;
        positive("ws.account_check_interval", self.ws.account_check_interval)?;
        positive("http.header_read_timeout", self.http.header_read_timeout)?;
        if self.metrics.bind == Some(self.bind) && self.bind.port() != 0 {
            return Err(invalid(
                "metrics.bind",
                "must differ from `bind` (unset it to serve /metrics there)",
            ));
        }
        if self.ws.heartbeat_timeout <= self.ws.heartbeat_interval {
            return Err(invalid(
                "ws.heartbeat_timeout",
                "must be longer than ws.heartbeat_interval",
            ));
        }
        if let Some(tls) = &self.tls {
            if tls.cert.as_os_str().is_empty() {
                return Err(invalid("tls.cert", "must be a path to a PEM file"));
            }
            if tls.key.as_os_str().is_empty() {
                return Err(invalid("tls.key", "must be a path to a PEM file"));
            }
        }
        for (key, secret, required) in [
            ("jwt_secret", &self.jwt_secret, true),
            ("api_key", &self.api_key, true),
            ("metrics.token", &self.metrics.token, false),
        ] {
            let len = secret.as_ref().map(|s| s.expose_secret().len());
            match len {
                Some(0) => return Err(invalid(key, "must not be empty")),
                None if required && self.production() => {
                    return Err(invalid(key, "is required when env = production"));
                }
                Some(n) if self.production() && n < MIN_SECRET_LEN => {
                    return Err(invalid(
                        key,
                        format!("must be at least {MIN_SECRET_LEN} bytes in production"),
                    ));
                }
                _ => {}
            }
        }
        if self.production()
            && !self.database.retention.is_zero()
            && self.database.retention < MIN_PRODUCTION_RETENTION
        {
            return Err(invalid(
                "database.retention",
                "must be at least 1 day in production (or 0s to keep everything): clients \
                 offline for longer would miss notifications",
            ));
        }
        if self.production() && self.clock == ClockKind::Manual {
            return Err(invalid(
                "clock",
                "a manual clock is for tests and refused in production",
            ));
        }
        if self.production() && self.booking.demo_data == Some(true) {
            return Err(invalid(
                "booking.demo_data",
                "demo accounts have published passwords (an admin among them) and are refused \
                 in production",
            ));
        }
        positive("push.escalation_window", self.push.escalation_window)?;
        positive("push.ttl", self.push.ttl)?;
        if let Some(key) = &self.push.vapid_private_key {
            let keys = parkmate_push::VapidKeys::from_base64url(key.expose_secret())
                .map_err(|e| invalid("push.vapid_private_key", e.to_string()))?;
            if let Some(public) = &self.push.vapid_public_key {
                keys.ensure_public(public)
                    .map_err(|e| invalid("push.vapid_public_key", e.to_string()))?;
            }
        } else if self.push.vapid_public_key.is_some() {
            return Err(invalid(
                "push.vapid_public_key",
                "is set without push.vapid_private_key",
            ));
        }
        if let Some(subject) = &self.push.vapid_subject {
            parkmate_push::Subject::parse(subject)
                .map_err(|e| invalid("push.vapid_subject", e.to_string()))?;
        }
        if self.production()
            && self.push.enabled == Some(true)
            && self.push.vapid_private_key.is_none()
        {
            return Err(invalid(
                "push.enabled",
                "push needs an explicit VAPID key pair in production: set \
                 PARKMATE_PUSH_VAPID_PRIVATE_KEY (and PARKMATE_PUSH_VAPID_PUBLIC_KEY)",
            ));
        }
        if self.production() && self.push_enabled() && self.push.vapid_subject.is_none() {
            return Err(invalid(
                "push.vapid_subject",
                "is required when push is on in production (a mailto: or https: contact for \
                 the push services)",
            ));
        }
        if self.production() && self.ws.query_token == Some(true) {
            return Err(invalid(
                "ws.query_token",
                "`?token=` puts tokens in URLs, which proxies and access logs keep; refused in \
                 production (browsers send Sec-WebSocket-Protocol: bearer.<jwt>, other clients \
                 Authorization: Bearer)",
            ));
        }
        Ok(())
    }

    fn production(&self) -> bool {
        self.env == Environment::Production
    }

    pub fn is_production(&self) -> bool {
        self.production()
    }

    /// `ws.allowed_origins`, or its default: the Vite dev server outside production, none in
    /// production.
    pub fn allowed_origins(&self) -> &AllowedOrigins {
        match &self.ws.allowed_origins {
            Some(origins) => origins,
            None if self.production() => &NO_ORIGINS,
            None => &DEV_ORIGINS,
        }
    }

    /// Whether this node sends Web Push: `push.enabled`, or when unset whether a VAPID private key
    /// is configured (outside production `serve` generates one first, see
    /// [`Settings::generate_dev_vapid`]).
    pub fn push_enabled(&self) -> bool {
        self.push
            .enabled
            .unwrap_or(self.push.vapid_private_key.is_some())
    }

    /// The VAPID signer of `[push]`, or `None` when push is off. Errors when push is on without
    /// a key (only possible outside production, where validation lets it through so that `serve`
    /// can generate one).
    pub fn vapid(&self) -> Result<Option<parkmate_push::Vapid>, ConfigError> {
        if !self.push_enabled() {
            return Ok(None);
        }
        let key =
            self.push
                .vapid_private_key
                .as_ref()
                .ok_or_else(|| ConfigError::MissingSecret {
                    key: "push.vapid_private_key",
                    dev_file: (!self.production()).then(|| self.dev_vapid_path()),
                })?;
        let keys = parkmate_push::VapidKeys::from_base64url(key.expose_secret())
            .map_err(|e| invalid("push.vapid_private_key", e.to_string()))?;
        let subject = self
            .push
            .vapid_subject
            .as_deref()
            .unwrap_or(DEV_VAPID_SUBJECT);
        let subject = parkmate_push::Subject::parse(subject)
            .map_err(|e| invalid("push.vapid_subject", e.to_string()))?;
        Ok(Some(parkmate_push::Vapid::new(keys, subject)))
    }

    /// `<data_dir>/dev-vapid.toml`.
    pub fn dev_vapid_path(&self) -> PathBuf {
        self.data_dir.join("dev-vapid.toml")
    }

    /// For `parkmate serve` only: outside production, when push is not turned off and no VAPID
    /// key is configured, reads the development key pair from `<data_dir>/dev-vapid.toml`,
    /// creating it on the first start (like the development secrets). Keeping it across restarts
    /// keeps browsers' subscriptions valid. Returns the file's path when it was created.
    pub fn generate_dev_vapid(&mut self) -> Result<Option<PathBuf>, ConfigError> {
        if self.production()
            || self.push.enabled == Some(false)
            || self.push.vapid_private_key.is_some()
        {
            return Ok(None);
        }
        let path = self.dev_vapid_path();
        let io = |source| ConfigError::DevSecrets {
            path: path.clone(),
            source,
        };
        let (private_key, created) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let dev: DevVapid = Figment::new()
                    .merge(Toml::string(&text))
                    .extract()
                    .map_err(|e| ConfigError::DevSecretsMalformed {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                let malformed = |message: String| ConfigError::DevSecretsMalformed {
                    path: path.clone(),
                    message,
                };
                let keys = parkmate_push::VapidKeys::from_base64url(&dev.vapid_private_key)
                    .map_err(|e| malformed(format!("vapid_private_key: {e}")))?;
                if let Some(public) = &dev.vapid_public_key {
                    keys.ensure_public(public)
                        .map_err(|e| malformed(format!("vapid_public_key: {e}")))?;
                }
                (dev.vapid_private_key, false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.data_dir).map_err(io)?;
                let keys = parkmate_push::VapidKeys::generate();
                let private = keys.private_key_base64url().expose_secret().to_owned();
                let text = format!(
                    "# Generated for development by `parkmate serve`; production sets \
                     PARKMATE_PUSH_VAPID_PRIVATE_KEY and PARKMATE_PUSH_VAPID_PUBLIC_KEY.\n\
                     vapid_private_key = \"{private}\"\nvapid_public_key = \"{}\"\n",
                    keys.public_key_base64url()
                );
                write_private(&path, &text).map_err(io)?;
                (private, true)
            }
            Err(source) => return Err(ConfigError::DevSecrets { path, source }),
        };
        self.push.vapid_private_key = Some(SecretString::from(private_key));
        Ok(created.then_some(path))
    }

    /// `booking.demo_data`, or its default: on outside production only.
    pub fn demo_data(&self) -> bool {
        self.booking.demo_data.unwrap_or(!self.production())
    }

    /// `ws.query_token`, or its default: on outside production only.
    pub fn query_token(&self) -> bool {
        self.ws.query_token.unwrap_or(!self.production())
    }

    /// Whether `/metrics` is served on `bind`: not when it has an address of its own, and in
    /// production only behind a token.
    pub fn metrics_on_main_listener(&self) -> bool {
        self.metrics.bind.is_none() && (!self.production() || self.metrics.token.is_some())
    }

    /// The JWT secret, or an error saying how to provide one.
    pub fn jwt_secret(&self) -> Result<&SecretString, ConfigError> {
        self.jwt_secret
            .as_ref()
            .ok_or_else(|| self.missing("jwt_secret"))
    }

    /// The API key, or an error saying how to provide one.
    pub fn api_key(&self) -> Result<&SecretString, ConfigError> {
        self.api_key.as_ref().ok_or_else(|| self.missing("api_key"))
    }

    fn missing(&self, key: &'static str) -> ConfigError {
        ConfigError::MissingSecret {
            key,
            dev_file: (!self.production()).then(|| self.dev_secrets_path()),
        }
    }

    /// `<data_dir>/dev-secrets.toml`.
    pub fn dev_secrets_path(&self) -> PathBuf {
        self.data_dir.join("dev-secrets.toml")
    }

    fn needs_dev_secrets(&self) -> bool {
        !self.production() && (self.jwt_secret.is_none() || self.api_key.is_none())
    }

    /// For client commands (`token`, `notify`): outside production, fills a missing JWT secret or
    /// API key from the development secrets file if there is one. Only reads.
    pub fn use_dev_secrets(&mut self) -> Result<(), ConfigError> {
        if !self.needs_dev_secrets() {
            return Ok(());
        }
        let path = self.dev_secrets_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => self.fill(parse_dev_secrets(&path, &text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ConfigError::DevSecrets { path, source }),
        }
        Ok(())
    }

    /// For `parkmate serve` only: outside production, fills a missing JWT secret or API key from
    /// the development secrets file, creating it with fresh random values on the first start.
    /// Returns the file's path when it was created on this call, to tell the person.
    pub fn generate_dev_secrets(&mut self) -> Result<Option<PathBuf>, ConfigError> {
        self.use_dev_secrets()?;
        if !self.needs_dev_secrets() {
            return Ok(None);
        }
        let path = self.dev_secrets_path();
        let io = |source| ConfigError::DevSecrets {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.data_dir).map_err(io)?;
        let secrets = DevSecrets {
            jwt_secret: random_hex(32),
            api_key: random_hex(24),
        };
        let text = format!(
            "# Generated for development by `parkmate serve`; production sets PARKMATE_JWT_SECRET and PARKMATE_API_KEY.\n\
             jwt_secret = \"{}\"\napi_key = \"{}\"\n",
            secrets.jwt_secret, secrets.api_key
        );
        write_private(&path, &text).map_err(io)?;
        self.fill(secrets);
        Ok(Some(path))
    }

    fn fill(&mut self, dev: DevSecrets) {
        self.jwt_secret
            .get_or_insert_with(|| SecretString::from(dev.jwt_secret));
        self.api_key
            .get_or_insert_with(|| SecretString::from(dev.api_key));
    }
}
