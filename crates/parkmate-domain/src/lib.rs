//! The parking domain of Parkmate: users, lots, slots, bookings and payments, and the one scheduler
//! that fires the timed events. It produces the ten events of the original system (see
//! `docs/booking-api.md`) as real state changes.
//!
//! No HTTP and no sockets here. The invariants this crate keeps:
//! - **A state change and its notifications commit in one transaction** (through the store's
//!   `insert_notifications` of the engine: SQLite's single write connection, or PostgreSQL with
//!   the store's advisory lock), and only then is the outbox dispatcher woken to publish them. A
//!   crash in between loses nothing: the dispatcher publishes unpublished rows at start.
//! - **The rules are written once** for both engines: SQL lives in `sqlite.rs` and its twin
//!   `postgres.rs`, dispatched by `engine.rs`. On PostgreSQL several nodes write at once, so write
//!   paths lock the booking they read (`booking_for_update`) where SQLite serialises writers.
//! - **Transitions are conditional updates** (`... WHERE status = 'requested'`), so a retried
//!   action finds nothing to change and reports nothing; every notification also carries a dedupe
//!   key naming its state change, so even a repeat that got through stores nothing new.
//! - **Two active bookings never overlap on a slot**: the database refuses it, whatever the writer
//!   (a trigger on SQLite, an exclusion constraint on PostgreSQL).
//! - **Payments happen outside transactions** (a gateway call must never hold the write
//!   connection), before the commit that needs them; a charge whose commit then fails is refunded.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use parkmate_notifier::OutboxSignal;
use parkmate_protocol::Role;
use parkmate_store::{Database, NewNotification, StoreError};
use tokio::sync::{Notify, watch};

pub mod clock;
mod engine;
pub mod events;
pub mod model;
pub mod payment;
mod postgres;
mod scheduler;
mod seed;
mod shared_sql;
mod sqlite;
pub mod types;

pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use model::{Actor, Booking, DemoAccount, Employee, Lot, Slot, User};
pub use payment::{Charge, PaymentError, PaymentGateway, Receipt, TestGateway};
pub use scheduler::Fired;
pub use types::{
    BookingAction, BookingMinutes, BookingStatus, BookingWindow, CarWashStatus, CardNumber, Email,
    InvalidInput, Name, Password, PaymentMethod, PaymentStatus, Step,
};

use engine::{BookingScope, Conn, Pools, Tx};

/// How long after a create or a renewal the same request counts as a retry (a double click, a
/// client retry after a timeout) and answers the first result instead of failing or charging again.
pub const RETRY_WINDOW: Duration = Duration::minutes(2);
/// Longest decline reason kept.
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("email or password is wrong")]
    InvalidCredentials,
    #[error("the slot is already booked for that time")]
    SlotTaken,
    #[error("cannot {action} a booking that is {from}")]
    InvalidTransition {
        from: BookingStatus,
        action: &'static str,
    },
    #[error("{0}")]
    NotRenewable(&'static str),
    #[error("this slot offers no car wash")]
    CarWashUnavailable,
    #[error("this booking was not paid in cash")]
    NotCash,
    #[error("no car wash was ordered with this booking")]
    NoCarWash,
    #[error("user {0} is not an employee")]
    NotAnEmployee(i64),
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    #[error("{0}")]
    PaymentUnavailable(String),
    #[error("the clock is not manual")]
    ClockNotManual,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("store error")]
    Store(#[from] StoreError),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl DomainError {
    /// The stable machine-readable code the HTTP edge answers with.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Invalid(e) => e.code(),
            DomainError::NotFound(_) => "not_found",
            DomainError::Forbidden(_) => "forbidden",
            DomainError::EmailTaken => "email_taken",
            DomainError::InvalidCredentials => "invalid_credentials",
            DomainError::SlotTaken => "slot_taken",
            DomainError::InvalidTransition { .. } => "invalid_transition",
            DomainError::NotRenewable(_) => "not_renewable",
            DomainError::CarWashUnavailable => "car_wash_unavailable",
            DomainError::NotCash => "not_cash_payment",
            DomainError::NoCarWash => "no_car_wash",
            DomainError::NotAnEmployee(_) => "not_an_employee",
            DomainError::PaymentDeclined(_) => "payment_declined",
            DomainError::PaymentUnavailable(_) => "payment_unavailable",
            DomainError::ClockNotManual => "not_found",
            DomainError::Database(_)
            | DomainError::Store(_)
            | DomainError::Migrate(_)
            | DomainError::Corrupt(_)
            | DomainError::Hashing(_) => "internal",
        }
    }

    /// Whether this is the server's fault (logged, answered without details).
    pub fn is_internal(&self) -> bool {
        self.code() == "internal"
    }
}

