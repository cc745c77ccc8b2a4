//! Users: who can sign in, with which role. Passwords arrive here already hashed (argon2id PHC
//! strings); emails already normalised by the domain. Each account has a token version: the
//! tokens minted for it carry the version, and bumping it (a role change, a revocation) makes
//! every earlier token invalid on its next use.

use chrono::{DateTime, Utc};
use parkmate_protocol::Role;

use crate::exec::{Exec, Row, Stmt};
use crate::{DbError, User};

fn row_to_user(row: &Row) -> Result<User, DbError> {
    let role: String = row.get("role")?;
    Ok(User {
        id: row.get("id")?,
        name: row.get("name")?,
        email: row.get("email")?,
        role: role
            .parse()
            .map_err(|e: parkmate_protocol::ParseEnumError| DbError::corrupt(e.to_string()))?,
    })
}

/// A new account; `Duplicate` when the email already has one.
pub async fn insert_user(
    c: &mut impl Exec,
    name: &str,
    email: &str,
    password_hash: &str,
    role: Role,
    now: DateTime<Utc>,
) -> Result<i64, DbError> {
    c.scalar(
        Stmt::new(
            "INSERT INTO users (name, email, password_hash, role, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id AS v",
        )
        .bind(name)
        .bind(email)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now.timestamp_millis()),
    )
    .await
}

pub async fn user(c: &mut impl Exec, id: i64) -> Result<Option<User>, DbError> {
    c.fetch_optional(Stmt::new("SELECT id, name, email, role FROM users WHERE id = $1").bind(id))
        .await?
        .as_ref()
        .map(row_to_user)
        .transpose()
}

/// The user and their password hash, for login.
pub async fn user_by_email(
    c: &mut impl Exec,
    email: &str,
) -> Result<Option<(User, String)>, DbError> {
    let row = c
        .fetch_optional(
            Stmt::new("SELECT id, name, email, role, password_hash FROM users WHERE email = $1")
                .bind(email),
        )
        .await?;
    match row {
        Some(row) => Ok(Some((row_to_user(&row)?, row.get("password_hash")?))),
        None => Ok(None),
    }
}

/// Every user, or those of one role, by id.
pub async fn users(c: &mut impl Exec, role: Option<Role>) -> Result<Vec<User>, DbError> {
    c.fetch_all(
        Stmt::new(
            "SELECT id, name, email, role FROM users WHERE $1 IS NULL OR role = $1 ORDER BY id",
        )
        .bind(role.map(Role::as_str)),
    )
    .await?
    .iter()
    .map(row_to_user)
    .collect()
}

pub async fn count_users(c: &mut impl Exec) -> Result<i64, DbError> {
    c.scalar(Stmt::new("SELECT COUNT(*) AS v FROM users")).await
}

/// The role and token version of account `id`, which every use of a token minted for it is
/// checked against; `None` when there is no such account.
pub async fn token_state(c: &mut impl Exec, id: i64) -> Result<Option<(Role, i64)>, DbError> {
    let row = c
        .fetch_optional(Stmt::new("SELECT role, token_version FROM users WHERE id = $1").bind(id))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let role: String = row.get("role")?;
    let role = role
        .parse()
        .map_err(|e: parkmate_protocol::ParseEnumError| DbError::corrupt(e.to_string()))?;
    Ok(Some((role, row.get("token_version")?)))
}

/// Gives account `id` another role and revokes its tokens (they name the old one). `false` when
/// there is no such account.
pub async fn set_role(c: &mut impl Exec, id: i64, role: Role) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE users SET role = $2, token_version = token_version + 1 WHERE id = $1",
            )
            .bind(id)
            .bind(role.as_str()),
        )
        .await?;
    Ok(changed == 1)
}

/// Revokes every token minted for account `id` so far (a stolen token, a password change).
/// `false` when there is no such account.
pub async fn revoke_tokens(c: &mut impl Exec, id: i64) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new("UPDATE users SET token_version = token_version + 1 WHERE id = $1").bind(id),
        )
        .await?;
    Ok(changed == 1)
}

/// Deletes account `id` (one that owns nothing: lots and bookings refer to their users).
/// `false` when there is no such account.
pub async fn delete_user(c: &mut impl Exec, id: i64) -> Result<bool, DbError> {
    let changed = c
        .execute(Stmt::new("DELETE FROM users WHERE id = $1").bind(id))
        .await?;
    Ok(changed == 1)
}
