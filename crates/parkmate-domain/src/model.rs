//! What the domain answers with. Plain data; the HTTP crate maps these to its wire DTOs.

use chrono::{DateTime, Utc};
use parkmate_protocol::Role;

use crate::types::{BookingStatus, BookingWindow, CarWashStatus, PaymentMethod, PaymentStatus};

/// Who is acting: the verified identity of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i64,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub id: i64,
    pub number: i64,
    pub car_wash: bool,
    /// Whether an active booking's window contains "now".
    pub occupied: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    pub id: i64,
    pub owner_id: i64,
    pub owner_name: String,
    pub name: String,
    pub price_per_hour_cents: i64,
    pub employees: Vec<Employee>,
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub lot_id: i64,
    pub lot_name: String,
    /// Who gets event 8 and may verify cash / mark the car wash done.
    pub lot_owner_id: i64,
    pub slot_id: i64,
    pub slot_number: i64,
    pub window: BookingWindow,
    pub duration_minutes: u32,
    pub status: BookingStatus,
    pub payment_method: PaymentMethod,
    pub payment_status: PaymentStatus,
    pub amount_cents: i64,
    /// `None` when no car wash was ordered.
    pub car_wash: Option<CarWashStatus>,
    pub decline_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub renewed_at: Option<DateTime<Utc>>,
}

/// A demo login, printed by the server at start and served by `GET /api/auth/demo-accounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoAccount {
    pub name: String,
    pub email: String,
    pub password: String,
    pub role: Role,
}