pub(crate) fn corrupt(msg: impl Into<String>) -> DomainError {
    DomainError::Corrupt(msg.into())
}

/// The booking a caller named, or 404; locked for the rest of the write transaction `tx`, so the
/// state checked is the state the conditional update meets (see `engine.rs`).
async fn load(tx: &mut Tx, id: i64) -> Result<Booking, DomainError> {
    tx.booking_for_update(id)
        .await?
        .ok_or(DomainError::NotFound("booking"))
}

/// The booking just changed inside this transaction: missing would mean the store is broken.
async fn reload(tx: &mut Tx, id: i64) -> Result<Booking, DomainError> {
    tx.booking(id)
        .await?
        .ok_or_else(|| corrupt("booking vanished"))
}

/// How a booking or renewal is paid.
#[derive(Debug, Clone)]
pub enum PaymentChoice {
    /// Pending until the lot owner or an admin verifies it.
    Cash,
    /// Charged through the gateway before the booking is committed.
    Online(CardNumber),
}

impl PaymentChoice {
    /// From the wire's `payment_method` and `card_number`; online needs a card.
    pub fn parse(method: &str, card: Option<&str>) -> Result<PaymentChoice, InvalidInput> {
        match method.parse::<PaymentMethod>()? {
            PaymentMethod::Cash => Ok(PaymentChoice::Cash),
            PaymentMethod::Online => match card {
                Some(c) => Ok(PaymentChoice::Online(CardNumber::parse(c)?)),
                None => Err(InvalidInput::CardRequired),
            },
        }
    }
    fn method(&self) -> PaymentMethod {
        match self {
            PaymentChoice::Cash => PaymentMethod::Cash,
            PaymentChoice::Online(_) => PaymentMethod::Online,
        }
    }
}

/// A driver's request for a slot.
#[derive(Debug, Clone)]
pub struct NewBooking {
    pub slot_id: i64,
    pub minutes: BookingMinutes,
    pub car_wash: bool,
    pub payment: PaymentChoice,
}

/// The domain handle. Cheap to clone; everything behind one `Arc`.
#[derive(Clone)]
pub struct Domain {
    inner: Arc<Inner>,
}

struct Inner {
    /// The engine's pools: where every transaction of the domain begins and reads run.
    db: Pools,
    clock: Arc<dyn Clock>,
    gateway: Arc<dyn PaymentGateway>,
    outbox: OutboxSignal,
    /// Wakes the scheduler when a booking's deadlines changed (one waiter; `notify_one` keeps a
    /// permit so a change made while it is busy is not missed).
    reschedule: Notify,
    /// Whether this node leads the cluster, as given to [`Domain::spawn_scheduler`]; unset while
    /// no scheduler runs (then this domain is alone and fires its own deadlines).
    leader: std::sync::OnceLock<watch::Receiver<bool>>,
}

