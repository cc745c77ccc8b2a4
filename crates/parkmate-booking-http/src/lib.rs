//! The HTTP API of the parking domain (`docs/booking-api.md`), as one axum [`Router`] the server
//! merges, plus its OpenAPI document generated from these handlers ([`openapi`]; the server
//! serves it at `/api/openapi.json`, merged with the notification core's routes).
//!
//! Handlers are thin: authenticate ([`AuthUser`]), parse the wire DTO into domain values (422 with
//! a stable code), call the domain (which decides authorisation and state); `?` turns every
//! failure into JSON through [`Error`]. Bad ids and queries are 400, as everywhere on the server
//! ([`parkmate_auth::extract`]). Login and register are rate-limited and their password hashing
//! bounded ([`limits`]).
//!
//! Over 500 lines on purpose: one thin handler per route of docs/booking-api.md with its OpenAPI
//! annotation; the DTOs live in their own modules.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use parkmate_auth::{
    ApiError, ApiJson, ApiKey, ApiQuery, AuthUser, Authenticator, ClientIp, ExpectedApiKey, PathId,
    TrustedProxies,
};
use parkmate_domain::{
    Actor, BookingMinutes, DemoAccount, Domain, DomainError, Email, Name, NewBooking, Password,
    PaymentChoice,
};
use parkmate_protocol::Role;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

pub mod dto;
mod error;
pub mod limits;

use dto::*;
pub use error::Error;
pub use limits::AccountLimits;

/// Everything the booking routes need; the server constructs it and merges [`router`].
#[derive(Clone)]
pub struct BookingApi {
    pub domain: Domain,
    /// Checks tokens (and the accounts behind the ones it minted), and mints them.
    pub auth: Authenticator,
    /// Lifetime of the tokens `register`/`login` mint, in seconds.
    pub token_ttl_secs: u64,
    /// The demo logins when demo data is on (`GET /api/auth/demo-accounts`); `None` answers 404.
    pub demo_accounts: Option<Arc<Vec<DemoAccount>>>,
    /// The backend API key; required by `POST /api/test/clock`.
    pub api_key: ExpectedApiKey,
    /// Rate limits and the hashing bound of login and register.
    pub limits: Arc<AccountLimits>,
    /// Whose `X-Forwarded-For` names the client, for the per-address limits.
    pub trusted_proxies: TrustedProxies,
}

impl std::fmt::Debug for BookingApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookingApi")
            .field("token_ttl_secs", &self.token_ttl_secs)
            .finish_non_exhaustive()
    }
}

impl BookingApi {
    /// A booking as this API answers it (with `lapses_at` from the domain's rules).
    fn dto(&self, b: parkmate_domain::Booking) -> BookingDto {
        BookingDto::new(b, self.domain.rules().request_hold)
    }
}

impl FromRef<BookingApi> for Authenticator {
    fn from_ref(api: &BookingApi) -> Authenticator {
        api.auth.clone()
    }
}

impl FromRef<BookingApi> for TrustedProxies {
    fn from_ref(api: &BookingApi) -> TrustedProxies {
        api.trusted_proxies.clone()
    }
}

impl FromRef<BookingApi> for ExpectedApiKey {
    fn from_ref(api: &BookingApi) -> ExpectedApiKey {
        api.api_key.clone()
    }
}

/// The booking routes, with their state applied, ready to merge into any router. The test clock
/// route exists only when the domain's clock is manual.
pub fn router<S>(api: BookingApi) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut r = Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/demo-accounts", get(demo_accounts))
        .route("/api/me", get(me))
        .route("/api/users", get(users))
        .route("/api/lots", get(lots))
        .route("/api/lots/{id}", get(lot))
        .route("/api/lots/{id}/employees", post(assign_employee))
        .route("/api/bookings", get(bookings).post(create_booking))
        .route("/api/bookings/{id}", get(booking))
        .route("/api/bookings/{id}/approve", post(approve))
        .route("/api/bookings/{id}/decline", post(decline))
        .route("/api/bookings/{id}/verify-cash", post(verify_cash))
        .route("/api/bookings/{id}/car-wash-done", post(car_wash_done))
        .route("/api/bookings/{id}/renew", post(renew));
    if api.domain.clock().as_manual().is_some() {
        r = r.route("/api/test/clock", post(advance_clock));
    }
    r.with_state(api)
}

