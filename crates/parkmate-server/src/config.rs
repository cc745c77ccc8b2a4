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

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use figment::Figment;
use figment::error::Kind;
use figment::providers::{Env, Format, Toml};
use ipnet::IpNet;
use parkmate_auth::{Rate, TrustedProxies};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

/// Shortest secret accepted in production: 32 bytes, the HS256 key size.
pub const MIN_SECRET_LEN: usize = 32;

/// Every environment variable of the settings starts with this.
pub const ENV_PREFIX: &str = "PARKMATE_";

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
    /// How long shutdown waits for sockets and queued writes to drain.
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

/// A database URL: `sqlite:…` or `<scheme>://…` (the store picks the engine by scheme).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(try_from = "String")]
pub struct DatabaseUrl(String);

impl TryFrom<String> for DatabaseUrl {
    type Error = String;
    fn try_from(url: String) -> Result<Self, String> {
        if url.contains("://") || url.starts_with("sqlite:") {
            Ok(DatabaseUrl(url))
        } else {
            Err(format!("`{url}` is not a URL"))
        }
    }
}

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Browser origins (`http(s)://host[:port]`, no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(Serialize))]
pub struct AllowedOrigins(BTreeSet<String>);

impl AllowedOrigins {
    fn of<const N: usize>(origins: [&str; N]) -> AllowedOrigins {
        AllowedOrigins(origins.into_iter().map(str::to_owned).collect())
    }

    pub fn contains(&self, origin: &str) -> bool {
        self.0.contains(origin)
    }
}

impl<'de> Deserialize<'de> for AllowedOrigins {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let origins = ListOrJoined(d).strings()?;
        let mut set = BTreeSet::new();
        for o in origins {
            let o = o.trim().trim_end_matches('/');
            if o.is_empty() {
                continue;
            }
            if !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(serde::de::Error::custom(format!(
                    "`{o}` is not an http(s) origin"
                )));
            }
            set.insert(o.to_owned());
        }
        Ok(AllowedOrigins(set))
    }
}

/// `http.trusted_proxies`: addresses or networks, a list or one comma-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxyList(Vec<IpNet>);

impl TrustedProxyList {
    pub fn proxies(&self) -> TrustedProxies {
        TrustedProxies::new(self.0.iter().copied())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for TrustedProxyList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let nets = ListOrJoined(d).strings()?;
        nets.iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .map(TrustedProxies::parse_net)
            .collect::<Result<_, _>>()
            .map(TrustedProxyList)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
impl Serialize for TrustedProxyList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|n| n.to_string()))
    }
}

/// A list written either as a list or as one comma-separated string (an environment variable).
struct ListOrJoined<D>(D);

impl<'de, D: serde::Deserializer<'de>> ListOrJoined<D> {
    fn strings(self) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Joined(String),
            List(Vec<String>),
        }
        Ok(match Written::deserialize(self.0)? {
            Written::Joined(s) => s.split(',').map(str::to_owned).collect(),
            Written::List(l) => l,
        })
    }
}

/// A rate limit setting: a [`Rate`] such as `"30/min"`, or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RateSetting(Option<Rate>);

impl RateSetting {
    fn of(rate: &str) -> RateSetting {
        RateSetting(Some(rate.parse().expect("a valid default rate")))
    }

    /// `None`: no limit.
    pub fn rate(self) -> Option<Rate> {
        self.0
    }
}

impl TryFrom<String> for RateSetting {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(RateSetting(None));
        }
        s.parse::<Rate>()
            .map(|r| RateSetting(Some(r)))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
impl Serialize for RateSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(r) => s.collect_str(&r),
            None => s.serialize_str("off"),
        }
    }
}

/// A buffer or frame size between 256 bytes and 1 MiB: below, a handshake's own frames may not
/// fit; above, one socket could hold a large share of the node's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(try_from = "usize")]
pub struct BufferBytes(usize);

impl BufferBytes {
    pub const MIN: usize = 256;
    pub const MAX: usize = 1 << 20;

    pub fn get(self) -> usize {
        self.0
    }
}

