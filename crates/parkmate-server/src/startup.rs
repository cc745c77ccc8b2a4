//! Builds the application from [`Settings`] and runs it until a shutdown future resolves.
//!
//! `Application::build` opens (and migrates) the store, starts the notifier and binds the listener
//! (and the metrics listener, if `metrics.bind` is set), so a test can ask for `port()` before
//! serving. `run_until_stopped(shutdown)` serves (`serve.rs`) until the future resolves, then
//! drains and stops:
//! 1. **drain** (`shutdown_drain`, skipped by a node without sockets): `/readyz` answers 503, new
//!    sockets are refused 503 `shutting_down` (a load balancer passes the handshake to another
//!    node), responses say `Connection: close`, and the open sockets are closed with 1012
//!    ("server restarting, reconnect") in waves spread over the drain (`drain.rs`), so their
//!    clients come back through the load balancer a few at a time and spread over the other
//!    nodes. HTTP requests are still served meanwhile;
//! 2. **stop**: stop accepting, close what sockets are left with 1012, let HTTP requests in
//!    flight finish, let the writer store what was queued and the dispatcher publish what was
//!    stored, and wait for all of that under one `shutdown_grace` deadline, after which whatever
//!    is left (a peer that never finishes its request) is dropped;
//! 3. release the leader lease, stop listening for other nodes' commits, close the pool — in that
//!    order, so nothing reports the closing pool as a fault.
//!
//! `build` validates the settings again (a test may build them by hand) and needs both secrets:
//! the CLI's `serve` provides development ones first (`Settings::generate_dev_secrets`).
//!
//! Over 500 lines on purpose: build, serve and the ordered shutdown are one sequence; the order of
//! its steps is the point, and it reads best in one place.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use parkmate_auth::{Authenticator, ExpectedApiKey, TokenKeys};
use parkmate_booking_http::{AccountLimits, BookingApi};
use parkmate_broker::redis::{Interest, RedisBroker};
use parkmate_broker::{Broker, BusEvent, BusSink, MemoryBroker};
use parkmate_domain::{Clock, Domain, ManualClock, SystemClock, TestGateway};
use parkmate_hub::{Hub, Presence};
use parkmate_notifier::Notifier;
use secrecy::ExposeSecret;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ClockKind, Environment, Settings};
use crate::limits::EdgeLimits;
use crate::serve::{Connections, HttpOptions};
use crate::state::AppState;

/// Pending connections the kernel queues for us. The default of 128 drops SYNs when thousands of
/// clients reconnect at once after a restart.
const LISTEN_BACKLOG: u32 = 4096;

/// How often rate-limit buckets that have refilled are forgotten: their memory follows the
/// callers of the last minute or so, not every address ever seen.
const FORGET_IDLE_BUCKETS: Duration = Duration::from_secs(60);

/// Hands broker events to the local hub.
struct HubSink(Hub);

impl BusSink for HubSink {
    fn deliver(&self, event: &BusEvent) {
        match event {
            BusEvent::Notification(p) => {
                self.0
                    .publish_notification(p.audience, p.id, p.frame.clone());
            }
            BusEvent::ReadState {
                user_id,
                count,
                as_of,
            } => {
                self.0.publish_read_state(*user_id, *count, *as_of);
            }
        }
    }

    fn resync(&self) {
        self.0.resync_all();
    }
}

/// Tells the Redis broker which users this node holds, so their channels are heard here (see
/// `parkmate_broker::redis`), and lets a new socket wait until its user's channel is.
struct BrokerPresence(Arc<Interest>);

impl Presence for BrokerPresence {
    fn arrived(&self, user_id: i64) {
        self.0.arrived(user_id);
    }

    fn left(&self, user_id: i64) {
        self.0.left(user_id);
    }

