//! The domain on a real SQLite file: the slot race, authorisation, payments, the scheduler across
//! restarts, crash between commit and publish, idempotent retries, and every event's rows.
//!
//! Over 500 lines on purpose: one scenario per rule of the booking state machine, each short and
//! independent; split by topic would scatter the shared fixtures the cases build on.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::common::*;
use chrono::Duration;
use parkmate_db::{DbError, Exec, StoredNotification, exec::Stmt};
use parkmate_domain::payment::{CARD_DECLINED, CARD_GATEWAY_ERROR, CARD_INSUFFICIENT_FUNDS};
use parkmate_domain::{
    BookingMinutes, BookingStatus, CarWashStatus, DomainError, Fired, PaymentChoice, PaymentMethod,
    PaymentStatus, events,
};
use parkmate_protocol::rfc3339;
use parkmate_protocol::{Audience, Level};
use serde_json::json;

fn minutes(m: i64) -> BookingMinutes {
    BookingMinutes::parse(m).unwrap()
}

fn forbidden<T>(r: Result<T, DomainError>) -> bool {
    matches!(r, Err(DomainError::Forbidden(_)))
}

fn assert_note(n: &StoredNotification, to: i64, level: Level, event: &str, message: &str) {
    assert_eq!(n.audience, Audience::User(to), "{n:?}");
    assert_eq!(n.level, level, "{n:?}");
    assert_eq!(n.event, event, "{n:?}");
    assert_eq!(n.message, message, "{n:?}");
}

fn booking_data(b: &parkmate_domain::Booking) -> serde_json::Value {
    json!({
        "booking_id": b.id,
        "lot_id": b.lot_id,
        "slot_id": b.slot_id,
        "slot_number": b.slot_number,
        "end_at": rfc3339(b.window.end()),
    })
}

// ---------------------------------------------------------------------------------------------
// The slot race

