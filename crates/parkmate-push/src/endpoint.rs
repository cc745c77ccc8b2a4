//! Which push endpoints the server will `POST` to.
//!
//! A push endpoint is a URL the browser's push service chose (RFC 8030 §4), but it reaches the
//! server from the user (`POST /api/push/subscriptions`), so anyone signed in can name any URL:
//! a server-side request forgery vector. The [`EndpointPolicy`] closes it in production:
//! - `https://` only (RFC 8030 §8: push message delivery MUST use TLS); `http://` is allowed only
//!   by [`EndpointPolicy::DEVELOPMENT`], because the test push service runs on loopback;
//! - no user credentials in the URL, a bounded length;
//! - no private, loopback, link-local or otherwise non-public address, checked twice: when the
//!   host is an IP literal, at [`EndpointPolicy::check`]; when it is a name, every time it is
//!   resolved, by `PublicOnlyResolver` (the pusher's DNS resolver), which lets it connect only
//!   to the public addresses the name resolves to (so a name that later re-resolves to 10.0.0.1
//!   — DNS rebinding — is refused at the connection, not just at subscription time).
//!
//! Which addresses are "not public" follows the IANA IPv4 and IPv6 special-purpose address
//! registries (RFC 6890 and its updates), see [`is_public`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest endpoint accepted. Real ones are 150–500 characters (FCM, Mozilla, Apple, WNS); the
/// cap bounds what a user can make the server store and log.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// Where pushes may go. The server sets it from `PARKMATE_ENV`: production is
/// [`EndpointPolicy::PRODUCTION`], anything else may use [`EndpointPolicy::DEVELOPMENT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointPolicy {
    allow_http: bool,
    allow_private_addresses: bool,
}

impl EndpointPolicy {
    /// `https://` to public addresses only. The default.
    pub const PRODUCTION: Self = Self {
        allow_http: false,
        allow_private_addresses: false,
    };

    /// Also `http://`, and any address (the test push service listens on 127.0.0.1).
    pub const DEVELOPMENT: Self = Self {
        allow_http: true,
        allow_private_addresses: true,
    };

    /// [`EndpointPolicy::PRODUCTION`] when `production`, else [`EndpointPolicy::DEVELOPMENT`].
    pub fn for_production(production: bool) -> Self {
        if production {
            Self::PRODUCTION
        } else {
            Self::DEVELOPMENT
        }
    }

    pub fn allows_http(&self) -> bool {
        self.allow_http
    }

    pub fn allows_private_addresses(&self) -> bool {
        self.allow_private_addresses
    }

    /// Parses `text` and checks it against the policy.
    pub fn parse(&self, text: &str) -> Result<Url, EndpointError> {
        if text.len() > MAX_ENDPOINT_LEN {
            return Err(EndpointError::TooLong {
                len: text.len(),
                max: MAX_ENDPOINT_LEN,
            });
        }
        let url = Url::parse(text).map_err(|e| EndpointError::Invalid(e.to_string()))?;
        self.check(&url)?;
        Ok(url)
    }

    /// Checks a parsed endpoint: scheme, credentials, length and, when the host is an IP
    /// literal, its address. Host names are checked when resolved (`PublicOnlyResolver`).
    pub fn check(&self, url: &Url) -> Result<(), EndpointError> {
        if url.as_str().len() > MAX_ENDPOINT_LEN {
            return Err(EndpointError::TooLong {
                len: url.as_str().len(),
                max: MAX_ENDPOINT_LEN,
            });
        }
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => {
                return Err(EndpointError::Scheme {
                    scheme: other.to_owned(),
                    http_allowed: self.allow_http,
                });
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EndpointError::Credentials);
        }
        let host = url.host().ok_or(EndpointError::NoHost)?;
        if self.allow_private_addresses {
            return Ok(());
        }
        match host {
            url::Host::Ipv4(ip) => refuse_private(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => refuse_private(IpAddr::V6(ip)),
            url::Host::Domain(name) => {
                // RFC 6761 §6.3: `localhost` and its subdomains are loopback; say so now rather
                // than at the first push.
                let name = name.trim_end_matches('.');
                if name.eq_ignore_ascii_case("localhost")
                    || name.to_ascii_lowercase().ends_with(".localhost")
                {
                    Err(EndpointError::PrivateAddress {
                        host: name.to_owned(),
                        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    })
                } else {
                    Ok(())
                }
            }
        }
    }
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        Self::PRODUCTION
    }
}

