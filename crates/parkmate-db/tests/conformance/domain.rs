//! The booking domain's queries on both engines: accounts, lots, bookings and their conditional
//! updates, the database's refusal of overlaps, and the scheduler's queries. The domain's own
//! tests (`crates/parkmate-domain/tests`) cover the rules built on these.

use chrono::{DateTime, Duration, TimeZone, Utc};
use parkmate_db::bookings::{self, BookingScope, NewBookingRow, Renewal};
use parkmate_db::{
    BookingStatus, BookingWindow, Db, DbError, PaymentMethod, PaymentStatus, accounts, lots,
};
use parkmate_protocol::Role;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 18, 0, 0).unwrap()
}

fn window(from_min: i64, to_min: i64) -> BookingWindow {
    BookingWindow::new(
        t0() + Duration::minutes(from_min),
        t0() + Duration::minutes(to_min),
    )
    .unwrap()
}

/// An owner with one lot of two slots (the first with car wash), and a driver.
struct World {
    driver: i64,
    owner: i64,
    lot: i64,
    slots: Vec<i64>,
}

async fn world(db: &Db) -> World {
    let mut tx = db.begin().await.unwrap();
    let owner = accounts::insert_user(&mut tx, "Olga", "olga@x.io", "h", Role::Owner, t0())
        .await
        .unwrap();
    let driver = accounts::insert_user(&mut tx, "Dana", "dana@x.io", "h", Role::User, t0())
        .await
        .unwrap();
    let lot = lots::insert_lot(&mut tx, owner, "Central", 250, &[(1, true), (2, false)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let found = lots::lots(&mut db.read().await.unwrap(), Some(lot), None, t0())
        .await
        .unwrap();
    let slots = found[0].slots.iter().map(|s| s.id).collect();
    World {
        driver,
        owner,
        lot,
        slots,
    }
}

fn booking_row(w: &World, slot: i64, win: BookingWindow) -> NewBookingRow {
    NewBookingRow {
        user_id: w.driver,
        slot_id: slot,
        window: win,
        duration_minutes: u32::try_from((win.end() - win.start()).num_minutes()).unwrap(),
        payment_method: PaymentMethod::Cash,
        payment_id: None,
        amount_cents: 250,
        car_wash: false,
        now: t0(),
    }
}

async fn book(db: &Db, row: NewBookingRow) -> Result<i64, DbError> {
    let mut tx = db.begin().await?;
    let id = bookings::insert_booking(&mut tx, row).await?;
    tx.commit().await?;
    Ok(id)
}

/// Tokens are checked against `token_state`: a role change and a revocation bump the version, a
/// deleted account has none.
pub async fn token_versions_follow_role_changes_and_revocations(db: Db) {
    let w = world(&db).await;
    let state = |id| {
        let db = db.clone();
        async move {
            accounts::token_state(&mut db.read().await.unwrap(), id)
                .await
                .unwrap()
        }
    };
    assert_eq!(state(w.driver).await, Some((Role::User, 0)));
    let mut tx = db.begin().await.unwrap();
    assert!(
        accounts::set_role(&mut tx, w.driver, Role::Admin)
            .await
            .unwrap()
    );
    assert!(
        !accounts::set_role(&mut tx, 999_999, Role::Admin)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(state(w.driver).await, Some((Role::Admin, 1)));
    let mut tx = db.begin().await.unwrap();
    assert!(accounts::revoke_tokens(&mut tx, w.driver).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(state(w.driver).await, Some((Role::Admin, 2)));
    assert_eq!(
        state(w.owner).await,
        Some((Role::Owner, 0)),
        "others keep theirs"
    );
    let mut tx = db.begin().await.unwrap();
    assert!(accounts::delete_user(&mut tx, w.driver).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(state(w.driver).await, None);
}

pub async fn accounts_lots_and_employees(db: Db) {
    let w = world(&db).await;
    let mut tx = db.begin().await.unwrap();
    // The same email again is a duplicate, answered as such (the domain says `email_taken`).
    assert!(matches!(
        accounts::insert_user(&mut tx, "Other", "dana@x.io", "h", Role::User, t0()).await,
        Err(DbError::Duplicate)
    ));
    drop(tx);
    let mut tx = db.begin().await.unwrap();
    let emil = accounts::insert_user(&mut tx, "Emil", "emil@x.io", "h", Role::Employee, t0())
        .await
        .unwrap();
    assert!(
        lots::insert_lot_employee(&mut tx, w.lot, emil, t0())
            .await
            .unwrap()
    );
    assert!(
        !lots::insert_lot_employee(&mut tx, w.lot, emil, t0())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    let mut r = db.read().await.unwrap();
    assert_eq!(accounts::count_users(&mut r).await.unwrap(), 3);
    let (user, hash) = accounts::user_by_email(&mut r, "dana@x.io")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.id, user.role, hash.as_str()),
        (w.driver, Role::User, "h")
    );
    assert!(
        accounts::user_by_email(&mut r, "nobody@x.io")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        accounts::user(&mut r, emil).await.unwrap().unwrap().name,
        "Emil"
    );
    assert!(accounts::user(&mut r, 999).await.unwrap().is_none());
    let all = accounts::users(&mut r, None).await.unwrap();
    assert_eq!(all.len(), 3);
    let employees = accounts::users(&mut r, Some(Role::Employee)).await.unwrap();
    assert_eq!(employees.iter().map(|u| u.id).collect::<Vec<_>>(), [emil]);

    assert!(lots::works_at(&mut r, emil, w.lot).await.unwrap());
    assert!(!lots::works_at(&mut r, w.driver, w.lot).await.unwrap());
    let lot = lots::lots(&mut r, None, Some(w.owner), t0()).await.unwrap();
    assert_eq!(lot.len(), 1);
    assert_eq!(lot[0].owner_name, "Olga");
    assert_eq!(lot[0].employees.len(), 1);
    assert_eq!(
        lot[0]
            .slots
            .iter()
            .map(|s| (s.number, s.car_wash, s.occupied))
            .collect::<Vec<_>>(),
        [(1, true, false), (2, false, false)]
    );
    assert!(
        lots::lots(&mut r, None, Some(w.driver), t0())
            .await
            .unwrap()
            .is_empty()
    );
    let info = lots::slot_info(&mut r, w.slots[0]).await.unwrap().unwrap();
    assert_eq!((info.price_per_hour_cents, info.car_wash), (250, true));
    assert!(lots::slot_info(&mut r, 999).await.unwrap().is_none());
}

pub async fn overlapping_active_bookings_are_refused_by_the_database(db: Db) {
    let w = world(&db).await;
    let first = book(&db, booking_row(&w, w.slots[0], window(0, 60)))
        .await
        .unwrap();
    // Overlapping on the same slot: refused, whatever the application checked.
    assert!(matches!(
        book(&db, booking_row(&w, w.slots[0], window(59, 90))).await,
        Err(DbError::SlotTaken)
    ));
    // Back to back, or another slot: fine.
    book(&db, booking_row(&w, w.slots[0], window(60, 90)))
        .await
        .unwrap();
    book(&db, booking_row(&w, w.slots[1], window(0, 60)))
        .await
        .unwrap();

    let mut r = db.read().await.unwrap();
    assert!(
        bookings::slot_busy(&mut r, w.slots[0], window(30, 40), None)
            .await
            .unwrap()
    );
    assert!(
        !bookings::slot_busy(&mut r, w.slots[0], window(30, 40), Some(first))
            .await
            .unwrap()
    );
    assert!(
        !bookings::slot_busy(&mut r, w.slots[0], window(90, 100), None)
            .await
            .unwrap()
    );
    drop(r);

    // A declined booking releases its slot; putting it back into an active state over a taken
    // window is refused too (the renewal path).
    let mut tx = db.begin().await.unwrap();
    assert!(
        bookings::transition(
            &mut tx,
            first,
            BookingStatus::Requested,
            BookingStatus::Declined,
            Some("full")
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();
    let again = book(&db, booking_row(&w, w.slots[0], window(0, 30)))
        .await
        .unwrap();
    let mut tx = db.begin().await.unwrap();
    assert!(
        bookings::transition(
            &mut tx,
            again,
            BookingStatus::Requested,
            BookingStatus::Expired,
            None
        )
        .await
        .unwrap()
    );
    let renewal = Renewal {
        id: again,
        window: window(70, 80),
        duration_minutes: 10,
        to: BookingStatus::Confirmed,
        payment_method: PaymentMethod::Cash,
        payment_id: None,
        amount_cents: 42,
        now: t0(),
    };
    assert!(matches!(
        bookings::renew(&mut tx, renewal.clone()).await,
        Err(DbError::SlotTaken)
    ));
}

pub async fn transitions_are_conditional_and_listings_scoped(db: Db) {
    let w = world(&db).await;
    let mut row = booking_row(&w, w.slots[0], window(0, 60));
    row.car_wash = true;
    let washed = book(&db, row).await.unwrap();
    let plain = book(&db, booking_row(&w, w.slots[1], window(0, 60)))
        .await
        .unwrap();

    let mut tx = db.begin().await.unwrap();
    let b = bookings::booking_for_update(&mut tx, washed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.status, BookingStatus::Requested);
    assert_eq!(b.lot_owner_id, w.owner);
    assert!(
        bookings::transition(
            &mut tx,
            washed,
            BookingStatus::Requested,
            BookingStatus::Confirmed,
            None
        )
        .await
        .unwrap()
    );
    // The same step again finds nothing to change.
    assert!(
        !bookings::transition(
            &mut tx,
            washed,
            BookingStatus::Requested,
            BookingStatus::Confirmed,
            None
        )
        .await
        .unwrap()
    );
    assert!(
        bookings::mark_cash_paid(&mut tx, washed, 1, t0())
            .await
            .unwrap()
    );
    assert!(
        !bookings::mark_cash_paid(&mut tx, washed, 1, t0())
            .await
            .unwrap()
    );
    assert!(bookings::mark_car_wash_done(&mut tx, washed).await.unwrap());
    assert!(!bookings::mark_car_wash_done(&mut tx, washed).await.unwrap());
    assert!(!bookings::mark_car_wash_done(&mut tx, plain).await.unwrap());
    tx.commit().await.unwrap();

    let mut r = db.read().await.unwrap();
    let b = bookings::booking(&mut r, washed).await.unwrap().unwrap();
    assert_eq!(
        (b.status, b.payment_status, b.car_wash),
        (
            BookingStatus::Confirmed,
            PaymentStatus::Paid,
            Some(parkmate_db::CarWashStatus::Done)
        )
    );
    assert!(bookings::booking(&mut r, 999).await.unwrap().is_none());
    let ids = |v: Vec<parkmate_db::Booking>| v.iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(
        ids(bookings::bookings(&mut r, BookingScope::All).await.unwrap()),
        [plain, washed]
    );
    assert_eq!(
        ids(bookings::bookings(&mut r, BookingScope::Driver(w.driver))
            .await
            .unwrap()),
        [plain, washed]
    );
    assert_eq!(
        ids(bookings::bookings(&mut r, BookingScope::Owner(w.owner))
            .await
            .unwrap()),
        [plain, washed]
    );
    assert!(
        bookings::bookings(&mut r, BookingScope::Owner(w.driver))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(bookings::bookings_by_ids(&mut r, &[washed, plain, 999])
            .await
            .unwrap()),
        [washed, plain]
    );
    assert_eq!(
        bookings::recent_same_booking(
            &mut r,
            w.driver,
            w.slots[1],
            60,
            t0() - Duration::minutes(2)
        )
        .await
        .unwrap(),
        Some(plain)
    );
    assert_eq!(
        bookings::recent_same_booking(
            &mut r,
            w.driver,
            w.slots[1],
            30,
            t0() - Duration::minutes(2)
        )
        .await
        .unwrap(),
        None
    );
}

pub async fn the_scheduler_fires_each_deadline_once(db: Db) {
    let w = world(&db).await;
    let short = book(&db, booking_row(&w, w.slots[0], window(0, 3)))
        .await
        .unwrap();
    let long = book(&db, booking_row(&w, w.slots[1], window(0, 60)))
        .await
        .unwrap();

    let mut r = db.read().await.unwrap();
    // A 3-minute window gets no warning (it would be due when made): its end comes first.
    assert_eq!(
        bookings::next_deadline(&mut r).await.unwrap(),
        Some(t0() + Duration::minutes(3))
    );
    drop(r);
    let at = |m: i64| t0() + Duration::minutes(m);
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        bookings::expire_due(&mut tx, at(3), 10).await.unwrap(),
        [short]
    );
    assert!(
        bookings::expire_due(&mut tx, at(3), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        bookings::warn_due(&mut tx, at(54), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        bookings::warn_due(&mut tx, at(55), 10).await.unwrap(),
        [long]
    );
    assert!(
        bookings::warn_due(&mut tx, at(56), 10)
            .await
            .unwrap()
            .is_empty()
    );
    tx.commit().await.unwrap();
    let mut r = db.read().await.unwrap();
    assert_eq!(bookings::next_deadline(&mut r).await.unwrap(), Some(at(60)));
    drop(r);
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        bookings::expire_due(&mut tx, at(61), 10).await.unwrap(),
        [long]
    );
    tx.commit().await.unwrap();
    assert_eq!(
        bookings::next_deadline(&mut db.read().await.unwrap())
            .await
            .unwrap(),
        None
    );
    // A row picked by a pass is answered once: its status is in the row.
    let b = bookings::booking(&mut db.read().await.unwrap(), long)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.status, BookingStatus::Expired);
}

pub async fn a_failed_transaction_leaves_nothing_behind(db: Db) {
    let w = world(&db).await;
    let mut tx = db.begin().await.unwrap();
    let id = bookings::insert_booking(&mut tx, booking_row(&w, w.slots[0], window(0, 60)))
        .await
        .unwrap();
    drop(tx); // rolled back
    assert!(
        bookings::booking(&mut db.read().await.unwrap(), id)
            .await
            .unwrap()
            .is_none()
    );
    // The seeding lock can be taken (a no-op on SQLite) and ends with its transaction.
    let mut tx = db.begin().await.unwrap();
    tx.lock_seeding().await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.lock_seeding().await.unwrap();
    drop(tx);
}
