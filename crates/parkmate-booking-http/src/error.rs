//! [`Error`], what every booking handler returns: `?` converts a refusal of the edge
//! ([`ApiError`]), a domain error and a wire value the domain would not parse, and
//! [`IntoResponse`] answers each as `{"code","message"}` JSON. Server-side failures (the database,
//! password hashing) are logged with their cause and answered 500 without it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parkmate_auth::ApiError;
use parkmate_domain::{DomainError, InvalidInput};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A request value the domain's parsers refused (422 with the value's own code).
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Api(e) => e,
            Error::Invalid(e) => ApiError::unprocessable(e.code(), e.to_string()),
            Error::Domain(e) => domain(e),
        }
        .into_response()
    }
}

/// A domain error as the HTTP edge answers it.
fn domain(e: DomainError) -> ApiError {
    let status = match &e {
        DomainError::Invalid(_)
        | DomainError::CarWashUnavailable
        | DomainError::NotAnEmployee(_) => StatusCode::UNPROCESSABLE_ENTITY,
        DomainError::NotFound(_) | DomainError::ClockNotManual => StatusCode::NOT_FOUND,
        DomainError::Forbidden(_) => StatusCode::FORBIDDEN,
        DomainError::InvalidCredentials => StatusCode::UNAUTHORIZED,
        DomainError::EmailTaken
        | DomainError::SlotTaken
        | DomainError::InvalidTransition { .. }
        | DomainError::NotRenewable(_)
        | DomainError::TooManyBookings(_)
        | DomainError::NotCash
        | DomainError::NoCarWash => StatusCode::CONFLICT,
        DomainError::PaymentDeclined(_) => StatusCode::PAYMENT_REQUIRED,
        DomainError::PaymentUnavailable(_) => StatusCode::BAD_GATEWAY,
        DomainError::Unavailable(_) => {
            // An outage, not a bug: logged, and answered so clients retry later.
            tracing::warn!(error = ?e, "database unavailable");
            return ApiError::unavailable(
                "unavailable",
                "the database is unavailable, retry later",
            );
        }
        DomainError::Db(_) | DomainError::Corrupt(_) | DomainError::Hashing(_) => {
            return ApiError::internal(&e);
        }
    };
    // The reason alone for payments (the client shows it as is), the error text otherwise.
    let message = match &e {
        DomainError::PaymentDeclined(reason) | DomainError::PaymentUnavailable(reason) => {
            reason.clone()
        }
        other => other.to_string(),
    };
    ApiError::new(status, e.code(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::BodyExt;

    #[tokio::test]
    async fn server_side_failures_answer_500_without_their_details() {
        let cause = DomainError::Corrupt("row 7 holds a negative amount".into());
        let response = Error::from(cause).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal");
        assert!(!body.to_string().contains("row 7"), "{body}");
    }
}
