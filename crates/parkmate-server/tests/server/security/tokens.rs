//! Points 8 and 10b: token hygiene. A token this server minted at login or register carries its
//! account's token version and is checked against the store on every request and handshake, so
//! a role change, a deleted account or a revocation (`parkmate account …`) takes effect on the
//! next request, and open sockets close with 4003 within `ws.account_check_interval`. `?token=`
//! on the socket is off in production. Tokens without `iat` are accepted. Before, a demoted
//! admin's token kept its powers for its 12 hours, `?token=` was always on, and a token without
//! `iat` was `invalid_token`.

use std::time::Duration;

use parkmate_db::accounts;
use parkmate_protocol::Role;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::caps::refusal;
use super::production::production;
use super::rates::{app_with_limits, post};
use crate::common::{Client, JWT_SECRET, TestApp, spawn_app_with};

async fn login(app: &TestApp, email: &str, password: &str) -> (String, i64) {
    let (status, _, body) = post(
        app,
        "/api/auth/login",
        json!({"email": email, "password": password}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["token"].as_str().unwrap().to_owned(),
        body["user"]["id"].as_i64().unwrap(),
    )
}

fn socket_request(
    app: &TestApp,
    user: i64,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = app.ws_url(user, None).into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    req
}

async fn change(app: &TestApp, f: impl AsyncFnOnce(&mut parkmate_db::Tx) -> bool) {
    let mut tx = app.state.store.begin().await.unwrap();
    assert!(f(&mut tx).await, "no such account");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_demoted_admin_loses_its_powers_and_its_sockets_on_the_next_request() {
    let app = app_with_limits(|s| s.ws.account_check_interval = Duration::from_millis(200)).await;
    let (token, admin) = login(&app, "admin@parkmate.test", "admin-demo-123").await;
    assert_eq!(app.get_json("/api/users", &token).await.0, 200);
    let mut socket = Client::open(socket_request(&app, admin, &token))
        .await
        .unwrap();
    socket.next_frame().await; // hello

    change(&app, async |tx| {
        accounts::set_role(tx, admin, Role::User).await.unwrap()
    })
    .await;

    for path in ["/api/users", "/api/me", "/api/inbox"] {
        let (status, body) = app.get_json(path, &token).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("token_revoked")),
            "{path}: {body}"
        );
    }
    let (status, _, body) = refusal(socket_request(&app, admin, &token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked"))
    );
    let close = socket.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4003);

    // Logging in again gives a token of the role the account has now.
    let (token, _) = login(&app, "admin@parkmate.test", "admin-demo-123").await;
    let (status, me) = app.get_json("/api/me", &token).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("user")));
    assert_eq!(app.get_json("/api/users", &token).await.0, 403);
}

#[tokio::test]
async fn a_deleted_or_revoked_account_is_refused_on_the_next_request() {
    let app = app_with_limits(|_| {}).await;
    let (status, _, body) = post(
        &app,
        "/api/auth/register",
        json!({"name": "Gone Soon", "email": "gone@example.com", "password": "long-enough-1"}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (token, id) = (
        body["token"].as_str().unwrap().to_owned(),
        body["user"]["id"].as_i64().unwrap(),
    );
    assert_eq!(app.get_json("/api/me", &token).await.0, 200);
    change(&app, async |tx| {
        accounts::delete_user(tx, id).await.unwrap()
    })
    .await;
    let (status, body) = app.get_json("/api/me", &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked")),
        "{body}"
    );

    let (token, dana) = login(&app, "dana@parkmate.test", "driver-demo-123").await;
    change(&app, async |tx| {
        accounts::revoke_tokens(tx, dana).await.unwrap()
    })
    .await;
    let (status, body) = app.get_json("/api/bookings", &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked")),
        "{body}"
    );
    let (fresh, _) = login(&app, "dana@parkmate.test", "driver-demo-123").await;
    assert_eq!(app.get_json("/api/bookings", &fresh).await.0, 200);
}

#[tokio::test]
async fn the_revoke_command_revokes_a_running_nodes_tokens() {
    let app = app_with_limits(|_| {}).await;
    let (token, dana) = login(&app, "dana@parkmate.test", "driver-demo-123").await;
    let db = format!("sqlite://{}", app.dir.path().join("parkmate.db").display());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_parkmate"))
        .args(["account", "revoke-tokens", "--user", &dana.to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PARKMATE_DATABASE_URL", &db)
        .env("PARKMATE_DATA_DIR", app.dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = app.get_json("/api/me", &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked")),
        "{body}"
    );
}

#[tokio::test]
async fn query_tokens_are_refused_in_production_and_headers_still_work() {
    let app = spawn_app_with(production).await;
    let token = app.token(7, Role::User);
    let url = format!("ws://{}/ws/notifications/7/?token={token}", app.addr);
    let (status, _, body) = refusal(url.into_client_request().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("query_token_disabled")),
        "{body}"
    );
    app.connect(7, Role::User, None).await;

    // Outside production it is the default, and can be switched off.
    let dev = spawn_app_with(|s| s.ws.query_token = Some(false)).await;
    let token = dev.token(7, Role::User);
    let url = format!("ws://{}/ws/notifications/7/?token={token}", dev.addr);
    let (status, _, _) = refusal(url.into_client_request().unwrap()).await;
    assert_eq!(status, 401);
}

fn sign(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_without_iat_are_accepted_and_sub_exp_role_are_still_required() {
    let app = spawn_app_with(|_| {}).await;
    let exp = parkmate_auth::now_secs() + 600;
    let token = sign(json!({"sub": "7", "role": "user", "exp": exp}));
    let (status, body) = app.get_json("/api/inbox", &token).await;
    assert_eq!(status, 200, "{body}");
    let mut c = Client::open(socket_request(&app, 7, &token)).await.unwrap();
    c.next_frame().await;

    for bad in [
        json!({"role": "user", "exp": exp}),
        json!({"sub": "7", "exp": exp}),
        json!({"sub": "7", "role": "pilot", "exp": exp}),
        json!({"sub": "7", "role": "user"}),
    ] {
        let (status, body) = app.get_json("/api/inbox", &sign(bad.clone())).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_token")),
            "{bad}"
        );
    }
}
