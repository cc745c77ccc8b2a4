//! The booking router over a real temp-file SQLite database, driven in-process with `oneshot`:
//! status codes, JSON error bodies, validation, authorisation, the test clock and the OpenAPI
//! document. (The end-to-end socket tests live in the server crate.)
//!
//! Over 500 lines on purpose: one short case per route and error shape of the booking API,
//! independent of each other, read as a checklist against docs/booking-api.md.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use parkmate_auth::{
    AccountLookup, AccountState, Authenticator, ExpectedApiKey, LookupFailed, TokenKeys,
    TrustedProxies,
};
use parkmate_booking_http::{AccountLimits, BookingApi, router};
use parkmate_domain::{Clock, Domain, ManualClock, SystemClock, TestGateway};
use parkmate_protocol::Role;
use serde_json::{Value, json};
use tower::ServiceExt;

const API_KEY: &str = "test-api-key-0123456789";

struct App {
    _dir: tempfile::TempDir,
    router: Router,
    domain: Domain,
    keys: Arc<TokenKeys>,
}

/// The accounts behind the tokens `login` mints, read from the test's database as the server
/// reads them.
struct Accounts(parkmate_db::Db);

#[async_trait::async_trait]
impl AccountLookup for Accounts {
    async fn account(&self, id: i64) -> Result<Option<AccountState>, LookupFailed> {
        let mut read = self.0.read().await.map_err(|_| LookupFailed)?;
        let state = parkmate_db::accounts::token_state(&mut read, id)
            .await
            .map_err(|_| LookupFailed)?;
        Ok(state.map(|(role, token_version)| AccountState {
            role,
            token_version,
        }))
    }
}

async fn app_with(clock: Arc<dyn Clock>, demo: bool) -> App {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("http.db").display());
    let db = parkmate_db::Db::open(&url).await.unwrap();
    let domain = Domain::new(
        db.clone(),
        clock,
        Arc::new(TestGateway::new()),
        Default::default(),
    );
    let accounts = domain.seed_demo().await.unwrap().unwrap();
    let keys = Arc::new(TokenKeys::new(b"0123456789abcdef0123456789abcdef"));
    let api = BookingApi {
        domain: domain.clone(),
        auth: Authenticator::new(keys.clone(), Arc::new(Accounts(db))),
        token_ttl_secs: 3600,
        demo_accounts: demo.then(|| Arc::new(accounts)),
        api_key: ExpectedApiKey::new(API_KEY),
        limits: Arc::new(AccountLimits::unlimited()),
        trusted_proxies: TrustedProxies::default(),
    };
    App {
        _dir: dir,
        router: router(api),
        domain,
        keys,
    }
}

async fn app() -> App {
    app_with(
        Arc::new(ManualClock::starting_at(
            Utc.with_ymd_and_hms(2026, 11, 25, 18, 0, 0).unwrap(),
        )),
        true,
    )
    .await
}

impl App {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let authorization = token.map(|t| format!("Bearer {t}"));
        self.call_authorized(method, path, authorization.as_deref(), body)
            .await
    }

    /// [`App::call`] with the whole `Authorization` header given.
    async fn call_authorized(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, v)
    }

    async fn token(&self, email: &str) -> String {
        let user = self.domain.login(email, password_of(email)).await.unwrap();
        self.keys.mint(user.id, user.role, 600)
    }
}

fn password_of(email: &str) -> &'static str {
    match email.split('@').next().unwrap() {
        "admin" => "admin-demo-123",
        "olga" | "otto" => "owner-demo-123",
        "dana" | "dev" => "driver-demo-123",
        _ => "employee-demo-123",
    }
}

#[tokio::test]
async fn accounts_register_login_me_and_demo() {
    let app = app().await;
    let (s, v) = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"name": "Nia", "email": "nia@x.io", "password": "long-enough"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["user"]["role"], "user");
    let token = v["token"].as_str().unwrap().to_owned();
    assert_eq!(app.keys.verify(&token).unwrap().role, Role::User);
    let (s, me) = app.call("GET", "/api/me", Some(&token), None).await;
    assert_eq!(
        (s, me["email"].as_str()),
        (StatusCode::OK, Some("nia@x.io"))
    );

    let (s, v) = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"name": "Nia", "email": "NIA@x.io", "password": "long-enough"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("email_taken"))
    );
    let (s, v) = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"name": "Nia", "email": "nope", "password": "long-enough"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_email"))
    );
    let (s, v) = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"name": "Nia"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"))
    );

    let (s, v) = app
        .call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": "nia@x.io", "password": "long-enough"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["token"].is_string());
    let (s, v) = app
        .call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": "nia@x.io", "password": "wrong-one"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );

    let (s, v) = app.call("GET", "/api/auth/demo-accounts", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["accounts"].as_array().unwrap().len(), 6);
    let (s, v) = app.call("GET", "/api/me", None, None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );
}

