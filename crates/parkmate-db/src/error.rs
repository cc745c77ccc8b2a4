//! What can go wrong in the database, classified where callers branch on it: a refused overlap
//! (`SlotTaken`) and a duplicate key (`Duplicate`) are answers, not failures, and both engines
//! report them the same way whatever their drivers said (see `classify` in `sqlite.rs` and
//! `postgres.rs`).

/// The one error type of this crate.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The row asked for does not exist (or is not visible to the asker).
    #[error("not found")]
    NotFound,
    /// The database refused an active booking overlapping another on its slot: SQLite's
    /// `slot_taken` trigger or PostgreSQL's `slot_taken` exclusion constraint.
    #[error("the slot is already booked for that time")]
    SlotTaken,
    /// A unique constraint refused a row (e.g. an email that already has an account).
    #[error("a row with this key already exists")]
    Duplicate,
    /// The database cannot be reached right now (no connection within the pool's timeout, or the
    /// connection broke): a retry later may succeed, so the HTTP edge answers 503.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("unsupported database URL `{0}`: expected sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Sqlx(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the database location")]
    Io(#[from] std::io::Error),
}

impl DbError {
    pub(crate) fn corrupt(msg: impl Into<String>) -> DbError {
        DbError::Corrupt(msg.into())
    }

    /// Errors every engine classifies alike: a broken or exhausted pool is a passing outage.
    pub(crate) fn from_driver(e: sqlx::Error) -> DbError {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => DbError::Unavailable(e),
            sqlx::Error::RowNotFound => DbError::NotFound,
            e => DbError::Sqlx(e),
        }
    }
}

/// A database URL fit for a log line or an error: the password (and any query string, which may
/// carry one too) replaced by `***`. Operators paste start-up errors into tickets.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((a, _)) => (a, Some("***")),
        None => (rest, None),
    };
    let (authority, path) = match authority_and_path.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (authority_and_path, None),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}");
    if let Some(p) = path {
        out.push('/');
        out.push_str(p);
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_a_log_line() {
        assert_eq!(
            redact_url("postgres://postgres:hunter2@db.example:5432/parkmate"),
            "postgres://postgres:***@db.example:5432/parkmate"
        );
        assert_eq!(
            redact_url("postgres://app@127.0.0.1/parkmate?password=hunter2&sslmode=require"),
            "postgres://app@127.0.0.1/parkmate?***"
        );
        assert_eq!(
            redact_url("postgresql://u:p%40ss@h/db"),
            "postgresql://u:***@h/db"
        );
        assert_eq!(
            redact_url("sqlite://data/parkmate.db"),
            "sqlite://data/parkmate.db"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert!(!redact_url("redis://:secret@h:6379/0").contains("secret"));
    }
}
