//! The `parkmate` command line.
//!
//! Some flags fall back to `PARKMATE_*` variables of their own (`PARKMATE_CONFIG`,
//! `PARKMATE_SERVER`). Those share the settings' prefix, so the settings loader is handed their
//! names, read from this very definition ([`own_env_vars`]), and skips them instead of refusing
//! them as unknown settings. Only `serve` may create files besides the database: the development
//! secrets; `token` and `notify` read them if they exist.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use parkmate_protocol::Role;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::startup::Application;

#[derive(Parser)]
#[command(
    name = "parkmate",
    version,
    about = "Parkmate Notify: real-time notifications for Parkmate, persisted and never lost"
)]
struct Cli {
    /// Configuration file (optional); `PARKMATE_*` environment variables override it.
    #[arg(
        long,
        global = true,
        default_value = "parkmate.toml",
        env = "PARKMATE_CONFIG"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default): WebSockets, the HTTP API and the web client.
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Mint a signed user token for development and testing.
    Token(TokenArgs),
    /// Send a notification through a running server's publish API.
    Notify(NotifyArgs),
    /// Change an account in the database; its tokens stop working on their next use.
    #[command(subcommand)]
    Account(AccountCommand),
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Give an account another role; the tokens minted for it are revoked (they name the old one).
    SetRole {
        #[arg(long)]
        user: i64,
        /// user, owner, admin or employee.
        #[arg(long)]
        role: Role,
    },
    /// Revoke every token minted for an account so far (a stolen token, a leaked laptop); its
    /// open sockets close with 4003 within ws.account_check_interval.
    RevokeTokens {
        #[arg(long)]
        user: i64,
    },
}

#[derive(Args)]
struct TokenArgs {
    /// The user id the token is for (`sub`).
    #[arg(long)]
    user: i64,
    /// The user's role: user, owner, admin or employee.
    #[arg(long, default_value = "user")]
    role: Role,
    /// Lifetime in seconds (default: the configured token_ttl).
    #[arg(long)]
    ttl_secs: Option<u64>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("to").required(true).args(["user", "users", "role", "broadcast"])))]
struct NotifyArgs {
    /// One user id.
    #[arg(long)]
    user: Option<i64>,
    /// Several user ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    users: Option<Vec<i64>>,
    /// Everyone with this role (user, owner, admin, employee).
    #[arg(long)]
    role: Option<String>,
    /// Everyone.
    #[arg(long)]
    broadcast: bool,
    /// success, error, warning, info or confirm.
    #[arg(long, default_value = "info")]
    level: String,
    /// Machine-readable event kind.
    #[arg(long)]
    event: Option<String>,
    /// Extra data, a JSON object.
    #[arg(long)]
    data: Option<String>,
    /// Server base URL (default: http://<configured bind>).
    #[arg(long, env = "PARKMATE_SERVER")]
    server: Option<String>,
    /// The message text.
    message: String,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Variables of the same prefix that belong to our clients, not to the server: the Python
/// client's (`clients/python`, the original `send_ws_notification` for Django). A shell that
/// exports them for a Django project must still be able to start the server.
const CLIENT_ENV_VARS: [&str; 2] = ["PARKMATE_NOTIFY_URL", "PARKMATE_NOTIFY_API_KEY"];

/// The `PARKMATE_*` variables that are not settings: the command line's own, from its definition
/// (every flag of every subcommand with an `env` fallback), and our clients'.
pub fn own_env_vars() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        out.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_env())
                .filter_map(|v| v.to_str())
                .filter(|v| v.starts_with(crate::config::ENV_PREFIX))
                .map(str::to_owned),
        );
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut vars: Vec<String> = CLIENT_ENV_VARS.iter().map(|v| (*v).to_owned()).collect();
    walk(&Cli::command(), &mut vars);
    vars.sort();
    vars.dedup();
    vars
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::load(&cli.config, &own_env_vars())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let url = parkmate_db::redact_url(settings.database.url.as_str());
            let db = parkmate_db::Db::open(settings.database.url.as_str())
                .await
                .with_context(|| format!("migrating the database at {url} failed"))?;
            db.close().await;
            println!("database at {url} is up to date");
            Ok(())
        }
        Command::Token(args) => {
            settings.use_dev_secrets()?;
            let keys =
                parkmate_auth::TokenKeys::new(settings.jwt_secret()?.expose_secret().as_bytes());
            let ttl = args.ttl_secs.unwrap_or(settings.token_ttl.as_secs());
            println!("{}", keys.mint(args.user, args.role, ttl));
            Ok(())
        }
        Command::Notify(args) => {
            settings.use_dev_secrets()?;
            notify(settings, args).await
        }
        Command::Account(command) => account(settings, command).await,
    }
}