#[tokio::test]
async fn demo_accounts_are_404_when_demo_data_is_off() {
    let app = app_with(Arc::new(SystemClock), false).await;
    let (s, v) = app.call("GET", "/api/auth/demo-accounts", None, None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    // With the system clock there is no test clock route at all.
    let (s, _) = app
        .call(
            "POST",
            "/api/test/clock",
            Some(API_KEY),
            Some(json!({"advance_seconds": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bookings_validation_payments_and_authorisation() {
    let app = app().await;
    let dana = app.token("dana@parkmate.test").await;
    let dev = app.token("dev@parkmate.test").await;
    let admin = app.token("admin@parkmate.test").await;
    let otto = app.token("otto@parkmate.test").await;
    let olga = app.token("olga@parkmate.test").await;

    let (_, lots) = app.call("GET", "/api/lots", Some(&dana), None).await;
    let lot = &lots["items"][0];
    let slot = lot["slots"][0]["id"].as_i64().unwrap();
    let (_, mine) = app
        .call("GET", "/api/lots?mine=true", Some(&otto), None)
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_ne!(mine["items"][0]["id"], lot["id"]);

    let book = |duration: i64, method: &str, card: Option<&str>| json!({"slot_id": slot, "duration_minutes": duration, "car_wash": true, "payment_method": method, "card_number": card});
    let cases = [
        (
            book(0, "cash", None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_duration",
        ),
        (
            book(60, "online", None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card_required",
        ),
        (
            book(60, "online", Some("12ab")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_card_number",
        ),
        (
            book(60, "barter", None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
        (
            book(60, "online", Some("4000000000000002")),
            StatusCode::PAYMENT_REQUIRED,
            "payment_declined",
        ),
        (
            book(60, "online", Some("4000000000000119")),
            StatusCode::BAD_GATEWAY,
            "payment_unavailable",
        ),
    ];
    for (body, status, code) in cases {
        let (s, v) = app
            .call("POST", "/api/bookings", Some(&dana), Some(body))
            .await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{v}");
    }
    let (_, v) = app
        .call(
            "POST",
            "/api/bookings",
            Some(&dana),
            Some(book(60, "online", Some("4000000000009995"))),
        )
        .await;
    assert_eq!(v["message"], "Insufficient funds");

    let (s, b) = app
        .call(
            "POST",
            "/api/bookings",
            Some(&dana),
            Some(book(60, "online", Some("4242424242424242"))),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["status"], "requested");
    assert_eq!(b["payment_status"], "paid");
    assert_eq!(b["car_wash"], true);
    assert_eq!(b["car_wash_status"], "pending");
    assert_eq!(b["end_at"], "2026-11-25T19:00:00.000Z");
    let id = b["id"].as_i64().unwrap();
    let (s, v) = app
        .call(
            "POST",
            "/api/bookings",
            Some(&dev),
            Some(book(30, "cash", None)),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("slot_taken"))
    );
    // The slot shows as occupied now.
    let (_, l) = app
        .call("GET", &format!("/api/lots/{}", lot["id"]), Some(&dev), None)
        .await;
    assert_eq!(l["slots"][0]["occupied"], true);

    // Authorisation: 403 JSON everywhere it is not theirs.
    let refusals = [
        ("GET", format!("/api/bookings/{id}"), &dev, None),
        ("POST", format!("/api/bookings/{id}/approve"), &dana, None),
        ("POST", format!("/api/bookings/{id}/decline"), &olga, None),
        (
            "POST",
            format!("/api/bookings/{id}/verify-cash"),
            &otto,
            None,
        ),
        (
            "POST",
            format!("/api/bookings/{id}/car-wash-done"),
            &dev,
            None,
        ),
        (
            "POST",
            format!("/api/bookings/{id}/renew"),
            &dev,
            Some(json!({"duration_minutes": 30, "payment_method": "cash"})),
        ),
        ("GET", "/api/users?role=employee".to_owned(), &olga, None),
        (
            "POST",
            "/api/lots/1/employees".to_owned(),
            &olga,
            Some(json!({"employee_id": 6})),
        ),
        (
            "POST",
            "/api/bookings".to_owned(),
            &admin,
            Some(book(30, "cash", None)),
        ),
    ];
    for (method, path, token, body) in refusals {
        let (s, v) = app.call(method, &path, Some(token), body).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {path}"
        );
    }
    let (s, v) = app
        .call("GET", "/api/bookings/abc", Some(&dana), None)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_id"))
    );
    let (s, v) = app
        .call("GET", "/api/bookings/9999", Some(&dana), None)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, v) = app
        .call("GET", "/api/users?role=pilot", Some(&admin), None)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    // Every bad path or query parameter is the same 400 JSON shape.
    for (path, code) in [
        ("/api/lots?mine=maybe", "invalid_query"),
        ("/api/bookings/0", "invalid_id"),
        ("/api/lots/-3", "invalid_id"),
        ("/api/lots/99999999999999999999", "invalid_id"),
    ] {
        let (s, v) = app.call("GET", path, Some(&admin), None).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{path}"
        );
    }
    let (s, v) = app
        .call("GET", "/api/users?role=employee", Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"].as_array().unwrap().len(), 1);

    // The right roles succeed; decline with and without a body.
    let (s, v) = app
        .call(
            "POST",
            &format!("/api/bookings/{id}/verify-cash"),
            Some(&olga),
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_cash_payment"))
    );
    let (s, v) = app
        .call(
            "POST",
            &format!("/api/bookings/{id}/approve"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("confirmed"))
    );
    let (s, v) = app
        .call(
            "POST",
            &format!("/api/bookings/{id}/decline"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    let (s, v) = app
        .call(
            "POST",
            &format!("/api/bookings/{id}/renew"),
            Some(&dana),
            Some(json!({"duration_minutes": 30, "payment_method": "cash"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_renewable"))
    );

    let other_slot = lot["slots"][2]["id"].as_i64().unwrap();
    let (_, b2) = app
        .call(
            "POST",
            "/api/bookings",
            Some(&dev),
            Some(json!({"slot_id": other_slot, "duration_minutes": 30, "payment_method": "cash"})),
        )
        .await;
    let (s, v) = app
        .call(
            "POST",
            &format!("/api/bookings/{}/decline", b2["id"]),
            Some(&admin),
            Some(json!({"reason": "Closed"})),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str(), v["decline_reason"].as_str()),
        (StatusCode::OK, Some("declined"), Some("Closed"))
    );
}

#[tokio::test]
async fn test_clock_needs_the_api_key_and_fires_due_deadlines() {
    let app = app().await;
    let dana = app.token("dana@parkmate.test").await;
    let (_, lots) = app.call("GET", "/api/lots", Some(&dana), None).await;
    let slot = lots["items"][0]["slots"][1]["id"].as_i64().unwrap();
    let (_, b) = app
        .call(
            "POST",
            "/api/bookings",
            Some(&dana),
            Some(json!({"slot_id": slot, "duration_minutes": 10, "payment_method": "cash"})),
        )
        .await;

    let (s, v) = app
        .call(
            "POST",
            "/api/test/clock",
            Some(&dana),
            Some(json!({"advance_seconds": 60})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    // The scheme is matched in any case, as on every other route; a wrong key is refused.
    for (authorization, status) in [
        (
            format!("BEARER {API_KEY}"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            format!("bearer  {API_KEY} "),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (format!("Bearer {API_KEY}x"), StatusCode::UNAUTHORIZED),
        (format!("Basic {API_KEY}"), StatusCode::UNAUTHORIZED),
    ] {
        let (s, _) = app
            .call_authorized(
                "POST",
                "/api/test/clock",
                Some(&authorization),
                Some(json!({"advance_seconds": -1})),
            )
            .await;
        assert_eq!(s, status, "{authorization}");
    }
    let (s, v) = app
        .call(
            "POST",
            "/api/test/clock",
            Some(API_KEY),
            Some(json!({"advance_seconds": -1})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_advance"))
    );
    let (s, v) = app
        .call(
            "POST",
            "/api/test/clock",
            Some(API_KEY),
            Some(json!({"advance_seconds": 600})),
        )
        .await;
    assert_eq!(
        (s, v["now"].as_str()),
        (StatusCode::OK, Some("2026-11-25T18:10:00.000Z"))
    );
    let (_, after) = app
        .call(
            "GET",
            &format!("/api/bookings/{}", b["id"]),
            Some(&dana),
            None,
        )
        .await;
    assert_eq!(after["status"], "expired");
}

/// The booking half of the document the server serves at `/api/openapi.json` (the server merges
/// it with the notification core's routes).
#[test]
fn openapi_document_describes_every_route() {
    let doc = serde_json::to_value(parkmate_booking_http::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/demo-accounts",
        "/api/me",
        "/api/users",
        "/api/lots",
        "/api/lots/{id}",
        "/api/lots/{id}/employees",
        "/api/bookings",
        "/api/bookings/{id}",
        "/api/bookings/{id}/approve",
        "/api/bookings/{id}/decline",
        "/api/bookings/{id}/verify-cash",
        "/api/bookings/{id}/car-wash-done",
        "/api/bookings/{id}/renew",
        "/api/test/clock",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(
        doc["components"]["schemas"]["BookingDto"]["properties"]["car_wash_status"].is_object()
    );
}

/// Issue 13 on the wire: refunds, windows with their payments, verify-cash per window, the cap
/// and the request hold.
#[tokio::test]
async fn refunds_windows_caps_and_holds_on_the_wire() {
    let app = app().await;
    let dana = app.token("dana@parkmate.test").await;
    let admin = app.token("admin@parkmate.test").await;
    let olga = app.token("olga@parkmate.test").await;
    let (_, lots) = app.call("GET", "/api/lots", Some(&dana), None).await;
    let slots: Vec<i64> = lots["items"][0]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    let book = |slot: i64, body: Value| {
        let mut b = json!({"slot_id": slot, "duration_minutes": 60});
        b.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        b
    };

    // An online request, declined: refunded, and the answer shows it.
    let (s, b) = app
        .call(
            "POST",
            "/api/bookings",
            Some(&dana),
            Some(book(
                slots[0],
                json!({"payment_method": "online", "card_number": "4242424242424242"}),
            )),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["lapses_at"], "2026-11-25T18:15:00.000Z");
    assert_eq!(b["approved_at"], Value::Null);
    assert_eq!(b["windows"].as_array().unwrap().len(), 1);
    assert_eq!(b["windows"][0]["charge"]["status"], "succeeded");
    let (s, d) = app
        .call(
            "POST",
            &format!("/api/bookings/{}/decline", b["id"]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(
        (
            d["status"].as_str(),
            d["payment_status"].as_str(),
            d["refunded_cents"].as_i64()
        ),
        (
            Some("declined"),
            Some("refunded"),
            b["amount_cents"].as_i64()
        )
    );
    assert_eq!(d["lapses_at"], Value::Null);
    assert_eq!(d["windows"][0]["payment_status"], "refunded");
    assert_eq!(d["windows"][0]["refund"]["status"], "succeeded");
    assert_eq!(d["windows"][0]["refund"]["amount_cents"], b["amount_cents"]);

    // Two cash bookings: the cap is reached, the third answers 409 too_many_bookings.
    let mut ids = Vec::new();
    for slot in &slots[1..3] {
        let (s, b) = app
            .call(
                "POST",
                "/api/bookings",
                Some(&dana),
                Some(book(*slot, json!({"payment_method": "cash"}))),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        ids.push(b["id"].as_i64().unwrap());
    }
    let (s, v) = app
        .call(
            "POST",
            "/api/bookings",
            Some(&dana),
            Some(book(slots[3], json!({"payment_method": "cash"}))),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_bookings"))
    );

    // verify-cash names a window; a bad body is 400/422, an unknown window 404.
    let (_, approved) = app
        .call(
            "POST",
            &format!("/api/bookings/{}/approve", ids[0]),
            Some(&admin),
            None,
        )
        .await;
    assert!(approved["approved_at"].is_string());
    assert_eq!(approved["lapses_at"], Value::Null);
    let verify = format!("/api/bookings/{}/verify-cash", ids[0]);
    let (s, v) = app
        .call("POST", &verify, Some(&olga), Some(json!({"window": 2})))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, v) = app
        .call("POST", &verify, Some(&olga), Some(json!({"window": "one"})))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"))
    );
    let (s, v) = app
        .call("POST", &verify, Some(&olga), Some(json!({"window": 1})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["windows"][0]["payment_status"], "paid");
    assert!(v["windows"][0]["cash_verified_at"].is_string());
    assert_eq!(v["payment_status"], "paid");

    // The other request is never approved: after the hold it has lapsed.
    let (s, _) = app
        .call(
            "POST",
            "/api/test/clock",
            Some(API_KEY),
            Some(json!({"advance_seconds": 15 * 60})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, lapsed) = app
        .call(
            "GET",
            &format!("/api/bookings/{}", ids[1]),
            Some(&dana),
            None,
        )
        .await;
    assert_eq!(lapsed["status"], "lapsed");
    // With a place free under the cap again, the driver can book.
    let (s, _) = app
        .call(
            "POST",
            "/api/bookings",
            Some(&dana),
            Some(book(slots[3], json!({"payment_method": "cash"}))),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}