impl TryFrom<usize> for BufferBytes {
    type Error = String;
    fn try_from(n: usize) -> Result<Self, String> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(BufferBytes(n))
        } else {
            Err(format!(
                "must be between {} and {} bytes, not {n}",
                Self::MIN,
                Self::MAX
            ))
        }
    }
}

/// The cluster's Redis URL. It may hold a password: `Debug` redacts it and errors never repeat it.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct RedisUrl(SecretString);

impl TryFrom<String> for RedisUrl {
    type Error = &'static str;
    fn try_from(url: String) -> Result<Self, &'static str> {
        let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
        if schemes.iter().any(|s| url.starts_with(s)) {
            Ok(RedisUrl(url.into()))
        } else {
            Err("must be a redis://, rediss:// or unix:// URL")
        }
    }
}

impl RedisUrl {
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A Redis key prefix: non-empty letters, digits, `_`, `-`, `:` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(try_from = "String")]
pub struct RedisPrefix(String);

impl TryFrom<String> for RedisPrefix {
    type Error = &'static str;
    fn try_from(p: String) -> Result<Self, &'static str> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_-:.".contains(&b);
        if !p.is_empty() && p.bytes().all(allowed) {
            Ok(RedisPrefix(p))
        } else {
            Err("must be non-empty letters, digits, `_`, `-`, `:` or `.`")
        }
    }
}