async fn account(settings: Settings, command: AccountCommand) -> anyhow::Result<()> {
    let url = parkmate_db::redact_url(settings.database.url.as_str());
    let db = parkmate_db::Db::open(settings.database.url.as_str())
        .await
        .with_context(|| format!("cannot open the database at {url}"))?;
    let mut tx = db.begin().await?;
    let (user, found, done) = match command {
        AccountCommand::SetRole { user, role } => (
            user,
            parkmate_db::accounts::set_role(&mut tx, user, role).await?,
            format!("user {user} is now {role}; their earlier tokens are revoked"),
        ),
        AccountCommand::RevokeTokens { user } => (
            user,
            parkmate_db::accounts::revoke_tokens(&mut tx, user).await?,
            format!("every token minted for user {user} so far is revoked"),
        ),
    };
    tx.commit().await?;
    db.close().await;
    anyhow::ensure!(found, "no account {user} in the database at {url}");
    println!("{done}");
    Ok(())
}

async fn serve(mut settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init_logs(&settings.log, settings.log_format);
    if let Some(path) = settings.generate_dev_secrets()? {
        tracing::warn!(
            "generated a development JWT secret and API key in {}; set PARKMATE_JWT_SECRET and PARKMATE_API_KEY in production",
            path.display()
        );
    }
    if let Some(path) = settings.generate_dev_vapid()? {
        tracing::warn!(
            "generated a development VAPID key pair for Web Push in {}; set PARKMATE_PUSH_VAPID_PRIVATE_KEY in production",
            path.display()
        );
    }
    let app = Application::build(settings).await?;
    tracing::info!(
        "Parkmate Notify listening on {}://{}",
        app.scheme(),
        app.local_addr()
    );
    // On a worker thread rather than in `block_on` on the main thread: the accept loop then
    // spawns each connection's task into its own worker's queue instead of the shared inject
    // queue plus a wake-up of a parked worker, a cross-thread hop per connection in a storm.
    tokio::spawn(app.run_until_stopped(shutdown_signal()))
        .await
        .context("the server task panicked")?
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: draining (not ready, sockets closed with 1012), then stopping");
}

async fn notify(settings: Settings, args: NotifyArgs) -> anyhow::Result<()> {
    let mut body = serde_json::json!({ "level": args.level, "message": args.message });
    if let Some(u) = args.user {
        body["user_id"] = u.into();
    }
    if let Some(us) = args.users {
        body["user_ids"] = us.into();
    }
    if let Some(r) = args.role {
        body["role"] = r.into();
    }
    if args.broadcast {
        body["broadcast"] = true.into();
    }
    if let Some(e) = args.event {
        body["event"] = e.into();
    }
    if let Some(d) = args.data {
        body["data"] = serde_json::from_str(&d).context("--data is not JSON")?;
    }
    // The CLI's HTTP client is built without TLS; say so instead of failing on the scheme.
    let https_only = "`parkmate notify` speaks plain HTTP only; publish to a TLS node with an \
                      HTTPS client such as curl (docs/deployment.md)";
    let server = match args.server {
        Some(s)
            if s.get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("https://")) =>
        {
            anyhow::bail!("{https_only}")
        }
        Some(s) => s,
        None if settings.tls.is_some() => {
            anyhow::bail!("this configuration serves HTTPS (PARKMATE_TLS_CERT): {https_only}")
        }
        None => format!("http://{}", settings.bind),
    };
    let url = format!("{}/api/notifications", server.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(settings.api_key()?.expose_secret())
        // One key per call: a load balancer that passes the publish on to another node after a
        // failure (docs/deployment.md) cannot store it twice.
        .header(
            "idempotency-key",
            format!("cli-{:032x}", rand::random::<u128>()),
        )
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("{status}: {text}");
    }
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_variables_come_from_the_definition() {
        let vars = own_env_vars();
        assert!(vars.contains(&"PARKMATE_CONFIG".to_owned()), "{vars:?}");
        assert!(vars.contains(&"PARKMATE_SERVER".to_owned()), "{vars:?}");
    }

    /// Skipping is only safe for variables that are not settings: a flag that took a setting's
    /// variable as its fallback would silently hide that setting from the server.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn no_own_variable_is_a_setting() {
        for var in own_env_vars() {
            figment::Jail::expect_with(|jail| {
                jail.set_env(&var, "x");
                let err = Settings::load(std::path::Path::new("none.toml"), &[])
                    .expect_err(&var)
                    .to_string();
                assert!(err.contains("unknown field"), "{var}: {err}");
                Settings::load(std::path::Path::new("none.toml"), &own_env_vars())
                    .unwrap_or_else(|e| panic!("{var}: {e}"));
                Ok(())
            });
        }
    }
}
