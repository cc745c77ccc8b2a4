//! [`Error`], what the server's HTTP handlers return: `?` converts a refusal of the edge
//! ([`ApiError`]), a store error and a notifier error, and [`IntoResponse`] answers each as
//! `{"code","message"}` JSON. Server-side failures are logged with their cause chain (once, here)
//! and answered 500 without it.

use axum::response::{IntoResponse, Response};
use parkmate_auth::ApiError;
use parkmate_db::DbError as StoreError;
use parkmate_notifier::NotifyError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Api(e) => e,
            Error::Store(e) | Error::Notify(NotifyError::Store(e)) => store(e),
            Error::Notify(NotifyError::ShuttingDown) => {
                ApiError::unavailable("shutting_down", "the server is shutting down, retry")
                    .retry_after(std::time::Duration::from_secs(1))
            }
            Error::Notify(NotifyError::StoreUnavailable) => store_unavailable(),
            Error::Notify(e @ NotifyError::CommitFailed(_)) => ApiError::internal(&e),
        }
        .into_response()
    }
}

fn store(e: StoreError) -> ApiError {
    match e {
        // The store's only "not found" is a notification the caller cannot see.
        StoreError::NotFound => ApiError::not_found("no such notification"),
        e @ StoreError::Unavailable(_) => {
            tracing::warn!(error = ?e, "store unavailable");
            store_unavailable()
        }
        e => ApiError::internal(&e),
    }
}

/// An outage of the database: worth a retry later, so 503 rather than 500.
fn store_unavailable() -> ApiError {
    ApiError::unavailable("unavailable", "the store is unavailable, retry later")
        .retry_after(std::time::Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlx_timeout() -> parkmate_db::SqlxError {
        parkmate_db::SqlxError::PoolTimedOut
    }

    #[test]
    fn statuses() {
        let status = |e: Error| e.into_response().status().as_u16();
        assert_eq!(status(StoreError::NotFound.into()), 404);
        assert_eq!(status(StoreError::Corrupt("x".into()).into()), 500);
        assert_eq!(status(NotifyError::ShuttingDown.into()), 503);
        assert_eq!(status(NotifyError::StoreUnavailable.into()), 503);
        assert_eq!(status(StoreError::Unavailable(sqlx_timeout()).into()), 503);
        assert_eq!(
            status(NotifyError::Store(StoreError::Corrupt("x".into())).into()),
            500
        );
        assert_eq!(status(ApiError::forbidden("no").into()), 403);
    }
}