    fn ready(&self, user_id: i64) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.0.ready(user_id)
    }
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `/metrics` on an address of its own (`metrics.bind`), with its router.
    metrics: Option<(TcpListener, Router)>,
    state: AppState,
    database: parkmate_db::Db,
    /// Releases the leader lease when dropped: after the drain, or with an unstarted app.
    lease: tokio_util::sync::DropGuard,
    /// The PostgreSQL commit listener (it stops with the lease), awaited before the pool closes.
    commit_listener: Option<tokio::task::JoinHandle<()>>,
    /// Native TLS, loaded before anything else starts; `None` serves plain HTTP.
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Binds with a deep backlog (see [`LISTEN_BACKLOG`]).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let listener =
            bind(settings.bind).with_context(|| format!("cannot listen on {}", settings.bind))?;
        Application::build_with_listener(settings, listener).await
    }

    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        settings.validate()?;
        let keys = Arc::new(TokenKeys::new(
            settings.jwt_secret()?.expose_secret().as_bytes(),
        ));
        let api_key = ExpectedApiKey::new(settings.api_key()?.expose_secret());
        crate::telemetry::prometheus();
        let metrics_listener = settings
            .metrics
            .bind
            .map(|addr| {
                bind(addr)
                    .with_context(|| format!("cannot listen on {addr} (PARKMATE_METRICS_BIND)"))
            })
            .transpose()?;
        warn_about(&settings);
        // First, so a bad certificate stops the start before the database or Redis is touched.
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        // Opening migrates every table (the store's and the booking domain's), so nodes can
        // start in any order on an empty database.
        let database = parkmate_db::Db::open(settings.database.url.as_str())
            .await
            .with_context(|| {
                format!(
                    "cannot open the database at {}",
                    parkmate_db::redact_url(settings.database.url.as_str())
                )
            })?;
        let store = database.clone();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        // In-process unless a Redis URL is set; an unreachable Redis stops the start. With Redis
        // the hub tells the broker which users it holds: their channels are the only user
        // channels this node hears.
        let (hub, broker, interest): (Hub, Arc<dyn Broker>, Option<Arc<Interest>>) =
            match &settings.redis.url {
                None => {
                    let hub = Hub::new(settings.ws.queue_capacity.get());
                    let broker = MemoryBroker::new(Arc::new(HubSink(hub.clone())));
                    (hub, Arc::new(broker), None)
                }
                Some(url) => {
                    let interest = Arc::new(Interest::default());
                    let hub = Hub::with_presence(
                        settings.ws.queue_capacity.get(),
                        Arc::new(BrokerPresence(interest.clone())),
                    );
                    let ca = settings
                        .redis
                        .ca_cert
                        .as_ref()
                        .map(|path| {
                            std::fs::read(path).with_context(|| {
                                format!("cannot read {} (PARKMATE_REDIS_CA_CERT)", path.display())
                            })
                        })
                        .transpose()?;
                    let client = parkmate_broker::redis::client(url.expose_secret(), ca).context(
                        "the Redis URL or certificate cannot be used (PARKMATE_REDIS_URL)",
                    )?;
                    let broker = RedisBroker::connect_client(
                        client,
                        settings.redis.prefix.as_str(),
                        interest.clone(),
                        Arc::new(HubSink(hub.clone())),
                        &tracker,
                        shutdown.clone(),
                    )
                    .await
                    .context("cannot connect to Redis (PARKMATE_REDIS_URL)")?;
                    (hub, Arc::new(broker), Some(interest))
                }
            };
        // Once-per-cluster jobs run on the leader only: always this node on SQLite, the holder of
        // the lease on PostgreSQL.
        // The lease outlives `shutdown`: it is released only after the dispatcher's last pass
        // has published and saved its cursor, so the next leader never repeats that pass.
        let lease = CancellationToken::new();
        // Guarded from here on: a start that fails below must not leave the lease (and with it
        // the cluster's lead) held by a task nobody stops.
        let lease_guard = lease.clone().drop_guard();
        let leader = database.leadership(lease.clone().cancelled_owned());
        crate::telemetry::spawn_leader_gauge(leader.clone(), lease.clone());
        let notifier = Notifier::start_led(
            store.clone(),
            broker,
            &tracker,
            shutdown.clone(),
            leader.clone(),
        );
        parkmate_notifier::retention::spawn(
            store.clone(),
            settings.database.retention,
            &tracker,
            shutdown.clone(),
            leader.clone(),
        );
        let settings = Arc::new(settings);

        // The booking domain shares the database (its state changes and their notifications
        // commit together) and the notifier's outbox (woken after each such commit).
        let clock: Arc<dyn Clock> = match settings.clock {
            ClockKind::System => Arc::new(SystemClock),
            ClockKind::Manual => Arc::new(ManualClock::starting_at(chrono::Utc::now())),
        };
        // `booking.api = false` runs the notification core alone. On PostgreSQL every node of a
        // cluster serves the booking API on the one shared database.
        let domain = if settings.booking.api {
            Some(Domain::with_rules(
                database.clone(),
                clock.clone(),
                Arc::new(TestGateway::new()),
                notifier.outbox(),
                settings.booking.rules(),
            ))
        } else {
            None
        };
        // Safe when several nodes start at once on one database: the seed is one transaction
        // under a lock (see `Domain::seed_demo`), so it happens once and the others find it.
        // Rows committed on other nodes wake this node's dispatcher at once (it publishes only
        // while this node leads) instead of at its next poll, and its booking scheduler, which
        // would otherwise not see a deadline created through another node until it woke itself.
        let commit_listener = {
            let outbox = notifier.outbox();
            let domain = domain.clone();
            database.on_foreign_commits(
                move || {
                    outbox.wake();
                    if let Some(d) = &domain {
                        d.wake_scheduler();
                    }
                },
                lease.clone().cancelled_owned(),
            )
        };
        let demo_accounts = if settings.demo_data()
            && let Some(domain) = &domain
        {
            domain
                .seed_demo()
                .await
                .context("cannot seed the demo data")?
                .map(Arc::new)
        } else {
            None
        };
        // Never a password: logs are shipped and kept. The demo passwords are in the README, and
        // in development `GET /api/auth/demo-accounts` lists them.
        for a in demo_accounts.iter().flat_map(|a| a.iter()) {
            tracing::info!(role = %a.role, email = %a.email, "demo account");
        }
        // `GET /api/auth/demo-accounts` is for development: production never hands out passwords.
        let served_demo_accounts =
            demo_accounts.filter(|_| settings.env != Environment::Production);
        // Web Push: checked (keys, subject) before anything is served.
        let push = crate::push::Push::from_settings(&settings)?;
        let auth = Authenticator::new(
            keys,
            Arc::new(crate::accounts::StoreAccounts(database.clone())),
        );
        let trusted_proxies = settings.http.trusted_proxies.proxies();
        let state = AppState::new(crate::state::Shared {
            auth,
            trusted_proxies: trusted_proxies.clone(),
            limits: EdgeLimits::new(&settings),
            api_key,
            store,
            notifier,
            hub,
            connection_slots: Arc::new(Semaphore::new(settings.ws.max_connections.get())),
            handshake_turns: Arc::new(Semaphore::new(settings.ws.max_handshakes_in_flight.get())),
            draining: CancellationToken::new(),
            close_waves: (0..crate::drain::DRAIN_WAVES)
                .map(|_| shutdown.child_token())
                .collect(),
            next_wave: Default::default(),
            broker: interest,
            shutdown,
            tracker,
            settings: settings.clone(),
            now: {
                let clock = clock.clone();
                Arc::new(move || clock.now())
            },
            leader,
            push,
        });

        let mut router = Router::new()
            .merge(crate::ws::router())
            .merge(crate::api::router())
            .merge(crate::push::api::router())
            .merge(crate::openapi::router(domain.is_some()));
        if settings.metrics_on_main_listener() {
            router = router.merge(crate::api::metrics_router(&settings));
        } else {
            // A JSON 404 rather than the web client's page, which would answer 200.
            router = router.route(
                "/metrics",
                axum::routing::get(|| async {
                    parkmate_auth::ApiError::not_found(
                        "metrics are not served here (metrics.bind, metrics.token)",
                    )
                }),
            );
        }
        let limits = &settings.limits;
        let account_limits = Arc::new(AccountLimits::new(
            limits.login_per_ip.rate(),
            limits.login_per_account.rate(),
            limits.register_per_ip.rate(),
            limits.password_hashes.get(),
            limits.password_hash_wait,
        ));
        // BOOKING DOMAIN HOOK
        // One scheduler task for every booking's timers; it stops with the other tasks, and it
        // ticks only while this node leads, so a cluster fires each timer on one node.
        if let Some(domain) = domain {
            domain.spawn_scheduler(&state.tracker, state.shutdown.clone(), state.leader.clone());
            // Payments in flight (a charge on its way to its booking or its refund) finish
            // before the process exits, within the same shutdown deadline; what a hard stop
            // interrupts, the next leader's recovery settles.
            state.tracker.spawn({
                let (domain, shutdown) = (domain.clone(), state.shutdown.clone());
                async move {
                    shutdown.cancelled().await;
                    domain.payments_settled().await;
                }
            });
            router = router.merge(parkmate_booking_http::router(BookingApi {
                domain,
                auth: state.auth.clone(),
                token_ttl_secs: settings.token_ttl.as_secs(),
                demo_accounts: served_demo_accounts,
                api_key: state.api_key.clone(),
                limits: account_limits.clone(),
                trusted_proxies,
            }));
        }
        // Escalation to Web Push: one task, working while this node leads (like the dispatcher),
        // so a cluster pushes each notification from one node.
        if let Some(push) = &state.push {
            crate::push::escalation::Escalation {
                store: state.store.clone(),
                push: push.clone(),
                now: state.now.clone(),
            }
            .spawn(&state.tracker, state.leader.clone(), state.shutdown.clone());
        }
        spawn_forget_idle(&state, account_limits);
        router = router.merge(crate::web::router(&settings.web_dir));
        // Every body, publish and booking alike: 413 above it, from Content-Length before a byte
        // is read (`refuse_oversized`), or as soon as a streamed body passes it (`ApiJson`).
        let max_body = settings.http.max_body_bytes.get();
        let router = router
            .layer(DefaultBodyLimit::max(max_body))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::api::close_while_draining,
            ))
            .layer(axum::middleware::from_fn_with_state(
                max_body,
                crate::api::refuse_oversized,
            ))
            .with_state(state.clone());
        let metrics = metrics_listener.map(|l| (l, crate::api::metrics_router(&settings)));
        Ok(Application {
            listener,
            router,
            metrics,
            state,
            database,
            lease: lease_guard,
            commit_listener,
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// `https` with native TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Where `/metrics` is served when it has an address of its own (`metrics.bind`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .map(|(l, _)| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            router,
            metrics,
            state,
            database,
            lease,
            commit_listener,
            tls,
        } = self;
        let token = state.shutdown.clone();
        let options = HttpOptions {
            header_read_timeout: state.settings.http.header_read_timeout,
            max_connections: state.settings.http.max_connections.get(),
        };
        let stopping = async {
            tokio::select! {
                _ = stop => {}
                _ = token.cancelled() => {}
            }
            crate::drain::drain(&state).await;
            // Cancelling stops both accept loops, closes the sockets left (1012) and stops the
            // notifier after its last pass.
            token.cancel();
        };
        // The same loop either way; with TLS its listener yields finished handshakes.
        let main = async {
            match tls {
                None => crate::serve::serve(listener, router, options, token.clone()).await,
                Some(config) => {
                    let tls = crate::tls::TlsListener::new(
                        listener,
                        config,
                        crate::tls::HANDSHAKE_TIMEOUT,
                    );
                    crate::serve::serve(tls, router, options, token.clone()).await
                }
            }
        };
        let metrics = async {
            match metrics {
                Some((l, r)) => Some(crate::serve::serve(l, r, options, token.clone()).await),
                None => None,
            }
        };
        let ((), connections, metrics_connections) = tokio::join!(stopping, main, metrics);

        // One deadline for everything that drains.
        let grace = state.settings.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        state.tracker.close();
        let drain_all = |c: Option<Connections>| async move {
            if let Some(c) = c {
                c.drain(deadline).await;
            }
        };
        tokio::join!(drain_all(Some(connections)), drain_all(metrics_connections));
        if tokio::time::timeout_at(deadline, state.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "shutdown deadline passed with tasks still running");
        }
        drop(lease);
        // The listener ends at the lease's release; the pool closes only after it let go of its
        // connection (closing first showed as a "commit listener failed" warning on clean stops).
        if let Some(listener) = commit_listener {
            let _ = listener.await;
        }
        database.close().await;
        Ok(())
    }
}