/// The generated OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Parkmate booking API", description = "The parking domain; see docs/booking-api.md."),
    paths(
        register, login, demo_accounts, me, users, lots, lot, assign_employee, bookings, create_booking, booking,
        approve, decline, verify_cash, car_wash_done, renew, advance_clock
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and extractors

fn actor(user: &AuthUser) -> Actor {
    Actor {
        user_id: user.0.user_id,
        role: user.0.role,
    }
}

/// An optional JSON body: empty is `T::default()`, anything else must be valid JSON of `T`.
fn optional_json<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable("invalid_body", e.to_string())
        } else {
            ApiError::bad_request("invalid_json", e.to_string())
        }
    })
}

type ApiResult<T> = Result<T, Error>;

// ---------------------------------------------------------------------------------------------
// Accounts

/// A token for the account, at its current version (so the store can revoke it later).
async fn issue(api: &BookingApi, user: parkmate_domain::User) -> ApiResult<AuthResponse> {
    let token = api
        .auth
        .mint_for_account(user.id, api.token_ttl_secs)
        .await
        .map_err(ApiError::from)?;
    Ok(AuthResponse {
        token,
        user: user.into(),
    })
}

/// Register a driver account.
#[utoipa::path(post, path = "/api/auth/register", tag = "accounts", security(()), request_body = RegisterRequest,
    responses((status = 201, body = AuthResponse), (status = 409, description = "`email_taken`", body = ErrorBody),
              (status = 422, description = "`invalid_name`, `invalid_email`, `invalid_password`", body = ErrorBody),
              (status = 429, description = "`rate_limited` (`Retry-After`)", body = ErrorBody),
              (status = 503, description = "`overloaded`: too many password hashes at once (`Retry-After`)", body = ErrorBody)))]
async fn register(
    State(api): State<BookingApi>,
    ip: ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    api.limits.register_per_ip.check(&ip.bucket())?;
    let name = Name::parse(&req.name)?;
    let email = Email::parse(&req.email)?;
    let password = Password::parse(&req.password)?;
    let _hashing = api.limits.hashing_slot().await?;
    let user = api.domain.register(name, email, password).await?;
    Ok((StatusCode::CREATED, Json(issue(&api, user).await?)))
}

/// Log in; the token also opens the notification socket.
#[utoipa::path(post, path = "/api/auth/login", tag = "accounts", security(()), request_body = LoginRequest,
    responses((status = 200, body = AuthResponse), (status = 401, description = "`invalid_credentials`", body = ErrorBody),
              (status = 422, description = "`invalid_password`: longer than any password can be", body = ErrorBody),
              (status = 429, description = "`rate_limited`, per address or per account (`Retry-After`)", body = ErrorBody),
              (status = 503, description = "`overloaded`: too many password hashes at once (`Retry-After`)", body = ErrorBody)))]
async fn login(
    State(api): State<BookingApi>,
    ip: ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<AuthResponse>> {
    api.limits.login_per_ip.check(&ip.bucket())?;
    // No password that could be registered is longer: refused before any hashing.
    if req.password.chars().count() > Password::MAX {
        return Err(parkmate_domain::InvalidInput::Password.into());
    }
    let account = req.email.trim().to_lowercase();
    // Bounded like the password, so the per-account buckets cannot be fed huge keys.
    if account.len() <= 320 {
        api.limits.login_per_account.check(&account)?;
    }
    let _hashing = api.limits.hashing_slot().await?;
    let user = api.domain.login(&req.email, &req.password).await?;
    Ok(Json(issue(&api, user).await?))
}

/// The demo logins (development only).
#[utoipa::path(get, path = "/api/auth/demo-accounts", tag = "accounts", security(()),
    responses((status = 200, body = DemoAccountsResponse), (status = 404, description = "demo data is off", body = ErrorBody)))]
