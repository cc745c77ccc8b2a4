//! Settings: defaults, files, environment, production refusals and the dev secrets file.
//!
//! Over 500 lines on purpose: a flat list of short, independent cases, one per rule of the
//! settings.
// figment's Jail API returns its own (large) error type.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;

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
        result = Some(Settings::load(Path::new("parkmate.toml"), &[]).map_err(|e| e.to_string()));
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
            ("PARKMATE_WS_MAX_HANDSHAKES_IN_FLIGHT", "32"),
            ("PARKMATE_WS_HANDSHAKE_QUEUE_TIMEOUT", "2s"),
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
    assert_eq!(s.ws.max_handshakes_in_flight.get(), 32);
    assert_eq!(s.ws.handshake_queue_timeout, Duration::from_secs(2));
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
        (("PARKMATE_DATABASE_RETENTION", "1h"), "database.retention"),
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
    // Retention: 90 days unless set; a day or more, or 0s (keep everything), is accepted.
    assert_eq!(prod.database.retention, Duration::from_secs(90 * 86_400));
    for keep in ["0s", "1day", "400days"] {
        let mut env = prod_env.to_vec();
        env.push(("PARKMATE_DATABASE_RETENTION", keep));
        assert!(load("", &env).is_ok(), "retention {keep}");
    }
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
            ("PARKMATE_WS_MAX_HANDSHAKES_IN_FLIGHT", "0"),
            "`ws.max_handshakes_in_flight` (PARKMATE_WS_MAX_HANDSHAKES_IN_FLIGHT)",
        ),
        (
            ("PARKMATE_WS_HANDSHAKE_QUEUE_TIMEOUT", "10"),
            "`ws.handshake_queue_timeout` (PARKMATE_WS_HANDSHAKE_QUEUE_TIMEOUT)",
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
