//! The publish API's validation and the inbox's read state.

use crate::common::*;
use parkmate_protocol::Role;
use serde_json::json;

#[tokio::test]
async fn publish_refuses_bad_requests_and_stores_nothing() {
    let app = spawn_app().await;
    let url = app.url("/api/notifications");
    let ok = json!({"level":"info","message":"hi","user_id":1});

    let r = app.http.post(&url).json(&ok).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "unauthorized"
    );
    let r = app
        .http
        .post(&url)
        .bearer_auth("wrong")
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A user's JWT is not the API key.
    let r = app
        .http
        .post(&url)
        .bearer_auth(app.token(1, Role::Admin))
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = app
        .http
        .post(&url)
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "invalid_json"
    );

    for (body, status, code) in [
        (
            json!({"level":"loud","message":"m","user_id":1}),
            422,
            "invalid_level",
        ),
        (
            json!({"level":"info","message":"","user_id":1}),
            422,
            "empty_message",
        ),
        (
            json!({"level":"info","message":"m"}),
            422,
            "invalid_recipient",
        ),
        (
            json!({"level":"info","message":"m","user_id":1,"role":"owner"}),
            422,
            "invalid_recipient",
        ),
        (
            json!({"level":"info","message":"m","user_id":1,"data":"x"}),
            422,
            "invalid_data",
        ),
        (
            json!({"level":"info","message":"m","user_id":1,"colour":"red"}),
            422,
            "invalid_body",
        ),
        (json!({"message":"m","user_id":1}), 422, "invalid_body"),
        (
            json!({"level":"info","message":"x".repeat(2001),"user_id":1}),
            422,
            "message_too_long",
        ),
    ] {
        let (s, b) = app.publish(body.clone()).await;
        assert_eq!(
            (s, b["code"].as_str().unwrap()),
            (status, code),
            "for {body}"
        );
        assert!(b["message"].is_string());
    }
    assert_eq!(
        app.state.store.max_id().await.unwrap(),
        0,
        "nothing may be stored"
    );
}

#[tokio::test]
async fn the_api_key_scheme_is_matched_in_any_case_and_the_key_trimmed() {
    let app = spawn_app().await;
    let ok = json!({"level":"info","message":"hi","user_id":1});
    // As for every `Authorization` the server reads; another scheme is not a bearer key.
    for (authorization, status) in [
        (format!("bearer {API_KEY}"), 201),
        (format!("BEARER   {API_KEY} "), 201),
        (format!("Basic {API_KEY}"), 401),
        (format!("Bearer {API_KEY}-and-more"), 401),
    ] {
        let r = app
            .http
            .post(app.url("/api/notifications"))
            .header("authorization", &authorization)
            .json(&ok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{authorization}");
    }
    // The key is checked before the body is read: a caller without it learns nothing of the body.
    let r = app
        .http
        .post(app.url("/api/notifications"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn publish_answers_ids_and_honours_idempotency_keys() {
    let app = spawn_app().await;
    let (s, b) = app
        .publish(json!({"level":"confirm","message":"m","user_ids":[1,2,3]}))
        .await;
    assert_eq!(s, 201);
    assert_eq!(b["ids"].as_array().unwrap().len(), 3);

    let send = || {
        app.http
            .post(app.url("/api/notifications"))
            .bearer_auth(API_KEY)
            .header("idempotency-key", "order-77")
            .json(&json!({"level":"info","message":"once","user_id":9}))
            .send()
    };
    let first: serde_json::Value = send().await.unwrap().json().await.unwrap();
    let again: serde_json::Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(first["ids"], again["ids"]);
    let (_, inbox) = app.get_json("/api/inbox", &app.token(9, Role::User)).await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn inbox_read_state_is_per_user_and_badges_agree_across_devices() {
    let app = spawn_app().await;
    let alice = app.token(1, Role::User);
    let bob = app.token(2, Role::User);
    let mut phone = app.connect(1, Role::User, None).await;
    let mut laptop = app.connect(1, Role::User, None).await;

    let own = app.send(1, "for alice").await;
    let (_, b) = app
        .publish(json!({"level":"info","message":"for all","broadcast":true}))
        .await;
    let all = b["ids"][0].as_i64().unwrap();
    for c in [&mut phone, &mut laptop] {
        assert_eq!(c.next_notification().await.id, own);
        assert_eq!(c.next_notification().await.id, all);
        assert_eq!(c.next_unread_count().await, 2);
    }

    let (s, inbox) = app.get_json("/api/inbox", &alice).await;
    assert_eq!(s, 200);
    assert_eq!(inbox["unread_count"], 2);
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], all, "newest first");
    assert_eq!(items[0]["read"], false);
    assert_eq!(items[0]["level"], "info");

    // Reading on one device updates the badge on both.
    let (s, r) = app
        .post_json(&format!("/api/inbox/{all}/read"), &alice)
        .await;
    assert_eq!((s, r["unread_count"].as_i64()), (200, Some(1)));
    assert_eq!(phone.next_unread_count().await, 1);
    assert_eq!(laptop.next_unread_count().await, 1);

    // Bob's copy of the broadcast is still unread; Alice's own notification is not his.
    let (_, c) = app.get_json("/api/inbox/unread-count", &bob).await;
    assert_eq!(c["count"], 1);
    let (s, e) = app.post_json(&format!("/api/inbox/{own}/read"), &bob).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("not_found")));

    // Over the socket too.
    phone.send_text(r#"{"type":"mark_all_read"}"#).await;
    assert_eq!(phone.next_unread_count().await, 0);
    assert_eq!(laptop.next_unread_count().await, 0);
    let (_, inbox) = app.get_json("/api/inbox", &alice).await;
    assert!(
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["read"] == true)
    );
    let (_, c) = app.get_json("/api/inbox/unread-count", &bob).await;
    assert_eq!(c["count"], 1);
}

#[tokio::test]
async fn inbox_needs_a_valid_token_and_sane_paging() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/api/inbox")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (s, b) = app
        .get_json("/api/inbox?limit=0", &app.token(1, Role::User))
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_query")));
    let (s, b) = app
        .get_json("/api/inbox?before=abc", &app.token(1, Role::User))
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_query")));
    let (s, b) = app
        .post_json("/api/inbox/abc/read", &app.token(1, Role::User))
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_id")));
    let (s, b) = app
        .post_json("/api/inbox/0/read", &app.token(1, Role::User))
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_id")));
    for i in 0..5 {
        app.send(1, &format!("m{i}")).await;
    }
    let (_, p1) = app
        .get_json("/api/inbox?limit=3", &app.token(1, Role::User))
        .await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 3);
    let before = p1["next_before"].as_i64().unwrap();
    let (_, p2) = app
        .get_json(
            &format!("/api/inbox?limit=3&before={before}"),
            &app.token(1, Role::User),
        )
        .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 2);
    assert!(p2["next_before"].is_null());
}

