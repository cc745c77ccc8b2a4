//! Point 1, and production's refusals: with `env = production` the demo accounts (an admin with a
//! published password among them) are never seeded unless asked, and asking is a start error that
//! names the setting; no password is ever logged; every unsafe setting stops `parkmate serve`
//! with an error naming its variable; and development still starts with no setting at all.
//! Before, a production node on an empty database answered the demo admin's login with 200 and
//! logged every demo password.

use std::process::Stdio;

use parkmate_server::config::{Environment, Settings};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::rates::post;
use crate::common::{JWT_SECRET, WAIT, spawn_app_with};

/// A long API key, as production requires (the harness's is short).
pub const LONG_API_KEY: &str = "production-api-key-0123456789abcdef";

/// Production settings for a test app: long secrets, and every setting left at its default.
pub fn production(s: &mut Settings) {
    s.env = Environment::Production;
    s.api_key = Some(LONG_API_KEY.into());
    s.booking.demo_data = None;
}

#[tokio::test]
async fn production_seeds_no_demo_admin() {
    let app = spawn_app_with(production).await;
    let (status, _, body) = post(
        &app,
        "/api/auth/login",
        json!({"email": "admin@parkmate.test", "password": "admin-demo-123"}),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{body}"
    );
    let r = app
        .http
        .get(app.url("/api/auth/demo-accounts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// `parkmate` with a clean environment plus `vars`, run in `dir`.
fn parkmate(dir: &std::path::Path, vars: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_parkmate"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn serve_in_production_refuses_each_unsafe_setting_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        ("PARKMATE_ENV", "production"),
        ("PARKMATE_JWT_SECRET", JWT_SECRET),
        ("PARKMATE_API_KEY", LONG_API_KEY),
        ("PARKMATE_BIND", "127.0.0.1:0"),
    ];
    for (var, value) in [
        ("PARKMATE_BOOKING_DEMO_DATA", "true"),
        ("PARKMATE_WS_QUERY_TOKEN", "true"),
        ("PARKMATE_CLOCK", "manual"),
        ("PARKMATE_JWT_SECRET", "short"),
        ("PARKMATE_API_KEY", ""),
        ("PARKMATE_METRICS_TOKEN", "short"),
    ] {
        let mut vars: Vec<(&str, &str)> = base.iter().copied().filter(|(k, _)| *k != var).collect();
        vars.push((var, value));
        let out = tokio::time::timeout(WAIT, parkmate(dir.path(), &vars).arg("serve").output())
            .await
            .expect("refused at once")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} started");
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a refused start wrote files"
    );
}

#[tokio::test]
async fn development_starts_with_no_settings_and_logs_no_password() {
    let dir = tempfile::tempdir().unwrap();
    // Only the port: the default one may be taken on this machine.
    let mut child = parkmate(dir.path(), &[("PARKMATE_BIND", "127.0.0.1:0")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut log = String::new();
    tokio::time::timeout(WAIT * 3, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if line.contains("listening on") {
                return;
            }
        }
        panic!("the server ended before listening");
    })
    .await
    .unwrap_or_else(|_| panic!("no `listening` line: {log}"));
    child.kill().await.unwrap();
    assert!(log.contains("demo account"), "{log}");
    for password in [
        "admin-demo-123",
        "owner-demo-123",
        "driver-demo-123",
        "employee-demo-123",
    ] {
        assert!(!log.contains(password), "the log shows {password}: {log}");
    }
}
