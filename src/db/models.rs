//! Row structs (`X`), insert forms (`NewX`) and change sets (`XChanges`).
//! Lists of scopes, audiences and grant types are stored space-separated: none of
//! them may contain a space (RFC 6749 §3.3 scope tokens, absolute URIs).

use diesel::prelude::*;

use super::schema::{
    accounts, api_keys, audit_events, clients, pairing_challenges, revoked_tokens, signing_keys,
};

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

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct AccountRow {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub scopes: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = accounts)]
pub struct NewAccountRow<'a> {
    pub id: &'a str,
    pub handle: &'a str,
    pub display_name: &'a str,
    pub scopes: &'a str,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ApiKeyRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub prefix: String,
    pub digest: Vec<u8>,
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKeyRow<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub digest: &'a [u8],
    pub scopes: &'a str,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pairing_challenges)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ChallengeRow {
    pub id: String,
    pub account_id: Option<String>,
    pub app_name: String,
    pub scopes: String,
    pub code: String,
    pub failed_attempts: i32,
    pub status: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub resolved_at: Option<i64>,
    pub api_key_id: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = pairing_challenges)]
pub struct NewChallengeRow<'a> {
    pub id: &'a str,
    pub account_id: Option<&'a str>,
    pub app_name: &'a str,
    pub scopes: &'a str,
    pub code: &'a str,
    pub failed_attempts: i32,
    pub status: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct AuditRow {
    pub seq: i64,
    pub occurred_at: i64,
    pub action: String,
    pub actor: String,
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    pub subject_id: Option<String>,
    pub details: String,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewAuditRow<'a> {
    pub occurred_at: i64,
    pub action: &'a str,
    pub actor: &'a str,
    pub account_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub subject_id: Option<&'a str>,
    pub details: &'a str,
}
