//! One test per server-side event of `docs/booking-api.md` (event 2 is the web client's own): the
//! acting role drives the real HTTP API of a real server (demo data, manual clock), and the
//! recipient's WebSocket receives exactly the documented frame while every other demo user's
//! socket stays silent.
//!
//! Over 500 lines on purpose: one short test per event of docs/booking-api.md, in the document's
//! order, so the two read side by side.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{Client, TestApp, spawn_app_with};
use parkmate_protocol::{Level, NotificationFrame, Role, ServerFrame};
use parkmate_server::config::ClockKind;
use serde_json::{Value, json};

/// How long a bystander's socket must stay quiet after the recipient got its frame. Delivery to
/// every socket happens in one dispatch, so a leak would show up well within this.
const QUIET: Duration = Duration::from_millis(300);

struct Demo {
    app: TestApp,
    /// email prefix (`admin`, `olga`, `otto`, `dana`, `dev`, `emil`) → (user id, role, token)
    users: HashMap<&'static str, (i64, Role, String)>,
    /// Olga's lot (slots 1 and 2 with car wash; Emil works there) and Otto's lot.
    olga_lot: Value,
    otto_lot: Value,
}

const PEOPLE: [(&str, &str); 6] = [
    ("admin", "admin-demo-123"),
    ("olga", "owner-demo-123"),
    ("otto", "owner-demo-123"),
    ("dana", "driver-demo-123"),
    ("dev", "driver-demo-123"),
    ("emil", "employee-demo-123"),
];

impl Demo {
    async fn start() -> Demo {
        let app = spawn_app_with(|r| {
            r.booking.demo_data = Some(true);
            r.clock = ClockKind::Manual;
        })
        .await;
        let mut users = HashMap::new();
        for (who, password) in PEOPLE {
            users.insert(who, app.login(who, password).await);
        }
        let mut demo = Demo {
            app,
            users,
            olga_lot: Value::Null,
            otto_lot: Value::Null,
        };
        demo.olga_lot = demo
            .call("olga", "GET", "/api/lots?mine=true", None)
            .await
            .1["items"][0]
            .clone();
        demo.otto_lot = demo
            .call("otto", "GET", "/api/lots?mine=true", None)
            .await
            .1["items"][0]
            .clone();
        demo
    }

    fn id(&self, who: &str) -> i64 {
        self.users[who].0
    }

    async fn call(&self, who: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.app
            .call(method, path, Some(&self.users[who].2), body)
            .await
    }

