-- Times are Unix seconds (BIGINT) so that both backends and JWT claims agree.
CREATE TABLE clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    secret_digest BLOB NOT NULL,
    previous_secret_digest BLOB,
    previous_secret_expires_at BIGINT,
    scopes TEXT NOT NULL,
    audiences TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    token_ttl BIGINT,
    disabled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    algorithm TEXT NOT NULL,
    state TEXT NOT NULL,
    sealed_private_key BLOB NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at BIGINT,
    publish_until BIGINT
);

CREATE INDEX signing_keys_state_idx ON signing_keys (state);

-- At most one key signs at a time, even when two instances start or rotate at once.
CREATE UNIQUE INDEX signing_keys_one_active_idx ON signing_keys (state) WHERE state = 'active';
