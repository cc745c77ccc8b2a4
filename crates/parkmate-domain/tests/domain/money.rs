//! Issue 13 on real SQLite and PostgreSQL: money and booking rules a parking operator can trust.
//! - a declined (or lapsed) online booking gives the money back, and says so;
//! - a charge ends booked or refunded whichever step fails: a declined card, an unreachable
//!   gateway, a slot taken after the charge, a commit the database refuses, a request dropped
//!   half-way, a process that died after the charge (recovery, once);
//! - a cap of active bookings per driver, and requests that lapse when nobody approves them;
//! - a renewal adds a window with its own payment: earlier unpaid cash stays to be verified;
//! - a renewal of a never-approved request is a new request.
//!
//! Over 500 lines on purpose: the issue-13 scenarios are one story (charge, decline, refund,
//! recovery) told on both engines; each case is short and independent.

use std::sync::Arc;

use crate::common::*;
use chrono::Duration;
use parkmate_db::payments::{self, NewCharge};
use parkmate_db::{Exec, exec::Stmt};
use parkmate_domain::payment::{CARD_APPROVED, CARD_DECLINED, CARD_GATEWAY_ERROR};
use parkmate_domain::{
    BookingMinutes, BookingStatus, Charge, DomainError, Fired, PaymentChoice, PaymentGateway,
    PaymentMethod, PaymentState, PaymentStatus, Recovered, events,
};
use parkmate_protocol::{Audience, Level};
use serde_json::json;

fn minutes(m: i64) -> BookingMinutes {
    BookingMinutes::parse(m).unwrap()
}

/// The grace period of the default rules, and a moment past it.
fn past_grace(w: &World) -> Duration {
    Duration::from_std(w.domain.rules().payment_grace).unwrap() + Duration::seconds(1)
}

async fn assert_money_in_order(w: &World) {
    assert_eq!(
        w.domain.unsettled_charges().await.unwrap(),
        Vec::<i64>::new(),
        "every charge has exactly one outcome"
    );
}

async fn charges_of(w: &World, who: &parkmate_domain::User) -> Vec<(PaymentState, i64)> {
    payments::charges_of_user(&mut w.db.read().await.unwrap(), who.id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.status, p.amount_cents))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Declining gives the money back

async fn a_declined_online_booking_is_refunded_and_says_so(w: World) {
    let d = actor(&w.driver);
    let b = w
        .domain
        .create_booking(d, card(w.slot(1), 90, CARD_APPROVED))
        .await
        .unwrap();
    assert_eq!(
        (b.payment_status, b.amount_cents),
        (PaymentStatus::Paid, 360)
    );

    let declined = w
        .domain
        .decline(actor(&w.admin), b.id, Some("Full"))
        .await
        .unwrap();
    assert_eq!(declined.status, BookingStatus::Declined);
    assert_eq!(
        (
            declined.payment_status,
            declined.refunded_cents,
            declined.amount_cents
        ),
        (PaymentStatus::Refunded, 360, 360)
    );
    let window = &declined.windows[0];
    assert_eq!(window.payment_status, PaymentStatus::Refunded);
    assert_eq!(
        window.charge.as_ref().unwrap().status,
        PaymentState::Refunded
    );
    let refund = window.refund.as_ref().unwrap();
    assert_eq!(
        (refund.status, refund.amount_cents),
        (PaymentState::Succeeded, 360),
        "answered once the gateway confirmed the refund"
    );
    assert!(
        refund
            .gateway_ref
            .as_deref()
            .is_some_and(|r| r.starts_with("test_re_"))
    );
    assert_eq!((w.gateway.charges(), w.gateway.refunds()), (1, 1));

    // The driver's notification keeps the original text and carries the refund.
    let n = w.notes_of("booking_declined").await.pop().unwrap();
    assert_eq!(n.message, "Admin declined your booking request");
    assert_eq!(n.message, events::DECLINED);
    assert_eq!(
        (n.audience, n.level),
        (Audience::User(w.driver.id), Level::Warning)
    );
    assert_eq!(n.data["refund_cents"], json!(360));
    assert_eq!(n.data["reason"], json!("Full"));

    // Declining again changes nothing and refunds nothing more.
    w.domain.decline(actor(&w.admin), b.id, None).await.unwrap();
    assert_eq!(w.gateway.refunds(), 1);
    assert_eq!(w.notes_of("booking_declined").await.len(), 1);

    // A cash request declined: nothing to refund, and the data says 0.
    let cash_b = w
        .domain
        .create_booking(d, cash(w.slot(2), 30, false))
        .await
        .unwrap();
    let declined = w
        .domain
        .decline(actor(&w.admin), cash_b.id, None)
        .await
        .unwrap();
    assert_eq!(
        (declined.payment_status, declined.refunded_cents),
        (PaymentStatus::Pending, 0)
    );
    assert_eq!(
        w.notes_of("booking_declined").await.pop().unwrap().data["refund_cents"],
        json!(0)
    );
    assert_eq!(w.gateway.refunds(), 1);
    assert_money_in_order(&w).await;
}

