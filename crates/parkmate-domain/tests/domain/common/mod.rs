//! A fresh domain on a real database of either engine (a temp-file SQLite database, or a fresh
//! PostgreSQL database per test from `parkmate_db::test_support`), with a manual clock and a
//! gateway that counts what it was asked to do. `on_both_engines!` stamps each test per engine.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use parkmate_db::{Db, OutboxSignal, StoredNotification};
use parkmate_domain::payment::CARD_APPROVED;
use parkmate_domain::{
    Actor, BookingMinutes, Charge, Domain, Email, Lot, ManualClock, Name, NewBooking, Password,
    PaymentChoice, PaymentError, PaymentGateway, Receipt, Refund, RefundReceipt, TestGateway, User,
};
use parkmate_protocol::Role;

/// The test gateway, counting charges and refunds, and steerable: charges can be held at the
/// gateway until released (a slow provider), refunds can be made to fail as if it were down.
#[derive(Default)]
pub struct CountingGateway {
    inner: TestGateway,
    pub charges: AtomicUsize,
    pub refunds: AtomicUsize,
    /// While true, a charge waits at the gateway (before taking the money) until released.
    hold: tokio::sync::watch::Sender<bool>,
    /// Signalled each time a charge arrives at the gateway.
    pub arrived: tokio::sync::Notify,
    /// While true, refunds answer "unavailable" without doing anything.
    pub refunds_down: AtomicBool,
}

impl CountingGateway {
    /// Charges wait at the gateway from now on, until [`release`](Self::release).
    pub fn hold_charges(&self) {
        self.hold.send_replace(true);
    }

    pub fn release(&self) {
        self.hold.send_replace(false);
    }

    /// Every refund the gateway gave (not the calls): charges it holds minus the voids.
    pub fn refunds(&self) -> usize {
        self.refunds.load(Ordering::SeqCst)
    }