    /// Olga's slot with this number.
    fn slot(&self, number: i64) -> i64 {
        self.olga_lot["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["number"] == number)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    /// Dana books Olga's slot `number` (cash unless a card is given); answers the booking.
    async fn book(&self, number: i64, minutes: i64, car_wash: bool) -> Value {
        let (status, b) = self
            .call("dana", "POST", "/api/bookings", Some(json!({"slot_id": self.slot(number), "duration_minutes": minutes, "car_wash": car_wash, "payment_method": "cash"})))
            .await;
        assert_eq!(status, 201, "{b}");
        b
    }

    /// The admin approves booking `b` (a request nobody approves lapses after the hold).
    async fn approve(&self, b: &Value) {
        let (status, body) = self
            .call(
                "admin",
                "POST",
                &format!("/api/bookings/{}/approve", b["id"]),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn advance(&self, seconds: i64) {
        let seconds = u64::try_from(seconds).expect("time moves forward");
        self.app
            .advance(std::time::Duration::from_secs(seconds))
            .await;
    }

    /// A socket for every demo user, opened now: everything stored before is behind them (they
    /// resume from the newest id), so only what the action under test causes can arrive.
    async fn sockets(&self) -> HashMap<&'static str, Client> {
        let newest = self.app.state.store.max_id().await.unwrap();
        let mut sockets = HashMap::new();
        for (who, _) in PEOPLE {
            let (id, role, _) = self.users[who];
            let mut c = self.app.connect(id, role, Some(newest)).await;
            loop {
                match c.next_frame().await {
                    ServerFrame::Replayed { count, .. } => {
                        assert_eq!(count, 0);
                        break;
                    }
                    ServerFrame::UnreadCount { .. } => continue,
                    other => panic!("{who}: unexpected {other:?} before the action"),
                }
            }
            sockets.insert(who, c);
        }
        sockets
    }
}

/// What keeps the staff's screens live (not one of the ten), and the one demo user each kind
/// may reach in these tests: the owner of the lot booked (Olga), the admins' role, the staff of
/// Olga's lot (Emil).
const STAFF_LIVE: [(&str, &str); 4] = [
    ("lot_activity", "olga"),
    ("booking_requested", "admin"),
    ("booking_request_lapsed", "admin"),
    ("car_wash_requested", "emil"),
];

fn staff_live(event: &str) -> Option<&'static str> {
    STAFF_LIVE
        .iter()
        .find(|(kind, _)| *kind == event)
        .map(|(_, who)| *who)
}

/// `to` receives exactly one notification besides the staff's live side traffic, which is
/// returned; every other socket stays silent but for that side traffic, each kind reaching only
/// whom it is for ([`STAFF_LIVE`]).
async fn only(mut sockets: HashMap<&'static str, Client>, to: &str) -> NotificationFrame {
    let mut side: HashMap<&str, Vec<String>> = HashMap::new();
    let frame = loop {
        let f = sockets.get_mut(to).unwrap().next_notification().await;
        match staff_live(&f.event) {
            Some(whom) => {
                assert_eq!(whom, to, "{f:?} reached {to}");
                side.entry(to).or_default().push(f.event);
            }
            None => break f,
        }
    };
    // Every socket, the recipient's included, now stays free of notifications but the staff's.
    // Unread-count frames may still arrive (the count a socket announces after its replay), so
    // they are allowed; a bystander's count must not move, though, unless staff traffic reached it.
    let deadline = tokio::time::Instant::now() + QUIET;
    for (who, socket) in sockets.iter_mut() {
        let mut counts = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, socket.next_frame()).await {
                Err(_) => break,
                Ok(ServerFrame::UnreadCount { count }) => counts.push(count),
                Ok(ServerFrame::Notification(n)) if staff_live(&n.event) == Some(*who) => {
                    side.entry(who).or_default().push(n.event);
                }
                Ok(other) => panic!("{who} got an unexpected frame: {other:?}"),
            }
        }
        if *who != to && !side.contains_key(who) {
            assert!(
                counts.windows(2).all(|w| w[0] == w[1]),
                "{who}'s unread count moved: {counts:?}"
            );
        }
    }
    frame
}

fn assert_frame(f: &NotificationFrame, level: Level, event: &str, message: &str) {
    assert_eq!(
        (f.level, f.event.as_str(), f.message.as_str()),
        (level, event, message),
        "{f:?}"
    );
}

fn assert_booking_data(f: &NotificationFrame, b: &Value) {
    assert_eq!(f.data["booking_id"], b["id"], "{f:?}");
    assert_eq!(f.data["lot_id"], b["lot_id"]);
    assert_eq!(f.data["slot_number"], b["slot_number"]);
    assert_eq!(f.data["end_at"], b["end_at"]);
}

#[tokio::test]
async fn event_1_booking_expiring_reaches_the_driver_five_minutes_before_the_end() {
    let d = Demo::start().await;
    let b = d.book(3, 60, false).await;
    d.approve(&b).await;
    let sockets = d.sockets().await;
    d.advance(55 * 60).await;
    let f = only(sockets, "dana").await;
    assert_frame(
        &f,
        Level::Warning,
        "booking_expiring",
        "Your booking will expire in 5 minutes!",
    );
    assert_booking_data(&f, &b);
}