async fn concurrent_bookings_of_one_slot_exactly_one_wins(w: World) {
    let slot = w.slot(3);
    let mut drivers = Vec::new();
    for i in 0..12 {
        let u = w
            .domain
            .register(
                parkmate_domain::Name::parse(&format!("Racer {i}")).unwrap(),
                parkmate_domain::Email::parse(&format!("racer{i}@t.test")).unwrap(),
                parkmate_domain::Password::parse("password-123").unwrap(),
            )
            .await
            .unwrap();
        drivers.push(u);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(drivers.len()));
    let tasks: Vec<_> = drivers
        .iter()
        .map(|u| {
            let (domain, barrier, who) = (w.domain.clone(), barrier.clone(), actor(u));
            tokio::spawn(async move {
                barrier.wait().await;
                // Online payment: the charge happens between the pre-check and the commit,
                // widening the race window the database must close.
                domain
                    .create_booking(who, card(slot, 60, parkmate_domain::payment::CARD_APPROVED))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    let mut taken = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(DomainError::SlotTaken) => taken += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((won, taken), (1, 11));
    // Everyone charged but the winner got their money back.
    let charges = w.gateway.charges.load(Ordering::SeqCst);
    assert_eq!(charges - w.gateway.refunds.load(Ordering::SeqCst), 1);
    assert_eq!(w.notes_of("booking_created").await.len(), 1);
}

async fn the_database_refuses_overlaps_whatever_the_writer(w: World) {
    let b = w
        .domain
        .create_booking(actor(&w.driver), cash(w.slot(1), 60, false))
        .await
        .unwrap();
    // A raw insert that skips every application check still cannot overlap.
    let insert = format!(
        "INSERT INTO bookings (user_id, slot_id, start_at_ms, end_at_ms, duration_minutes, status, \
         created_at_ms, requested_at_ms) VALUES ({}, {}, {}, {}, 30, 'confirmed', 0, 0)",
        w.other_driver.id,
        b.slot_id,
        b.window.start().timestamp_millis() + 60_000,
        b.window.end().timestamp_millis() + 60_000,
    );
    let mut tx = w.db.begin().await.unwrap();
    let err = tx.execute(Stmt::new(insert)).await.unwrap_err();
    // The trigger on SQLite, the exclusion constraint on PostgreSQL: both are `SlotTaken`.
    assert!(matches!(err, DbError::SlotTaken), "{err:?}");
    drop(tx);
    // Back to back is fine.
    let next = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(2), 60, false))
        .await;
    assert!(next.is_ok());
}

// ---------------------------------------------------------------------------------------------
// Authorisation

async fn authorisation_refusals(w: World) {
    let d = actor(&w.driver);
    let b = w
        .domain
        .create_booking(d, cash(w.slot(1), 60, true))
        .await
        .unwrap();
    let plain = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(3), 60, false))
        .await
        .unwrap();

    // Only drivers book.
    assert!(forbidden(
        w.domain
            .create_booking(actor(&w.owner), cash(w.slot(2), 60, false))
            .await
    ));
    assert!(forbidden(
        w.domain
            .create_booking(actor(&w.admin), cash(w.slot(2), 60, false))
            .await
    ));
    // Another driver neither sees nor renews it.
    assert!(forbidden(
        w.domain.booking(actor(&w.other_driver), b.id).await
    ));
    assert!(forbidden(
        w.domain
            .renew(
                actor(&w.other_driver),
                b.id,
                minutes(30),
                PaymentChoice::Cash
            )
            .await
    ));
    // Only admins approve, decline, list users, assign employees.
    for who in [d, actor(&w.owner), actor(&w.employee)] {
        assert!(forbidden(w.domain.approve(who, b.id).await));
        assert!(forbidden(w.domain.decline(who, b.id, None).await));
        assert!(forbidden(w.domain.users(who, None).await));
        assert!(forbidden(
            w.domain
                .assign_employee(who, w.lot.id, w.other_employee.id)
                .await
        ));
    }
    // Cash: the lot's owner or an admin, not another owner or the driver.
    assert!(forbidden(
        w.domain.verify_cash(actor(&w.other_owner), b.id).await
    ));
    assert!(forbidden(w.domain.verify_cash(d, b.id).await));
    assert!(forbidden(
        w.domain.verify_cash(actor(&w.employee), b.id).await
    ));
    // Car wash: the lot's employees or owner, not another lot's employee, nor the driver.
    assert!(forbidden(
        w.domain.car_wash_done(actor(&w.other_employee), b.id).await
    ));
    assert!(forbidden(
        w.domain.car_wash_done(actor(&w.other_owner), b.id).await
    ));
    assert!(forbidden(w.domain.car_wash_done(d, b.id).await));
    // Employees see their lot's car-wash jobs only.
    assert!(w.domain.booking(actor(&w.employee), b.id).await.is_ok());
    assert!(forbidden(
        w.domain.booking(actor(&w.employee), plain.id).await
    ));
    assert!(forbidden(
        w.domain.booking(actor(&w.other_employee), b.id).await
    ));
    assert!(forbidden(
        w.domain.booking(actor(&w.other_owner), b.id).await
    ));

    // Listings are scoped the same way.
    let ids = |v: Vec<parkmate_domain::Booking>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(ids(w.domain.bookings(d).await.unwrap()), vec![b.id]);
    assert_eq!(
        ids(w.domain.bookings(actor(&w.owner)).await.unwrap()),
        vec![plain.id, b.id]
    );
    assert_eq!(
        ids(w.domain.bookings(actor(&w.other_owner)).await.unwrap()),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(w.domain.bookings(actor(&w.employee)).await.unwrap()),
        vec![b.id]
    );
    assert_eq!(
        ids(w.domain.bookings(actor(&w.other_employee)).await.unwrap()),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(w.domain.bookings(actor(&w.admin)).await.unwrap()),
        vec![plain.id, b.id]
    );

    // Nothing refused above produced a notification beyond the two bookings' event 8.
    assert_eq!(w.notes_of("booking_created").await.len(), 2);
    assert!(w.notes_of("booking_declined").await.is_empty());
    assert_eq!(w.notes_of("employee_assigned").await.len(), 2);
    assert!(matches!(
        w.domain.booking(d, 9999).await,
        Err(DomainError::NotFound(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Payments

async fn payment_outcomes(w: World) {
    let d = actor(&w.driver);
    let declined = w
        .domain
        .create_booking(d, card(w.slot(1), 60, CARD_DECLINED))
        .await;
    assert!(
        matches!(&declined, Err(DomainError::PaymentDeclined(r)) if r == "Card declined"),
        "{declined:?}"
    );
    let poor = w
        .domain
        .create_booking(d, card(w.slot(1), 60, CARD_INSUFFICIENT_FUNDS))
        .await;
    assert!(
        matches!(&poor, Err(DomainError::PaymentDeclined(r)) if r == "Insufficient funds"),
        "{poor:?}"
    );
    let down = w
        .domain
        .create_booking(d, card(w.slot(1), 60, CARD_GATEWAY_ERROR))
        .await;
    assert!(
        matches!(&down, Err(DomainError::PaymentUnavailable(r)) if r == "Payment gateway unavailable")
    );
    assert_eq!(down.unwrap_err().code(), "payment_unavailable");
    // None of them booked or notified anything.
    assert!(w.domain.bookings(d).await.unwrap().is_empty());
    assert!(w.notes_of("booking_created").await.is_empty());

    let paid = w
        .domain
        .create_booking(
            d,
            card(w.slot(1), 90, parkmate_domain::payment::CARD_APPROVED),
        )
        .await
        .unwrap();
    assert_eq!(
        (paid.payment_method, paid.payment_status),
        (PaymentMethod::Online, PaymentStatus::Paid)
    );
    assert_eq!(paid.amount_cents, 360); // 90 minutes at 240/h
    assert_eq!(paid.status, BookingStatus::Requested);
    let in_cash = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(2), 30, false))
        .await
        .unwrap();
    assert_eq!(
        (in_cash.payment_method, in_cash.payment_status),
        (PaymentMethod::Cash, PaymentStatus::Pending)
    );
    assert_eq!(w.gateway.charges.load(Ordering::SeqCst), 1);

    // Validation happens before anything else.
    assert_eq!(
        PaymentChoice::parse("online", None).unwrap_err().code(),
        "card_required"
    );
    assert_eq!(
        PaymentChoice::parse("cheque", None).unwrap_err().code(),
        "invalid_value"
    );
    let no_wash = w.domain.create_booking(d, cash(w.slot(3), 30, true)).await;
    assert!(matches!(no_wash, Err(DomainError::CarWashUnavailable)));
}

// ---------------------------------------------------------------------------------------------
// The scheduler

async fn warning_then_expiry_fire_once_each_and_again_after_renewal(w: World) {
    let d = actor(&w.driver);
    let b = w
        .domain
        .create_booking(d, cash(w.slot(1), 60, false))
        .await
        .unwrap();
    // Approved: an unapproved request would lapse after the hold, long before its warning.
    w.domain.approve(actor(&w.admin), b.id).await.unwrap();
    assert_eq!(
        w.domain.next_deadline().await.unwrap(),
        Some(b.window.end() - Duration::minutes(5))
    );

    w.clock.advance(Duration::minutes(54));
    assert_eq!(w.domain.fire_due().await.unwrap(), Fired::default());
    w.clock.advance(Duration::minutes(1));
    assert_eq!(
        w.domain.fire_due().await.unwrap(),
        Fired {
            warned: 1,
            expired: 0,
            lapsed: 0,
        }
    );
    assert_eq!(w.domain.fire_due().await.unwrap(), Fired::default());
    assert_eq!(
        w.domain.next_deadline().await.unwrap(),
        Some(b.window.end())
    );

    w.clock.advance(Duration::minutes(5));
    assert_eq!(
        w.domain.fire_due().await.unwrap(),
        Fired {
            warned: 0,
            expired: 1,
            lapsed: 0,
        }
    );
    assert_eq!(w.domain.fire_due().await.unwrap(), Fired::default());
    let expired = w.domain.booking(d, b.id).await.unwrap();
    assert_eq!(expired.status, BookingStatus::Expired);
    assert!(
        !w.domain
            .lot(w.lot.id)
            .await
            .unwrap()
            .slots
            .iter()
            .any(|s| s.occupied),
        "slot released"
    );
    assert_eq!(w.domain.next_deadline().await.unwrap(), None);

    // A renewal moves the end: a new warning and a new expiry are due.
    let renewed = w
        .domain
        .renew(d, b.id, minutes(30), approved_card())
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(25));
    assert_eq!(
        w.domain.fire_due().await.unwrap(),
        Fired {
            warned: 1,
            expired: 0,
            lapsed: 0,
        }
    );
    w.clock.advance(Duration::minutes(5));
    assert_eq!(
        w.domain.fire_due().await.unwrap(),
        Fired {
            warned: 0,
            expired: 1,
            lapsed: 0,
        }
    );

    let warnings = w.notes_of("booking_expiring").await;
    assert_eq!(warnings.len(), 2);
    assert_eq!(warnings[0].data["end_at"], json!(rfc3339(b.window.end())));
    assert_eq!(
        warnings[1].data["end_at"],
        json!(rfc3339(renewed.window.end()))
    );
    assert_eq!(w.notes_of("booking_expired").await.len(), 2);
}

async fn deadlines_that_passed_while_down_fire_once_at_start(w: World) {
    let d = actor(&w.driver);
    let warned_only = w
        .domain
        .create_booking(d, cash(w.slot(1), 60, false))
        .await
        .unwrap();
    w.domain
        .approve(actor(&w.admin), warned_only.id)
        .await
        .unwrap();
    let ended = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(2), 20, false))
        .await
        .unwrap();
    // The server goes down before anything fires; it comes back 57 minutes later: the first
    // booking is within its last 5 minutes, the second ended long ago.
    let (after_restart, _clock) = w.restart(crate::common::t0() + Duration::minutes(57)).await;
    assert_eq!(
        after_restart.fire_due().await.unwrap(),
        Fired {
            warned: 1,
            expired: 1,
            lapsed: 0,
        }
    );
    // And again after another restart: nothing fires twice.
    let (again, _clock) = w.restart(crate::common::t0() + Duration::minutes(58)).await;
    assert_eq!(again.fire_due().await.unwrap(), Fired::default());

    let expiring = w.notes_of("booking_expiring").await;
    assert_eq!(expiring.len(), 1, "the ended booking gets no late warning");
    assert_eq!(expiring[0].data["booking_id"], json!(warned_only.id));
    let expired = w.notes_of("booking_expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].data["booking_id"], json!(ended.id));
}

async fn the_scheduler_task_wakes_on_the_manual_clock_and_stops_on_shutdown(w: World) {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    // The notifier's dispatcher, to observe publication without polling or sleeping.
    let sink = Arc::new(Recorder::default());
    let broker = Arc::new(parkmate_broker::MemoryBroker::new(sink.clone()));
    let notifier =
        parkmate_notifier::Notifier::start(w.store().clone(), broker, &tracker, shutdown.clone());
    let domain = parkmate_domain::Domain::new(
        w.db.clone(),
        w.clock.clone(),
        w.gateway.clone(),
        notifier.outbox(),
    );
    // This node does not lead yet: the scheduler waits for the lead.
    let (lead, leader) = tokio::sync::watch::channel(false);
    domain.spawn_scheduler(&tracker, shutdown.clone(), leader);

    let b = domain
        .create_booking(actor(&w.driver), cash(w.slot(1), 30, false))
        .await
        .unwrap();
    sink.wait_for("booking_created").await;
    // A follower's clock moves, but firing is the leader's job: advance_clock fires nothing here.
    domain.advance_clock(Duration::minutes(31)).await.unwrap();
    assert!(w.notes_of("booking_expired").await.is_empty());
    // Taking the lead starts the timers; the first pass fires what fell due meanwhile.
    lead.send_replace(true);
    let frame = sink.wait_for("booking_expired").await;
    assert_eq!(frame["data"]["booking_id"], json!(b.id));
    assert_eq!(frame["message"], json!("Your booking for Slot #1 expired"));

    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}

/// Records published frames; `wait_for` awaits one of an event kind.
#[derive(Default)]
struct Recorder {
    frames: std::sync::Mutex<Vec<serde_json::Value>>,
    arrived: tokio::sync::Notify,
}

impl parkmate_broker::BusSink for Recorder {
    fn deliver(&self, event: &parkmate_broker::BusEvent) {
        if let parkmate_broker::BusEvent::Notification(p) = event {
            let v: serde_json::Value = serde_json::from_slice(&p.frame).unwrap();
            self.frames.lock().unwrap().push(v);
            self.arrived.notify_waiters();
        }
    }
    fn resync(&self) {}
}

impl Recorder {
    async fn wait_for(&self, event: &str) -> serde_json::Value {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                let arrived = self.arrived.notified();
                if let Some(f) = self
                    .frames
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|f| f["event"] == event)
                {
                    return f.clone();
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {event} frame published"))
    }
}

// ---------------------------------------------------------------------------------------------
// Crash between commit and publish

async fn rows_committed_before_a_crash_are_published_at_start(w: World) {
    // The domain's outbox signal is connected to nothing: the process "dies" after the commit,
    // before any publish.
    let b = w
        .domain
        .create_booking(actor(&w.driver), cash(w.slot(1), 60, false))
        .await
        .unwrap();
    let stored = w.notes_of("booking_created").await;
    assert_eq!(stored.len(), 1);
    assert!(w.store().published_through().await.unwrap() < stored[0].id);

    // Start: the dispatcher publishes what was left, in id order.
    let sink = Arc::new(Recorder::default());
    let broker = Arc::new(parkmate_broker::MemoryBroker::new(sink.clone()));
    let tracker = tokio_util::task::TaskTracker::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let restarted = parkmate_db::Db::open(&w.url).await.unwrap();
    let _notifier =
        parkmate_notifier::Notifier::start(restarted.clone(), broker, &tracker, shutdown.clone());
    let frame = sink.wait_for("booking_created").await;
    assert_eq!(frame["id"], json!(stored[0].id));
    assert_eq!(frame["data"]["booking_id"], json!(b.id));
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    assert!(restarted.published_through().await.unwrap() >= stored[0].id);
}

// ---------------------------------------------------------------------------------------------
// Retried actions

async fn retried_actions_do_not_notify_twice(w: World) {
    let d = actor(&w.driver);
    let admin = actor(&w.admin);
    // Create: a double click answers the same booking and charges once.
    let req = card(w.slot(1), 60, parkmate_domain::payment::CARD_APPROVED);
    let first = w.domain.create_booking(d, req.clone()).await.unwrap();
    let again = w.domain.create_booking(d, req).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(w.gateway.charges.load(Ordering::SeqCst), 1);
    assert_eq!(w.notes_of("booking_created").await.len(), 1);

    // Approve twice: fine, no event either way.
    w.domain.approve(admin, first.id).await.unwrap();
    assert_eq!(
        w.domain.approve(admin, first.id).await.unwrap().status,
        BookingStatus::Confirmed
    );

    // Decline, verify cash, car wash: twice each, one notification each.
    let other = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(2), 60, true))
        .await
        .unwrap();
    for _ in 0..2 {
        w.domain
            .verify_cash(actor(&w.owner), other.id)
            .await
            .unwrap();
        w.domain
            .car_wash_done(actor(&w.employee), other.id)
            .await
            .unwrap();
    }
    let declined = w
        .domain
        .create_booking(d, cash(w.slot(3), 60, false))
        .await
        .unwrap();
    for _ in 0..2 {
        let b = w
            .domain
            .decline(admin, declined.id, Some("No parking today"))
            .await
            .unwrap();
        assert_eq!(b.status, BookingStatus::Declined);
    }
    assert!(matches!(
        w.domain.approve(admin, declined.id).await,
        Err(DomainError::InvalidTransition { .. })
    ));
    assert_eq!(w.notes_of("cash_payment_verified").await.len(), 1);
    assert_eq!(w.notes_of("car_wash_completed").await.len(), 1);
    assert_eq!(w.notes_of("booking_declined").await.len(), 1);

    // Renew twice (double click after expiry): one charge, one event 3.
    w.clock.advance(Duration::minutes(61));
    w.domain.fire_due().await.unwrap();
    let charges = w.gateway.charges.load(Ordering::SeqCst);
    let r1 = w
        .domain
        .renew(d, first.id, minutes(30), approved_card())
        .await
        .unwrap();
    let r2 = w
        .domain
        .renew(d, first.id, minutes(30), approved_card())
        .await
        .unwrap();
    assert_eq!(r1, r2);
    assert_eq!(w.gateway.charges.load(Ordering::SeqCst), charges + 1);
    assert_eq!(w.notes_of("booking_renewed").await.len(), 1);

    // Assigning someone twice: one event 10 (the world assigned two people already).
    w.domain
        .assign_employee(admin, w.other_lot.id, w.employee.id)
        .await
        .unwrap();
    w.domain
        .assign_employee(admin, w.other_lot.id, w.employee.id)
        .await
        .unwrap();
    assert_eq!(w.notes_of("employee_assigned").await.len(), 3);

    // A failing renewal retried: one event 4 per reason.
    let active = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(3), 60, false))
        .await
        .unwrap();
    for _ in 0..2 {
        let r = w
            .domain
            .renew(
                actor(&w.other_driver),
                active.id,
                minutes(30),
                PaymentChoice::Cash,
            )
            .await;
        assert!(matches!(r, Err(DomainError::NotRenewable(_))));
    }
    assert_eq!(w.notes_of("renewal_failed").await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Every server event's rows (event 2 is the web client's own)

