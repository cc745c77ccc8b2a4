//! The wire shapes of the booking API (`docs/booking-api.md`), separate from the domain types so
//! the domain can change without changing the contract. Requests are deliberately loose
//! (`String`, `i64`): the handlers parse them into domain values, answering 422 with a stable code.

use parkmate_domain::{Booking, DemoAccount, Lot, Payment, User, Window};
use parkmate_protocol::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `slot_taken`.
    #[schema(example = "slot_taken")]
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: i64,
    pub name: String,
    pub email: String,
    /// `user` (driver), `owner`, `admin` or `employee`.
    #[schema(example = "user")]
    pub role: String,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        UserDto {
            id: u.id,
            name: u.name,
            email: u.email,
            role: u.role.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(example = "Dana Driver")]
    pub name: String,
    #[schema(example = "dana@example.com")]
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthResponse {
    /// HS256 JWT, accepted by this API and by the notification socket.
    pub token: String,
    pub user: UserDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DemoAccountDto {
    pub name: String,
    pub email: String,
    pub password: String,
    pub role: String,
}

impl From<&DemoAccount> for DemoAccountDto {
    fn from(a: &DemoAccount) -> Self {
        DemoAccountDto {
            name: a.name.clone(),
            email: a.email.clone(),
            password: a.password.clone(),
            role: a.role.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DemoAccountsResponse {
    pub accounts: Vec<DemoAccountDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsersResponse {
    pub items: Vec<UserDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Only users of this role.
    pub role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmployeeDto {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlotDto {
    pub id: i64,
    pub number: i64,
    pub car_wash: bool,
    /// An active booking's window contains the present moment.
    pub occupied: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LotDto {
    pub id: i64,
    pub owner_id: i64,
    pub owner_name: String,
    pub name: String,
    pub price_per_hour_cents: i64,
    pub employees: Vec<EmployeeDto>,
    pub slots: Vec<SlotDto>,
}

impl From<Lot> for LotDto {
    fn from(l: Lot) -> Self {
        LotDto {
            id: l.id,
            owner_id: l.owner_id,
            owner_name: l.owner_name,
            name: l.name,
            price_per_hour_cents: l.price_per_hour_cents,
            employees: l
                .employees
                .into_iter()
                .map(|e| EmployeeDto {
                    id: e.id,
                    name: e.name,
                })
                .collect(),
            slots: l
                .slots
                .into_iter()
                .map(|s| SlotDto {
                    id: s.id,
                    number: s.number,
                    car_wash: s.car_wash,
                    occupied: s.occupied,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LotsResponse {
    pub items: Vec<LotDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LotsQuery {
    /// Owners: only their own lots.
    pub mine: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignEmployeeRequest {
    pub employee_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookingDto {
    pub id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub lot_id: i64,
    pub lot_name: String,
    pub slot_id: i64,
    pub slot_number: i64,
    /// The current window's start, RFC 3339, UTC.
    pub start_at: String,
    /// The current window's end, RFC 3339, UTC.
    pub end_at: String,
    /// `requested`, `confirmed`, `declined`, `expired` or `lapsed`.
    #[schema(example = "requested")]
    pub status: String,
    /// How the current window is paid: `cash` or `online`.
    pub payment_method: String,
    /// All windows together: `pending` (some window's cash not yet verified), `paid`, or
    /// `refunded` (every window given back).
    pub payment_status: String,
    /// Everything charged or owed: the sum of the windows.
    pub amount_cents: i64,
    /// The part of `amount_cents` refunded.
    pub refunded_cents: i64,
    pub car_wash: bool,
    /// `null` (not ordered), `pending` or `done`.
    pub car_wash_status: Option<String>,
    pub decline_reason: Option<String>,
    /// When an admin approved it; `null` if never.
    pub approved_at: Option<String>,
    /// For a `requested` booking: when it lapses unless approved; `null` otherwise.
    pub lapses_at: Option<String>,
    /// Its windows, oldest first: the first, then one per renewal, each with its own payment.
    pub windows: Vec<WindowDto>,
}

/// One paid period of a booking.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowDto {
    /// 1, 2, …: pass it to `verify-cash` as `window`.
    pub seq: u32,
    pub start_at: String,
    pub end_at: String,
    pub duration_minutes: u32,
    pub amount_cents: i64,
    /// `cash` or `online`.
    pub payment_method: String,
    /// `pending` (cash not yet verified), `paid` or `refunded`.
    pub payment_status: String,
    /// When the owner or an admin verified this window's cash.
    pub cash_verified_at: Option<String>,
    /// The online charge that paid the window.
    pub charge: Option<PaymentDto>,
    /// Its refund, when the window was given back.
    pub refund: Option<PaymentDto>,
}

/// A call to the payment gateway.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentDto {
    pub id: i64,
    /// A charge: `succeeded` or `refunded`. A refund: `pending` (decided, the gateway has not
    /// confirmed it yet), `succeeded` or `failed`.
    pub status: String,
    pub amount_cents: i64,
    /// The gateway's reference.
    pub reference: Option<String>,
    pub created_at: String,
    pub settled_at: Option<String>,
}

impl From<Payment> for PaymentDto {
    fn from(p: Payment) -> Self {
        PaymentDto {
            id: p.id,
            status: p.status.as_str().to_owned(),
            amount_cents: p.amount_cents,
            reference: p.gateway_ref,
            created_at: rfc3339(p.created_at),
            settled_at: p.settled_at.map(rfc3339),
        }
    }
}

impl From<Window> for WindowDto {
    fn from(w: Window) -> Self {
        WindowDto {
            seq: w.seq,
            start_at: rfc3339(w.span.start()),
            end_at: rfc3339(w.span.end()),
            duration_minutes: w.duration_minutes,
            amount_cents: w.amount_cents,
            payment_method: w.payment_method.as_str().to_owned(),
            payment_status: w.payment_status.as_str().to_owned(),
            cash_verified_at: w.cash_verified_at.map(rfc3339),
            charge: w.charge.map(PaymentDto::from),
            refund: w.refund.map(PaymentDto::from),
        }
    }
}

impl BookingDto {
    /// The booking as the API answers it; `hold` is the rules' request hold (for `lapses_at`).
    pub fn new(b: Booking, hold: std::time::Duration) -> Self {
        let lapses_at = (b.status == parkmate_domain::BookingStatus::Requested)
            .then(|| chrono::Duration::from_std(hold).ok())
            .flatten()
            .map(|hold| rfc3339(b.requested_at + hold));
        BookingDto {
            id: b.id,
            user_id: b.user_id,
            user_name: b.user_name,
            lot_id: b.lot_id,
            lot_name: b.lot_name,
            slot_id: b.slot_id,
            slot_number: b.slot_number,
            start_at: rfc3339(b.window.start()),
            end_at: rfc3339(b.window.end()),
            status: b.status.as_str().to_owned(),
            payment_method: b.payment_method.as_str().to_owned(),
            payment_status: b.payment_status.as_str().to_owned(),
            amount_cents: b.amount_cents,
            refunded_cents: b.refunded_cents,
            car_wash: b.car_wash.is_some(),
            car_wash_status: b.car_wash.map(|c| c.as_str().to_owned()),
            decline_reason: b.decline_reason,
            approved_at: b.approved_at.map(rfc3339),
            lapses_at,
            windows: b.windows.into_iter().map(WindowDto::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookingsResponse {
    pub items: Vec<BookingDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateBookingRequest {
    pub slot_id: i64,
    /// 1 to 1440.
    #[schema(example = 60)]
    pub duration_minutes: i64,
    #[serde(default)]
    pub car_wash: bool,
    /// `cash` or `online`.
    #[schema(example = "online")]
    pub payment_method: String,
    /// Required for `online`; see the test cards.
    #[schema(example = "4242424242424242")]
    pub card_number: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RenewRequest {
    #[schema(example = 30)]
    pub duration_minutes: i64,
    pub payment_method: String,
    pub card_number: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DeclineRequest {
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct VerifyCashRequest {
    /// The window whose cash was received (its `seq`); omitted: the oldest unverified one.
    pub window: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ClockRequest {
    /// Seconds to move the manual clock forward (0 to 30 days).
    #[schema(example = 60)]
    pub advance_seconds: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClockResponse {
    pub now: String,
}