#[tokio::test]
async fn event_3_booking_renewed_reaches_the_driver() {
    let d = Demo::start().await;
    let b = d.book(3, 10, false).await;
    // Approved once, so the renewal confirms it (a never-approved one would be a new request).
    d.approve(&b).await;
    d.advance(11 * 60).await;
    let sockets = d.sockets().await;
    let (status, renewed) = d
        .call("dana", "POST", &format!("/api/bookings/{}/renew", b["id"]), Some(json!({"duration_minutes": 30, "payment_method": "online", "card_number": "4242424242424242"})))
        .await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["status"], "confirmed");
    let f = only(sockets, "dana").await;
    assert_frame(
        &f,
        Level::Success,
        "booking_renewed",
        "Booking renewed successfully!",
    );
    assert_booking_data(&f, &renewed);
}

#[tokio::test]
async fn event_4_renewal_failed_reaches_the_driver_with_the_reason() {
    let d = Demo::start().await;
    let b = d.book(3, 10, false).await;
    d.advance(11 * 60).await;
    let sockets = d.sockets().await;
    let (status, err) = d
        .call("dana", "POST", &format!("/api/bookings/{}/renew", b["id"]), Some(json!({"duration_minutes": 30, "payment_method": "online", "card_number": "4000000000000002"})))
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (402, Some("payment_declined"))
    );
    let f = only(sockets, "dana").await;
    assert_frame(
        &f,
        Level::Error,
        "renewal_failed",
        "Renewal failed: Card declined",
    );
    assert_eq!(f.data["reason"], "Card declined");
    assert_eq!(f.data["booking_id"], b["id"]);
}