async fn event_rows_have_the_documented_recipient_level_text_and_data(w: World) {
    let d = actor(&w.driver);
    let admin = actor(&w.admin);

    // 10: an employee assigned to a lot → its owner.
    w.domain
        .assign_employee(admin, w.other_lot.id, w.employee.id)
        .await
        .unwrap();
    let n = w.notes_of("employee_assigned").await.pop().unwrap();
    assert_note(
        &n,
        w.other_owner.id,
        Level::Info,
        "employee_assigned",
        &format!(
            "New employee assigned to Lot #{}: Emil Employee",
            w.other_lot.id
        ),
    );
    assert_eq!(
        n.data,
        json!({"lot_id": w.other_lot.id, "employee_id": w.employee.id, "employee_name": "Emil Employee"})
    );

    // 8: a booking → the lot's owner.
    let b = w
        .domain
        .create_booking(d, cash(w.slot(2), 60, true))
        .await
        .unwrap();
    // Approved, so that it lives to its warning and expiry (a request would lapse first).
    w.domain.approve(admin, b.id).await.unwrap();
    let n = w.notes_of("booking_created").await.pop().unwrap();
    assert_note(
        &n,
        w.owner.id,
        Level::Info,
        "booking_created",
        &format!("New booking received for Lot #{}", w.lot.id),
    );
    assert_eq!(n.data, booking_data(&b));
    assert_eq!(n.data["slot_number"], json!(2));

    // 7: cash verified.
    let b = w.domain.verify_cash(actor(&w.owner), b.id).await.unwrap();
    assert_eq!(b.payment_status, PaymentStatus::Paid);
    let n = w.notes_of("cash_payment_verified").await.pop().unwrap();
    assert_note(
        &n,
        w.driver.id,
        Level::Success,
        "cash_payment_verified",
        "Your cash payment has been verified",
    );
    assert_eq!(n.data, booking_data(&b));

    // 9: car wash done.
    let b = w
        .domain
        .car_wash_done(actor(&w.employee), b.id)
        .await
        .unwrap();
    assert_eq!(b.car_wash, Some(CarWashStatus::Done));
    let n = w.notes_of("car_wash_completed").await.pop().unwrap();
    assert_note(
        &n,
        w.driver.id,
        Level::Success,
        "car_wash_completed",
        "Your car wash service completed",
    );
    assert_eq!(n.data, booking_data(&b));

    // 1: five minutes before the end.
    w.clock.advance(Duration::minutes(55));
    w.domain.fire_due().await.unwrap();
    let n = w.notes_of("booking_expiring").await.pop().unwrap();
    assert_note(
        &n,
        w.driver.id,
        Level::Warning,
        "booking_expiring",
        "Your booking will expire in 5 minutes!",
    );
    assert_eq!(n.data, booking_data(&b));

    // 5: auto-expiry.
    w.clock.advance(Duration::minutes(5));
    w.domain.fire_due().await.unwrap();
    let n = w.notes_of("booking_expired").await.pop().unwrap();
    assert_note(
        &n,
        w.driver.id,
        Level::Warning,
        "booking_expired",
        "Your booking for Slot #2 expired",
    );
    assert_eq!(n.data, booking_data(&b));

    // 4: renewal refused by the gateway (and by the domain: slot taken meanwhile).
    let r = w
        .domain
        .renew(
            d,
            b.id,
            minutes(30),
            PaymentChoice::parse("online", Some(CARD_DECLINED)).unwrap(),
        )
        .await;
    assert!(matches!(r, Err(DomainError::PaymentDeclined(_))));
    let n = w.notes_of("renewal_failed").await.pop().unwrap();
    assert_note(
        &n,
        w.driver.id,
        Level::Error,
        "renewal_failed",
        "Renewal failed: Card declined",
    );
    let mut expected = booking_data(&b);
    expected["reason"] = json!("Card declined");
    assert_eq!(n.data, expected);
    let taker = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(2), 15, false))
        .await
        .unwrap();
    let r = w
        .domain
        .renew(d, b.id, minutes(30), PaymentChoice::Cash)
        .await;
    assert!(matches!(r, Err(DomainError::SlotTaken)), "{r:?}");
    let n = w.notes_of("renewal_failed").await.pop().unwrap();
    assert_eq!(n.message, "Renewal failed: Slot is no longer available");

    // 3: renewal paid and applied (once the slot is free again).
    w.domain.decline(admin, taker.id, None).await.unwrap();
    let renewed = w
        .domain
        .renew(d, b.id, minutes(45), approved_card())
        .await
        .unwrap();
    assert_eq!(renewed.status, BookingStatus::Confirmed);
    assert_eq!(renewed.window.end(), w.domain.now() + Duration::minutes(45));
    let n = w.notes_of("booking_renewed").await.pop().unwrap();
    assert_note(
        &n,
        w.driver.id,
        Level::Success,
        "booking_renewed",
        "Booking renewed successfully!",
    );
    assert_eq!(n.data, booking_data(&renewed));

    // 6: an admin declines a request (the taker's booking above, to the other driver).
    let n = w.notes_of("booking_declined").await.pop().unwrap();
    assert_note(
        &n,
        w.other_driver.id,
        Level::Warning,
        "booking_declined",
        "Admin declined your booking request",
    );
    assert_eq!(n.data["booking_id"], json!(taker.id));
    assert_eq!(n.data["reason"], json!(null));
    let with_reason = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(3), 15, false))
        .await
        .unwrap();
    let declined = w
        .domain
        .decline(admin, with_reason.id, Some("  Lot closed  "))
        .await
        .unwrap();
    assert_eq!(declined.decline_reason.as_deref(), Some("Lot closed"));
    assert_eq!(
        w.notes_of("booking_declined").await.pop().unwrap().data["reason"],
        json!("Lot closed")
    );

    // The texts are the constants the HTTP layer and the web client rely on.
    assert_eq!(events::EXPIRING, "Your booking will expire in 5 minutes!");
}