fn refuse_private(ip: IpAddr) -> Result<(), EndpointError> {
    if is_public(ip) {
        Ok(())
    } else {
        Err(EndpointError::PrivateAddress {
            host: ip.to_string(),
            addr: ip,
        })
    }
}

/// An endpoint the policy refuses. Permanent: a subscription with such an endpoint should be
/// refused (at subscription) or dropped (at sending), never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint is not a URL: {0}")]
    Invalid(String),
    #[error("endpoint is {len} characters; at most {max}")]
    TooLong { len: usize, max: usize },
    #[error("endpoint scheme {scheme:?} refused: {}", if *http_allowed { "http or https only" } else { "https only" })]
    Scheme { scheme: String, http_allowed: bool },
    #[error("endpoint URL must not carry credentials")]
    Credentials,
    #[error("endpoint has no host")]
    NoHost,
    #[error("endpoint host {host} is (or resolves to) {addr}, not a public address")]
    PrivateAddress { host: String, addr: IpAddr },
}

/// Whether `ip` is a globally reachable unicast address: not in any block the IANA
/// special-purpose registries mark as not globally reachable (private, shared, loopback,
/// link-local, documentation, benchmarking, reserved, multicast, unspecified), including IPv4
/// addresses embedded in IPv6 (mapped, compatible, NAT64 64:ff9b::/96, 6to4 2002::/16).
///
/// (`IpAddr::is_global` does this in std, but is still unstable.)
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network" 0.0.0.0/8
        || a == 10 // private 10/8
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64/10 (CGNAT)
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (16..32).contains(&b)) // private 172.16/12
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168) // private 192.168/16
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224) // multicast 224/4, reserved 240/4, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast() // ff00::/8
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed inside sites)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation 3fff::/20
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only 100::/64
        || (s[0] == 0x2001 && s[1] < 0x0200 && !is_global_2001(s)) // IETF protocol assignments
        || (s[0] == 0x5f00)) // segment routing 5f00::/16
}

/// Inside 2001::/23 (IETF protocol assignments: TEREDO, ORCHIDv2, benchmarking …) the registry
/// marks only these as globally reachable: 2001:1::1 and 2001:1::2 (anycast), 2001:3::/32 (AMT)
/// and 2001:4:112::/48 (AS112).
fn is_global_2001(s: [u16; 8]) -> bool {
    (s[1] == 0x0001 && s[2..7] == [0, 0, 0, 0, 0] && (s[7] == 1 || s[7] == 2))
        || s[1] == 0x0003
        || (s[1] == 0x0004 && s[2] == 0x0112)
}

