-- Tokens issued (iat) before this time are revoked: bulk revocation on disable, rotation
-- or `revoke-tokens`, without a row per token.
ALTER TABLE clients ADD COLUMN tokens_not_before BIGINT;

-- Single revoked tokens (RFC 7009), kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);

-- At most one pre-published key waits to sign next.
CREATE UNIQUE INDEX signing_keys_one_next_idx ON signing_keys (state) WHERE state = 'next';
