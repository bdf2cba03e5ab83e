-- People or teams that own API keys.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    handle TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);

-- API keys, stored only as a SHA-256 digest; `prefix` is a short non-secret identifier.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    digest BYTEA NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id);

-- App pairing: an app asks, the owner sees a 4-digit code, the app trades id + code for a key.
-- account_id is NULL for requests naming no account, which behave alike but never succeed.
CREATE TABLE pairing_challenges (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    app_name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    code TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    resolved_at BIGINT,
    api_key_id TEXT
);
CREATE INDEX pairing_challenges_account_idx ON pairing_challenges (account_id, status);
CREATE INDEX pairing_challenges_status_idx ON pairing_challenges (status, expires_at);

-- Who did what, never with a secret. `seq` orders events written in the same second.
CREATE TABLE audit_events (
    seq BIGSERIAL PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    account_id TEXT,
    client_id TEXT,
    subject_id TEXT,
    details TEXT NOT NULL
);
CREATE INDEX audit_events_account_idx ON audit_events (account_id, seq);
CREATE INDEX audit_events_client_idx ON audit_events (client_id, seq);