/// The gateway is down when the admin declines: the refund is decided and recorded (the answer
/// says `refunded`, its refund `pending`), and recovery sends it once the gateway is back.
async fn a_refund_the_gateway_could_not_take_is_sent_by_recovery(w: World) {
    let b = w
        .domain
        .create_booking(actor(&w.driver), card(w.slot(1), 60, CARD_APPROVED))
        .await
        .unwrap();
    w.gateway
        .refunds_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let declined = w.domain.decline(actor(&w.admin), b.id, None).await.unwrap();
    assert_eq!(declined.payment_status, PaymentStatus::Refunded);
    let charge_id = declined.windows[0].charge.as_ref().unwrap().id;
    assert_eq!(
        declined.windows[0].refund.as_ref().unwrap().status,
        PaymentState::Pending
    );
    assert_eq!(w.domain.unsettled_charges().await.unwrap(), [charge_id]);

    // Before the grace period recovery leaves it alone (the request path may still be at it).
    w.gateway
        .refunds_down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        w.domain.recover_payments().await.unwrap(),
        Recovered::default()
    );
    w.clock.advance(past_grace(&w));
    assert_eq!(
        w.domain.recover_payments().await.unwrap(),
        Recovered {
            charges: 0,
            refunds: 1
        }
    );
    assert_eq!(w.gateway.refunds(), 1);
    assert_eq!(
        w.domain.recover_payments().await.unwrap(),
        Recovered::default()
    );
    assert_money_in_order(&w).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Charged, then not booked: fail each step in turn

async fn a_declined_card_books_and_keeps_nothing(w: World) {
    let r = w
        .domain
        .create_booking(actor(&w.driver), card(w.slot(1), 60, CARD_DECLINED))
        .await;
    assert!(matches!(r, Err(DomainError::PaymentDeclined(_))), "{r:?}");
    assert_eq!(
        charges_of(&w, &w.driver).await,
        [(PaymentState::Failed, 240)]
    );
    assert!(
        w.domain
            .bookings(actor(&w.driver))
            .await
            .unwrap()
            .is_empty()
    );
    assert_money_in_order(&w).await;
}

/// An unreachable gateway may or may not have taken the money: the charge stays `pending` until
/// recovery, after the grace period, refunds it by key (which voids it: nothing was taken).
async fn an_uncertain_charge_is_settled_by_recovery(w: World) {
    let r = w
        .domain
        .create_booking(actor(&w.driver), card(w.slot(1), 60, CARD_GATEWAY_ERROR))
        .await;
    assert!(
        matches!(r, Err(DomainError::PaymentUnavailable(_))),
        "{r:?}"
    );
    assert_eq!(
        charges_of(&w, &w.driver).await,
        [(PaymentState::Pending, 240)]
    );
    assert_eq!(w.domain.unsettled_charges().await.unwrap().len(), 1);
    assert_eq!(
        w.domain.recover_payments().await.unwrap(),
        Recovered::default()
    );

    w.clock.advance(past_grace(&w));
    assert_eq!(
        w.domain.recover_payments().await.unwrap(),
        Recovered {
            charges: 1,
            refunds: 1
        }
    );
    assert_eq!(
        charges_of(&w, &w.driver).await,
        [(PaymentState::Refunded, 240)]
    );
    assert_eq!(
        w.gateway.refunds(),
        0,
        "a void: the gateway had taken nothing"
    );
    assert_money_in_order(&w).await;
}