/// The IPv4 address carried in an IPv6 one, where routing would reach that IPv4 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4); // ::ffff:a.b.c.d
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(low); // ::a.b.c.d (IPv4-compatible, deprecated)
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low); // NAT64 64:ff9b::/96
    }
    if s[0] == 0x2002 {
        // 6to4 2002:AABB:CCDD::/48
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// A name that resolved only to non-public addresses (the error [`PublicOnlyResolver`] gives
/// reqwest; [`crate::deliver`] finds it in the error's source chain).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves only to non-public addresses ({addr} first)")]
pub(crate) struct BlockedAddress {
    pub host: String,
    pub addr: IpAddr,
}

/// reqwest's resolver in production: the system's resolution (`getaddrinfo`, like reqwest's own
/// default), keeping only public addresses. Every connection, including reconnections of pooled
/// ones, resolves through it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                all.iter().copied().filter(|a| is_public(a.ip())).collect();
            match (public.is_empty(), all.first()) {
                (false, _) => Ok(Box::new(public.into_iter()) as Addrs),
                (true, Some(first)) => Err(Box::new(BlockedAddress {
                    host,
                    addr: first.ip(),
                })
                    as Box<dyn std::error::Error + Send + Sync>),
                (true, None) => Err(format!("{host} resolves to no address").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn public_addresses_are_told_from_special_purpose_ones() {
        for public in [
            "8.8.8.8",
            "142.250.74.42",
            "1.1.1.1",
            "2a00:1450:4001:80b::200a",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2001:4:112::1",
        ] {
            assert!(is_public(ip(public)), "{public} should be public");
        }
        for private in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254", // cloud metadata
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1", // TEREDO
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1", // NAT64 of 10.0.0.1
            "2002:a00:1::1",  // 6to4 of 10.0.0.1
            "2002:7f00:1::1", // 6to4 of 127.0.0.1
        ] {
            assert!(!is_public(ip(private)), "{private} should not be public");
        }
        assert!(is_public(ip("172.32.0.1")));
        assert!(is_public(ip("100.128.0.1")));
    }

    #[test]
    fn production_takes_https_to_public_hosts_only() {
        let p = EndpointPolicy::PRODUCTION;
        assert_eq!(EndpointPolicy::default(), p);
        assert!(p.parse("https://fcm.googleapis.com/fcm/send/abc").is_ok());
        assert!(p.parse("https://8.8.8.8/x").is_ok());
        assert!(matches!(
            p.parse("http://fcm.googleapis.com/fcm/send/abc"),
            Err(EndpointError::Scheme {
                http_allowed: false,
                ..
            })
        ));
        for private in [
            "https://127.0.0.1:8443/x",
            "https://10.0.0.5/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[::ffff:192.168.0.1]/x",
            "https://localhost/x",
            "https://api.localhost./x",
            // Other spellings of 127.0.0.1, which the URL parser normalises to the address.
            "https://0x7f000001/x",
            "https://2130706433/x",
            "https://127.1/x",
        ] {
            assert!(
                matches!(p.parse(private), Err(EndpointError::PrivateAddress { .. })),
                "{private} accepted"
            );
        }
        assert_eq!(
            p.parse("https://user:pw@push.example.net/x"),
            Err(EndpointError::Credentials)
        );
        assert!(matches!(
            p.parse("ftp://push.example.net/x"),
            Err(EndpointError::Scheme { .. })
        ));
        assert!(matches!(
            p.parse("not a url"),
            Err(EndpointError::Invalid(_))
        ));
        let long = format!("https://push.example.net/{}", "a".repeat(MAX_ENDPOINT_LEN));
        assert!(matches!(p.parse(&long), Err(EndpointError::TooLong { .. })));
    }

    #[test]
    fn development_also_takes_http_and_loopback() {
        let d = EndpointPolicy::DEVELOPMENT;
        assert!(d.parse("http://127.0.0.1:4000/wpush/abc").is_ok());
        assert!(d.parse("https://localhost/x").is_ok());
        assert!(matches!(
            d.parse("ftp://127.0.0.1/x"),
            Err(EndpointError::Scheme {
                http_allowed: true,
                ..
            })
        ));
        assert_eq!(
            EndpointPolicy::for_production(true),
            EndpointPolicy::PRODUCTION
        );
        assert_eq!(EndpointPolicy::for_production(false), d);
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback_only() {
        let err = PublicOnlyResolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost must be refused");
        let blocked = err.downcast_ref::<BlockedAddress>().expect("typed refusal");
        assert_eq!(blocked.host, "localhost");
        assert!(!is_public(blocked.addr));
    }
}
