//! Test helpers (feature `test-support`), shared by the tests of every crate that needs a database.
//!
//! - [`service_missing`]: the one rule for a service a test needs but cannot reach. Under `CI=true`
//!   the test fails (a missing service must never turn a run green); elsewhere it prints a loud
//!   `SKIPPED` line and the test returns.
//! - [`fresh_postgres`]: a new, empty database per call (`parkmate_test_<random>`), created on the
//!   maintenance connection and dropped again when the handle is dropped, so runs never share state.

use std::fmt::Display;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The maintenance database tests create their databases from; `PARKMATE_TEST_POSTGRES_URL`
/// overrides it.
pub const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long a test waits to learn whether a service is there at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Call when a required service is unreachable: panics under `CI=true`, otherwise prints a loud
/// skip message. The caller returns from the test afterwards.
pub fn service_missing(service: &str, at: &str, error: &dyn Display) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{service} not reachable at {at} ({error}); CI=true requires it");
    }
    eprintln!(
        "\n==========\nSKIPPED: {service} not reachable at {at} ({error})\n\
         (set CI=true to make this a failure)\n==========\n"
    );
}

fn admin_url() -> String {
    std::env::var("PARKMATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.to_owned())
}

/// A database of its own for one test; dropped (with any connections still open to it) when this
/// handle is dropped, also when the test panics.
pub struct TestPostgres {
    /// Connect here: `postgres://…/parkmate_test_<random>`.
    pub url: String,
    name: String,
    admin_url: String,
}

/// Creates a fresh database, or returns `None` after [`service_missing`] when PostgreSQL is not
/// reachable (a failure under `CI=true`).
pub async fn fresh_postgres() -> Option<TestPostgres> {
    let admin_url = admin_url();
    let mut conn =
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(&admin_url)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                service_missing("PostgreSQL", &admin_url, &e);
                return None;
            }
            Err(_) => {
                service_missing("PostgreSQL", &admin_url, &"connect timed out");
                return None;
            }
        };
    let name = format!("parkmate_test_{:016x}", rand::random::<u64>());
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("the test role may create databases");
    let _ = conn.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .expect("an admin URL names its database");
    Some(TestPostgres {
        url: format!("{base}/{name}"),
        name,
        admin_url,
    })
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Drop runs outside async code (maybe while unwinding): use a small runtime on a thread
        // of its own. A failure only leaves a database behind; it never fails the test.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    if let Err(e) = sqlx::raw_sql(&sql).execute(&mut conn).await {
                        eprintln!("could not drop the test database: {e}");
                    }
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}