async fn login_register_and_seed(w: World) {
    let u = w
        .domain
        .login("DANA.DRIVER@t.test", "password-123")
        .await
        .unwrap();
    assert_eq!(u.id, w.driver.id);
    assert!(matches!(
        w.domain.login("dana.driver@t.test", "wrong-password").await,
        Err(DomainError::InvalidCredentials)
    ));
    assert!(matches!(
        w.domain.login("nobody@t.test", "password-123").await,
        Err(DomainError::InvalidCredentials)
    ));
    let dup = w
        .domain
        .register(
            parkmate_domain::Name::parse("Dana Again").unwrap(),
            parkmate_domain::Email::parse("dana.driver@t.test").unwrap(),
            parkmate_domain::Password::parse("password-123").unwrap(),
        )
        .await;
    assert!(matches!(dup, Err(DomainError::EmailTaken)));
    // Seeding a database that has real users does nothing.
    assert_eq!(w.domain.seed_demo().await.unwrap(), None);

    // An empty database gets the demo data, and keeps answering the accounts after a restart.
    let Some(fresh) = FreshDb::new(w.engine).await else {
        return;
    };
    let db = parkmate_db::Db::open(fresh.url()).await.unwrap();
    let clock = Arc::new(parkmate_domain::ManualClock::starting_at(
        crate::common::t0(),
    ));
    let domain = parkmate_domain::Domain::new(
        db,
        clock,
        Arc::new(parkmate_domain::TestGateway::new()),
        Default::default(),
    );
    let accounts = domain.seed_demo().await.unwrap().unwrap();
    assert_eq!(accounts.len(), 6);
    assert_eq!(domain.seed_demo().await.unwrap().unwrap(), accounts);
    for a in &accounts {
        let u = domain.login(&a.email, &a.password).await.unwrap();
        assert_eq!(u.role, a.role);
    }
    let lots = domain
        .lots(actor(&domain.user(1).await.unwrap()), false)
        .await
        .unwrap();
    assert_eq!(lots.len(), 2);
    assert!(lots.iter().all(|l| l.slots.iter().any(|s| s.car_wash)));
    assert_eq!(lots[0].employees.len(), 1);
}