#[tokio::test]
async fn event_5_booking_expired_reaches_the_driver_and_releases_the_slot() {
    let d = Demo::start().await;
    let b = d.book(4, 10, false).await;
    let sockets = d.sockets().await;
    d.advance(10 * 60).await;
    let f = only(sockets, "dana").await;
    assert_frame(
        &f,
        Level::Warning,
        "booking_expired",
        "Your booking for Slot #4 expired",
    );
    assert_booking_data(&f, &b);
    let (_, lot) = d
        .call(
            "dev",
            "GET",
            &format!("/api/lots/{}", d.olga_lot["id"]),
            None,
        )
        .await;
    let slot = lot["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["number"] == 4)
        .unwrap()
        .clone();
    assert_eq!(slot["occupied"], false);
}

#[tokio::test]
async fn event_6_booking_declined_reaches_the_driver() {
    let d = Demo::start().await;
    let b = d.book(3, 60, false).await;
    let sockets = d.sockets().await;
    let (status, declined) = d
        .call(
            "admin",
            "POST",
            &format!("/api/bookings/{}/decline", b["id"]),
            Some(json!({"reason": "Maintenance"})),
        )
        .await;
    assert_eq!(
        (status, declined["status"].as_str()),
        (200, Some("declined"))
    );
    let f = only(sockets, "dana").await;
    assert_frame(
        &f,
        Level::Warning,
        "booking_declined",
        "Admin declined your booking request",
    );
    assert_booking_data(&f, &b);
    assert_eq!(f.data["reason"], "Maintenance");
}

#[tokio::test]
async fn event_7_cash_payment_verified_reaches_the_driver() {
    let d = Demo::start().await;
    let b = d.book(3, 60, false).await;
    let sockets = d.sockets().await;
    let (status, paid) = d
        .call(
            "olga",
            "POST",
            &format!("/api/bookings/{}/verify-cash", b["id"]),
            None,
        )
        .await;
    assert_eq!(
        (status, paid["payment_status"].as_str()),
        (200, Some("paid"))
    );
    let f = only(sockets, "dana").await;
    assert_frame(
        &f,
        Level::Success,
        "cash_payment_verified",
        "Your cash payment has been verified",
    );
    assert_booking_data(&f, &b);
}

#[tokio::test]
async fn event_8_booking_created_reaches_the_lot_owner() {
    let d = Demo::start().await;
    let sockets = d.sockets().await;
    let b = d.book(3, 60, false).await;
    let f = only(sockets, "olga").await;
    let lot_id = d.olga_lot["id"].as_i64().unwrap();
    assert_frame(
        &f,
        Level::Info,
        "booking_created",
        &format!("New booking received for Lot #{lot_id}"),
    );
    assert_booking_data(&f, &b);
}

#[tokio::test]
async fn event_9_car_wash_completed_reaches_the_driver() {
    let d = Demo::start().await;
    let b = d.book(1, 60, true).await;
    assert_eq!(b["car_wash_status"], "pending");
    let sockets = d.sockets().await;
    let (status, done) = d
        .call(
            "emil",
            "POST",
            &format!("/api/bookings/{}/car-wash-done", b["id"]),
            None,
        )
        .await;
    assert_eq!(
        (status, done["car_wash_status"].as_str()),
        (200, Some("done"))
    );
    let f = only(sockets, "dana").await;
    assert_frame(
        &f,
        Level::Success,
        "car_wash_completed",
        "Your car wash service completed",
    );
    assert_booking_data(&f, &b);
}

#[tokio::test]
async fn event_10_employee_assigned_reaches_the_lot_owner() {
    let d = Demo::start().await;
    let sockets = d.sockets().await;
    let lot_id = d.otto_lot["id"].as_i64().unwrap();
    let (status, lot) = d
        .call(
            "admin",
            "POST",
            &format!("/api/lots/{lot_id}/employees"),
            Some(json!({"employee_id": d.id("emil")})),
        )
        .await;
    assert_eq!(status, 200, "{lot}");
    assert!(
        lot["employees"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "Emil Employee")
    );
    let f = only(sockets, "otto").await;
    assert_frame(
        &f,
        Level::Info,
        "employee_assigned",
        &format!("New employee assigned to Lot #{lot_id}: Emil Employee"),
    );
    assert_eq!(
        f.data,
        json!({"lot_id": lot_id, "employee_id": d.id("emil"), "employee_name": "Emil Employee"})
    );
}

#[tokio::test]
async fn a_double_click_notifies_once() {
    let d = Demo::start().await;
    let b = d.book(3, 60, false).await;
    let sockets = d.sockets().await;
    let path = format!("/api/bookings/{}/verify-cash", b["id"]);
    let (a, b2) = tokio::join!(
        d.call("olga", "POST", &path, None),
        d.call("olga", "POST", &path, None)
    );
    assert_eq!((a.0, b2.0), (200, 200));
    let f = only(sockets, "dana").await;
    assert_eq!(f.event, "cash_payment_verified");
}

/// Not one of the ten: a request nobody approves within the hold lapses; the driver hears of
/// it, with what was refunded, and the slot is free again.
#[tokio::test]
async fn a_request_nobody_approves_lapses_and_the_driver_is_told() {
    let d = Demo::start().await;
    let (status, b) = d
        .call("dana", "POST", "/api/bookings", Some(json!({"slot_id": d.slot(3), "duration_minutes": 60, "payment_method": "online", "card_number": "4242424242424242"})))
        .await;
    assert_eq!(status, 201, "{b}");
    let sockets = d.sockets().await;
    d.advance(15 * 60).await;
    let f = only(sockets, "dana").await;
    assert_frame(
        &f,
        Level::Warning,
        "booking_lapsed",
        "Your booking request for Slot #3 lapsed: it was not approved in time",
    );
    assert_eq!(f.data["refund_cents"], b["amount_cents"]);
    let (_, after) = d
        .call("dana", "GET", &format!("/api/bookings/{}", b["id"]), None)
        .await;
    assert_eq!(
        (after["status"].as_str(), after["payment_status"].as_str()),
        (Some("lapsed"), Some("refunded"))
    );
    assert_eq!(after["windows"][0]["refund"]["status"], "succeeded");
}

/// Admins hear of every new request live (their pending list refreshes on it), one row for the
/// role however many admins there are.
#[tokio::test]
async fn admins_hear_of_every_new_request_live() {
    let d = Demo::start().await;
    let mut sockets = d.sockets().await;
    let b = d.book(3, 60, false).await;
    let f = sockets.get_mut("admin").unwrap().next_notification().await;
    let lot_name = d.olga_lot["name"].as_str().unwrap();
    assert_frame(
        &f,
        Level::Info,
        "booking_requested",
        &format!(
            "New booking request #{} at {lot_name} awaits approval",
            b["id"]
        ),
    );
    assert_booking_data(&f, &b);
    let stored = d.app.state.store.after(0, 1000).await.unwrap();
    let rows: Vec<_> = stored
        .iter()
        .filter(|n| n.event == "booking_requested")
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].audience,
        parkmate_protocol::Audience::Role(Role::Admin)
    );
    // The owner gets event 8 as always; nobody else hears anything.
    sockets.remove("admin");
    let f = only(sockets, "olga").await;
    assert_eq!(f.event, "booking_created");
}