impl RedisPrefix {
    pub fn as_str(&self) -> &str {
        &self.0
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

/// Renders figment's errors one per line, each with the key, the variable that sets it, where the
/// value came from, and for a renamed key where it went. Secret values are never repeated.
fn describe(errors: figment::Error) -> String {
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
struct DevVapid {
    vapid_private_key: String,
    vapid_public_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevSecrets {
    jwt_secret: String,
    api_key: String,
}

fn parse_dev_secrets(path: &Path, text: &str) -> Result<DevSecrets, ConfigError> {
    Figment::new()
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| ConfigError::DevSecretsMalformed {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
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

#[cfg(test)]
// figment's Jail API returns its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> Settings {
        Settings {
            data_dir: dir.to_owned(),
            ..Settings::default()
        }
    }

    fn files_in(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_defaults_are_valid_and_load_and_validate_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let s = settings(&data);
        s.validate().unwrap();
        assert!(s.jwt_secret.is_none() && s.api_key.is_none());
        figment::Jail::expect_with(|jail| {
            jail.set_env("PARKMATE_DATA_DIR", data.display().to_string());
            let s = Settings::load(Path::new("parkmate.toml"), &[]).unwrap();
            assert_eq!(s.ws.queue_capacity.get(), 256);
            assert!(files_in(jail.directory()).is_empty());
            Ok(())
        });
        assert!(!data.exists(), "validate/load created {}", data.display());
    }

    #[test]
    fn serve_generates_development_secrets_once_and_clients_only_read_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut client = settings(dir.path());
        client.use_dev_secrets().unwrap();
        assert!(client.api_key.is_none(), "nothing to read yet");
        assert!(files_in(dir.path()).is_empty(), "a client created a file");
        let err = client.api_key().unwrap_err().to_string();
        assert!(
            err.contains("PARKMATE_API_KEY") && err.contains("dev-secrets.toml"),
            "{err}"
        );

        let mut a = settings(dir.path());
        let created = a.generate_dev_secrets().unwrap();
        assert_eq!(created, Some(dir.path().join("dev-secrets.toml")));
        let mut b = settings(dir.path());
        assert_eq!(b.generate_dev_secrets().unwrap(), None);
        let secret = |s: &Settings| s.jwt_secret().unwrap().expose_secret().to_owned();
        assert_eq!(secret(&a), secret(&b));
        let mut client = settings(dir.path());
        client.use_dev_secrets().unwrap();
        assert_eq!(secret(&client), secret(&a));
        assert!(
            !format!("{a:?}").contains(&secret(&a)),
            "Debug must redact secrets"
        );

        // Given secrets win over the file, and with both given it is not even read.
        let mut given = settings(dir.path());
        given.jwt_secret = Some("given".into());
        given.use_dev_secrets().unwrap();
        assert_eq!(secret(&given), "given");
    }

    #[test]
    fn production_requires_long_secrets_and_never_touches_the_dev_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.env = Environment::Production;
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("jwt_secret") && err.contains("PARKMATE_JWT_SECRET"),
            "{err}"
        );
        s.jwt_secret = Some("short".into());
        s.api_key = Some("k".repeat(40).into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("jwt_secret") && err.contains("32"), "{err}");
        s.jwt_secret = Some("s".repeat(40).into());
        s.validate().unwrap();
        s.clock = ClockKind::Manual;
        assert!(s.validate().unwrap_err().to_string().contains("`clock`"));

        let mut s = settings(dir.path());
        s.env = Environment::Production;
        assert_eq!(s.generate_dev_secrets().unwrap(), None);
        assert!(files_in(dir.path()).is_empty());
        let err = s.jwt_secret().unwrap_err().to_string();
        assert!(!err.contains("dev-secrets"), "{err}");
    }

    #[test]
    fn push_keys_come_from_settings_or_a_dev_file_and_production_wants_them_explicit() {
        let dir = tempfile::tempdir().unwrap();
        // No key, nothing asked: push is off, and nothing is written.
        let s = settings(dir.path());
        assert!(!s.push_enabled() && s.vapid().unwrap().is_none());
        assert_eq!(s.push.escalation_window, Duration::from_secs(10));

        // `serve` outside production generates a key pair once and keeps it.
        let mut a = settings(dir.path());
        assert_eq!(
            a.generate_dev_vapid().unwrap(),
            Some(dir.path().join("dev-vapid.toml"))
        );
        let mut b = settings(dir.path());
        assert_eq!(b.generate_dev_vapid().unwrap(), None);
        let public = |s: &Settings| s.vapid().unwrap().unwrap().keys().public_key_base64url();
        assert!(a.push_enabled());
        assert_eq!(public(&a), public(&b));
        let private = a.push.vapid_private_key.clone().unwrap();
        assert!(!format!("{a:?}").contains(private.expose_secret()));
        // Asked for without a key (a hand-built start): the error says how to get one.
        let mut asked = settings(dir.path());
        asked.push.enabled = Some(true);
        let err = asked.vapid().unwrap_err().to_string();
        assert!(
            err.contains("PARKMATE_PUSH_VAPID_PRIVATE_KEY") && err.contains("dev-vapid.toml"),
            "{err}"
        );
        // Turned off, nothing is read or generated.
        let mut off = settings(&dir.path().join("elsewhere"));
        off.push.enabled = Some(false);
        assert_eq!(off.generate_dev_vapid().unwrap(), None);
        assert!(!off.push_enabled());

        // A configured pair is checked against itself.
        let mut s = settings(dir.path());
        s.push.vapid_private_key = Some(private.clone());
        s.push.vapid_public_key = Some(parkmate_push::VapidKeys::generate().public_key_base64url());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("PARKMATE_PUSH_VAPID_PUBLIC_KEY"), "{err}");
        s.push.vapid_public_key = Some(public(&a));
        s.validate().unwrap();
        s.push.vapid_private_key = Some("not-a-key".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("PARKMATE_PUSH_VAPID_PRIVATE_KEY") && !err.contains("not-a-key"),
            "{err}"
        );

        // Production: never generated; `enabled = true` without a key, or without a contact,
        // is refused by name.
        let prod_env = [
            ("PARKMATE_JWT_SECRET", LONG),
            ("PARKMATE_API_KEY", LONG),
            ("PARKMATE_ENV", "production"),
        ];
        let prod = load("", &prod_env).unwrap();
        assert!(!prod.push_enabled());
        let mut prod_dev = prod.clone();
        prod_dev.data_dir = dir.path().join("prod");
        assert_eq!(prod_dev.generate_dev_vapid().unwrap(), None);
        let mut env = prod_env.to_vec();
        env.push(("PARKMATE_PUSH_ENABLED", "true"));
        let err = load("", &env).unwrap_err();
        assert!(err.contains("PARKMATE_PUSH_ENABLED"), "{err}");
        let key = private.expose_secret().to_owned();
        let mut env = prod_env.to_vec();
        env.push(("PARKMATE_PUSH_VAPID_PRIVATE_KEY", &key));
        let err = load("", &env).unwrap_err();
        assert!(err.contains("PARKMATE_PUSH_VAPID_SUBJECT"), "{err}");
        env.push(("PARKMATE_PUSH_VAPID_SUBJECT", "mailto:ops@parkmate.example"));
        env.push(("PARKMATE_PUSH_ESCALATION_WINDOW", "30s"));
        let prod = load("", &env).unwrap();
        assert!(prod.push_enabled());
        assert_eq!(prod.push.escalation_window, Duration::from_secs(30));
        assert_eq!(public(&prod), public(&a));
    }

