//! The parking domain of Parkmate: users, lots, slots, bookings and payments, and the one scheduler
//! that fires the timed events. It produces the ten events of the original system (see
//! `docs/booking-api.md`) as real state changes.
//!
//! No HTTP, no sockets, no brokers, no SQL here: it speaks to the database only through
//! `parkmate-db` (its queries and transactions), and to the publishing pipeline only through the
//! store's [`OutboxSignal`]. The crate is cut by topic: [`accounts`](Domain::register) (sign-up,
//! login, password hashing), `lots.rs`, `bookings/` (reading, creating, the admin's and staff's
//! actions, renewal, payments, and the state machine in `bookings/state.rs`), `scheduler.rs`
//! (events 1 and 5), `seed.rs` (demo data), `events.rs` (the notification texts).
//!
//! The invariants this crate keeps:
//! - **A state change and its notifications commit in one transaction** (notifications written
//!   last, through `Tx::insert_notifications`), and only then is the outbox dispatcher woken to
//!   publish them. A crash in between loses nothing: the dispatcher publishes unpublished rows at
//!   start.
//! - **A write path locks the booking it read** (`bookings::booking_for_update`), so its checks
//!   hold until its commit on PostgreSQL too, where several nodes write at once.
//! - **Transitions are conditional updates** (`... WHERE status = 'requested'`), so a retried
//!   action finds nothing to change and reports nothing; every notification also carries a dedupe
//!   key naming its state change, so even a repeat that got through stores nothing new.
//! - **Two active bookings never overlap on a slot**: the database refuses it, whatever the writer.
//! - **Payments happen outside transactions** (a gateway call must never hold the write
//!   connection), and **every charge ends booked or refunded, by construction**: its `payments`
//!   row (with the idempotency key the gateway receives) is committed before the gateway is
//!   called; the charge and the transaction that books it run in a task of their own, so a request
//!   dropped half-way still finishes; any failure after a charge refunds it by key; and recovery
//!   on the leader settles what a crash left (`bookings/payments.rs`).

use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use parkmate_db::{Db, NewNotification, OutboxSignal, Read, Tx};
use tokio::sync::{Notify, watch};

mod accounts;
mod bookings;
pub mod clock;
mod error;
pub mod events;
mod lots;
pub mod model;
pub mod payment;
mod scheduler;
mod seed;
pub mod types;

pub use bookings::payments::Recovered;
pub use bookings::state::{BookingAction, Step, step};
pub use bookings::{MAX_REASON_CHARS, NewBooking, PaymentChoice, RETRY_WINDOW, SLOT_TAKEN_REASON};
pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use error::DomainError;
pub use model::{Actor, Booking, DemoAccount, Employee, Lot, Payment, Slot, User, Window};
pub use payment::{
    Charge, PaymentError, PaymentGateway, Receipt, Refund, RefundReceipt, TestGateway,
};
pub use scheduler::Fired;
pub use types::{
    BookingMinutes, BookingStatus, BookingWindow, CarWashStatus, CardNumber, Email, InvalidInput,
    Name, Password, PaymentKind, PaymentMethod, PaymentState, PaymentStatus,
};

/// The rules a lot operator sets (`[booking]` in the server's settings), in one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingRules {
    /// Bookings one driver may hold at once (`requested` or `confirmed`, window not over): the
    /// next create or renewal is refused with 409 `too_many_bookings`.
    pub max_active_per_driver: NonZeroU32,
    /// How long an unapproved request holds its slot: then it lapses (slot released, online
    /// payments refunded, the driver told).
    pub request_hold: std::time::Duration,
    /// How old a charge or refund left unsettled must be before recovery settles it. Longer than
    /// any gateway call of a request still in flight, so recovery only meets what a crash or an
    /// outage left behind.
    pub payment_grace: std::time::Duration,
}

impl Default for BookingRules {
    fn default() -> Self {
        BookingRules {
            max_active_per_driver: NonZeroU32::new(2).expect("non-zero"),
            request_hold: std::time::Duration::from_secs(15 * 60),
            payment_grace: std::time::Duration::from_secs(10 * 60),
        }
    }
}

impl BookingRules {
    fn hold(&self) -> Duration {
        Duration::from_std(self.request_hold).unwrap_or(Duration::MAX)
    }

    fn grace(&self) -> Duration {
        Duration::from_std(self.payment_grace).unwrap_or(Duration::MAX)
    }
}

pub(crate) use error::corrupt;