/// The slot is taken while the gateway is charging: the charge is refunded, the driver told
/// `slot_taken`.
async fn a_slot_taken_after_the_charge_is_refunded(w: World) {
    w.gateway.hold_charges();
    let domain = w.domain.clone();
    let who = actor(&w.driver);
    let slot = w.slot(1);
    let paying = tokio::spawn(async move {
        domain
            .create_booking(who, card(slot, 60, CARD_APPROVED))
            .await
    });
    w.gateway.arrived.notified().await;
    // Another driver, paying cash, takes the slot meanwhile.
    w.domain
        .create_booking(actor(&w.other_driver), cash(slot, 60, false))
        .await
        .unwrap();
    w.gateway.release();
    let r = paying.await.unwrap();
    assert!(matches!(r, Err(DomainError::SlotTaken)), "{r:?}");
    assert_eq!((w.gateway.charges(), w.gateway.refunds()), (1, 1));
    assert_eq!(
        charges_of(&w, &w.driver).await,
        [(PaymentState::Refunded, 240)]
    );
    assert_money_in_order(&w).await;
}

/// Installs a failure the database itself raises when a transaction that wrote a booking window
/// commits: a deferred foreign key on SQLite, a deferred constraint trigger on PostgreSQL.
async fn break_commits(w: &World) {
    let statements: &[&str] = match w.engine {
        Engine::Sqlite => &[
            "CREATE TABLE commit_breaker (user_id INTEGER REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER break_commit AFTER INSERT ON booking_windows \
             BEGIN INSERT INTO commit_breaker VALUES (-1); END",
        ],
        Engine::Postgres => &[
            "CREATE FUNCTION break_commit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected commit failure'; END $$",
            "CREATE CONSTRAINT TRIGGER break_commit AFTER INSERT ON booking_windows \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION break_commit()",
        ],
    };
    let mut tx = w.db.begin().await.unwrap();
    for sql in statements {
        tx.execute(Stmt::new(*sql)).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn mend_commits(w: &World) {
    let statements: &[&str] = match w.engine {
        Engine::Sqlite => &["DROP TRIGGER break_commit", "DROP TABLE commit_breaker"],
        Engine::Postgres => &[
            "DROP TRIGGER break_commit ON booking_windows",
            "DROP FUNCTION break_commit()",
        ],
    };
    let mut tx = w.db.begin().await.unwrap();
    for sql in statements {
        tx.execute(Stmt::new(*sql)).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn a_commit_the_database_refuses_is_refunded(w: World) {
    break_commits(&w).await;
    let r = w
        .domain
        .create_booking(actor(&w.driver), card(w.slot(1), 60, CARD_APPROVED))
        .await;
    assert!(matches!(r, Err(DomainError::Db(_))), "{r:?}");
    assert!(
        w.domain
            .bookings(actor(&w.driver))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(w.notes_of("booking_created").await.is_empty());
    assert_eq!((w.gateway.charges(), w.gateway.refunds()), (1, 1));
    assert_eq!(
        charges_of(&w, &w.driver).await,
        [(PaymentState::Refunded, 240)]
    );
    assert_money_in_order(&w).await;

    // A renewal whose commit fails: refunded too, and the booking stays expired.
    mend_commits(&w).await;
    let b = w
        .domain
        .create_booking(actor(&w.driver), cash(w.slot(1), 10, false))
        .await
        .unwrap();
    w.domain.approve(actor(&w.admin), b.id).await.unwrap();
    w.clock.advance(Duration::minutes(10));
    w.domain.fire_due().await.unwrap();
    break_commits(&w).await;
    let r = w
        .domain
        .renew(actor(&w.driver), b.id, minutes(30), approved_card())
        .await;
    assert!(matches!(r, Err(DomainError::Db(_))), "{r:?}");
    mend_commits(&w).await;
    let after = w.domain.booking(actor(&w.driver), b.id).await.unwrap();
    assert_eq!(
        (after.status, after.windows.len()),
        (BookingStatus::Expired, 1)
    );
    assert_eq!((w.gateway.charges(), w.gateway.refunds()), (2, 2));
    assert_money_in_order(&w).await;
}

/// The client goes away while the gateway is charging (its request future is dropped): the
/// payment task still books it, or still refunds it when the booking cannot be made.
async fn a_dropped_request_still_ends_booked_or_refunded(w: World) {
    // Booked.
    w.gateway.hold_charges();
    tokio::select! {
        r = w.domain.create_booking(actor(&w.driver), card(w.slot(1), 60, CARD_APPROVED)) => {
            panic!("the charge is held at the gateway, yet the request answered {r:?}")
        }
        () = w.gateway.arrived.notified() => {}
    }
    // The request future is gone; the gateway answers now.
    w.gateway.release();
    w.domain.payments_settled().await;
    let mine = w.domain.bookings(actor(&w.driver)).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].payment_status, PaymentStatus::Paid);
    assert_eq!(w.notes_of("booking_created").await.len(), 1);
    assert_eq!(
        charges_of(&w, &w.driver).await,
        [(PaymentState::Succeeded, 240)]
    );

    // Refunded: the slot is taken while the abandoned request is at the gateway.
    w.gateway.hold_charges();
    let slot = w.slot(2);
    tokio::select! {
        r = w.domain.create_booking(actor(&w.driver), card(slot, 60, CARD_APPROVED)) => {
            panic!("answered {r:?}")
        }
        () = w.gateway.arrived.notified() => {}
    }
    w.domain
        .create_booking(actor(&w.other_driver), cash(slot, 60, false))
        .await
        .unwrap();
    w.gateway.release();
    w.domain.payments_settled().await;
    assert_eq!(w.domain.bookings(actor(&w.driver)).await.unwrap().len(), 1);
    assert_eq!(
        charges_of(&w, &w.driver).await,
        [
            (PaymentState::Succeeded, 240),
            (PaymentState::Refunded, 240)
        ]
    );
    assert_eq!((w.gateway.charges(), w.gateway.refunds()), (2, 1));
    assert_money_in_order(&w).await;
}

/// The process dies after the charge row (and, for one of them, after the gateway took the
/// money) and before any booking: a restarted domain's recovery refunds each exactly once, and a
/// second recovery does nothing.
async fn a_crash_after_the_charge_is_recovered_once(w: World) {
    let record = |key: &'static str| {
        let db = w.db.clone();
        let user = w.driver.id;
        async move {
            let mut tx = db.begin().await.unwrap();
            let id = payments::insert_charge(
                &mut tx,
                NewCharge {
                    user_id: user,
                    booking_id: None,
                    amount_cents: 240,
                    idempotency_key: key,
                    now: t0(),
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            id
        }
    };
    // Crashed after the gateway took the money.
    let charged = record("crash-after-charge").await;
    w.gateway
        .charge(Charge {
            card: parkmate_domain::CardNumber::parse(CARD_APPROVED).unwrap(),
            amount_cents: 240,
            description: "t".into(),
            idempotency_key: "crash-after-charge".into(),
        })
        .await
        .unwrap();
    // Crashed before the gateway got the call.
    let never_sent = record("crash-before-charge").await;
    assert_eq!(
        w.domain.unsettled_charges().await.unwrap(),
        [charged, never_sent]
    );

    let (restarted, _clock) = w.restart(t0() + past_grace(&w)).await;
    assert_eq!(
        restarted.recover_payments().await.unwrap(),
        Recovered {
            charges: 2,
            refunds: 2
        }
    );
    assert_eq!(
        w.gateway.refunds(),
        1,
        "one refund of money taken, one void"
    );
    assert_eq!(
        restarted.recover_payments().await.unwrap(),
        Recovered::default()
    );
    let (again, _clock) = w.restart(t0() + past_grace(&w) + Duration::hours(1)).await;
    assert_eq!(
        again.recover_payments().await.unwrap(),
        Recovered::default()
    );
    assert_eq!(w.gateway.refunds(), 1);
    // A charge still on its way after the void cannot take money any more.
    let late = w
        .gateway
        .charge(Charge {
            card: parkmate_domain::CardNumber::parse(CARD_APPROVED).unwrap(),
            amount_cents: 240,
            description: "t".into(),
            idempotency_key: "crash-before-charge".into(),
        })
        .await;
    assert!(late.is_err());
    assert_money_in_order(&w).await;
}

/// Recovery racing a request whose gateway call outlived the grace period: whichever settles the
/// charge first wins; the request then refuses to book with a charge that was given back.
async fn recovery_and_a_slow_request_settle_a_charge_once(w: World) {
    w.gateway.hold_charges();
    let domain = w.domain.clone();
    let who = actor(&w.driver);
    let slot = w.slot(1);
    let slow = tokio::spawn(async move {
        domain
            .create_booking(who, card(slot, 60, CARD_APPROVED))
            .await
    });
    w.gateway.arrived.notified().await;
    w.clock.advance(past_grace(&w));
    assert_eq!(
        w.domain.recover_payments().await.unwrap(),
        Recovered {
            charges: 1,
            refunds: 1
        }
    );
    w.gateway.release();
    let r = slow.await.unwrap();
    assert!(r.is_err(), "{r:?}");
    assert!(
        w.domain
            .bookings(actor(&w.driver))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.gateway.charges(),
        0,
        "the voided key could not be charged"
    );
    assert_money_in_order(&w).await;
}

// ---------------------------------------------------------------------------------------------
// 3. A cap per driver, and requests that lapse

async fn one_driver_cannot_hold_every_slot(w: World) {
    let d = actor(&w.driver);
    let slots: Vec<i64> = w
        .lot
        .slots
        .iter()
        .chain(&w.other_lot.slots)
        .map(|s| s.id)
        .collect();
    let mut answers = Vec::new();
    for slot in &slots {
        answers.push(w.domain.create_booking(d, cash(*slot, 1440, false)).await);
    }
    assert!(answers[0].is_ok() && answers[1].is_ok());
    for a in &answers[2..] {
        assert!(matches!(a, Err(DomainError::TooManyBookings(2))), "{a:?}");
    }
    let err = answers.pop().unwrap().unwrap_err();
    assert_eq!(err.code(), "too_many_bookings");
    // No money moved for a refused online request either.
    let r = w
        .domain
        .create_booking(d, card(slots[3], 60, CARD_APPROVED))
        .await;
    assert!(matches!(r, Err(DomainError::TooManyBookings(_))));
    assert_eq!(w.gateway.charges(), 0);
    // Once one ends, the driver may book again.
    let first = answers[0].as_ref().unwrap();
    w.domain
        .decline(actor(&w.admin), first.id, None)
        .await
        .unwrap();
    w.domain
        .create_booking(d, cash(slots[2], 60, false))
        .await
        .unwrap();
    // Other drivers are not affected.
    w.domain
        .create_booking(actor(&w.other_driver), cash(slots[3], 60, false))
        .await
        .unwrap();
}

/// Requests racing for the last place under the cap, on different slots: the database-side check
/// (the driver's row locked on PostgreSQL, the single writer on SQLite) lets exactly the cap in.
async fn racing_requests_of_one_driver_respect_the_cap(w: World) {
    let slots: Vec<i64> = w
        .lot
        .slots
        .iter()
        .chain(&w.other_lot.slots)
        .map(|s| s.id)
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(slots.len()));
    let tasks: Vec<_> = slots
        .iter()
        .map(|slot| {
            let (domain, barrier, who, slot) =
                (w.domain.clone(), barrier.clone(), actor(&w.driver), *slot);
            tokio::spawn(async move {
                barrier.wait().await;
                domain
                    .create_booking(who, card(slot, 60, CARD_APPROVED))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(DomainError::TooManyBookings(2)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 2);
    assert_eq!(w.gateway.charges() - w.gateway.refunds(), 2);
    assert_money_in_order(&w).await;
}

async fn an_unapproved_request_lapses_after_the_hold(w: World) {
    let d = actor(&w.driver);
    let waiting = w
        .domain
        .create_booking(d, card(w.slot(1), 120, CARD_APPROVED))
        .await
        .unwrap();
    let approved = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(2), 120, false))
        .await
        .unwrap();
    w.domain
        .approve(actor(&w.admin), approved.id)
        .await
        .unwrap();
    assert_eq!(
        w.domain.next_deadline().await.unwrap(),
        Some(t0() + Duration::minutes(15)),
        "the hold is the first deadline"
    );
    w.clock.advance(Duration::minutes(14));
    assert_eq!(w.domain.fire_due().await.unwrap(), Fired::default());
    w.clock.advance(Duration::minutes(1));
    assert_eq!(
        w.domain.fire_due().await.unwrap(),
        Fired {
            warned: 0,
            expired: 0,
            lapsed: 1
        }
    );
    w.domain.payments_settled().await;
    assert_eq!(w.domain.fire_due().await.unwrap(), Fired::default());

    let lapsed = w.domain.booking(d, waiting.id).await.unwrap();
    assert_eq!(lapsed.status, BookingStatus::Lapsed);
    assert_eq!(
        (lapsed.payment_status, lapsed.refunded_cents),
        (PaymentStatus::Refunded, 480)
    );
    assert_eq!(
        lapsed.windows[0].refund.as_ref().unwrap().status,
        PaymentState::Succeeded
    );
    assert_eq!(w.gateway.refunds(), 1);
    let n = w.notes_of("booking_lapsed").await;
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].audience, Audience::User(w.driver.id));
    assert_eq!(n[0].level, Level::Warning);
    assert_eq!(
        n[0].message,
        "Your booking request for Slot #1 lapsed: it was not approved in time"
    );
    assert_eq!(n[0].data["refund_cents"], json!(480));
    // The slot is free again; the approved booking is untouched.
    assert!(!w.domain.lot(w.lot.id).await.unwrap().slots[0].occupied);
    assert_eq!(
        w.domain
            .booking(actor(&w.admin), approved.id)
            .await
            .unwrap()
            .status,
        BookingStatus::Confirmed
    );
    // A lapsed request can be neither approved nor renewed.
    assert!(matches!(
        w.domain.approve(actor(&w.admin), waiting.id).await,
        Err(DomainError::InvalidTransition { .. })
    ));
    assert!(matches!(
        w.domain
            .renew(d, waiting.id, minutes(30), PaymentChoice::Cash)
            .await,
        Err(DomainError::NotRenewable(_))
    ));
    assert_money_in_order(&w).await;
}

/// A short request that ends before anyone approved it also gave its slot back unused.
async fn a_request_that_expires_unapproved_is_refunded(w: World) {
    let b = w
        .domain
        .create_booking(actor(&w.driver), card(w.slot(1), 10, CARD_APPROVED))
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(10));
    w.domain.fire_due().await.unwrap();
    w.domain.payments_settled().await;
    let after = w.domain.booking(actor(&w.driver), b.id).await.unwrap();
    assert_eq!(
        (after.status, after.payment_status),
        (BookingStatus::Expired, PaymentStatus::Refunded)
    );
    let n = w.notes_of("booking_expired").await.pop().unwrap();
    assert_eq!(n.message, "Your booking for Slot #1 expired");
    assert_eq!(n.data["refund_cents"], json!(40));
    assert_money_in_order(&w).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Payments per window

async fn a_renewal_keeps_the_unpaid_cash_of_earlier_windows(w: World) {
    let d = actor(&w.driver);
    let owner = actor(&w.owner);
    let b = w
        .domain
        .create_booking(d, cash(w.slot(1), 30, false))
        .await
        .unwrap();
    w.domain.approve(actor(&w.admin), b.id).await.unwrap();
    w.clock.advance(Duration::minutes(30));
    w.domain.fire_due().await.unwrap();
    let renewed = w
        .domain
        .renew(d, b.id, minutes(60), approved_card())
        .await
        .unwrap();
    assert_eq!(renewed.status, BookingStatus::Confirmed);
    let shape: Vec<_> = renewed
        .windows
        .iter()
        .map(|w| (w.seq, w.payment_method, w.payment_status, w.amount_cents))
        .collect();
    assert_eq!(
        shape,
        [
            (1, PaymentMethod::Cash, PaymentStatus::Pending, 120),
            (2, PaymentMethod::Online, PaymentStatus::Paid, 240),
        ]
    );
    assert_eq!(
        (renewed.payment_status, renewed.amount_cents),
        (PaymentStatus::Pending, 360),
        "the first window's cash is still owed"
    );

    // The owner can still verify that cash (it used to be 409 not_cash_payment).
    let verified = w.domain.verify_cash(owner, b.id).await.unwrap();
    assert_eq!(verified.windows[0].payment_status, PaymentStatus::Paid);
    assert_eq!(verified.windows[0].cash_verified_at, Some(w.domain.now()));
    assert_eq!(verified.payment_status, PaymentStatus::Paid);
    assert_eq!(w.notes_of("cash_payment_verified").await.len(), 1);
    // Again: nothing left to verify, nothing reported.
    w.domain.verify_cash(owner, b.id).await.unwrap();
    assert_eq!(w.notes_of("cash_payment_verified").await.len(), 1);
    assert!(matches!(
        w.domain.verify_cash_of(owner, b.id, Some(2)).await,
        Err(DomainError::NotCash)
    ));
    assert!(matches!(
        w.domain.verify_cash_of(owner, b.id, Some(9)).await,
        Err(DomainError::NotFound("window"))
    ));

    // A third window, in cash: verified by number, its own event 7.
    w.clock.advance(Duration::minutes(60));
    w.domain.fire_due().await.unwrap();
    let third = w
        .domain
        .renew(d, b.id, minutes(15), PaymentChoice::Cash)
        .await
        .unwrap();
    assert_eq!(third.windows.len(), 3);
    assert_eq!(third.payment_status, PaymentStatus::Pending);
    let done = w
        .domain
        .verify_cash_of(actor(&w.admin), b.id, Some(3))
        .await
        .unwrap();
    assert_eq!(done.payment_status, PaymentStatus::Paid);
    let sevens = w.notes_of("cash_payment_verified").await;
    assert_eq!(sevens.len(), 2);
    assert!(
        sevens
            .iter()
            .all(|n| n.message == "Your cash payment has been verified")
    );
    assert_money_in_order(&w).await;
}

// ---------------------------------------------------------------------------------------------
// 5. A renewal of a never-approved request is a new request

async fn renewing_a_never_approved_request_asks_again(w: World) {
    let d = actor(&w.driver);
    let b = w
        .domain
        .create_booking(d, cash(w.slot(1), 10, false))
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(10));
    w.domain.fire_due().await.unwrap();
    let again = w
        .domain
        .renew(d, b.id, minutes(60), PaymentChoice::Cash)
        .await
        .unwrap();
    assert_eq!(
        again.status,
        BookingStatus::Requested,
        "not confirmed without approval"
    );
    assert_eq!(
        (again.approved_at, again.requested_at),
        (None, w.domain.now())
    );
    assert_eq!(w.notes_of("booking_renewed").await.len(), 1);
    // It lapses like any request ...
    w.clock.advance(Duration::minutes(15));
    assert_eq!(w.domain.fire_due().await.unwrap().lapsed, 1);

    // ... and once approved, a later renewal is confirmed at once.
    let c = w
        .domain
        .create_booking(d, cash(w.slot(2), 10, false))
        .await
        .unwrap();
    w.domain.approve(actor(&w.admin), c.id).await.unwrap();
    w.clock.advance(Duration::minutes(10));
    w.domain.fire_due().await.unwrap();
    let renewed = w
        .domain
        .renew(d, c.id, minutes(30), PaymentChoice::Cash)
        .await
        .unwrap();
    assert_eq!(renewed.status, BookingStatus::Confirmed);
    assert!(renewed.approved_at.is_some());
}

/// The cap applies to renewals too, with event 4 saying why.
async fn a_renewal_over_the_cap_is_refused_with_event_4(w: World) {
    let d = actor(&w.driver);
    let b = w
        .domain
        .create_booking(d, cash(w.slot(1), 10, false))
        .await
        .unwrap();
    w.domain.approve(actor(&w.admin), b.id).await.unwrap();
    w.clock.advance(Duration::minutes(10));
    w.domain.fire_due().await.unwrap();
    for slot in [w.slot(2), w.slot(3)] {
        w.domain
            .create_booking(d, cash(slot, 60, false))
            .await
            .unwrap();
    }
    let r = w.domain.renew(d, b.id, minutes(30), approved_card()).await;
    assert!(matches!(r, Err(DomainError::TooManyBookings(2))), "{r:?}");
    assert_eq!(w.gateway.charges(), 0);
    let n = w.notes_of("renewal_failed").await.pop().unwrap();
    assert_eq!(n.message, "Renewal failed: Too many active bookings");
}

// ---------------------------------------------------------------------------------------------
// 6. Staff hear about work: one row per notification, whoever it reaches

async fn staff_hear_of_requests_jobs_and_every_change_at_their_lots(w: World) {
    let d = actor(&w.driver);
    let admin = actor(&w.admin);
    let b = w
        .domain
        .create_booking(d, cash(w.slot(1), 60, true))
        .await
        .unwrap();
    let n = w.notes_of("booking_requested").await;
    assert_eq!(n.len(), 1);
    assert_eq!(
        (n[0].audience, n[0].level),
        (Audience::Role(parkmate_protocol::Role::Admin), Level::Info)
    );
    assert_eq!(
        n[0].message,
        format!("New booking request #{} at Central awaits approval", b.id)
    );
    assert_eq!(n[0].data["booking_id"], json!(b.id));
    let n = w.notes_of("car_wash_requested").await;
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].audience, Audience::Lot(w.lot.id));
    assert_eq!(
        n[0].message,
        format!("New car wash job: booking #{} at Central, Slot #1", b.id)
    );
    // Event 8 to the owner is unchanged.
    assert_eq!(w.notes_of("booking_created").await.len(), 1);

    // Every change at the lot tells its owner, once per change.
    w.domain.approve(admin, b.id).await.unwrap();
    w.domain.approve(admin, b.id).await.unwrap();
    w.domain.verify_cash(actor(&w.owner), b.id).await.unwrap();
    w.domain
        .car_wash_done(actor(&w.employee), b.id)
        .await
        .unwrap();
    let plain = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(3), 60, false))
        .await
        .unwrap();
    w.domain.decline(admin, plain.id, None).await.unwrap();
    let lapsing = w
        .domain
        .create_booking(actor(&w.other_driver), cash(w.slot(2), 60, false))
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(15));
    w.domain.fire_due().await.unwrap();
    let activity: Vec<_> = w
        .notes_of("lot_activity")
        .await
        .into_iter()
        .map(|n| {
            assert_eq!(
                (n.audience, n.level),
                (Audience::User(w.owner.id), Level::Info)
            );
            n.message
        })
        .collect();
    assert_eq!(
        activity,
        [
            format!("Booking #{} at Central: approved", b.id),
            format!("Booking #{} at Central: cash of window #1 verified", b.id),
            format!("Booking #{} at Central: car wash done", b.id),
            format!("Booking #{} at Central: declined", plain.id),
            format!("Booking #{} at Central: lapsed", lapsing.id),
        ]
    );
    // No car-wash job without a car wash; the admins hear of each request and of the lapse.
    assert_eq!(w.notes_of("car_wash_requested").await.len(), 1);
    assert_eq!(w.notes_of("booking_requested").await.len(), 3);
    let lapsed = w.notes_of("booking_request_lapsed").await;
    assert_eq!(lapsed.len(), 1);
    assert_eq!(
        lapsed[0].audience,
        Audience::Role(parkmate_protocol::Role::Admin)
    );
    assert_eq!(
        lapsed[0].message,
        format!(
            "Booking request #{} at Central lapsed without approval",
            lapsing.id
        )
    );
    // The ten original texts are untouched.
    assert_eq!(events::EXPIRING, "Your booking will expire in 5 minutes!");
    assert_eq!(events::RENEWED, "Booking renewed successfully!");
    assert_eq!(events::DECLINED, "Admin declined your booking request");
    assert_eq!(events::CASH_VERIFIED, "Your cash payment has been verified");
    assert_eq!(events::CAR_WASH_DONE, "Your car wash service completed");
    assert_eq!(events::renewal_failed_text("x"), "Renewal failed: x");
    assert_eq!(events::expired_text(4), "Your booking for Slot #4 expired");
    assert_eq!(events::created_text(2), "New booking received for Lot #2");
    assert_eq!(
        events::employee_assigned_text(2, "Emil"),
        "New employee assigned to Lot #2: Emil"
    );
}

crate::on_both_engines!(
    staff_hear_of_requests_jobs_and_every_change_at_their_lots,
    a_declined_online_booking_is_refunded_and_says_so,
    a_refund_the_gateway_could_not_take_is_sent_by_recovery,
    a_declined_card_books_and_keeps_nothing,
    an_uncertain_charge_is_settled_by_recovery,
    a_slot_taken_after_the_charge_is_refunded,
    a_commit_the_database_refuses_is_refunded,
    a_dropped_request_still_ends_booked_or_refunded,
    a_crash_after_the_charge_is_recovered_once,
    recovery_and_a_slow_request_settle_a_charge_once,
    one_driver_cannot_hold_every_slot,
    racing_requests_of_one_driver_respect_the_cap,
    an_unapproved_request_lapses_after_the_hold,
    a_request_that_expires_unapproved_is_refunded,
    a_renewal_keeps_the_unpaid_cash_of_earlier_windows,
    renewing_a_never_approved_request_asks_again,
    a_renewal_over_the_cap_is_refused_with_event_4,
);
