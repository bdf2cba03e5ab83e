//! Row structs (`X`), insert forms (`NewX`) and change sets (`XChanges`).
//! Lists of scopes, audiences and grant types are stored space-separated: none of
//! them may contain a space (RFC 6749 §3.3 scope tokens, absolute URIs).

use diesel::prelude::*;

use super::schema::{clients, revoked_tokens, signing_keys};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = clients)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub secret_digest: Vec<u8>,
    pub previous_secret_digest: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<i64>,
    pub scopes: String,
    pub audiences: String,
    pub grant_types: String,
    pub token_ttl: Option<i64>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub tokens_not_before: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = clients)]
pub struct NewClientRow<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub secret_digest: &'a [u8],
    pub scopes: &'a str,
    pub audiences: &'a str,
    pub grant_types: &'a str,
    pub token_ttl: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A partial update; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = clients)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub scopes: Option<String>,
    pub audiences: Option<String>,
    pub grant_types: Option<String>,
    pub token_ttl: Option<Option<i64>>,
    pub disabled_at: Option<Option<i64>>,
    pub secret_digest: Option<Vec<u8>>,
    pub previous_secret_digest: Option<Option<Vec<u8>>>,
    pub previous_secret_expires_at: Option<Option<i64>>,
    pub tokens_not_before: Option<Option<i64>>,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    pub state: String,
    pub sealed_private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct NewSigningKeyRow<'a> {
    pub kid: &'a str,
    pub algorithm: &'a str,
    pub state: &'a str,
    pub sealed_private_key: &'a [u8],
    pub public_jwk: &'a str,
    pub created_at: i64,
    pub activated_at: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = revoked_tokens)]
pub struct NewRevokedToken<'a> {
    pub jti: &'a str,
    pub client_id: &'a str,
    pub expires_at: i64,
    pub revoked_at: i64,
}