/// The domain handle. Cheap to clone; everything behind one `Arc`.
#[derive(Clone)]
pub struct Domain {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where every transaction of the domain begins and reads run.
    db: Db,
    clock: Arc<dyn Clock>,
    gateway: Arc<dyn PaymentGateway>,
    outbox: OutboxSignal,
    rules: BookingRules,
    /// The tasks that carry a payment to its outcome (charge, then book or refund; refunds), so
    /// that a dropped request still finishes them and shutdown can wait for them. Each is one
    /// request's (or one refund's) work, bounded by the requests the server admits.
    payments: InFlight,
    /// Whether a recovery pass runs (the scheduler starts at most one at a time).
    recovering: std::sync::atomic::AtomicBool,
    /// Wakes the scheduler when a booking's deadlines changed (one waiter; `notify_one` keeps a
    /// permit so a change made while it is busy is not missed).
    reschedule: Notify,
    /// Whether this node leads the cluster, as given to [`Domain::spawn_scheduler`]; unset while
    /// no scheduler runs (then this domain is alone and fires its own deadlines).
    leader: std::sync::OnceLock<watch::Receiver<bool>>,
}

impl Domain {
    /// The domain on an opened (and migrated) database, with the default [`BookingRules`].
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        gateway: Arc<dyn PaymentGateway>,
        outbox: OutboxSignal,
    ) -> Domain {
        Domain::with_rules(db, clock, gateway, outbox, BookingRules::default())
    }

    /// The domain with the operator's rules.
    pub fn with_rules(
        db: Db,
        clock: Arc<dyn Clock>,
        gateway: Arc<dyn PaymentGateway>,
        outbox: OutboxSignal,
        rules: BookingRules,
    ) -> Domain {
        Domain {
            inner: Arc::new(Inner {
                db,
                clock,
                gateway,
                outbox,
                rules,
                payments: InFlight::default(),
                recovering: std::sync::atomic::AtomicBool::new(false),
                reschedule: Notify::new(),
                leader: std::sync::OnceLock::new(),
            }),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    pub fn rules(&self) -> &BookingRules {
        &self.inner.rules
    }

    /// Waits until every payment task started so far has finished: a dropped request's charge
    /// has been booked or refunded, a decided refund has been sent. For shutdown (under its
    /// deadline) and tests.
    pub async fn payments_settled(&self) {
        self.inner.payments.idle().await;
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
            self.recover_payments().await?;
            // The refunds those passes decided have been sent when this answers.
            self.payments_settled().await;
        }
        Ok(now)
    }

    /// Whether this node runs the cluster's timers (always, until a scheduler is given a lead).
    fn leads(&self) -> bool {
        self.inner.leader.get().is_none_or(|l| *l.borrow())
    }

    async fn read(&self) -> Result<Read, DomainError> {
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

    /// Commits `tx` with `notes` written last, then lets the outbox publish them and the
    /// scheduler see new deadlines.
    async fn commit_with(&self, mut tx: Tx, notes: &[NewNotification]) -> Result<(), DomainError> {
        if !notes.is_empty() {
            tx.insert_notifications(notes).await?;
        }
        tx.commit().await?;
        if !notes.is_empty() {
            self.inner.outbox.wake();
        }
        self.inner.reschedule.notify_one();
        Ok(())
    }

    /// Follows `leader` from now on (see [`advance_clock`](Self::advance_clock)); the first
    /// leadership given wins, a domain has one scheduler.
    /// `false` when this domain already follows a lead (its scheduler is running).
    fn follow(&self, leader: watch::Receiver<bool>) -> bool {
        self.inner.leader.set(leader).is_ok()
    }
}

/// Counts the payment tasks in flight. A count in a `watch`, not a `TaskTracker`: any number of
/// callers may wait for "none in flight" at once (shutdown, the test clock), and none of them
/// has to close anything.
#[derive(Debug)]
struct InFlight {
    count: watch::Sender<usize>,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight {
            count: watch::channel(0).0,
        }
    }
}

/// Decrements the count when its task ends, also by panic or abort.
struct Landed(watch::Sender<usize>);

impl Drop for Landed {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl InFlight {
    /// Runs `work` on its own task: it finishes even if whoever awaits the handle goes away.
    fn spawn<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.count.send_modify(|n| *n += 1);
        let landed = Landed(self.count.clone());
        tokio::spawn(async move {
            let _landed = landed;
            work.await
        })
    }

    async fn idle(&self) {
        let mut count = self.count.subscribe();
        // The sender lives as long as `self`: the wait ends only when the count is zero.
        let _ = count.wait_for(|n| *n == 0).await;
    }
}
