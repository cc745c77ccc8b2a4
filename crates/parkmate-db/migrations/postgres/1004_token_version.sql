-- Tokens the server mints for an account carry its token version (`ver`); a token is good only
-- while the account still has that version and the token's role. Bumping it revokes every token
-- minted before (`parkmate account revoke-tokens`, `parkmate account set-role`). The same column
-- as the SQLite engine's 1003.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
