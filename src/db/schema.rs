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

diesel::allow_tables_to_appear_in_same_query!(clients, revoked_tokens, signing_keys);
