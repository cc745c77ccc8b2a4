//! What the domain answers with. The stored records are `parkmate-db`'s (re-exported here); the
//! HTTP crate maps them to its wire DTOs.

use parkmate_protocol::Role;

pub use parkmate_db::{Booking, Employee, Lot, Payment, Slot, User, Window};

/// Who is acting: the verified identity of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i64,
    pub role: Role,
}

/// A demo login, printed by the server at start and served by `GET /api/auth/demo-accounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoAccount {
    pub name: String,
    pub email: String,
    pub password: String,
    pub role: Role,
}