impl Domain {
    /// Runs the domain's migrations (1001+, next to the store's 0001+) and builds the handle.
    pub async fn new(
        db: &Database,
        clock: Arc<dyn Clock>,
        gateway: Arc<dyn PaymentGateway>,
        outbox: OutboxSignal,
    ) -> Result<Domain, DomainError> {
        migrate(db).await?;
        Ok(Domain {
            inner: Arc::new(Inner {
                db: Pools::of(db),
                clock,
                gateway,
                outbox,
                reschedule: Notify::new(),
                leader: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// Moves a manual clock forward and, when this node runs the scheduler (it leads, or it is
    /// alone), fires whatever became due, so that when this returns the resulting notifications
    /// are committed (the scheduler would fire them too, a moment later). On a follower it only
    /// moves this node's clock: deadlines are the leader's to fire, by the leader's clock.
    pub async fn advance_clock(&self, by: Duration) -> Result<DateTime<Utc>, DomainError> {
        let manual = self
            .inner
            .clock
            .as_manual()
            .ok_or(DomainError::ClockNotManual)?;
        let now = manual.advance(by);
        if self.leads() {
            self.fire_due().await?;
        }
        Ok(now)
    }

    /// Whether this node runs the cluster's timers (always, until a scheduler is given a lead).
    fn leads(&self) -> bool {
        self.inner.leader.get().is_none_or(|l| *l.borrow())
    }

    async fn read(&self) -> Result<Conn, DomainError> {
        Ok(self.inner.db.read().await?)
    }

    async fn begin(&self) -> Result<Tx, DomainError> {
        Ok(self.inner.db.begin().await?)
    }

    /// Lets the scheduler look for new deadlines now: for changes committed elsewhere (another
    /// node of the cluster), which this domain's own commits do not see.
    pub fn wake_scheduler(&self) {
        self.inner.reschedule.notify_one();
    }

    /// After a commit: publish what it stored, and let the scheduler see new deadlines.
    fn committed(&self, notified: bool) {
        if notified {
            self.inner.outbox.wake();
        }
        self.inner.reschedule.notify_one();
    }

    async fn commit_with(&self, mut tx: Tx, notes: &[NewNotification]) -> Result<(), DomainError> {
        if !notes.is_empty() {
            tx.insert_notifications(notes).await?;
        }
        tx.commit().await?;
        self.committed(!notes.is_empty());
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Accounts

    /// Registers a driver (role `user`).
    pub async fn register(
        &self,
        name: Name,
        email: Email,
        password: Password,
    ) -> Result<User, DomainError> {
        self.create_user(name, email, password, Role::User).await
    }

    /// Creates an account of any role (seed data, tests, future admin tooling).
    pub async fn create_user(
        &self,
        name: Name,
        email: Email,
        password: Password,
        role: Role,
    ) -> Result<User, DomainError> {
        let hash = hash_password(password).await?;
        let mut tx = self.begin().await?;
        let id = match tx
            .insert_user(name.as_str(), email.as_str(), &hash, role, self.now())
            .await
        {
            Ok(id) => id,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(DomainError::EmailTaken);
            }
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        Ok(User {
            id,
            name: name.as_str().to_owned(),
            email: email.as_str().to_owned(),
            role,
        })
    }

    /// Checks a password. An unknown email costs the same hashing work as a wrong password, so the
    /// answer time does not tell which accounts exist.
    pub async fn login(&self, email: &str, password: &str) -> Result<User, DomainError> {
        let found = match Email::parse(email) {
            Ok(email) => self.read().await?.user_by_email(email.as_str()).await?,
            Err(_) => None,
        };
        match found {
            Some((user, hash)) => {
                if verify_password(password.to_owned(), hash).await? {
                    Ok(user)
                } else {
                    Err(DomainError::InvalidCredentials)
                }
            }
            None => {
                // Same work as a wrong password, so timing does not reveal unknown accounts.
                hash_password(Password(password.to_owned())).await?;
                Err(DomainError::InvalidCredentials)
            }
        }
    }

    pub async fn user(&self, id: i64) -> Result<User, DomainError> {
        self.read()
            .await?
            .user(id)
            .await?
            .ok_or(DomainError::NotFound("user"))
    }

    /// All users, optionally of one role. Admins only.
    pub async fn users(&self, actor: Actor, role: Option<Role>) -> Result<Vec<User>, DomainError> {
        if actor.role != Role::Admin {
            return Err(DomainError::Forbidden("only admins can list users"));
        }
        self.read().await?.users(role).await
    }

    // -----------------------------------------------------------------------------------------
    // Lots

    /// Creates a lot with numbered slots `(number, car_wash)` (seed data and tests; no endpoint yet).
    pub async fn create_lot(
        &self,
        owner_id: i64,
        name: Name,
        price_per_hour_cents: i64,
        slots: &[(i64, bool)],
    ) -> Result<Lot, DomainError> {
        let mut tx = self.begin().await?;
        let id = tx
            .insert_lot(owner_id, name.as_str(), price_per_hour_cents, slots)
            .await?;
        tx.commit().await?;
        self.lot(id).await
    }

    /// Every lot (they are public to signed-in users), or only the caller's own when `mine`.
    pub async fn lots(&self, actor: Actor, mine: bool) -> Result<Vec<Lot>, DomainError> {
        let owner = mine.then_some(actor.user_id);
        self.read().await?.lots(None, owner, self.now()).await
    }

    pub async fn lot(&self, id: i64) -> Result<Lot, DomainError> {
        self.read()
            .await?
            .lots(Some(id), None, self.now())
            .await?
            .pop()
            .ok_or(DomainError::NotFound("lot"))
    }

    /// Assigns an employee to a lot (admins only). Event 10 to the lot's owner, once: assigning
    /// someone who already works there changes nothing and reports nothing.
    pub async fn assign_employee(
        &self,
        actor: Actor,
        lot_id: i64,
        employee_id: i64,
    ) -> Result<Lot, DomainError> {
        if actor.role != Role::Admin {
            return Err(DomainError::Forbidden("only admins can assign employees"));
        }
        let mut tx = self.begin().await?;
        let lot = tx
            .lots(Some(lot_id), None, self.now())
            .await?
            .pop()
            .ok_or(DomainError::NotFound("lot"))?;
        let employee = tx
            .user(employee_id)
            .await?
            .ok_or(DomainError::NotFound("employee"))?;
        if employee.role != Role::Employee {
            return Err(DomainError::NotAnEmployee(employee_id));
        }
        let mut notes = Vec::new();
        if tx
            .insert_lot_employee(lot_id, employee_id, self.now())
            .await?
        {
            notes.push(events::employee_assigned(
                lot.id,
                lot.owner_id,
                employee.id,
                &employee.name,
            ));
        }
        self.commit_with(tx, &notes).await?;
        self.lot(lot_id).await
    }

    // -----------------------------------------------------------------------------------------
    // Bookings: reading

    /// The bookings `actor` may see: a driver's own, an owner's lots', an employee's lots' car-wash
    /// jobs, everything for admins. Newest first.
    pub async fn bookings(&self, actor: Actor) -> Result<Vec<Booking>, DomainError> {
        let scope = match actor.role {
            Role::Admin => BookingScope::All,
            Role::User => BookingScope::Driver(actor.user_id),
            Role::Owner => BookingScope::Owner(actor.user_id),
            Role::Employee => BookingScope::Employee(actor.user_id),
        };
        self.read().await?.bookings(scope).await
    }

    /// One booking, if `actor` may see it (404 when it does not exist, 403 when it is not theirs).
    pub async fn booking(&self, actor: Actor, id: i64) -> Result<Booking, DomainError> {
        let mut conn = self.read().await?;
        let b = conn
            .booking(id)
            .await?
            .ok_or(DomainError::NotFound("booking"))?;
        if can_see(&mut conn, actor, &b).await? {
            Ok(b)
        } else {
            Err(DomainError::Forbidden("this booking is not yours"))
        }
    }

    // -----------------------------------------------------------------------------------------
    // Bookings: changing

    /// A driver books a slot from now for `minutes`. The booking starts `requested` (an admin
    /// confirms or declines it) and holds the slot at once. Event 8 to the lot's owner.
    ///
    /// A retry of the same request within [`RETRY_WINDOW`] answers the booking it made instead of
    /// `slot_taken`, without charging again.
    pub async fn create_booking(
        &self,
        actor: Actor,
        req: NewBooking,
    ) -> Result<Booking, DomainError> {
        if actor.role != Role::User {
            return Err(DomainError::Forbidden("only drivers can book"));
        }
        let now = self.now();
        let window = BookingWindow::starting(now, req.minutes);
        let slot = {
            let mut conn = self.read().await?;
            let slot = conn
                .slot_info(req.slot_id)
                .await?
                .ok_or(DomainError::NotFound("slot"))?;
            if req.car_wash && !slot.car_wash {
                return Err(DomainError::CarWashUnavailable);
            }
            // Cheap pre-check so a taken slot is refused before any money moves; the trigger is
            // what actually guarantees it.
            if conn.slot_busy(req.slot_id, window, None).await? {
                drop(conn);
                return self.retried_create(actor, &req, now).await;
            }
            slot
        };
        let amount = req.minutes.price(slot.price_per_hour_cents);
        let receipt = self
            .charge(
                &req.payment,
                amount,
                format!(
                    "Parkmate slot {} for {} min",
                    req.slot_id,
                    req.minutes.get()
                ),
            )
            .await?;

        let mut tx = self.begin().await?;
        let inserted = tx
            .insert_booking(engine::NewBookingRow {
                user_id: actor.user_id,
                slot_id: req.slot_id,
                window,
                duration_minutes: req.minutes.get(),
                payment_method: req.payment.method(),
                payment_status: if receipt.is_some() {
                    PaymentStatus::Paid
                } else {
                    PaymentStatus::Pending
                },
                payment_ref: receipt.as_ref().map(|r| r.reference.as_str()),
                amount_cents: amount,
                car_wash: req.car_wash,
                now,
            })
            .await;
        let id = match inserted {
            Ok(id) => id,
            Err(e) if engine::is_slot_taken(&e) => {
                drop(tx);
                self.refund(receipt.as_ref()).await;
                return self.retried_create(actor, &req, now).await;
            }
            Err(e) => {
                drop(tx);
                self.refund(receipt.as_ref()).await;
                return Err(e.into());
            }
        };
        let b = tx
            .booking(id)
            .await?
            .ok_or_else(|| corrupt("inserted booking vanished"))?;
        self.commit_with(tx, &[events::created(&b)]).await?;
        Ok(b)
    }

    /// The slot was taken: by this very request made a moment ago (answer it), or by someone else.
    async fn retried_create(
        &self,
        actor: Actor,
        req: &NewBooking,
        now: DateTime<Utc>,
    ) -> Result<Booking, DomainError> {
        let mut conn = self.read().await?;
        let since = now - RETRY_WINDOW;
        match conn
            .recent_same_booking(actor.user_id, req.slot_id, req.minutes.get(), since)
            .await?
        {
            Some(id) => conn
                .booking(id)
                .await?
                .ok_or(DomainError::NotFound("booking")),
            None => Err(DomainError::SlotTaken),
        }
    }

    /// Admin confirms a request. Confirming a confirmed booking answers it unchanged.
    pub async fn approve(&self, actor: Actor, id: i64) -> Result<Booking, DomainError> {
        if actor.role != Role::Admin {
            return Err(DomainError::Forbidden("only admins can approve bookings"));
        }
        let mut tx = self.begin().await?;
        let b = load(&mut tx, id).await?;
        let to = match b.status.step(BookingAction::Approve) {
            Step::To(to) => to,
            Step::Unchanged => return Ok(b),
            Step::Refused => {
                return Err(DomainError::InvalidTransition {
                    from: b.status,
                    action: "approve",
                });
            }
        };
        // Conditional on the state read in this same transaction (writers are serialised).
        tx.transition(id, b.status, to, None).await?;
        let b = reload(&mut tx, id).await?;
        self.commit_with(tx, &[]).await?;
        Ok(b)
    }

    /// Admin declines a request, releasing the slot. Event 6. Declining a declined booking
    /// answers it unchanged and reports nothing.
    pub async fn decline(
        &self,
        actor: Actor,
        id: i64,
        reason: Option<&str>,
    ) -> Result<Booking, DomainError> {
        if actor.role != Role::Admin {
            return Err(DomainError::Forbidden("only admins can decline bookings"));
        }
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| r.chars().take(MAX_REASON_CHARS).collect::<String>());
        let mut tx = self.begin().await?;
        let b = load(&mut tx, id).await?;
        let to = match b.status.step(BookingAction::Decline) {
            Step::To(to) => to,
            Step::Unchanged => return Ok(b),
            Step::Refused => {
                return Err(DomainError::InvalidTransition {
                    from: b.status,
                    action: "decline",
                });
            }
        };
        tx.transition(id, b.status, to, reason.as_deref()).await?;
        let b = reload(&mut tx, id).await?;
        self.commit_with(tx, &[events::declined(&b)]).await?;
        Ok(b)
    }

    /// The lot's owner or an admin confirms the cash was received. Event 7, once per window.
    pub async fn verify_cash(&self, actor: Actor, id: i64) -> Result<Booking, DomainError> {
        let mut tx = self.begin().await?;
        let b = load(&mut tx, id).await?;
        let allowed = actor.role == Role::Admin
            || (actor.role == Role::Owner && b.lot_owner_id == actor.user_id);
        if !allowed {
            return Err(DomainError::Forbidden(
                "only the lot's owner or an admin can verify cash",
            ));
        }
        if b.payment_method != PaymentMethod::Cash {
            return Err(DomainError::NotCash);
        }
        if b.status == BookingStatus::Declined {
            return Err(DomainError::InvalidTransition {
                from: b.status,
                action: "verify cash of",
            });
        }
        if !tx.mark_cash_paid(id).await? {
            return Ok(b); // already verified: a retry
        }
        let b = reload(&mut tx, id).await?;
        self.commit_with(tx, &[events::cash_verified(&b)]).await?;
        Ok(b)
    }

    /// An employee of the lot, or its owner, marks the ordered car wash done. Event 9, once.
    pub async fn car_wash_done(&self, actor: Actor, id: i64) -> Result<Booking, DomainError> {
        let mut tx = self.begin().await?;
        let b = load(&mut tx, id).await?;
        let allowed = match actor.role {
            Role::Owner => b.lot_owner_id == actor.user_id,
            Role::Employee => tx.works_at(actor.user_id, b.lot_id).await?,
            Role::User | Role::Admin => false,
        };
        if !allowed {
            return Err(DomainError::Forbidden(
                "only the lot's employees or owner can complete a car wash",
            ));
        }
        match (b.car_wash, b.status) {
            (None, _) => return Err(DomainError::NoCarWash),
            (Some(CarWashStatus::Done), _) => return Ok(b),
            (_, BookingStatus::Declined) => {
                return Err(DomainError::InvalidTransition {
                    from: b.status,
                    action: "complete the car wash of",
                });
            }
            (Some(CarWashStatus::Pending), _) => {}
        }
        tx.mark_car_wash_done(id).await?;
        let b = reload(&mut tx, id).await?;
        self.commit_with(tx, &[events::car_wash_done(&b)]).await?;
        Ok(b)
    }

    /// The driver renews an expired booking for `minutes` from now, paying again. Event 3 on
    /// success; a refusal (not renewable, slot taken meanwhile, payment declined or unavailable)
    /// commits event 4 with the reason and answers the error.
    ///
    /// A retry of a renewal that succeeded within [`RETRY_WINDOW`] answers the renewed booking
    /// without charging or reporting again.
    pub async fn renew(
        &self,
        actor: Actor,
        id: i64,
        minutes: BookingMinutes,
        payment: PaymentChoice,
    ) -> Result<Booking, DomainError> {
        let now = self.now();
        let mut b = self
            .read()
            .await?
            .booking(id)
            .await?
            .ok_or(DomainError::NotFound("booking"))?;
        if actor.role != Role::User || b.user_id != actor.user_id {
            return Err(DomainError::Forbidden(
                "only the booking's driver can renew it",
            ));
        }
        if is_retried_renewal(&b, minutes, now) {
            return Ok(b);
        }
        if b.status.holds_slot() && b.window.end() <= now {
            // Its time ran out but the scheduler has not got to it yet (a matter of
            // milliseconds): expire it now, with its event 5, rather than refuse a renewal the
            // driver's countdown already offers.
            self.fire_due().await?;
            b = self
                .read()
                .await?
                .booking(id)
                .await?
                .ok_or(DomainError::NotFound("booking"))?;
        }
        let refusal = match b.status.step(BookingAction::Renew) {
            Step::To(_) => None,
            Step::Unchanged | Step::Refused if b.status == BookingStatus::Declined => {
                Some("Booking was declined")
            }
            Step::Unchanged | Step::Refused => Some("Booking is still active"),
        };
        if let Some(reason) = refusal {
            return Err(self
                .renewal_refused(&b, reason, DomainError::NotRenewable(reason))
                .await);
        }
        let window = BookingWindow::starting(now, minutes);
        if self
            .read()
            .await?
            .slot_busy(b.slot_id, window, Some(b.id))
            .await?
        {
            return Err(self
                .renewal_refused(&b, SLOT_TAKEN_REASON, DomainError::SlotTaken)
                .await);
        }
        let price = self
            .read()
            .await?
            .slot_info(b.slot_id)
            .await?
            .ok_or(DomainError::NotFound("slot"))?
            .price_per_hour_cents;
        let amount = minutes.price(price);
        let receipt = match self
            .charge(
                &payment,
                amount,
                format!("Parkmate renewal of booking {id}"),
            )
            .await
        {
            Ok(r) => r,
            Err(e @ (DomainError::PaymentDeclined(_) | DomainError::PaymentUnavailable(_))) => {
                let reason = match &e {
                    DomainError::PaymentDeclined(r) | DomainError::PaymentUnavailable(r) => {
                        r.clone()
                    }
                    _ => unreachable!("matched above"),
                };
                return Err(self.renewal_refused(&b, &reason, e).await);
            }
            Err(e) => return Err(e),
        };

        let mut tx = self.begin().await?;
        let renewed = tx
            .renew(engine::Renewal {
                id,
                window,
                duration_minutes: minutes.get(),
                payment_method: payment.method(),
                payment_status: if receipt.is_some() {
                    PaymentStatus::Paid
                } else {
                    PaymentStatus::Pending
                },
                payment_ref: receipt.as_ref().map(|r| r.reference.as_str()),
                amount_cents: amount,
                now,
            })
            .await;
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                // Someone (this driver's other click) renewed it between our read and our write.
                drop(tx);
                self.refund(receipt.as_ref()).await;
                let current = self
                    .read()
                    .await?
                    .booking(id)
                    .await?
                    .ok_or(DomainError::NotFound("booking"))?;
                if is_retried_renewal(&current, minutes, now) {
                    return Ok(current);
                }
                return Err(self
                    .renewal_refused(
                        &current,
                        "Booking is still active",
                        DomainError::NotRenewable("Booking is still active"),
                    )
                    .await);
            }
            Err(e) if engine::is_slot_taken(&e) => {
                drop(tx);
                self.refund(receipt.as_ref()).await;
                return Err(self
                    .renewal_refused(&b, SLOT_TAKEN_REASON, DomainError::SlotTaken)
                    .await);
            }
            Err(e) => {
                drop(tx);
                self.refund(receipt.as_ref()).await;
                return Err(e.into());
            }
        }
        let b = reload(&mut tx, id).await?;
        self.commit_with(tx, &[events::renewed(&b)]).await?;
        Ok(b)
    }

    /// Commits event 4 for a refused renewal and gives back the error to answer. If even that
    /// commit fails, the commit error is answered (and the refusal is not reported).
    async fn renewal_refused(&self, b: &Booking, reason: &str, error: DomainError) -> DomainError {
        let result = async {
            let tx = self.begin().await?;
            self.commit_with(tx, &[events::renewal_failed(b, reason)])
                .await
        }
        .await;
        match result {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    /// Charges an online payment; `None` for cash.
    async fn charge(
        &self,
        payment: &PaymentChoice,
        amount: i64,
        description: String,
    ) -> Result<Option<Receipt>, DomainError> {
        let PaymentChoice::Online(card) = payment else {
            return Ok(None);
        };
        let charge = Charge {
            card: card.clone(),
            amount_cents: amount,
            description,
        };
        match self.inner.gateway.charge(charge).await {
            Ok(r) => Ok(Some(r)),
            Err(PaymentError::Declined(reason)) => Err(DomainError::PaymentDeclined(reason)),
            Err(PaymentError::Unavailable(reason)) => Err(DomainError::PaymentUnavailable(reason)),
        }
    }

    async fn refund(&self, receipt: Option<&Receipt>) {
        if let Some(r) = receipt
            && let Err(e) = self.inner.gateway.refund(r).await
        {
            // Money taken for nothing must reach a human: logged with the reference.
            tracing::error!(reference = %r.reference, error = %e, "refund failed");
        }
    }

    pub(crate) fn reschedule_signal(&self) -> &Notify {
        &self.inner.reschedule
    }

    pub(crate) fn pools(&self) -> &Pools {
        &self.inner.db
    }

    /// Follows `leader` from now on (see [`advance_clock`](Self::advance_clock)); the first
    /// leadership given wins, a domain has one scheduler.
    /// `false` when this domain already follows a lead (its scheduler is running).
    pub(crate) fn follow(&self, leader: watch::Receiver<bool>) -> bool {
        self.inner.leader.set(leader).is_ok()
    }
}

/// Applies the domain's migrations (1001 and up) to `db`; [`Domain::new`] does it too, this is for
/// `parkmate migrate`.
pub async fn migrate(db: &Database) -> Result<(), DomainError> {
    engine::migrate(db).await?;
    Ok(())
}

/// The reason event 4 gives when the slot was taken while the booking was expired.
pub const SLOT_TAKEN_REASON: &str = "Slot is no longer available";

fn is_retried_renewal(b: &Booking, minutes: BookingMinutes, now: DateTime<Utc>) -> bool {
    b.status == BookingStatus::Confirmed
        && b.duration_minutes == minutes.get()
        && b.renewed_at.is_some_and(|at| now - at <= RETRY_WINDOW)
}

async fn can_see(conn: &mut Conn, actor: Actor, b: &Booking) -> Result<bool, DomainError> {
    Ok(match actor.role {
        Role::Admin => true,
        Role::User => b.user_id == actor.user_id,
        Role::Owner => b.lot_owner_id == actor.user_id,
        Role::Employee => b.car_wash.is_some() && conn.works_at(actor.user_id, b.lot_id).await?,
    })
}

// ---------------------------------------------------------------------------------------------
// Passwords: argon2id with the crate's defaults, on the blocking pool (tens of milliseconds of CPU
// each; never on the async workers).

pub(crate) async fn hash_password(password: Password) -> Result<String, DomainError> {
    use argon2::password_hash::PasswordHasher;
    tokio::task::spawn_blocking(move || {
        argon2::Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| DomainError::Hashing(e.to_string()))
    })
    .await
    .map_err(|e| DomainError::Hashing(e.to_string()))?
}

async fn verify_password(password: String, hash: String) -> Result<bool, DomainError> {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&hash).map_err(|e| corrupt(format!("password hash: {e}")))?;
        Ok(argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| DomainError::Hashing(e.to_string()))?
}