/// The lot's staff hear of every new car-wash job live, from one row for the lot; an employee
/// assigned while connected hears the next job of their new lot at once, without reconnecting.
#[tokio::test]
async fn the_lots_staff_hear_of_car_wash_jobs_live_also_right_after_an_assignment() {
    let d = Demo::start().await;
    let mut sockets = d.sockets().await;
    let b = d.book(1, 60, true).await;
    let f = sockets.get_mut("emil").unwrap().next_notification().await;
    let lot_name = d.olga_lot["name"].as_str().unwrap();
    assert_frame(
        &f,
        Level::Info,
        "car_wash_requested",
        &format!(
            "New car wash job: booking #{} at {lot_name}, Slot #1",
            b["id"]
        ),
    );
    assert_booking_data(&f, &b);

    // Emil is assigned to Otto's lot while his socket stays open.
    let otto_lot = d.otto_lot["id"].as_i64().unwrap();
    let (status, body) = d
        .call(
            "admin",
            "POST",
            &format!("/api/lots/{otto_lot}/employees"),
            Some(json!({"employee_id": d.id("emil")})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let wash_slot = d.otto_lot["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["car_wash"] == true)
        .expect("Otto's lot has a car-wash slot")["id"]
        .clone();
    let (status, job) = d
        .call("dev", "POST", "/api/bookings", Some(json!({"slot_id": wash_slot, "duration_minutes": 30, "car_wash": true, "payment_method": "cash"})))
        .await;
    assert_eq!(status, 201, "{job}");
    let f = sockets.get_mut("emil").unwrap().next_notification().await;
    assert_eq!(f.event, "car_wash_requested");
    assert_eq!(f.data["booking_id"], job["id"]);
    assert_eq!(f.data["lot_id"], json!(otto_lot));
    // Drivers never hear of jobs.
    for driver in ["dana", "dev"] {
        sockets
            .get_mut(driver)
            .unwrap()
            .assert_no_notification(QUIET)
            .await;
    }
}

/// The owner hears of every change at their lots (their dashboard refreshes on it).
#[tokio::test]
async fn the_owner_hears_of_every_change_at_their_lots() {
    let d = Demo::start().await;
    let b = d.book(3, 60, false).await;
    let mut sockets = d.sockets().await;
    d.approve(&b).await;
    let f = sockets.get_mut("olga").unwrap().next_notification().await;
    let lot_name = d.olga_lot["name"].as_str().unwrap();
    assert_frame(
        &f,
        Level::Info,
        "lot_activity",
        &format!("Booking #{} at {lot_name}: approved", b["id"]),
    );
    assert_eq!(f.data["status"], "confirmed");
    // Approving sends nothing else: not to the driver, not to anyone.
    for (who, socket) in sockets.iter_mut() {
        if *who != "olga" {
            socket.assert_no_notification(QUIET).await;
        }
    }
}
