//! [`Authenticator`]: a token is good when its signature and claims are ([`TokenKeys::verify`])
//! and, for a token this server minted for one of its accounts (it carries `ver`), when the store
//! still agrees: the account exists, has the token's role, and is at the token's version. So a
//! demoted, deleted or revoked account loses access on its next request, not 12 hours later.
//!
//! The store is asked on every use, through [`AccountLookup`] (the server implements it over the
//! database; this crate knows no store): one primary-key read, next to the several each
//! authenticated request makes anyway. Tokens without `ver` come from other issuers (a backend's
//! `mint_token`, `parkmate token`), which own their lifetime: they cost no lookup.

use std::sync::Arc;

use async_trait::async_trait;
use parkmate_protocol::Role;

use crate::{ApiError, Identity, TokenError, TokenKeys};

/// What the store says about an account, as far as its tokens care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountState {
    pub role: Role,
    /// Bumped to revoke every token minted before (a role change, `parkmate revoke-tokens`).
    pub token_version: i64,
}

/// The store could not answer: the request is refused with 503, never let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the account store is unavailable")]
pub struct LookupFailed;

/// Reads an account's [`AccountState`]; `None` when it does not exist.
#[async_trait]
pub trait AccountLookup: Send + Sync + 'static {
    async fn account(&self, user_id: i64) -> Result<Option<AccountState>, LookupFailed>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Invalid(#[from] TokenError),
    /// A `ver` token whose account changed role, was deleted, or had its tokens revoked.
    #[error("the token was revoked (the account changed or no longer exists): log in again")]
    Revoked,
    /// The store did not answer; the caller may retry.
    #[error("cannot check the token right now, retry")]
    Unavailable,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Invalid(e) => ApiError::unauthorized("invalid_token", e.to_string()),
            AuthError::Revoked => ApiError::unauthorized("token_revoked", e.to_string()),
            AuthError::Unavailable => ApiError::unavailable("unavailable", e.to_string())
                .retry_after(std::time::Duration::from_secs(1)),
        }
    }
}

/// Verifies tokens and checks the accounts behind them. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    keys: Arc<TokenKeys>,
    accounts: Arc<dyn AccountLookup>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator([redacted])")
    }
}

impl Authenticator {
    pub fn new(keys: Arc<TokenKeys>, accounts: Arc<dyn AccountLookup>) -> Authenticator {
        Authenticator { keys, accounts }
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// The identity of a token that is valid now, and whose account (if it is one of ours)
    /// still agrees with it.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let identity = self.keys.verify(token)?;
        self.recheck(&identity).await?;
        Ok(identity)
    }

    /// Whether an identity verified earlier still holds (open sockets ask again from time to
    /// time). Tokens of other issuers always do, until they expire.
    pub async fn recheck(&self, identity: &Identity) -> Result<(), AuthError> {
        let Some(version) = identity.token_version else {
            return Ok(());
        };
        match self.accounts.account(identity.user_id).await {
            Ok(Some(a)) if a.role == identity.role && a.token_version == version => Ok(()),
            Ok(_) => Err(AuthError::Revoked),
            Err(LookupFailed) => Err(AuthError::Unavailable),
        }
    }

    /// A token for one of this server's accounts, with the role and version the store holds now.
    pub async fn mint_for_account(&self, user_id: i64, ttl_secs: u64) -> Result<String, AuthError> {
        match self.accounts.account(user_id).await {
            Ok(Some(a)) => Ok(self
                .keys
                .mint_versioned(user_id, a.role, a.token_version, ttl_secs)),
            Ok(None) => Err(AuthError::Revoked),
            Err(LookupFailed) => Err(AuthError::Unavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Store(Mutex<HashMap<i64, AccountState>>, Mutex<bool>);

    #[async_trait]
    impl AccountLookup for Store {
        async fn account(&self, id: i64) -> Result<Option<AccountState>, LookupFailed> {
            if *self.1.lock().unwrap() {
                return Err(LookupFailed);
            }
            Ok(self.0.lock().unwrap().get(&id).copied())
        }
    }

    #[tokio::test]
    async fn versioned_tokens_follow_the_store_and_others_do_not_ask_it() {
        let store = Arc::new(Store::default());
        let admin = AccountState {
            role: Role::Admin,
            token_version: 0,
        };
        store.0.lock().unwrap().insert(1, admin);
        let auth = Authenticator::new(
            Arc::new(TokenKeys::new(b"0123456789abcdef0123456789abcdef")),
            store.clone(),
        );
        let token = auth.mint_for_account(1, 60).await.unwrap();
        assert_eq!(auth.authenticate(&token).await.unwrap().role, Role::Admin);

        // Demoted: the admin token is refused at once.
        store.0.lock().unwrap().insert(
            1,
            AccountState {
                role: Role::User,
                ..admin
            },
        );
        assert_eq!(auth.authenticate(&token).await, Err(AuthError::Revoked));
        // Revoked (version bumped), even with the old role back.
        store.0.lock().unwrap().insert(
            1,
            AccountState {
                token_version: 1,
                ..admin
            },
        );
        assert_eq!(auth.authenticate(&token).await, Err(AuthError::Revoked));
        // Deleted.
        store.0.lock().unwrap().clear();
        assert_eq!(auth.authenticate(&token).await, Err(AuthError::Revoked));
        // A token of another issuer is never looked up, even while the store is down.
        *store.1.lock().unwrap() = true;
        let foreign = auth.keys().mint(42, Role::User, 60);
        assert_eq!(auth.authenticate(&foreign).await.unwrap().user_id, 42);
        assert_eq!(
            auth.authenticate(&token).await,
            Err(AuthError::Unavailable),
            "an unanswered check refuses, it never lets through"
        );
    }
}
