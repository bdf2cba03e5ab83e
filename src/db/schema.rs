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

diesel::joinable!(api_keys -> accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    api_keys,
    audit_events,
    clients,
    pairing_challenges,
    pairing_guesses,
    revoked_tokens,
    signing_keys,
);
