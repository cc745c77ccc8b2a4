-- Tokens the server mints for an account carry its token version (`ver`); a token is good only
-- while the account still has that version and the token's role. Bumping it revokes every token
-- minted before (`parkmate account revoke-tokens`, `parkmate account set-role`).
ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;