async fn renewing_a_booking_whose_time_ran_out_before_the_scheduler_expired_it(w: World) {
    let d = actor(&w.driver);
    let b = w
        .domain
        .create_booking(d, cash(w.slot(1), 10, false))
        .await
        .unwrap();
    // Approved once, so the renewal confirms it (a never-approved one would be a new request).
    w.domain.approve(actor(&w.admin), b.id).await.unwrap();
    // No fire_due: the scheduler has not run yet when the driver presses "Renew".
    w.clock.advance(Duration::minutes(10));
    let renewed = w
        .domain
        .renew(d, b.id, minutes(20), approved_card())
        .await
        .unwrap();
    assert_eq!(renewed.status, BookingStatus::Confirmed);
    assert_eq!(w.notes_of("booking_expired").await.len(), 1);
    assert_eq!(w.notes_of("booking_renewed").await.len(), 1);
    assert!(w.notes_of("renewal_failed").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Two nodes on one PostgreSQL database: each `Domain` has its own pool, as two servers would.

/// Drivers on two nodes book the same slot at the same moment: the exclusion constraint lets
/// exactly one through, whichever node it came from, and everyone else is refunded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_nodes_race_for_one_slot_and_exactly_one_wins() {
    let Some(w) = World::new(Engine::Postgres).await else {
        return;
    };
    let (other_node, _clock) = w.restart(crate::common::t0()).await;
    let slot = w.slot(3);
    let mut racers = Vec::new();
    for i in 0..8 {
        let u = w
            .domain
            .register(
                parkmate_domain::Name::parse(&format!("Racer {i}")).unwrap(),
                parkmate_domain::Email::parse(&format!("racer{i}@t.test")).unwrap(),
                parkmate_domain::Password::parse("password-123").unwrap(),
            )
            .await
            .unwrap();
        racers.push(u);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(racers.len()));
    let tasks: Vec<_> = racers
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let node = if i % 2 == 0 {
                w.domain.clone()
            } else {
                other_node.clone()
            };
            let (barrier, who) = (barrier.clone(), actor(u));
            tokio::spawn(async move {
                barrier.wait().await;
                node.create_booking(who, card(slot, 60, parkmate_domain::payment::CARD_APPROVED))
                    .await
            })
        })
        .collect();
    let mut won = Vec::new();
    let mut taken = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(b) => won.push(b),
            Err(DomainError::SlotTaken) => taken += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((won.len(), taken), (1, 7));
    let charges = w.gateway.charges.load(Ordering::SeqCst);
    assert_eq!(charges - w.gateway.refunds.load(Ordering::SeqCst), 1);
    let created = w.notes_of("booking_created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].data["booking_id"], json!(won[0].id));
}