async fn demo_accounts(State(api): State<BookingApi>) -> ApiResult<Json<DemoAccountsResponse>> {
    let accounts = api
        .demo_accounts
        .as_ref()
        .ok_or_else(|| ApiError::not_found("demo data is off"))?;
    Ok(Json(DemoAccountsResponse {
        accounts: accounts.iter().map(DemoAccountDto::from).collect(),
    }))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/me", tag = "accounts",
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody)))]
async fn me(State(api): State<BookingApi>, user: AuthUser) -> ApiResult<Json<UserDto>> {
    match api.domain.user(user.0.user_id).await {
        Ok(u) => Ok(Json(u.into())),
        // A valid token for an account that no longer exists (e.g. a fresh database).
        Err(DomainError::NotFound(_)) => {
            Err(ApiError::unauthorized("invalid_token", "the token's user does not exist").into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Users, optionally of one role (admins only).
#[utoipa::path(get, path = "/api/users", tag = "accounts", params(UsersQuery),
    responses((status = 200, body = UsersResponse), (status = 400, description = "`invalid_query`", body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn users(
    State(api): State<BookingApi>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<UsersQuery>,
) -> ApiResult<Json<UsersResponse>> {
    let role = match q.role.as_deref() {
        None | Some("") => None,
        Some(r) => Some(
            r.parse::<Role>()
                .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?,
        ),
    };
    let items = api.domain.users(actor(&user), role).await?;
    Ok(Json(UsersResponse {
        items: items.into_iter().map(UserDto::from).collect(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Lots

/// All lots, or (`mine=true`) the caller's own.
#[utoipa::path(get, path = "/api/lots", tag = "lots", params(LotsQuery),
    responses((status = 200, body = LotsResponse), (status = 400, description = "`invalid_query`", body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn lots(
    State(api): State<BookingApi>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<LotsQuery>,
) -> ApiResult<Json<LotsResponse>> {
    let items = api
        .domain
        .lots(actor(&user), q.mine.unwrap_or(false))
        .await?;
    Ok(Json(LotsResponse {
        items: items.into_iter().map(LotDto::from).collect(),
    }))
}

/// One lot with its slots (and whether each is occupied now) and employees.
#[utoipa::path(get, path = "/api/lots/{id}", tag = "lots", params(("id" = i64, Path)),
    responses((status = 200, body = LotDto), (status = 404, body = ErrorBody)))]
async fn lot(
    State(api): State<BookingApi>,
    _user: AuthUser,
    PathId(id): PathId,
) -> ApiResult<Json<LotDto>> {
    Ok(Json(api.domain.lot(id).await?.into()))
}

/// Assign an employee to a lot (admins). Event 10 to the lot's owner.
#[utoipa::path(post, path = "/api/lots/{id}/employees", tag = "lots", params(("id" = i64, Path)),
    request_body = AssignEmployeeRequest,
    responses((status = 200, body = LotDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, description = "`not_an_employee`", body = ErrorBody)))]
async fn assign_employee(
    State(api): State<BookingApi>,
    user: AuthUser,
    PathId(id): PathId,
    ApiJson(req): ApiJson<AssignEmployeeRequest>,
) -> ApiResult<Json<LotDto>> {
    let lot = api
        .domain
        .assign_employee(actor(&user), id, req.employee_id)
        .await?;
    Ok(Json(lot.into()))
}

// ---------------------------------------------------------------------------------------------
// Bookings

/// The bookings the caller may see.
#[utoipa::path(get, path = "/api/bookings", tag = "bookings",
    responses((status = 200, body = BookingsResponse), (status = 401, body = ErrorBody)))]
async fn bookings(
    State(api): State<BookingApi>,
    user: AuthUser,
) -> ApiResult<Json<BookingsResponse>> {
    let items = api.domain.bookings(actor(&user)).await?;
    Ok(Json(BookingsResponse {
        items: items.into_iter().map(|b| api.dto(b)).collect(),
    }))
}

/// Book a slot from now (drivers): a request that holds the slot until an admin decides, or until
/// it lapses after the request hold. Online payments are charged first and always end booked or
/// refunded. Event 8 to the lot's owner.
#[utoipa::path(post, path = "/api/bookings", tag = "bookings", request_body = CreateBookingRequest,
    responses((status = 201, body = BookingDto),
              (status = 402, description = "`payment_declined`", body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "`slot_taken`, `too_many_bookings`", body = ErrorBody),
              (status = 422, description = "`invalid_duration`, `card_required`, `invalid_card_number`, `car_wash_unavailable`", body = ErrorBody),
              (status = 502, description = "`payment_unavailable`", body = ErrorBody)))]
async fn create_booking(
    State(api): State<BookingApi>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateBookingRequest>,
) -> ApiResult<impl IntoResponse> {
    let new = NewBooking {
        slot_id: req.slot_id,
        minutes: BookingMinutes::parse(req.duration_minutes)?,
        car_wash: req.car_wash,
        payment: PaymentChoice::parse(&req.payment_method, req.card_number.as_deref())?,
    };
    let b = api.domain.create_booking(actor(&user), new).await?;
    Ok((StatusCode::CREATED, Json(api.dto(b))))
}

/// One booking, if the caller may see it.
#[utoipa::path(get, path = "/api/bookings/{id}", tag = "bookings", params(("id" = i64, Path)),
    responses((status = 200, body = BookingDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn booking(
    State(api): State<BookingApi>,
    user: AuthUser,
    PathId(id): PathId,
) -> ApiResult<Json<BookingDto>> {
    Ok(Json(api.dto(api.domain.booking(actor(&user), id).await?)))
}

/// Confirm a request (admins).
#[utoipa::path(post, path = "/api/bookings/{id}/approve", tag = "bookings", params(("id" = i64, Path)),
    responses((status = 200, body = BookingDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "`invalid_transition`", body = ErrorBody)))]
async fn approve(
    State(api): State<BookingApi>,
    user: AuthUser,
    PathId(id): PathId,
) -> ApiResult<Json<BookingDto>> {
    Ok(Json(api.dto(api.domain.approve(actor(&user), id).await?)))
}

/// Decline a request (admins), refunding its online payments. Event 6 to the driver, with
/// `data.refund_cents`.
#[utoipa::path(post, path = "/api/bookings/{id}/decline", tag = "bookings", params(("id" = i64, Path)),
    request_body(content = DeclineRequest, description = "optional"),
    responses((status = 200, body = BookingDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "`invalid_transition`", body = ErrorBody)))]
async fn decline(
    State(api): State<BookingApi>,
    user: AuthUser,
    PathId(id): PathId,
    body: Bytes,
) -> ApiResult<Json<BookingDto>> {
    let req: DeclineRequest = optional_json(&body)?;
    let b = api
        .domain
        .decline(actor(&user), id, req.reason.as_deref())
        .await?;
    Ok(Json(api.dto(b)))
}

/// Confirm the cash of a window was received (the lot's owner, admins): the window named, or the
/// oldest one not yet verified. Event 7 to the driver, once per window.
#[utoipa::path(post, path = "/api/bookings/{id}/verify-cash", tag = "bookings", params(("id" = i64, Path)),
    request_body(content = VerifyCashRequest, description = "optional"),
    responses((status = 200, body = BookingDto), (status = 403, body = ErrorBody),
              (status = 404, description = "`not_found` (also an unknown window)", body = ErrorBody),
              (status = 409, description = "`not_cash_payment`, `invalid_transition`", body = ErrorBody)))]
async fn verify_cash(
    State(api): State<BookingApi>,
    user: AuthUser,
    PathId(id): PathId,
    body: Bytes,
) -> ApiResult<Json<BookingDto>> {
    let req: VerifyCashRequest = optional_json(&body)?;
    let b = api
        .domain
        .verify_cash_of(actor(&user), id, req.window)
        .await?;
    Ok(Json(api.dto(b)))
}

/// Mark the car wash done (the lot's employees and owner). Event 9 to the driver.
#[utoipa::path(post, path = "/api/bookings/{id}/car-wash-done", tag = "bookings", params(("id" = i64, Path)),
    responses((status = 200, body = BookingDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "`no_car_wash`, `invalid_transition`", body = ErrorBody)))]
