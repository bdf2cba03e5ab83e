-- The web console: operators among accounts, passwords and second factors, server-side
-- sessions, one-time invite links and browser app authorizations (MiAuth).
ALTER TABLE accounts ADD COLUMN is_operator BOOLEAN NOT NULL DEFAULT FALSE;

-- How a person proves who they are. No row: the account cannot sign in yet.
-- password_hash is an argon2id PHC string; totp_secret is sealed with the master key and
-- only counts once totp_enabled_at is set; totp_last_step refuses a code used twice.
CREATE TABLE account_credentials (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    password_changed_at BIGINT NOT NULL,
    totp_secret BLOB,
    totp_enabled_at BIGINT,
    totp_last_step BIGINT,
    failed_sign_ins INTEGER NOT NULL DEFAULT 0,
    sign_in_blocked_until BIGINT
);

-- One-time recovery codes for a lost second factor, as SHA-256 digests.
CREATE TABLE recovery_codes (
    digest BLOB PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_account_idx ON recovery_codes (account_id);

-- Console sessions. The cookie holds a random token; only its digest is stored. `id` is a
-- public handle for listing and ending sessions.
CREATE TABLE console_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_digest BLOB NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    second_factor_pending BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    user_agent TEXT NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX console_sessions_account_idx ON console_sessions (account_id);

-- Invite and password-reset links: single use, stored as a digest.
CREATE TABLE account_invites (
    id TEXT PRIMARY KEY NOT NULL,
    token_digest BLOB NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX account_invites_account_idx ON account_invites (account_id);

-- Browser authorization of an app (Misskey's MiAuth): the app picks the session id, a signed-in
-- person approves or denies it, and the app collects its key once with the id.
CREATE TABLE app_authorizations (
    session_id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    app_name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    callback TEXT,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    resolved_at BIGINT,
    api_key_id TEXT
);
CREATE INDEX app_authorizations_status_idx ON app_authorizations (status, expires_at);