    pub fn charges(&self) -> usize {
        self.charges.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl PaymentGateway for CountingGateway {
    async fn charge(&self, charge: Charge) -> Result<Receipt, PaymentError> {
        self.arrived.notify_one();
        let mut hold = self.hold.subscribe();
        let _ = hold.wait_for(|held| !held).await;
        let r = self.inner.charge(charge).await;
        if r.is_ok() {
            self.charges.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
    async fn refund(&self, refund: &Refund) -> Result<RefundReceipt, PaymentError> {
        if self.refunds_down.load(Ordering::SeqCst) {
            return Err(PaymentError::Unavailable(
                "Payment gateway unavailable".into(),
            ));
        }
        let r = self.inner.refund(refund).await;
        // Count money given back, not voids of charges the gateway never made: `charges -
        // refunds` is then the money the gateway keeps.
        if matches!(&r, Ok(RefundReceipt { voided: false, .. })) {
            self.refunds.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 18, 0, 0).unwrap()
}

/// Which database a test world lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// An empty database of its own, removed when dropped.
pub enum FreshDb {
    Sqlite(tempfile::TempDir, String),
    Postgres(parkmate_db::test_support::TestPostgres),
}

impl FreshDb {
    /// `None` when PostgreSQL is missing (a loud skip; a failure under `CI=true`).
    pub async fn new(engine: Engine) -> Option<FreshDb> {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("domain.db").display());
                Some(FreshDb::Sqlite(dir, url))
            }
            Engine::Postgres => parkmate_db::test_support::fresh_postgres()
                .await
                .map(FreshDb::Postgres),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            FreshDb::Sqlite(_, url) => url,
            FreshDb::Postgres(pg) => &pg.url,
        }
    }
}

pub struct World {
    pub engine: Engine,
    pub fresh: FreshDb,
    pub url: String,
    pub db: Db,
    pub domain: Domain,
    pub clock: Arc<ManualClock>,
    pub gateway: Arc<CountingGateway>,
    pub admin: User,
    pub owner: User,
    pub other_owner: User,
    pub driver: User,
    pub other_driver: User,
    pub employee: User,
    pub other_employee: User,
    /// Owned by `owner`; slot 1 and 2 offer car wash; `employee` works here.
    pub lot: Lot,
    /// Owned by `other_owner`; `other_employee` works here.
    pub other_lot: Lot,
}

pub fn actor(u: &User) -> Actor {
    Actor {
        user_id: u.id,
        role: u.role,
    }
}

impl World {
    pub async fn new(engine: Engine) -> Option<World> {
        World::with_rules(engine, parkmate_domain::BookingRules::default()).await
    }

    /// A world whose domain enforces `rules`.
    pub async fn with_rules(engine: Engine, rules: parkmate_domain::BookingRules) -> Option<World> {
        let fresh = FreshDb::new(engine).await?;
        let url = fresh.url().to_owned();
        let db = Db::open(&url).await.unwrap();
        let clock = Arc::new(ManualClock::starting_at(t0()));
        let gateway = Arc::new(CountingGateway::default());
        let domain = Domain::with_rules(
            db.clone(),
            clock.clone(),
            gateway.clone(),
            OutboxSignal::default(),
            rules,
        );
        let mk = |name: &'static str, role: Role| {
            let domain = domain.clone();
            async move {
                let email = format!("{}@t.test", name.to_lowercase().replace(' ', "."));
                domain
                    .create_user(
                        Name::parse(name).unwrap(),
                        Email::parse(&email).unwrap(),
                        Password::parse("password-123").unwrap(),
                        role,
                    )
                    .await
                    .unwrap()
            }
        };
        let admin = mk("Ada Admin", Role::Admin).await;
        let owner = mk("Olga Owner", Role::Owner).await;
        let other_owner = mk("Otto Owner", Role::Owner).await;
        let driver = mk("Dana Driver", Role::User).await;
        let other_driver = mk("Dev Driver", Role::User).await;
        let employee = mk("Emil Employee", Role::Employee).await;
        let other_employee = mk("Erin Employee", Role::Employee).await;
        let lot = domain
            .create_lot(
                owner.id,
                Name::parse("Central").unwrap(),
                240,
                &[(1, true), (2, true), (3, false)],
            )
            .await
            .unwrap();
        let other_lot = domain
            .create_lot(
                other_owner.id,
                Name::parse("Harbour").unwrap(),
                120,
                &[(1, true), (2, false)],
            )
            .await
            .unwrap();
        domain
            .assign_employee(actor(&admin), lot.id, employee.id)
            .await
            .unwrap();
        domain
            .assign_employee(actor(&admin), other_lot.id, other_employee.id)
            .await
            .unwrap();
        Some(World {
            engine,
            fresh,
            url,
            db,
            domain,
            clock,
            gateway,
            admin,
            owner,
            other_owner,
            driver,
            other_driver,
            employee,
            other_employee,
            lot,
            other_lot,
        })
    }

    /// A second domain on the same database file, as after a restart, with its clock at `now`.
    pub async fn restart(&self, now: DateTime<Utc>) -> (Domain, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::starting_at(now));
        let db = Db::open(&self.url).await.unwrap();
        let domain = Domain::with_rules(
            db,
            clock.clone(),
            self.gateway.clone(),
            OutboxSignal::default(),
            *self.domain.rules(),
        );
        (domain, clock)
    }

    pub fn store(&self) -> &Db {
        &self.db
    }

    /// Every notification stored so far, oldest first.
    pub async fn notes(&self) -> Vec<StoredNotification> {
        self.store().after(0, 1000).await.unwrap()
    }

    /// Notifications of one event kind.
    pub async fn notes_of(&self, event: &str) -> Vec<StoredNotification> {
        self.notes()
            .await
            .into_iter()
            .filter(|n| n.event == event)
            .collect()
    }

    pub fn slot(&self, number: i64) -> i64 {
        self.lot
            .slots
            .iter()
            .find(|s| s.number == number)
            .unwrap()
            .id
    }
}

pub fn cash(slot_id: i64, minutes: i64, car_wash: bool) -> NewBooking {
    NewBooking {
        slot_id,
        minutes: BookingMinutes::parse(minutes).unwrap(),
        car_wash,
        payment: PaymentChoice::Cash,
    }
}

pub fn card(slot_id: i64, minutes: i64, number: &str) -> NewBooking {
    NewBooking {
        slot_id,
        minutes: BookingMinutes::parse(minutes).unwrap(),
        car_wash: false,
        payment: PaymentChoice::parse("online", Some(number)).unwrap(),
    }
}

pub fn approved_card() -> PaymentChoice {
    PaymentChoice::parse("online", Some(CARD_APPROVED)).unwrap()
}

/// Stamps each engine-generic test `async fn case(w: World)` once per engine, in `on_sqlite` and
/// `on_postgres` modules (multi-threaded, so races between tasks are real).
#[macro_export]
macro_rules! on_both_engines {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let w = super::World::new(super::Engine::Sqlite).await.expect("SQLite is always there");
                    super::$case(w).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(w) = super::World::new(super::Engine::Postgres).await else { return };
                    super::$case(w).await;
                }
            )*
        }
    };
}
