//! The push routes (`docs/push.md`, in the OpenAPI document through [`openapi`]):
//!
//! | route | who | answers |
//! |---|---|---|
//! | `GET /api/push/vapid-public-key` | anyone (it is public) | `{"public_key"}`; 404 `push_disabled` |
//! | `POST /api/push/subscriptions` | the signed-in person (token) | 201 new / 200 refreshed; 422 `invalid_subscription` naming the field; 409 `too_many_subscriptions` over `push.max_subscriptions_per_user`; 404 `push_disabled` |
//! | `DELETE /api/push/subscriptions` | the signed-in person, their own only | 204; 404 `not_found` |
//! | `GET`/`PUT /api/push/preferences` | the signed-in person, their own | per event kind in-app and push on/off (at most [`MAX_PREFERENCES`]), quiet hours; 422 naming the field |
//! | `GET /api/notifications/{id}/status` | publishers (API key) | the delivery funnel per recipient; 404 |
//!
//! A subscription is what the browser's `PushSubscription.toJSON()` gives. Its endpoint is a URL
//! the user chooses, which this server will later `POST` to: it is parsed under the endpoint
//! policy (https only and no private addresses in production, at most 2048 characters, checked
//! again at send time and on connection), and its keys must be a 65-byte P-256 point and a
//! 16-byte secret. The body limit (`http.max_body_bytes`) applies as everywhere.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use parkmate_auth::{ApiError, ApiJson, ApiKey, AuthUser, PathId};
use parkmate_db::{DeliveryStatus, SubscriptionSaved};
use parkmate_protocol::{Audience, rfc3339};
use parkmate_push::{Subscription, SubscriptionJson, SubscriptionKeys};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::error::Error;
use crate::push::URGENT_EVENTS;

/// Event kinds one person may set a preference for: more than the server's kinds (publishers add
/// their own), few enough that a preferences body stays small.
pub const MAX_PREFERENCES: usize = 64;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/push/vapid-public-key", get(vapid_public_key))
        .route(
            "/api/push/subscriptions",
            post(subscribe).delete(unsubscribe),
        )
        .route(
            "/api/push/preferences",
            get(preferences).put(set_preferences),
        )
        .route("/api/notifications/{id}/status", get(status))
}

/// These routes' part of the OpenAPI document (merged into the booking API's).
pub fn openapi() -> utoipa::openapi::OpenApi {
    PushDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(paths(
    vapid_public_key,
    subscribe,
    unsubscribe,
    preferences,
    set_preferences,
    status
))]
struct PushDoc;

/// The application server key browsers subscribe with.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VapidPublicKey {
    /// base64url of the 65-byte uncompressed P-256 point: `pushManager.subscribe({
    /// applicationServerKey })`.
    pub public_key: String,
}

/// `PushSubscription.toJSON()`, as the browser gives it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SubscriptionRequest {
    /// The push service's URL for this browser.
    pub endpoint: String,
    /// When the push service expires it (ms since the epoch), usually null. Not stored.
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<f64>,
    pub keys: SubscriptionKeysDto,
}

/// The subscription's keys, base64url.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SubscriptionKeysDto {
    /// The browser's P-256 public key (65 bytes).
    pub p256dh: String,
    /// The 16-byte authentication secret.
    pub auth: String,
}

/// Which subscription to remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeRequest {
    pub endpoint: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionResponse {
    pub id: i64,
}

/// A notification's delivery funnel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationStatus {
    pub id: i64,
    pub event: String,
    /// When it was stored (RFC 3339).
    pub stored_at: String,
    /// One entry per person it reached or owed a push to.
    pub recipients: Vec<RecipientStatus>,
}

/// One person's funnel of a notification; each time is RFC 3339, null when it did not happen.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecipientStatus {
    pub user_id: i64,
    /// A socket of theirs got it (known from its `ack`).
    pub delivered_at: Option<String>,
    /// A socket showed it (`ack`).
    pub seen_at: Option<String>,
    /// Read (`mark_read`, `mark_all_read` or the inbox API).
    pub read: bool,
    /// Whether it still owes a push, and from when.
    pub push_due_at: Option<String>,
    pub pushed_at: Option<String>,
    pub push_failed_at: Option<String>,
    pub push_attempts: i64,
}

/// One event kind's choice.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPreferenceDto {
    /// The event kind (`booking_renewed`, or a publisher's own): 1-64 of a-z, 0-9, `_`.
    pub event: String,
    /// Show it live in the app (clients apply this; the inbox keeps everything).
    pub in_app: bool,
    /// Push it when no socket acknowledged it.
    pub push: bool,
}

/// Quiet hours: pushes falling inside are held until they end, not dropped; urgent events are
/// pushed anyway.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursDto {
    /// An IANA time zone, e.g. `Europe/Paris`.
    pub time_zone: String,
    /// Local `HH:MM` when they start.
    pub start: String,
    /// Local `HH:MM` when they end; before `start` means the next day.
    pub end: String,
}

