//! Accounts: registering drivers, creating accounts of any role, signing in, and the password
//! hashing behind both (argon2id with the crate's defaults, on the blocking pool: tens of
//! milliseconds of CPU each, never on the async workers).

use parkmate_db::accounts;
use parkmate_protocol::Role;

use crate::model::{Actor, User};
use crate::types::{Email, Name, Password};
use crate::{Domain, DomainError, corrupt};

impl Domain {
    /// Registers a driver (role `user`).
    pub async fn register(
        &self,
        name: Name,
        email: Email,
        password: Password,
    ) -> Result<User, DomainError> {
        self.create_user(name, email, password, Role::User).await
    }

    /// Creates an account of any role (seed data, tests, future admin tooling).
    pub async fn create_user(
        &self,
        name: Name,
        email: Email,
        password: Password,
        role: Role,
    ) -> Result<User, DomainError> {
        let hash = hash_password(password).await?;
        let mut tx = self.begin().await?;
        let id = accounts::insert_user(
            &mut tx,
            name.as_str(),
            email.as_str(),
            &hash,
            role,
            self.now(),
        )
        .await
        .map_err(|e| match e {
            parkmate_db::DbError::Duplicate => DomainError::EmailTaken,
            e => e.into(),
        })?;
        tx.commit().await?;
        Ok(User {
            id,
            name: name.as_str().to_owned(),
            email: email.as_str().to_owned(),
            role,
        })
    }

    /// Checks a password. An unknown email costs the same hashing work as a wrong password, so the
    /// answer time does not tell which accounts exist.
    pub async fn login(&self, email: &str, password: &str) -> Result<User, DomainError> {
        let found = match Email::parse(email) {
            Ok(email) => accounts::user_by_email(&mut self.read().await?, email.as_str()).await?,
            Err(_) => None,
        };
        match found {
            Some((user, hash)) => {
                if verify_password(password.to_owned(), hash).await? {
                    Ok(user)
                } else {
                    Err(DomainError::InvalidCredentials)
                }
            }
            None => {
                // Same work as a wrong password, so timing does not reveal unknown accounts.
                hash_password(Password(password.to_owned())).await?;
                Err(DomainError::InvalidCredentials)
            }
        }
    }

    pub async fn user(&self, id: i64) -> Result<User, DomainError> {
        accounts::user(&mut self.read().await?, id)
            .await?
            .ok_or(DomainError::NotFound("user"))
    }

    /// All users, optionally of one role. Admins only.
    pub async fn users(&self, actor: Actor, role: Option<Role>) -> Result<Vec<User>, DomainError> {
        if actor.role != Role::Admin {
            return Err(DomainError::Forbidden("only admins can list users"));
        }
        Ok(accounts::users(&mut self.read().await?, role).await?)
    }
}

pub(crate) async fn hash_password(password: Password) -> Result<String, DomainError> {
    use argon2::password_hash::PasswordHasher;
    tokio::task::spawn_blocking(move || {
        argon2::Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| DomainError::Hashing(e.to_string()))
    })
    .await
    .map_err(|e| DomainError::Hashing(e.to_string()))?
}

async fn verify_password(password: String, hash: String) -> Result<bool, DomainError> {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&hash).map_err(|e| corrupt(format!("password hash: {e}")))?;
        Ok(argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| DomainError::Hashing(e.to_string()))?
}