    #[test]
    fn heartbeat_timeout_must_exceed_the_interval() {
        let mut s = Settings::default();
        s.ws.heartbeat_timeout = s.ws.heartbeat_interval;
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("ws.heartbeat_timeout") && err.contains("PARKMATE_WS_HEARTBEAT_TIMEOUT"),
            "{err}"
        );
        let s = Settings {
            token_ttl: Duration::ZERO,
            ..Settings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("token_ttl"));
    }

    /// Loads `toml` (as `parkmate.toml`) under `env`, in a jail of its own.
    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, String> {
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            jail.create_file("parkmate.toml", toml)?;
            for (k, v) in env {
                jail.set_env(k, v);
            }
            result =
                Some(Settings::load(Path::new("parkmate.toml"), &[]).map_err(|e| e.to_string()));
            Ok(())
        });
        result.unwrap()
    }

    #[test]
    fn sections_come_from_files_and_from_one_variable_rule() {
        let s = load(
            "bind = \"127.0.0.1:9000\"\n[ws]\nqueue_capacity = 64\nheartbeat_interval = \"1m\"\nheartbeat_timeout = \"2m 30s\"\nallowed_origins = [\"https://a.example\", \"https://b.example/\"]\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
            &[
                ("PARKMATE_WS_QUEUE_CAPACITY", "32"),
                ("PARKMATE_WS_WRITE_TIMEOUT", "250ms"),
                ("PARKMATE_DATABASE_URL", "postgres://db/parkmate"),
                ("PARKMATE_REDIS_URL", "redis://127.0.0.1:6379"),
                ("PARKMATE_REDIS_PREFIX", "blue"),
                ("PARKMATE_BOOKING_API", "false"),
                ("PARKMATE_BOOKING_DEMO_DATA", "false"),
                ("PARKMATE_TLS_KEY", "other.pem"),
                ("PARKMATE_TOKEN_TTL", "1h"),
                ("PARKMATE_WEB_DIR", "elsewhere"),
            ],
        )
        .unwrap();
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(
            s.ws.queue_capacity.get(),
            32,
            "the variable wins over the file"
        );
        assert_eq!(s.ws.heartbeat_interval, Duration::from_secs(60));
        assert_eq!(s.ws.heartbeat_timeout, Duration::from_secs(150));
        assert_eq!(s.ws.write_timeout, Duration::from_millis(250));
        assert!(s.allowed_origins().contains("https://b.example"));
        assert!(!s.allowed_origins().contains("http://localhost:5173"));
        assert_eq!(s.database.url.as_str(), "postgres://db/parkmate");
        assert_eq!(
            s.redis.url.as_ref().map(RedisUrl::expose_secret),
            Some("redis://127.0.0.1:6379")
        );
        assert_eq!(s.redis.prefix.as_str(), "blue");
        assert!(!s.booking.api && !s.demo_data());
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "other.pem".into()
            })
        );
        assert_eq!(s.token_ttl, Duration::from_secs(3600));
        assert_eq!(s.web_dir, Path::new("elsewhere"));

        let s = load(
            "",
            &[(
                "PARKMATE_WS_ALLOWED_ORIGINS",
                "https://a.example, https://b.example/",
            )],
        )
        .unwrap();
        assert!(s.allowed_origins().contains("https://a.example"));
        assert!(s.allowed_origins().contains("https://b.example"));
    }

    const LONG: &str = "0123456789abcdef0123456789abcdef";

    /// What production changes by itself, and every unsafe setting it refuses by name.
    #[test]
    fn production_takes_the_safe_defaults_and_refuses_the_unsafe_side_by_name() {
        let secrets = [("PARKMATE_JWT_SECRET", LONG), ("PARKMATE_API_KEY", LONG)];
        let dev = load("", &secrets).unwrap();
        assert!(dev.demo_data() && dev.query_token() && dev.metrics_on_main_listener());
        assert!(dev.allowed_origins().contains("http://localhost:5173"));

        let prod_env = [secrets[0], secrets[1], ("PARKMATE_ENV", "production")];
        let prod = load("", &prod_env).unwrap();
        assert!(!prod.demo_data(), "no demo accounts unless asked");
        assert!(!prod.query_token(), "no ?token= in production");
        assert!(!prod.allowed_origins().contains("http://localhost:5173"));
        assert!(!prod.metrics_on_main_listener(), "/metrics is not public");

        for ((var, value), key) in [
            (("PARKMATE_BOOKING_DEMO_DATA", "true"), "booking.demo_data"),
            (("PARKMATE_WS_QUERY_TOKEN", "true"), "ws.query_token"),
            (("PARKMATE_CLOCK", "manual"), "clock"),
            (("PARKMATE_JWT_SECRET", "short"), "jwt_secret"),
            (("PARKMATE_API_KEY", "short"), "api_key"),
            (("PARKMATE_METRICS_TOKEN", "short"), "metrics.token"),
        ] {
            let mut env = prod_env.to_vec();
            env.retain(|(k, _)| *k != var);
            env.push((var, value));
            let err = load("", &env).unwrap_err();
            assert!(
                err.contains(&format!("`{key}`")) && err.contains(var),
                "{var}={value}: {err}"
            );
        }
        // Explicitly safe is fine; so are metrics behind a token or on their own address.
        let mut env = prod_env.to_vec();
        env.extend([
            ("PARKMATE_BOOKING_DEMO_DATA", "false"),
            ("PARKMATE_WS_QUERY_TOKEN", "false"),
            ("PARKMATE_METRICS_TOKEN", LONG),
        ]);
        assert!(load("", &env).unwrap().metrics_on_main_listener());
        let mut env = prod_env.to_vec();
        env.push(("PARKMATE_METRICS_BIND", "127.0.0.1:9100"));
        assert!(!load("", &env).unwrap().metrics_on_main_listener());
    }

    #[test]
    fn limits_and_proxies_are_read_and_checked() {
        let s = load(
            "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n[limits]\nlogin_per_ip = \"5/min\"\n",
            &[
                ("PARKMATE_LIMITS_PUBLISH", "off"),
                ("PARKMATE_HTTP_HEADER_READ_TIMEOUT", "3s"),
                ("PARKMATE_WS_MAX_CONNECTIONS_PER_USER", "2"),
            ],
        )
        .unwrap();
        let login = s.limits.login_per_ip.rate().unwrap();
        assert_eq!((login.count.get(), login.per), (5, Duration::from_secs(60)));
        assert_eq!(s.limits.publish.rate(), None);
        assert_eq!(s.http.header_read_timeout, Duration::from_secs(3));
        assert_eq!(s.ws.max_connections_per_user.get(), 2);
        let proxies = s.http.trusted_proxies.proxies();
        assert!(proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(proxies.contains("::1".parse().unwrap()));
        assert!(!proxies.contains("11.0.0.1".parse().unwrap()));
        let s = load(
            "",
            &[("PARKMATE_HTTP_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")],
        )
        .unwrap();
        assert!(
            s.http
                .trusted_proxies
                .proxies()
                .contains("127.0.0.1".parse().unwrap())
        );

        for (env, expect) in [
            (
                ("PARKMATE_LIMITS_LOGIN_PER_IP", "lots"),
                "`limits.login_per_ip`",
            ),
            (
                ("PARKMATE_LIMITS_CLIENT_FRAMES", "0/s"),
                "`limits.client_frames`",
            ),
            (
                ("PARKMATE_HTTP_TRUSTED_PROXIES", "nginx"),
                "`http.trusted_proxies`",
            ),
            (
                ("PARKMATE_HTTP_HEADER_READ_TIMEOUT", "0s"),
                "`http.header_read_timeout`",
            ),
            (
                ("PARKMATE_HTTP_MAX_BODY_BYTES", "10"),
                "`http.max_body_bytes`",
            ),
            (
                ("PARKMATE_METRICS_BIND", "127.0.0.1:8000"),
                "`metrics.bind`",
            ),
        ] {
            let err = load("", &[env]).unwrap_err();
            assert!(err.contains(expect), "{env:?}: {err}");
        }
    }

    #[test]
    fn bad_values_name_their_key_and_variable() {
        for (env, expect) in [
            (("PARKMATE_BIND", "nowhere"), "`bind` (PARKMATE_BIND)"),
            (
                ("PARKMATE_WS_QUEUE_CAPACITY", "lots"),
                "`ws.queue_capacity` (PARKMATE_WS_QUEUE_CAPACITY)",
            ),
            (("PARKMATE_WS_QUEUE_CAPACITY", "0"), "`ws.queue_capacity`"),
            (
                ("PARKMATE_WS_HEARTBEAT_INTERVAL", "20"),
                "`ws.heartbeat_interval`",
            ),
            (("PARKMATE_WS_MAX_FRAME_BYTES", "100"), "between 256 and"),
            (("PARKMATE_REDIS_PREFIX", "has space"), "`redis.prefix`"),
            (
                ("PARKMATE_WS_MAX_CONNECTIONS_PER_IP", "0"),
                "`ws.max_connections_per_ip`",
            ),
            (
                ("PARKMATE_WS_ALLOWED_ORIGINS", "ftp://x"),
                "not an http(s) origin",
            ),
            (("PARKMATE_DATABASE_URL", "parkmate.db"), "`database.url`"),
            (("PARKMATE_ENV", "staging"), "`env` (PARKMATE_ENV)"),
            (
                ("PARKMATE_TLS_CERT", "cert.pem"),
                "`tls.key` (PARKMATE_TLS_KEY)",
            ),
        ] {
            let err = load("", &[env]).unwrap_err();
            assert!(err.contains(expect), "{env:?}: {err}");
        }
        // A Redis URL may carry a password, and secrets are never repeated.
        let err = load("", &[("PARKMATE_REDIS_URL", "http://secret@x")]).unwrap_err();
        assert!(
            err.contains("redis.url") && !err.contains("secret@"),
            "{err}"
        );
        let err = load("", &[("PARKMATE_API_KEY", "[1, 2]")]).unwrap_err();
        assert!(err.contains("`api_key`") && !err.contains("1, 2"), "{err}");
    }

    #[test]
    fn booking_rules_are_typed_settings() {
        let s = load("", &[]).unwrap();
        assert_eq!(s.booking.rules(), parkmate_domain::BookingRules::default());
        let s = load(
            "[booking]\nrequest_hold = \"5m\"\n",
            &[
                ("PARKMATE_BOOKING_MAX_ACTIVE_PER_DRIVER", "3"),
                ("PARKMATE_BOOKING_PAYMENT_GRACE", "90s"),
            ],
        )
        .unwrap();
        let rules = s.booking.rules();
        assert_eq!(rules.max_active_per_driver.get(), 3);
        assert_eq!(rules.request_hold, Duration::from_secs(300));
        assert_eq!(rules.payment_grace, Duration::from_secs(90));
        for (env, expect) in [
            (
                ("PARKMATE_BOOKING_MAX_ACTIVE_PER_DRIVER", "0"),
                "`booking.max_active_per_driver`",
            ),
            (
                ("PARKMATE_BOOKING_REQUEST_HOLD", "15"),
                "`booking.request_hold`",
            ),
            (
                ("PARKMATE_BOOKING_REQUEST_HOLD", "0s"),
                "`booking.request_hold`",
            ),
            (
                ("PARKMATE_BOOKING_PAYMENT_GRACE", "0s"),
                "`booking.payment_grace`",
            ),
        ] {
            let err = load("", &[env])
                .and_then(|s| s.validate().map_err(|e| e.to_string()))
                .unwrap_err();
            assert!(err.contains(expect), "{env:?}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_and_renamed_ones_say_where_they_went() {
        let err = load("", &[("PARKMATE_WS_QUEUE_CAPACTY", "32")]).unwrap_err();
        assert!(err.contains("`ws.queue_capacty`"), "{err}");
        let err = load("", &[("PARKMATE_QUEUE_CAPACITY", "32")]).unwrap_err();
        assert!(
            err.contains("`queue_capacity`") && err.contains("PARKMATE_WS_QUEUE_CAPACITY"),
            "{err}"
        );
        let err = load("heartbeat_interval_ms = 100\n", &[]).unwrap_err();
        assert!(
            err.contains("`ws.heartbeat_interval`") && err.contains("parkmate.toml"),
            "{err}"
        );
        let err = load("[ws]\nsurprise = 1\n", &[]).unwrap_err();
        assert!(err.contains("`ws.surprise`"), "{err}");
        let err = load("[tls]\ncert = \"c\"\nkey = \"k\"\npassword = \"p\"\n", &[]).unwrap_err();
        assert!(err.contains("`tls.password`"), "{err}");
    }

    #[test]
    fn variables_of_someone_else_are_skipped_only_when_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PARKMATE_SERVER", "http://127.0.0.1:1");
            let err = Settings::load(Path::new("parkmate.toml"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains("`server`"), "{err}");
            Settings::load(Path::new("parkmate.toml"), &["PARKMATE_SERVER".into()]).unwrap();
            Ok(())
        });
    }

    #[test]
    fn every_section_is_listed_and_no_top_level_key_looks_like_one() {
        let s = Settings {
            tls: Some(TlsFiles {
                cert: "c".into(),
                key: "k".into(),
            }),
            ..Settings::default()
        };
        let value = figment::value::Value::serialize(&s).unwrap();
        let dict = value.into_dict().unwrap();
        let sections: BTreeSet<&str> = dict
            .iter()
            .filter(|(_, v)| v.as_dict().is_some())
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(sections, SECTIONS.iter().copied().collect());
        for key in dict.keys() {
            assert_eq!(
                setting_key(key),
                *key,
                "`{key}` would be read as a section key"
            );
        }
        for (old, new) in RENAMED {
            assert!(!dict.contains_key(*old), "`{old}` is a key again");
            let (section, key) = new.split_once('.').unwrap_or(("", new));
            let holder = if section.is_empty() {
                Some(&dict)
            } else {
                dict.get(section).and_then(|v| v.as_dict())
            };
            let known = holder.is_some_and(|d| d.contains_key(key))
                || ["redis.url", "ws.allowed_origins", "booking.demo_data"].contains(new);
            assert!(known, "`{new}` is not a setting");
        }
    }

    #[test]
    fn plaintext_redis_off_this_host_is_told_apart() {
        for (url, off_host) in [
            ("redis://127.0.0.1:6379", false),
            ("redis://:pw@localhost/0", false),
            ("redis://user:pw@[::1]:6379", false),
            ("redis://redis.internal:6379", true),
            ("redis://:p@ss@10.0.0.5", true),
            ("rediss://redis.internal:6380", false),
            ("unix:///run/redis.sock", false),
        ] {
            assert_eq!(redis_is_plaintext_off_host(url), off_host, "{url}");
        }
    }

    #[test]
    fn variable_names_and_keys_map_both_ways() {
        for key in [
            "bind",
            "ws.queue_capacity",
            "tls.cert",
            "database.url",
            "booking.demo_data",
        ] {
            let var = env_var(key);
            assert_eq!(setting_key(var.strip_prefix(ENV_PREFIX).unwrap()), key);
        }
        assert_eq!(env_var("redis.url"), "PARKMATE_REDIS_URL");
        assert_eq!(env_var("tls.key"), "PARKMATE_TLS_KEY");
    }
}