#[tokio::test]
async fn health_metrics_and_unknown_api_paths() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    app.send(1, "count me").await;
    let text = app.metrics().await;
    assert!(
        text.contains("parkmate_notifications_stored_total"),
        "{text}"
    );
    let r = app.http.get(app.url("/api/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "not_found"
    );
}

#[tokio::test]
async fn the_cli_mints_tokens_and_notifies_a_running_server() {
    let app = spawn_app().await;
    let mut c = app.connect(42, Role::User, None).await;
    let bin = env!("CARGO_BIN_EXE_parkmate");
    let out = parkmate(bin)
        .args([
            "notify",
            "--user",
            "42",
            "--level",
            "success",
            "--server",
            &app.url(""),
            "Booking renewed successfully!",
        ])
        .env("PARKMATE_API_KEY", API_KEY)
        .env("PARKMATE_JWT_SECRET", JWT_SECRET)
        .env("PARKMATE_DATA_DIR", app.dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = c.next_notification().await;
    assert_eq!(
        (n.level, n.message.as_str()),
        (
            parkmate_protocol::Level::Success,
            "Booking renewed successfully!"
        )
    );

    let out = parkmate(bin)
        .args(["token", "--user", "42", "--role", "owner"])
        .env("PARKMATE_JWT_SECRET", JWT_SECRET)
        .env("PARKMATE_API_KEY", API_KEY)
        .output()
        .await
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap();
    let id = app.keys.verify(token.trim()).unwrap();
    assert_eq!((id.user_id, id.role), (42, Role::Owner));

    let out = parkmate(bin)
        .args([
            "notify",
            "--user",
            "42",
            "--level",
            "loud",
            "--server",
            &app.url(""),
            "x",
        ])
        .env("PARKMATE_API_KEY", API_KEY)
        .env("PARKMATE_JWT_SECRET", JWT_SECRET)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_level"));
}

/// Issue 17.4 and 17.8: `PARKMATE_SERVER`, offered by `parkmate notify --help`, is the command's
/// own variable and not an unknown setting; and a client command run with only the API key, in a
/// directory of its own, sends the notification and leaves that directory empty (no
/// `data/dev-secrets.toml`).
#[tokio::test]
async fn notify_takes_parkmate_server_and_creates_no_secrets() {
    let app = spawn_app().await;
    let mut c = app.connect(42, Role::User, None).await;
    let cwd = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_parkmate");
    let out = parkmate(bin)
        .args(["notify", "--user", "42", "from a clean directory"])
        .current_dir(cwd.path())
        .env("PARKMATE_SERVER", app.url(""))
        .env("PARKMATE_API_KEY", API_KEY)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        c.next_notification().await.message,
        "from a clean directory"
    );
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "notify left {left:?}");

    // Without a key there is nothing to send with: an error naming the variable, still no file.
    let out = parkmate(bin)
        .args(["notify", "--user", "42", "no key"])
        .current_dir(cwd.path())
        .env("PARKMATE_SERVER", app.url(""))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PARKMATE_API_KEY"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "notify left {left:?}");
}

/// `parkmate token` reads the development secrets `serve` generated (and creates none itself).
#[tokio::test]
async fn token_uses_the_development_secrets_serve_generated() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_parkmate");
    let token = || {
        parkmate(bin)
            .args(["token", "--user", "5"])
            .current_dir(dir.path())
            .output()
    };
    let out = token().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PARKMATE_JWT_SECRET") && stderr.contains("parkmate serve"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists());

    // What `serve` does on its first development start.
    let mut settings = parkmate_server::Settings {
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    settings.generate_dev_secrets().unwrap().expect("created");
    let keys = parkmate_auth::TokenKeys::new(
        secrecy::ExposeSecret::expose_secret(settings.jwt_secret().unwrap()).as_bytes(),
    );
    let out = token().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = keys
        .verify(String::from_utf8(out.stdout).unwrap().trim())
        .unwrap();
    assert_eq!(id.user_id, 5);
}

/// The `parkmate` binary with no `PARKMATE_*` variable of the test's own environment: the
/// settings refuse unknown ones, and the developer's own must not leak in.
fn parkmate(bin: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PARKMATE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}