/// Every minute, forgets the rate-limit buckets that have refilled, until shutdown.
fn spawn_forget_idle(state: &AppState, accounts: Arc<AccountLimits>) {
    let state2 = state.clone();
    state.tracker.spawn(async move {
        let mut tick = tokio::time::interval(FORGET_IDLE_BUCKETS);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state2.shutdown.cancelled() => return,
                _ = tick.tick() => {
                    state2.limits.handshakes_per_ip.forget_idle();
                    accounts.forget_idle();
                }
            }
        }
    });
}

/// Settings that are allowed but worth a line in the log: limits switched off, plain-text Redis
/// leaving the machine in production, a production node whose metrics nobody can read.
fn warn_about(settings: &Settings) {
    let limits = &settings.limits;
    for (key, off) in [
        ("limits.login_per_ip", limits.login_per_ip.rate().is_none()),
        (
            "limits.login_per_account",
            limits.login_per_account.rate().is_none(),
        ),
        (
            "limits.register_per_ip",
            limits.register_per_ip.rate().is_none(),
        ),
        ("limits.publish", limits.publish.rate().is_none()),
        (
            "limits.handshakes_per_ip",
            limits.handshakes_per_ip.rate().is_none(),
        ),
        (
            "limits.client_frames",
            limits.client_frames.rate().is_none(),
        ),
    ] {
        if off && settings.is_production() {
            tracing::warn!(key, var = %crate::config::env_var(key), "rate limit is off");
        }
    }
    if settings.is_production()
        && let Some(url) = &settings.redis.url
        && crate::config::redis_is_plaintext_off_host(url.expose_secret())
    {
        tracing::warn!(
            "PARKMATE_REDIS_URL is redis:// to another host: notifications cross the network in \
             clear text; use rediss:// (docs/security.md)"
        );
    }
    if settings.is_production()
        && settings.metrics.bind.is_none()
        && settings.metrics.token.is_none()
    {
        tracing::info!(
            "/metrics is not served: set PARKMATE_METRICS_BIND (an internal address) or \
             PARKMATE_METRICS_TOKEN to expose it"
        );
    }
}
