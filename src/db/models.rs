//! Row structs, private to `db`: each turns into its domain value on the way out
//! (`TryFrom`, failing with [`CorruptRow`] instead of guessing) and is built from one on
//! the way in. Lists of scopes, audiences and grant types are stored space-separated: none
//! of them may contain a space (RFC 6749 §3.3 scope tokens, absolute URIs).

use diesel::prelude::*;

use super::schema::{
    accounts, api_keys, audit_events, clients, pairing_challenges, revoked_tokens, signing_keys,
};
use crate::crypto::signer::SigningAlgorithm;
use crate::domain::{
    Account, ApiKey, AuditEvent, Challenge, ChallengeStatus, Client, CorruptRow, GrantType,
    KeyState, SigningKeyRecord, stored_scope,
};

pub(super) fn join_list<T: AsRef<str>>(items: &[T]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(" ")
}

fn split_list(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = clients)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(super) struct ClientRow {
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

impl TryFrom<ClientRow> for Client {
    type Error = CorruptRow;

    fn try_from(row: ClientRow) -> Result<Self, CorruptRow> {
        let scopes = stored_scope("clients", &row.id, &row.scopes)?;
        let grant_types = row
            .grant_types
            .split_whitespace()
            .map(|g| {
                GrantType::parse(g)
                    .ok_or_else(|| CorruptRow::new("clients", &row.id, format!("grant type {g:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let previous_secret = match (row.previous_secret_digest, row.previous_secret_expires_at) {
            (Some(digest), Some(until)) => Some((digest, until)),
            _ => None,
        };
        Ok(Client {
            audiences: split_list(&row.audiences),
            id: row.id,
            name: row.name,
            secret_digest: row.secret_digest,
            previous_secret,
            scopes,
            grant_types,
            token_ttl: row.token_ttl,
            disabled_at: row.disabled_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            tokens_not_before: row.tokens_not_before,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = clients)]
pub(super) struct NewClientRow<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub secret_digest: &'a [u8],
    pub scopes: String,
    pub audiences: String,
    pub grant_types: String,
    pub token_ttl: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl<'a> From<&'a Client> for NewClientRow<'a> {
    fn from(client: &'a Client) -> Self {
        let grant_types: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        Self {
            id: &client.id,
            name: &client.name,
            secret_digest: &client.secret_digest,
            scopes: client.scopes.to_string(),
            audiences: join_list(&client.audiences),
            grant_types: join_list(&grant_types),
            token_ttl: client.token_ttl,
            created_at: client.created_at,
            updated_at: client.updated_at,
        }
    }
}

/// A partial update; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = clients)]
pub(super) struct ClientChangesRow {
    pub name: Option<String>,
    pub scopes: Option<String>,
    pub audiences: Option<String>,
    pub grant_types: Option<String>,
    pub token_ttl: Option<Option<i64>>,
    pub disabled_at: Option<Option<i64>>,
    pub secret_digest: Option<Vec<u8>>,
    pub previous_secret_digest: Option<Option<Vec<u8>>>,
    pub previous_secret_expires_at: Option<Option<i64>>,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(super) struct SigningKeyRow {
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

pub(super) fn key_state(kid: &str, text: &str) -> Result<KeyState, CorruptRow> {
    KeyState::parse(text)
        .ok_or_else(|| CorruptRow::new("signing_keys", kid, format!("state {text:?}")))
}

impl TryFrom<SigningKeyRow> for SigningKeyRecord {
    type Error = CorruptRow;

    fn try_from(row: SigningKeyRow) -> Result<Self, CorruptRow> {
        let algorithm = SigningAlgorithm::parse(&row.algorithm).ok_or_else(|| {
            CorruptRow::new(
                "signing_keys",
                &row.kid,
                format!("algorithm {:?}", row.algorithm),
            )
        })?;
        let state = key_state(&row.kid, &row.state)?;
        let public_jwk = serde_json::from_str(&row.public_jwk)
            .map_err(|e| CorruptRow::new("signing_keys", &row.kid, format!("public JWK: {e}")))?;
        Ok(SigningKeyRecord {
            kid: row.kid,
            algorithm,
            state,
            sealed_private_key: row.sealed_private_key,
            public_jwk,
            created_at: row.created_at,
            activated_at: row.activated_at,
            retired_at: row.retired_at,
            publish_until: row.publish_until,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = signing_keys)]
pub(super) struct NewSigningKeyRow<'a> {
    pub kid: &'a str,
    pub algorithm: &'a str,
    pub state: &'a str,
    pub sealed_private_key: &'a [u8],
    pub public_jwk: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = revoked_tokens)]
pub(super) struct NewRevokedToken<'a> {
    pub jti: &'a str,
    pub client_id: &'a str,
    pub expires_at: i64,
    pub revoked_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(super) struct AccountRow {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub scopes: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub is_operator: bool,
}

impl TryFrom<AccountRow> for Account {
    type Error = CorruptRow;

    fn try_from(row: AccountRow) -> Result<Self, CorruptRow> {
        Ok(Account {
            scopes: stored_scope("accounts", &row.id, &row.scopes)?,
            id: row.id,
            handle: row.handle,
            display_name: row.display_name,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
            is_operator: row.is_operator,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = accounts)]
pub(super) struct NewAccountRow<'a> {
    pub id: &'a str,
    pub handle: &'a str,
    pub display_name: &'a str,
    pub scopes: String,
    pub created_at: i64,
    pub is_operator: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(super) struct ApiKeyRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = CorruptRow;

    fn try_from(row: ApiKeyRow) -> Result<Self, CorruptRow> {
        Ok(ApiKey {
            scopes: stored_scope("api_keys", &row.id, &row.scopes)?,
            id: row.id,
            account_id: row.account_id,
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub(super) struct NewApiKeyRow<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub digest: &'a [u8],
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pairing_challenges)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(super) struct ChallengeRow {
    pub id: String,
    pub account_id: Option<String>,
    pub app_name: String,
    pub scopes: String,
    pub failed_attempts: i32,
    pub status: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub resolved_at: Option<i64>,
    pub api_key_id: Option<String>,
    pub owner_approved_at: Option<i64>,
}

impl TryFrom<ChallengeRow> for Challenge {
    type Error = CorruptRow;

    fn try_from(row: ChallengeRow) -> Result<Self, CorruptRow> {
        let status = ChallengeStatus::parse(&row.status).ok_or_else(|| {
            CorruptRow::new(
                "pairing_challenges",
                &row.id,
                format!("status {:?}", row.status),
            )
        })?;
        Ok(Challenge {
            scopes: stored_scope("pairing_challenges", &row.id, &row.scopes)?,
            id: row.id,
            account_id: row.account_id,
            app_name: row.app_name,
            failed_attempts: row.failed_attempts,
            status,
            created_at: row.created_at,
            expires_at: row.expires_at,
            resolved_at: row.resolved_at,
            api_key_id: row.api_key_id,
            owner_approved_at: row.owner_approved_at,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = pairing_challenges)]
pub(super) struct NewChallengeRow<'a> {
    pub id: &'a str,
    pub account_id: Option<&'a str>,
    pub app_name: &'a str,
    pub scopes: String,
    pub failed_attempts: i32,
    pub status: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
}

impl<'a> From<&'a Challenge> for NewChallengeRow<'a> {
    fn from(challenge: &'a Challenge) -> Self {
        Self {
            id: &challenge.id,
            account_id: challenge.account_id.as_deref(),
            app_name: &challenge.app_name,
            scopes: challenge.scopes.to_string(),
            failed_attempts: challenge.failed_attempts,
            status: challenge.status.as_str(),
            created_at: challenge.created_at,
            expires_at: challenge.expires_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(super) struct AuditRow {
    pub seq: i64,
    pub occurred_at: i64,
    pub action: String,
    pub actor: String,
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    pub subject_id: Option<String>,
    pub details: String,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = CorruptRow;

    fn try_from(row: AuditRow) -> Result<Self, CorruptRow> {
        let details = serde_json::from_str(&row.details).map_err(|e| {
            CorruptRow::new(
                "audit_events",
                &row.seq.to_string(),
                format!("details: {e}"),
            )
        })?;
        Ok(AuditEvent {
            seq: row.seq,
            occurred_at: row.occurred_at,
            action: row.action,
            actor: row.actor,
            account_id: row.account_id,
            client_id: row.client_id,
            subject_id: row.subject_id,
            details,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = audit_events)]
pub(super) struct NewAuditRow<'a> {
    pub occurred_at: i64,
    pub action: &'a str,
    pub actor: &'a str,
    pub account_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub subject_id: Option<&'a str>,
    pub details: String,
}
