//! Money on both engines: booking windows with a payment each, the payments ledger (every charge
//! ends booked, declined or refunded, and the proof query says so), the request hold and the cap
//! of active bookings, the lot audience (by current membership), and migrations 1002/1003 of a
//! database that already held bookings and notifications.
//!
//! Over 500 lines on purpose: a flat list of short, independent cases, each run on both engines;
//! they share no state, so length costs a reader nothing.

use chrono::{DateTime, Duration, Utc};
use parkmate_db::bookings::{self, NewBookingRow, Renewal};
use parkmate_db::payments::{self, NewCharge};
use parkmate_db::{
    BookingStatus, BookingWindow, Db, DbError, Exec, PaymentMethod, PaymentState, PaymentStatus,
    accounts, exec::Stmt, lots,
};
use parkmate_protocol::Role;

use crate::domain::t0;

fn millis(ms: i64) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn at(m: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(m)
}

fn span(from: i64, to: i64) -> BookingWindow {
    BookingWindow::new(at(from), at(to)).unwrap()
}

struct Lot {
    driver: i64,
    slots: Vec<i64>,
}

async fn lot(db: &Db) -> Lot {
    let mut tx = db.begin().await.unwrap();
    let owner = accounts::insert_user(&mut tx, "Olga", "olga@x.io", "h", Role::Owner, t0())
        .await
        .unwrap();
    let driver = accounts::insert_user(&mut tx, "Dana", "dana@x.io", "h", Role::User, t0())
        .await
        .unwrap();
    let lot = lots::insert_lot(
        &mut tx,
        owner,
        "Central",
        240,
        &[(1, false), (2, false), (3, false)],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let found = lots::lots(&mut db.read().await.unwrap(), Some(lot), None, t0())
        .await
        .unwrap();
    Lot {
        driver,
        slots: found[0].slots.iter().map(|s| s.id).collect(),
    }
}

fn row(
    l: &Lot,
    slot: i64,
    win: BookingWindow,
    payment_id: Option<i64>,
    cents: i64,
) -> NewBookingRow {
    NewBookingRow {
        user_id: l.driver,
        slot_id: slot,
        window: win,
        duration_minutes: u32::try_from((win.end() - win.start()).num_minutes()).unwrap(),
        payment_method: if payment_id.is_some() {
            PaymentMethod::Online
        } else {
            PaymentMethod::Cash
        },
        payment_id,
        amount_cents: cents,
        car_wash: false,
        now: win.start(),
    }
}

/// A committed `pending` charge of `cents` with this key.
async fn charge(
    db: &Db,
    l: &Lot,
    booking_id: Option<i64>,
    key: &str,
    cents: i64,
    now: DateTime<Utc>,
) -> i64 {
    let mut tx = db.begin().await.unwrap();
    let id = payments::insert_charge(
        &mut tx,
        NewCharge {
            user_id: l.driver,
            booking_id,
            amount_cents: cents,
            idempotency_key: key,
            now,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn unsettled(db: &Db) -> Vec<i64> {
    payments::unsettled_charges(&mut db.read().await.unwrap())
        .await
        .unwrap()
}

async fn state(db: &Db, id: i64) -> PaymentState {
    payments::payment(&mut db.read().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap()
        .status
}

/// A booking's windows each keep their own payment: a cash first window stays unverified after
/// an online renewal, the booking's payment status and amount are the windows' aggregates, and
/// cash is verified per window.
pub async fn windows_keep_each_payment(db: Db) {
    let l = lot(&db).await;
    let mut tx = db.begin().await.unwrap();
    let id = bookings::insert_booking(&mut tx, row(&l, l.slots[0], span(0, 60), None, 240))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let b = bookings::booking(&mut db.read().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.windows.len(), 1);
    assert_eq!(b.windows[0].seq, 1);
    assert_eq!(b.windows[0].span, span(0, 60));
    assert_eq!(
        (
            b.payment_method,
            b.payment_status,
            b.amount_cents,
            b.refunded_cents
        ),
        (PaymentMethod::Cash, PaymentStatus::Pending, 240, 0)
    );
    assert_eq!(b.requested_at, at(0));
    assert_eq!(b.approved_at, None);

    // Approved, expired, renewed online: a second window paid by its own charge.
    let mut tx = db.begin().await.unwrap();
    assert!(bookings::approve(&mut tx, id, at(1)).await.unwrap());
    assert!(!bookings::approve(&mut tx, id, at(2)).await.unwrap());
    assert!(
        bookings::transition(
            &mut tx,
            id,
            BookingStatus::Confirmed,
            BookingStatus::Expired,
            None
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();
    let paid_by = charge(&db, &l, Some(id), "k-renew", 120, at(61)).await;
    let mut tx = db.begin().await.unwrap();
    let renewal = Renewal {
        id,
        window: span(61, 91),
        duration_minutes: 30,
        to: BookingStatus::Confirmed,
        payment_method: PaymentMethod::Online,
        payment_id: Some(paid_by),
        amount_cents: 120,
        now: at(61),
    };
    assert!(
        payments::charge_booked(&mut tx, paid_by, id, 2, "gw-1", at(61))
            .await
            .unwrap()
    );
    assert_eq!(
        bookings::renew(&mut tx, renewal.clone()).await.unwrap(),
        Some(2)
    );
    // Renewing what is no longer expired changes nothing.
    assert_eq!(bookings::renew(&mut tx, renewal).await.unwrap(), None);
    tx.commit().await.unwrap();

    let b = bookings::booking(&mut db.read().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.status, BookingStatus::Confirmed);
    assert_eq!(b.approved_at, Some(at(1)));
    assert_eq!(b.window, span(61, 91));
    assert_eq!(b.windows.len(), 2);
    assert_eq!(
        (b.windows[0].payment_method, b.windows[0].payment_status),
        (PaymentMethod::Cash, PaymentStatus::Pending),
        "the renewal leaves the first window's unpaid cash as it was"
    );
    assert_eq!(
        (b.windows[1].payment_method, b.windows[1].payment_status),
        (PaymentMethod::Online, PaymentStatus::Paid)
    );
    let c = b.windows[1].charge.as_ref().unwrap();
    assert_eq!(
        (
            c.id,
            c.status,
            c.gateway_ref.as_deref(),
            c.idempotency_key.as_str()
        ),
        (paid_by, PaymentState::Succeeded, Some("gw-1"), "k-renew")
    );
    assert!(b.windows[0].charge.is_none());
    assert_eq!(
        (b.payment_method, b.payment_status, b.amount_cents),
        (PaymentMethod::Online, PaymentStatus::Pending, 360)
    );

    // The owner verifies the first window's cash: now everything is paid.
    let mut tx = db.begin().await.unwrap();
    assert!(
        !bookings::mark_cash_paid(&mut tx, id, 2, at(70))
            .await
            .unwrap(),
        "window 2 is online"
    );
    assert!(
        bookings::mark_cash_paid(&mut tx, id, 1, at(70))
            .await
            .unwrap()
    );
    assert!(
        !bookings::mark_cash_paid(&mut tx, id, 1, at(71))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let b = bookings::booking(&mut db.read().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.payment_status, PaymentStatus::Paid);
    assert_eq!(b.windows[0].cash_verified_at, Some(at(70)));
    // Listings carry the windows too.
    let listed = bookings::bookings(&mut db.read().await.unwrap(), bookings::BookingScope::All)
        .await
        .unwrap();
    assert_eq!(listed, vec![b]);
    assert!(unsettled(&db).await.is_empty());
}

/// Every way a charge can end, on the ledger: booked, declined, given back before a booking
/// (also when the process died in between: stale and recovered), given back with its booking;
/// every claim is conditional, so a second claimant finds nothing; the proof query lists exactly
/// the charges without an outcome at each step.
pub async fn every_charge_ends_booked_declined_or_refunded(db: Db) {
    let l = lot(&db).await;
    // Keys are unique: a second charge with one key is refused.
    let booked = charge(&db, &l, None, "k-booked", 240, at(0)).await;
    let mut tx = db.begin().await.unwrap();
    assert!(matches!(
        payments::insert_charge(
            &mut tx,
            NewCharge {
                user_id: l.driver,
                booking_id: None,
                amount_cents: 1,
                idempotency_key: "k-booked",
                now: at(0)
            },
        )
        .await,
        Err(DbError::Duplicate)
    ));
    drop(tx);
    assert_eq!(
        unsettled(&db).await,
        [booked],
        "pending: in flight, not settled yet"
    );

    // Booked: the claim and the window commit together.
    let mut tx = db.begin().await.unwrap();
    let id = bookings::insert_booking(&mut tx, row(&l, l.slots[0], span(0, 60), Some(booked), 240))
        .await
        .unwrap();
    assert!(
        payments::charge_booked(&mut tx, booked, id, 1, "gw-b", at(0))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert!(unsettled(&db).await.is_empty());
    // Once booked, nobody can give it back as unbooked, nor book it twice.
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        payments::give_back_unbooked(&mut tx, booked, at(1))
            .await
            .unwrap(),
        None
    );
    assert!(
        !payments::charge_booked(&mut tx, booked, id, 1, "gw-x", at(1))
            .await
            .unwrap()
    );
    assert!(
        !payments::charge_failed(&mut tx, booked, at(1))
            .await
            .unwrap()
    );
    drop(tx);

    // Declined: failed, nothing to give back.
    let declined = charge(&db, &l, None, "k-declined", 240, at(1)).await;
    let mut tx = db.begin().await.unwrap();
    assert!(
        payments::charge_failed(&mut tx, declined, at(1))
            .await
            .unwrap()
    );
    assert_eq!(
        payments::give_back_unbooked(&mut tx, declined, at(1))
            .await
            .unwrap(),
        None
    );
    tx.commit().await.unwrap();
    assert_eq!(state(&db, declined).await, PaymentState::Failed);

    // A charge whose booking never came (the slot was taken, the commit failed): given back.
    let orphan = charge(&db, &l, None, "k-orphan", 240, at(2)).await;
    // And one a crash left behind, found later by recovery.
    let crashed = charge(&db, &l, None, "k-crashed", 240, at(3)).await;
    let mut r = db.read().await.unwrap();
    assert_eq!(
        payments::stale_charges(&mut r, at(2), 10).await.unwrap(),
        [orphan]
    );
    assert_eq!(
        payments::stale_charges(&mut r, at(3), 10).await.unwrap(),
        [orphan, crashed]
    );
    drop(r);
    let mut tx = db.begin().await.unwrap();
    let due = payments::give_back_unbooked(&mut tx, orphan, at(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            due.charge_id,
            due.charge_key.as_str(),
            due.refund_key.as_str(),
            due.amount_cents,
            due.booking_id
        ),
        (orphan, "k-orphan", "k-orphan:refund", 240, None)
    );
    // A second claimant (recovery on another node) finds it settled.
    assert_eq!(
        payments::give_back_unbooked(&mut tx, orphan, at(4))
            .await
            .unwrap(),
        None
    );
    tx.commit().await.unwrap();
    assert_eq!(state(&db, orphan).await, PaymentState::Refunded);
    // Decided, not yet confirmed by the gateway: still unsettled.
    assert_eq!(unsettled(&db).await, [orphan, crashed]);
    let mut r = db.read().await.unwrap();
    assert!(
        payments::refunds_due(&mut r, at(3), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        payments::refunds_due(&mut r, at(4), 10).await.unwrap(),
        std::slice::from_ref(&due)
    );
    drop(r);
    let mut tx = db.begin().await.unwrap();
    assert!(
        payments::refund_settled(&mut tx, due.refund_id, "gw-r1", at(5))
            .await
            .unwrap()
    );
    assert!(
        !payments::refund_settled(&mut tx, due.refund_id, "gw-r2", at(5))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(unsettled(&db).await, [crashed]);

    // Recovery of the crashed one, and a refund the gateway refuses for good: it stays listed.
    let mut tx = db.begin().await.unwrap();
    let due = payments::give_back_unbooked(&mut tx, crashed, at(6))
        .await
        .unwrap()
        .unwrap();
    assert!(
        payments::refund_failed(&mut tx, due.refund_id, at(6))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(
        unsettled(&db).await,
        [crashed],
        "a failed refund is money in limbo"
    );

    // A booking that ends unused gives back its paid online windows, once.
    let mut tx = db.begin().await.unwrap();
    let given = payments::give_back_windows(&mut tx, id, at(7))
        .await
        .unwrap();
    assert_eq!(given.len(), 1);
    assert_eq!(
        (given[0].charge_id, given[0].booking_id),
        (booked, Some(id))
    );
    assert!(
        payments::give_back_windows(&mut tx, id, at(7))
            .await
            .unwrap()
            .is_empty()
    );
    tx.commit().await.unwrap();
    let b = bookings::booking(&mut db.read().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (b.payment_status, b.refunded_cents),
        (PaymentStatus::Refunded, 240)
    );
    assert_eq!(
        b.windows[0].refund.as_ref().unwrap().status,
        PaymentState::Pending
    );
    assert_eq!(unsettled(&db).await, [booked, crashed]);
    let mut tx = db.begin().await.unwrap();
    assert!(
        payments::refund_settled(&mut tx, given[0].refund_id, "gw-r3", at(8))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(unsettled(&db).await, [crashed]);
    let b = bookings::booking(&mut db.read().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    let refund = b.windows[0].refund.as_ref().unwrap();
    assert_eq!(
        (refund.status, refund.gateway_ref.as_deref()),
        (PaymentState::Succeeded, Some("gw-r3"))
    );
    assert_eq!(
        payments::charges_of_user(&mut db.read().await.unwrap(), l.driver)
            .await
            .unwrap()
            .iter()
            .map(|p| (p.id, p.status))
            .collect::<Vec<_>>(),
        [
            (booked, PaymentState::Refunded),
            (declined, PaymentState::Failed),
            (orphan, PaymentState::Refunded),
            (crashed, PaymentState::Refunded),
        ]
    );
}

/// A request lapses when its hold ran out (an expiry comes first), approval stops the clock, and
/// the count of a driver's active bookings is what the cap reads.
pub async fn requests_lapse_after_their_hold_and_count_toward_the_cap(db: Db) {
    let l = lot(&db).await;
    const HOLD: i64 = 15 * 60 * 1000;
    let mut tx = db.begin().await.unwrap();
    let long = bookings::insert_booking(&mut tx, row(&l, l.slots[0], span(0, 60), None, 240))
        .await
        .unwrap();
    let short = bookings::insert_booking(&mut tx, row(&l, l.slots[1], span(0, 10), None, 40))
        .await
        .unwrap();
    let approved = bookings::insert_booking(&mut tx, row(&l, l.slots[2], span(5, 60), None, 220))
        .await
        .unwrap();
    assert!(bookings::approve(&mut tx, approved, at(6)).await.unwrap());
    assert_eq!(
        bookings::lock_and_count_active(&mut tx, l.driver, at(7))
            .await
            .unwrap(),
        3
    );
    tx.commit().await.unwrap();

    let mut r = db.read().await.unwrap();
    assert_eq!(
        bookings::next_lapse(&mut r, HOLD).await.unwrap(),
        Some(at(15))
    );
    assert_eq!(
        bookings::count_active(&mut r, l.driver, at(10))
            .await
            .unwrap(),
        2,
        "the short one ended"
    );
    drop(r);

    let mut tx = db.begin().await.unwrap();
    assert!(
        bookings::lapse_due(&mut tx, at(14), HOLD, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // At 15 minutes the short one has ended: the scheduler expires it first, then lapses.
    assert_eq!(
        bookings::expire_due(&mut tx, at(15), 10).await.unwrap(),
        [short]
    );
    assert_eq!(
        bookings::lapse_due(&mut tx, at(15), HOLD, 10)
            .await
            .unwrap(),
        [long]
    );
    assert!(
        bookings::lapse_due(&mut tx, at(16), HOLD, 10)
            .await
            .unwrap()
            .is_empty()
    );
    tx.commit().await.unwrap();
    let mut r = db.read().await.unwrap();
    assert_eq!(bookings::next_lapse(&mut r, HOLD).await.unwrap(), None);
    let b = bookings::booking(&mut r, long).await.unwrap().unwrap();
    assert_eq!(b.status, BookingStatus::Lapsed);
    assert!(!b.status.holds_slot());
    assert_eq!(
        bookings::count_active(&mut r, l.driver, at(16))
            .await
            .unwrap(),
        1
    );
    // A lapsed booking released its slot.
    assert!(
        !bookings::slot_busy(&mut r, l.slots[0], span(20, 30), None)
            .await
            .unwrap()
    );
    drop(r);

    // A renewal into `requested` is a new request: its hold starts at the renewal.
    let mut tx = db.begin().await.unwrap();
    let renewal = Renewal {
        id: short,
        window: span(20, 80),
        duration_minutes: 60,
        to: BookingStatus::Requested,
        payment_method: PaymentMethod::Cash,
        payment_id: None,
        amount_cents: 240,
        now: at(20),
    };
    assert_eq!(bookings::renew(&mut tx, renewal).await.unwrap(), Some(2));
    tx.commit().await.unwrap();
    let mut r = db.read().await.unwrap();
    let b = bookings::booking(&mut r, short).await.unwrap().unwrap();
    assert_eq!(
        (b.status, b.requested_at, b.approved_at),
        (BookingStatus::Requested, at(20), None)
    );
    assert_eq!(
        bookings::next_lapse(&mut r, HOLD).await.unwrap(),
        Some(at(35))
    );
}

/// A database that already held bookings and notifications (migrations up to 1001, as before
/// issue 13) migrates to 1002 and 1003. 1002: every booking gets one window with its amount and payment, online charges become
/// `succeeded` payments with their gateway reference, only confirmed bookings count as approved,
/// and the ledger's proof query finds nothing unsettled. 1003 (the lot audience; the store's tables
/// rebuilt on SQLite): notifications keep their ids, audiences, dedupe keys and read state, and an
/// id is never reused.
pub async fn migrations_keep_existing_bookings_and_notifications(url: &str, engine: &str) {
    let dir = match engine {
        "sqlite" => "sqlite",
        _ => "postgres",
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dir);
    let mut before = sqlx::migrate::Migrator::new(path).await.unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version <= 1001)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let legacy = [
        "INSERT INTO users (name, email, password_hash, role, created_at_ms) VALUES \
             ('Olga', 'olga@x.io', 'h', 'owner', 0), ('Dana', 'dana@x.io', 'h', 'user', 0)",
        "INSERT INTO lots (owner_id, name, price_per_hour_cents) VALUES (1, 'Central', 240)",
        "INSERT INTO slots (lot_id, number) VALUES (1, 1), (1, 2), (1, 3)",
        // An online booking renewed twice (720 cents in all), a confirmed cash one, an expired
        // request whose cash was verified.
        "INSERT INTO bookings (user_id, slot_id, start_at_ms, end_at_ms, duration_minutes, status, \
             payment_method, payment_status, payment_ref, amount_cents, created_at_ms, renewed_at_ms) VALUES \
             (2, 1, 1000, 61000, 1, 'expired', 'online', 'paid', 'test_ch_9', 720, 10, 1000), \
             (2, 2, 2000, 3602000, 60, 'confirmed', 'cash', 'pending', NULL, 240, 2000, NULL), \
             (2, 3, 3000, 63000, 1, 'expired', 'cash', 'paid', NULL, 4, 3000, NULL)",
        // Notifications and a read, for 1003's rebuild of the store's tables; the newest one is
        // gone, so the id high-water mark is above the highest id kept.
        "INSERT INTO notifications (audience_kind, user_id, role, level, event, message, data, \
             created_at_ms, dedupe_key) VALUES \
             ('user', 2, NULL, 'info', 'custom', 'one', '{}', 1, 'k1'), \
             ('role', NULL, 'owner', 'info', 'custom', 'two', '{}', 2, NULL), \
             ('all', NULL, NULL, 'info', 'custom', 'three', '{}', 3, NULL)",
        "INSERT INTO notification_reads (user_id, notification_id) VALUES (2, 1)",
        "DELETE FROM notifications WHERE id = 3",
    ];
    match engine {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
                .await
                .unwrap();
            before.run(&pool).await.unwrap();
            for sql in legacy {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        _ => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            before.run(&pool).await.unwrap();
            for sql in legacy {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
    }

    let db = Db::open(url).await.unwrap();
    let mut r = db.read().await.unwrap();
    let all = bookings::bookings(&mut r, bookings::BookingScope::All)
        .await
        .unwrap();
    let got: Vec<_> = all
        .iter()
        .rev()
        .map(|b| {
            (
                b.status,
                b.windows.len(),
                b.payment_method,
                b.payment_status,
                b.amount_cents,
                b.approved_at.is_some(),
                b.windows[0]
                    .charge
                    .as_ref()
                    .map(|c| (c.status, c.gateway_ref.clone())),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                BookingStatus::Expired,
                1,
                PaymentMethod::Online,
                PaymentStatus::Paid,
                720,
                false,
                Some((PaymentState::Succeeded, Some("test_ch_9".to_owned())))
            ),
            (
                BookingStatus::Confirmed,
                1,
                PaymentMethod::Cash,
                PaymentStatus::Pending,
                240,
                true,
                None
            ),
            (
                BookingStatus::Expired,
                1,
                PaymentMethod::Cash,
                PaymentStatus::Paid,
                4,
                false,
                None
            ),
        ]
    );
    assert_eq!(all[2].requested_at, millis(1000));
    assert!(
        payments::unsettled_charges(&mut r)
            .await
            .unwrap()
            .is_empty()
    );
    drop(r);
    // The rebuilt table still refuses overlaps, and the new status is accepted.
    let mut tx = db.begin().await.unwrap();
    let overlap = tx
        .execute(Stmt::new(
            "INSERT INTO bookings (user_id, slot_id, start_at_ms, end_at_ms, duration_minutes, status, \
                 created_at_ms, requested_at_ms) VALUES (2, 2, 2500, 2600, 1, 'requested', 0, 0)",
        ))
        .await;
    assert!(matches!(overlap, Err(DbError::SlotTaken)), "{overlap:?}");
    drop(tx);
    let mut tx = db.begin().await.unwrap();
    assert!(
        bookings::transition(
            &mut tx,
            2,
            BookingStatus::Confirmed,
            BookingStatus::Lapsed,
            None
        )
        .await
        .unwrap()
    );
    drop(tx);
    // New ids continue after the migrated ones.
    let mut tx = db.begin().await.unwrap();
    let next = bookings::insert_booking(
        &mut tx,
        NewBookingRow {
            user_id: 2,
            slot_id: 3,
            window: BookingWindow::new(millis(70_000), millis(130_000)).unwrap(),
            duration_minutes: 1,
            payment_method: PaymentMethod::Cash,
            payment_id: None,
            amount_cents: 4,
            car_wash: false,
            now: millis(70_000),
        },
    )
    .await
    .unwrap();
    // (PostgreSQL's identity may skip the value the refused insert drew.)
    assert!(next > 3, "{next}");
    tx.commit().await.unwrap();
    db.close().await;
}

/// A lot's staff as an audience: one row, seen (replay, inbox, unread count, mark read) by whoever
/// works at the lot when it is read, assignments made afterwards included; `lot_staff` answers the
/// same membership for live delivery.
pub async fn a_lot_audience_follows_current_membership(db: Db) {
    use parkmate_db::NewNotification;
    use parkmate_protocol::{Audience, Level, Viewer};
    lot(&db).await;
    let mut tx = db.begin().await.unwrap();
    let emil = accounts::insert_user(&mut tx, "Emil", "emil@x.io", "h", Role::Employee, t0())
        .await
        .unwrap();
    let erin = accounts::insert_user(&mut tx, "Erin", "erin@x.io", "h", Role::Employee, t0())
        .await
        .unwrap();
    let owner = accounts::user_by_email(&mut tx, "olga@x.io")
        .await
        .unwrap()
        .unwrap()
        .0
        .id;
    let central = lots::lots(&mut tx, None, Some(owner), t0()).await.unwrap()[0].id;
    let harbour = lots::insert_lot(&mut tx, owner, "Harbour", 100, &[(1, true)])
        .await
        .unwrap();
    assert!(
        lots::insert_lot_employee(&mut tx, central, emil, t0())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let emil_v = Viewer {
        user_id: emil,
        role: Role::Employee,
    };
    let erin_v = Viewer {
        user_id: erin,
        role: Role::Employee,
    };

    let stored = db
        .insert_batch(&[
            NewNotification::new(
                Audience::Lot(central),
                Level::Info,
                "car_wash_requested",
                "job at central",
            ),
            NewNotification::new(
                Audience::Lot(harbour),
                Level::Info,
                "car_wash_requested",
                "job at harbour",
            ),
            NewNotification::new(
                Audience::Role(Role::Employee),
                Level::Info,
                "custom",
                "all employees",
            ),
        ])
        .await
        .unwrap();
    assert_eq!(stored[0].audience, Audience::Lot(central));
    let messages = |page: Vec<parkmate_db::StoredNotification>| {
        page.into_iter().map(|n| n.message).collect::<Vec<_>>()
    };
    assert_eq!(
        messages(
            db.replay(emil_v, 0, crate::rows(10))
                .await
                .unwrap()
                .notifications
        ),
        ["job at central", "all employees"]
    );
    assert_eq!(
        messages(
            db.replay(erin_v, 0, crate::rows(10))
                .await
                .unwrap()
                .notifications
        ),
        ["all employees"]
    );
    assert_eq!(db.unread(erin_v).await.unwrap().count, 1);
    assert!(matches!(
        db.mark_read(erin_v, stored[0].id).await,
        Err(DbError::NotFound)
    ));
    assert_eq!(db.lot_staff(central).await.unwrap(), [emil]);
    assert!(db.lot_staff(harbour).await.unwrap().is_empty());

    // Erin is assigned to Harbour afterwards: she sees its job now, and can read it.
    let mut tx = db.begin().await.unwrap();
    assert!(
        lots::insert_lot_employee(&mut tx, harbour, erin, t0())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(db.lot_staff(harbour).await.unwrap(), [erin]);
    assert_eq!(
        messages(
            db.replay(erin_v, 0, crate::rows(10))
                .await
                .unwrap()
                .notifications
        ),
        ["job at harbour", "all employees"]
    );
    let (greeting, page) = db.resume(erin_v, 0, crate::rows(10)).await.unwrap();
    assert_eq!((greeting.unread.count, page.notifications.len()), (2, 2));
    // Her newest visible id is the employees' row; Emil's too (central's job is older).
    assert_eq!(greeting.newest, stored[2].id);
    assert_eq!(db.greeting(emil_v).await.unwrap().newest, stored[2].id);
    assert_eq!(db.mark_read(erin_v, stored[1].id).await.unwrap().count, 1);
    let inbox = db.inbox(erin_v, None, 10).await.unwrap();
    assert_eq!(
        inbox
            .items
            .iter()
            .map(|i| (i.notification.message.as_str(), i.read))
            .collect::<Vec<_>>(),
        [("all employees", false), ("job at harbour", true)]
    );
    // Emil still sees only Central's.
    assert_eq!(db.inbox(emil_v, None, 10).await.unwrap().items.len(), 2);
    // The audience round-trips through the store.
    assert_eq!(
        db.after(0, 10).await.unwrap()[1].audience,
        Audience::Lot(harbour)
    );
    // A newer job at Harbour is Erin's newest visible id (through the lot she works at), not
    // Emil's.
    let later = db
        .insert_batch(&[NewNotification::new(
            Audience::Lot(harbour),
            Level::Info,
            "car_wash_requested",
            "second job at harbour",
        )])
        .await
        .unwrap();
    assert_eq!(db.greeting(erin_v).await.unwrap().newest, later[0].id);
    assert_eq!(db.greeting(emil_v).await.unwrap().newest, stored[2].id);
}