/// A person's preferences: the event kinds they chose for (any other kind takes the default),
/// and quiet hours.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesDto {
    pub events: Vec<EventPreferenceDto>,
    pub quiet_hours: Option<QuietHoursDto>,
}

/// What `GET /api/push/preferences` answers: the person's choices and the defaults.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PreferencesResponse {
    pub events: Vec<EventPreferenceDto>,
    pub quiet_hours: Option<QuietHoursDto>,
    /// Kinds not pushed unless chosen (every other kind is pushed and shown by default).
    pub push_off_by_default: Vec<String>,
    /// Kinds pushed at once and through quiet hours.
    pub urgent: Vec<String>,
}

fn push_disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "push_disabled",
        "Web Push is not enabled on this server (push.enabled, PARKMATE_PUSH_VAPID_PRIVATE_KEY)",
    )
}

/// The VAPID public key browsers subscribe with.
#[utoipa::path(get, path = "/api/push/vapid-public-key", tag = "push", security(()),
    responses((status = 200, body = VapidPublicKey), (status = 404, description = "push_disabled")))]
async fn vapid_public_key(State(state): State<AppState>) -> Result<Json<VapidPublicKey>, Error> {
    let push = state.push.as_ref().ok_or_else(push_disabled)?;
    Ok(Json(VapidPublicKey {
        public_key: push.public_key.clone(),
    }))
}

/// Register this browser for Web Push, for the signed-in person.
#[utoipa::path(post, path = "/api/push/subscriptions", tag = "push", security(("bearer" = [])), request_body = SubscriptionRequest,
    responses(
        (status = 201, body = SubscriptionResponse, description = "a new subscription"),
        (status = 200, body = SubscriptionResponse, description = "already registered; keys refreshed"),
        (status = 404, description = "push_disabled"),
        (status = 409, description = "too_many_subscriptions"),
        (status = 422, description = "invalid_subscription: the field at fault is named")))]
async fn subscribe(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiJson(req): ApiJson<SubscriptionRequest>,
) -> Result<impl IntoResponse, Error> {
    let push = state.push.as_ref().ok_or_else(push_disabled)?;
    let json = SubscriptionJson {
        endpoint: req.endpoint,
        expiration_time: req.expiration_time,
        keys: SubscriptionKeys {
            p256dh: req.keys.p256dh,
            auth: req.keys.auth,
        },
    };
    let parsed = Subscription::parse(&json, &push.pusher.policy())
        .map_err(|e| ApiError::unprocessable("invalid_subscription", e.to_string()))?;
    // Stored as parsed (normalised URL, unpadded base64url).
    let stored = parsed.to_json();
    let max =
        u32::try_from(state.settings.push.max_subscriptions_per_user.get()).unwrap_or(u32::MAX);
    let saved = state
        .store
        .save_push_subscription(
            who.user_id,
            &stored.endpoint,
            &stored.keys.p256dh,
            &stored.keys.auth,
            (state.now)().timestamp_millis(),
            max,
        )
        .await?;
    match saved {
        SubscriptionSaved::Created { id } => {
            Ok((StatusCode::CREATED, Json(SubscriptionResponse { id })))
        }
        SubscriptionSaved::Updated { id } => {
            Ok((StatusCode::OK, Json(SubscriptionResponse { id })))
        }
        SubscriptionSaved::TooMany { max } => Err(ApiError::conflict(
            "too_many_subscriptions",
            format!(
                "at most {max} push subscriptions per person (push.max_subscriptions_per_user); \
                 remove one first"
            ),
        )
        .into()),
    }
}

/// Remove one of the signed-in person's subscriptions (this browser turned push off).
#[utoipa::path(delete, path = "/api/push/subscriptions", tag = "push", security(("bearer" = [])), request_body = UnsubscribeRequest,
    responses((status = 204), (status = 404, description = "not_found: no such subscription of yours")))]
async fn unsubscribe(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiJson(req): ApiJson<UnsubscribeRequest>,
) -> Result<StatusCode, Error> {
    // Normalised like what was stored; an endpoint that does not parse was never stored.
    let endpoint = reqwest::Url::parse(&req.endpoint)
        .map(|u| u.to_string())
        .unwrap_or(req.endpoint);
    if state
        .store
        .delete_push_subscription(who.user_id, &endpoint)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such push subscription of yours").into())
    }
}

/// The delivery funnel of a notification, for its publisher (the API key, as a bearer token): per
/// recipient stored → delivered → seen → read, and pushed or push failed.
#[utoipa::path(get, path = "/api/notifications/{id}/status", tag = "push", security(("api_key" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = NotificationStatus), (status = 401), (status = 404)))]
async fn status(
    State(state): State<AppState>,
    _key: ApiKey,
    PathId(id): PathId,
) -> Result<Json<NotificationStatus>, Error> {
    let Some((n, rows)) = state.store.delivery_status(id).await? else {
        return Err(ApiError::not_found("no such notification").into());
    };
    let mut recipients = Vec::with_capacity(rows.len());
    for row in rows {
        let read = state.store.is_read(row.user_id, n.id).await?;
        recipients.push(recipient(row, read));
    }
    // A notification to one person is listed for them even before anything happened.
    if let Audience::User(user_id) = n.audience
        && recipients.is_empty()
    {
        let read = state.store.is_read(user_id, n.id).await?;
        recipients.push(RecipientStatus {
            user_id,
            delivered_at: None,
            seen_at: None,
            read,
            push_due_at: None,
            pushed_at: None,
            push_failed_at: None,
            push_attempts: 0,
        });
    }
    Ok(Json(NotificationStatus {
        id: n.id,
        event: n.event,
        stored_at: rfc3339(n.created_at),
        recipients,
    }))
}