/// Both nodes pass over the same due deadlines at once (two leaders for a moment, or a manual
/// clock advanced everywhere): every warning and every expiry is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_nodes_firing_at_once_store_each_event_once() {
    let Some(w) = World::new(Engine::Postgres).await else {
        return;
    };
    // One booking per slot (five) ending at t0+30, then five more ending at t0+60.
    let slots: Vec<i64> = w
        .lot
        .slots
        .iter()
        .chain(&w.other_lot.slots)
        .map(|s| s.id)
        .collect();
    let mut drivers = Vec::new();
    for i in 0..slots.len() {
        drivers.push(
            w.domain
                .register(
                    parkmate_domain::Name::parse(&format!("Driver {i}")).unwrap(),
                    parkmate_domain::Email::parse(&format!("driver{i}@t.test")).unwrap(),
                    parkmate_domain::Password::parse("password-123").unwrap(),
                )
                .await
                .unwrap(),
        );
    }
    let n = slots.len();
    for (d, slot) in drivers.iter().zip(&slots) {
        w.domain
            .create_booking(actor(d), cash(*slot, 30, false))
            .await
            .unwrap();
    }
    // Warn and expire the first five here, then book the slots again until t0+60.
    w.clock.advance(Duration::minutes(30));
    assert_eq!(
        w.domain.fire_due().await.unwrap(),
        Fired {
            warned: 0,
            expired: n,
            lapsed: 0,
        }
    );
    for (d, slot) in drivers.iter().zip(&slots) {
        let b = w
            .domain
            .create_booking(actor(d), cash(*slot, 30, false))
            .await
            .unwrap();
        // Approved: a request would lapse after the hold, before its warning.
        w.domain.approve(actor(&w.admin), b.id).await.unwrap();
    }
    // The same moment on both nodes: 56 minutes past t0, the second five in their last 5.
    let (a, _) = w.restart(crate::common::t0() + Duration::minutes(56)).await;
    let (b, _) = w.restart(crate::common::t0() + Duration::minutes(56)).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let passes: Vec<_> = [a, b]
        .into_iter()
        .map(|node| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                node.fire_due().await.unwrap()
            })
        })
        .collect();
    let mut warned = 0;
    for p in passes {
        warned += p.await.unwrap().warned;
    }
    assert_eq!(
        warned, n,
        "the two passes split the warnings, never repeat them"
    );
    assert_eq!(w.notes_of("booking_expiring").await.len(), n);

    // And the expiries, from both nodes again at +61.
    let (a, _) = w.restart(crate::common::t0() + Duration::minutes(61)).await;
    let (b, _) = w.restart(crate::common::t0() + Duration::minutes(61)).await;
    let (fa, fb) = tokio::join!(a.fire_due(), b.fire_due());
    assert_eq!(fa.unwrap().expired + fb.unwrap().expired, n);
    assert_eq!(w.notes_of("booking_expired").await.len(), 2 * n);
}

crate::on_both_engines!(
    concurrent_bookings_of_one_slot_exactly_one_wins,
    the_database_refuses_overlaps_whatever_the_writer,
    authorisation_refusals,
    payment_outcomes,
    warning_then_expiry_fire_once_each_and_again_after_renewal,
    deadlines_that_passed_while_down_fire_once_at_start,
    the_scheduler_task_wakes_on_the_manual_clock_and_stops_on_shutdown,
    rows_committed_before_a_crash_are_published_at_start,
    retried_actions_do_not_notify_twice,
    event_rows_have_the_documented_recipient_level_text_and_data,
    login_register_and_seed,
    renewing_a_booking_whose_time_ran_out_before_the_scheduler_expired_it,
);