async fn car_wash_done(
    State(api): State<BookingApi>,
    user: AuthUser,
    PathId(id): PathId,
) -> ApiResult<Json<BookingDto>> {
    Ok(Json(
        api.dto(api.domain.car_wash_done(actor(&user), id).await?),
    ))
}

/// Renew an expired booking from now, paying for a new window (its driver). A booking approved
/// once is `confirmed` again; one never approved becomes a new request (`requested`). Event 3 on
/// success; a refusal also sends event 4 with the reason.
#[utoipa::path(post, path = "/api/bookings/{id}/renew", tag = "bookings", params(("id" = i64, Path)),
    request_body = RenewRequest,
    responses((status = 200, body = BookingDto),
              (status = 402, description = "`payment_declined` (event 4)", body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "`not_renewable`, `slot_taken`, `too_many_bookings` (event 4)", body = ErrorBody),
              (status = 422, body = ErrorBody),
              (status = 502, description = "`payment_unavailable` (event 4)", body = ErrorBody)))]
async fn renew(
    State(api): State<BookingApi>,
    user: AuthUser,
    PathId(id): PathId,
    ApiJson(req): ApiJson<RenewRequest>,
) -> ApiResult<Json<BookingDto>> {
    let minutes = BookingMinutes::parse(req.duration_minutes)?;
    let payment = PaymentChoice::parse(&req.payment_method, req.card_number.as_deref())?;
    let b = api.domain.renew(actor(&user), id, minutes, payment).await?;
    Ok(Json(api.dto(b)))
}