fn time(ms: Option<i64>) -> Option<String> {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(rfc3339)
}

fn recipient(row: DeliveryStatus, read: bool) -> RecipientStatus {
    RecipientStatus {
        user_id: row.user_id,
        delivered_at: time(row.delivered_at_ms),
        seen_at: time(row.seen_at_ms),
        read,
        push_due_at: time(row.push_due_at_ms),
        pushed_at: time(row.pushed_at_ms),
        push_failed_at: time(row.push_failed_at_ms),
        push_attempts: row.push_attempts,
    }
}

fn minutes_text(m: i64) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn parse_minutes(field: &str, text: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::unprocessable(
            "invalid_preferences",
            format!("{field} must be HH:MM (00:00 to 23:59), got {text:?}"),
        )
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn answer(
    events: Vec<parkmate_db::EventPreference>,
    quiet_hours: Option<parkmate_db::QuietHours>,
) -> PreferencesResponse {
    PreferencesResponse {
        events: events
            .into_iter()
            .map(|e| EventPreferenceDto {
                event: e.event,
                in_app: e.in_app,
                push: e.push,
            })
            .collect(),
        quiet_hours: quiet_hours.map(|q| QuietHoursDto {
            time_zone: q.time_zone,
            start: minutes_text(q.start_minute),
            end: minutes_text(q.end_minute),
        }),
        push_off_by_default: parkmate_db::push::PUSH_OFF_BY_DEFAULT
            .iter()
            .map(|e| (*e).to_owned())
            .collect(),
        urgent: URGENT_EVENTS.iter().map(|e| (*e).to_owned()).collect(),
    }
}

/// The signed-in person's notification preferences and quiet hours.
#[utoipa::path(get, path = "/api/push/preferences", tag = "push", security(("bearer" = [])),
    responses((status = 200, body = PreferencesResponse)))]
async fn preferences(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
) -> Result<Json<PreferencesResponse>, Error> {
    let (events, quiet_hours) = state.store.push_preferences(who.user_id).await?;
    Ok(Json(answer(events, quiet_hours)))
}

/// Replace the signed-in person's preferences and quiet hours.
#[utoipa::path(put, path = "/api/push/preferences", tag = "push", security(("bearer" = [])), request_body = PreferencesDto,
    responses((status = 200, body = PreferencesResponse),
        (status = 422, description = "invalid_preferences: the field at fault is named")))]
async fn set_preferences(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiJson(req): ApiJson<PreferencesDto>,
) -> Result<Json<PreferencesResponse>, Error> {
    let bad = |m: String| ApiError::unprocessable("invalid_preferences", m);
    if req.events.len() > MAX_PREFERENCES {
        return Err(bad(format!("events: at most {MAX_PREFERENCES} event kinds")).into());
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut events = Vec::with_capacity(req.events.len());
    for (i, e) in req.events.into_iter().enumerate() {
        let valid = !e.event.is_empty()
            && e.event.len() <= 64
            && e.event
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(bad(format!(
                "events[{i}].event must be 1-64 characters of a-z, 0-9 and _"
            ))
            .into());
        }
        if !seen.insert(e.event.clone()) {
            return Err(bad(format!("events[{i}].event {:?} is listed twice", e.event)).into());
        }
        events.push(parkmate_db::EventPreference {
            event: e.event,
            in_app: e.in_app,
            push: e.push,
        });
    }
    let quiet_hours = match req.quiet_hours {
        None => None,
        Some(q) => {
            if q.time_zone.parse::<chrono_tz::Tz>().is_err() {
                return Err(bad(format!(
                    "quiet_hours.time_zone {:?} is not an IANA time zone (e.g. Europe/Paris)",
                    q.time_zone
                ))
                .into());
            }
            let start_minute = parse_minutes("quiet_hours.start", &q.start)?;
            let end_minute = parse_minutes("quiet_hours.end", &q.end)?;
            if start_minute == end_minute {
                return Err(
                    bad("quiet_hours.end must differ from quiet_hours.start".into()).into(),
                );
            }
            Some(parkmate_db::QuietHours {
                time_zone: q.time_zone,
                start_minute,
                end_minute,
            })
        }
    };
    state
        .store
        .set_push_preferences(who.user_id, &events, quiet_hours.as_ref())
        .await?;
    Ok(Json(answer(events, quiet_hours)))
}
