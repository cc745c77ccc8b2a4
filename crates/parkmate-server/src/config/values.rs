//! The small checked types of [`Settings`](super::Settings): each one's type is its validation.

use std::collections::BTreeSet;

use ipnet::IpNet;
use parkmate_auth::{Rate, TrustedProxies};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;

/// A database URL: `sqlite:…` or `<scheme>://…` (the store picks the engine by scheme).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(try_from = "String")]
pub struct DatabaseUrl(pub(super) String);

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
pub struct AllowedOrigins(pub(super) BTreeSet<String>);

impl AllowedOrigins {
    pub(super) fn of<const N: usize>(origins: [&str; N]) -> AllowedOrigins {
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
pub struct TrustedProxyList(pub(super) Vec<IpNet>);

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
pub struct RateSetting(pub(super) Option<Rate>);

impl RateSetting {
    pub(super) fn of(rate: &str) -> RateSetting {
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
pub struct BufferBytes(pub(super) usize);

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
pub struct RedisUrl(pub(super) SecretString);

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
pub struct RedisPrefix(pub(super) String);

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