// ---------------------------------------------------------------------------------------------
// Test clock

/// Longest single advance: far beyond any booking (24 h), short of overflow games.
const MAX_ADVANCE_SECONDS: i64 = 30 * 24 * 3600;

/// Move the manual clock forward (only with `PARKMATE_CLOCK=manual`; API key). Deadlines that
/// became due have fired, and their notifications are stored, when this answers.
#[utoipa::path(post, path = "/api/test/clock", tag = "testing", request_body = ClockRequest,
    responses((status = 200, body = ClockResponse), (status = 401, description = "`unauthorized`", body = ErrorBody),
              (status = 422, description = "`invalid_advance`", body = ErrorBody)))]
async fn advance_clock(
    State(api): State<BookingApi>,
    _key: ApiKey,
    ApiJson(req): ApiJson<ClockRequest>,
) -> ApiResult<Json<ClockResponse>> {
    if !(0..=MAX_ADVANCE_SECONDS).contains(&req.advance_seconds) {
        return Err(ApiError::unprocessable(
            "invalid_advance",
            format!("advance_seconds must be between 0 and {MAX_ADVANCE_SECONDS}"),
        )
        .into());
    }
    let now = api
        .domain
        .advance_clock(chrono::Duration::seconds(req.advance_seconds))
        .await?;
    Ok(Json(ClockResponse {
        now: parkmate_protocol::rfc3339(now),
    }))
}
