//! The store behind [`parkmate_auth::Authenticator`]: an account's role and token version, read
//! from the database on every use of a token this server minted (one primary-key read).

use async_trait::async_trait;
use parkmate_auth::{AccountLookup, AccountState, LookupFailed};
use parkmate_db::{Db, accounts};

pub struct StoreAccounts(pub Db);

#[async_trait]
impl AccountLookup for StoreAccounts {
    async fn account(&self, user_id: i64) -> Result<Option<AccountState>, LookupFailed> {
        let failed = |e: parkmate_db::DbError| {
            tracing::warn!(error = ?e, "cannot check an account");
            LookupFailed
        };
        let mut read = self.0.read().await.map_err(failed)?;
        let state = accounts::token_state(&mut read, user_id)
            .await
            .map_err(failed)?;
        Ok(state.map(|(role, token_version)| AccountState {
            role,
            token_version,
        }))
    }
}
