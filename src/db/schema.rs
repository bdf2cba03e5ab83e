//! Written by hand with the types both backends share (see the module doc of `db`).

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        secret_digest -> Binary,
        previous_secret_digest -> Nullable<Binary>,
        previous_secret_expires_at -> Nullable<BigInt>,
        scopes -> Text,
        audiences -> Text,
        grant_types -> Text,
        token_ttl -> Nullable<BigInt>,
        disabled_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        tokens_not_before -> Nullable<BigInt>,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        client_id -> Text,
        expires_at -> BigInt,
        revoked_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        state -> Text,
        sealed_private_key -> Binary,
        public_jwk -> Text,
        created_at -> BigInt,
        activated_at -> Nullable<BigInt>,
        retired_at -> Nullable<BigInt>,
        publish_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        handle -> Text,
        display_name -> Text,
        scopes -> Text,
        created_at -> BigInt,
        disabled_at -> Nullable<BigInt>,
        is_operator -> Bool,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        account_id -> Text,
        name -> Text,
        prefix -> Text,
        digest -> Binary,
        scopes -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        expires_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    pairing_challenges (id) {
        id -> Text,
        account_id -> Nullable<Text>,
        app_name -> Text,
        scopes -> Text,
        failed_attempts -> Integer,
        status -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        resolved_at -> Nullable<BigInt>,
        api_key_id -> Nullable<Text>,
        owner_approved_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    pairing_guesses (account_id, day) {
        account_id -> Text,
        day -> BigInt,
        guesses -> Integer,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        occurred_at -> BigInt,
        action -> Text,
        actor -> Text,
        account_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        subject_id -> Nullable<Text>,
        details -> Text,
    }
}

diesel::table! {
    account_credentials (account_id) {
        account_id -> Text,
        password_hash -> Text,
        password_changed_at -> BigInt,
        totp_secret -> Nullable<Binary>,
        totp_enabled_at -> Nullable<BigInt>,
        totp_last_step -> Nullable<BigInt>,
        failed_sign_ins -> Integer,
        sign_in_blocked_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    recovery_codes (digest) {
        digest -> Binary,
        account_id -> Text,
        created_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    console_sessions (id) {
        id -> Text,
        token_digest -> Binary,
        account_id -> Text,
        csrf_token -> Text,
        second_factor_pending -> Bool,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        expires_at -> BigInt,
        user_agent -> Text,
        address -> Text,
    }
}

diesel::table! {
    account_invites (id) {
        id -> Text,
        token_digest -> Binary,
        account_id -> Text,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    app_authorizations (session_id) {
        session_id -> Text,
        account_id -> Nullable<Text>,
        app_name -> Text,
        scopes -> Text,
        callback -> Nullable<Text>,
        status -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        resolved_at -> Nullable<BigInt>,
        api_key_id -> Nullable<Text>,
    }
}

diesel::joinable!(api_keys -> accounts (account_id));
diesel::joinable!(console_sessions -> accounts (account_id));
diesel::joinable!(account_credentials -> accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(
    account_credentials,
    account_invites,
    accounts,
    api_keys,
    app_authorizations,
    audit_events,
    clients,
    console_sessions,
    pairing_challenges,
    revoked_tokens,
    signing_keys,
);
