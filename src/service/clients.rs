//! Managing OAuth clients: create, list, update, disable, delete, rotate the secret.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::audit::{self, Actor};
use super::{split_list, timestamp};
use crate::crypto::secrets::{ClientSecret, random_id};
use crate::db::models::{ClientChanges, ClientRow, NewClientRow};
use crate::db::{self, DbConn, DbError};
use crate::oauth::{GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, Scope};
use serde_json::json;

/// Grant types a client may be allowed to use.
pub const SUPPORTED_GRANT_TYPES: &[&str] = &[GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE];

const MAX_NAME_LEN: usize = 200;
const MAX_AUDIENCES: usize = 32;
const MAX_AUDIENCE_LEN: usize = 512;
/// Ten years: anything longer is a typo, and it keeps `now + ttl` far from overflow.
pub const MAX_TTL_SECONDS: i64 = 10 * 365 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no client with id {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] DbError),
}

impl From<diesel::result::Error> for ClientError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Store(DbError::Query(err))
    }
}

/// What a new client may do.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub name: String,
    pub scopes: Scope,
    pub audiences: Vec<String>,
    pub token_ttl: Option<i64>,
    pub grant_types: Vec<String>,
}

/// A partial update; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    pub name: Option<String>,
    pub scopes: Option<Scope>,
    pub audiences: Option<Vec<String>>,
    /// `Some(None)` returns the client to the server's default lifetime.
    pub token_ttl: Option<Option<i64>>,
    pub grant_types: Option<Vec<String>>,
}

/// A client as the admin API and the CLI show it. Never holds a secret or its digest.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub grant_types: Vec<String>,
    pub token_ttl: Option<i64>,
    pub disabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// While a rotated-out secret still works.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Tokens issued before this time are revoked.
    pub tokens_revoked_before: Option<DateTime<Utc>>,
}

impl ClientView {
    pub fn from_row(row: &ClientRow, now: i64) -> Self {
        Self {
            client_id: row.id.clone(),
            name: row.name.clone(),
            scopes: split_list(&row.scopes),
            audiences: split_list(&row.audiences),
            grant_types: split_list(&row.grant_types),
            token_ttl: row.token_ttl,
            disabled: row.disabled_at.is_some(),
            disabled_at: row.disabled_at.map(timestamp),
            created_at: timestamp(row.created_at),
            updated_at: timestamp(row.updated_at),
            previous_secret_expires_at: row
                .previous_secret_expires_at
                .filter(|t| *t > now)
                .map(timestamp),
            tokens_revoked_before: row.tokens_not_before.map(timestamp),
        }
    }
}

fn validate_name(name: &str) -> Result<String, ClientError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ClientError::Invalid(format!(
            "name must be 1 to {MAX_NAME_LEN} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ClientError::Invalid(
            "name must not contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

fn validate_audiences(audiences: &[String]) -> Result<String, ClientError> {
    if audiences.len() > MAX_AUDIENCES {
        return Err(ClientError::Invalid(format!(
            "at most {MAX_AUDIENCES} audiences"
        )));
    }
    let mut unique: Vec<&str> = Vec::new();
    for audience in audiences {
        if audience.is_empty()
            || audience.len() > MAX_AUDIENCE_LEN
            || audience
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ClientError::Invalid(format!(
                "audience {audience:?} must be 1 to {MAX_AUDIENCE_LEN} characters without spaces (an absolute URI is best)"
            )));
        }
        if !unique.contains(&audience.as_str()) {
            unique.push(audience);
        }
    }
    Ok(unique.join(" "))
}

fn validate_ttl(ttl: Option<i64>) -> Result<Option<i64>, ClientError> {
    match ttl {
        Some(t) if !(1..=MAX_TTL_SECONDS).contains(&t) => Err(ClientError::Invalid(format!(
            "token_ttl must be between 1 and {MAX_TTL_SECONDS} seconds"
        ))),
        other => Ok(other),
    }
}

fn validate_grant_types(grant_types: &[String]) -> Result<String, ClientError> {
    if grant_types.is_empty() {
        return Ok(GRANT_CLIENT_CREDENTIALS.to_owned());
    }
    let mut unique: Vec<&str> = Vec::new();
    for grant_type in grant_types {
        if !SUPPORTED_GRANT_TYPES.contains(&grant_type.as_str()) {
            return Err(ClientError::Invalid(format!(
                "grant type {grant_type:?} is not supported (supported: {})",
                SUPPORTED_GRANT_TYPES.join(", ")
            )));
        }
        if !unique.contains(&grant_type.as_str()) {
            unique.push(grant_type);
        }
    }
    Ok(unique.join(" "))
}

/// Creates a client and returns it with its secret, which is not stored and cannot be
/// shown again.
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    spec: &ClientSpec,
    now: i64,
) -> Result<(ClientView, ClientSecret), ClientError> {
    let name = validate_name(&spec.name)?;
    let audiences = validate_audiences(&spec.audiences)?;
    let token_ttl = validate_ttl(spec.token_ttl)?;
    let grant_types = validate_grant_types(&spec.grant_types)?;
    let scopes = spec.scopes.to_string();
    let secret = ClientSecret::generate();
    let digest = secret.digest();
    let id = random_id();
    let row = NewClientRow {
        id: &id,
        name: &name,
        secret_digest: digest.as_bytes(),
        scopes: &scopes,
        audiences: &audiences,
        grant_types: &grant_types,
        token_ttl,
        created_at: now,
        updated_at: now,
    };
    db::clients::insert(conn, &row)?;
    let details = json!({"name": name, "scopes": scopes, "grant_types": grant_types});
    audit::record(
        conn,
        actor,
        client_event("client.created", &id, Some(details)),
        now,
    )?;
    Ok((get(conn, &id, now)?, secret))
}

pub fn list(conn: &mut DbConn, now: i64) -> Result<Vec<ClientView>, ClientError> {
    Ok(db::clients::list(conn)?
        .iter()
        .map(|row| ClientView::from_row(row, now))
        .collect())
}

pub fn get(conn: &mut DbConn, id: &str, now: i64) -> Result<ClientView, ClientError> {
    db::clients::find(conn, id)?
        .map(|row| ClientView::from_row(&row, now))
        .ok_or_else(|| ClientError::NotFound(id.to_owned()))
}

pub fn update(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    update: &ClientUpdate,
    now: i64,
) -> Result<ClientView, ClientError> {
    let changes = ClientChanges {
        name: update.name.as_deref().map(validate_name).transpose()?,
        scopes: update.scopes.as_ref().map(Scope::to_string),
        audiences: update
            .audiences
            .as_deref()
            .map(validate_audiences)
            .transpose()?,
        grant_types: update
            .grant_types
            .as_deref()
            .map(validate_grant_types)
            .transpose()?,
        token_ttl: update.token_ttl.map(validate_ttl).transpose()?,
        updated_at: Some(now),
        ..ClientChanges::default()
    };
    let view = apply(conn, id, &changes, now)?;
    let details =
        json!({"scopes": view.scopes, "audiences": view.audiences, "token_ttl": view.token_ttl});
    audit::record(
        conn,
        actor,
        client_event("client.updated", id, Some(details)),
        now,
    )?;
    Ok(view)
}

/// Disabling takes effect on the next token request: the token endpoint reads the client
/// on every request.
pub fn set_disabled(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    disabled: bool,
    now: i64,
) -> Result<ClientView, ClientError> {
    let current = db::clients::find(conn, id)?.ok_or_else(|| ClientError::NotFound(id.into()))?;
    if current.disabled_at.is_some() == disabled {
        return Ok(ClientView::from_row(&current, now));
    }
    // Disabling revokes every token issued so far; enabling does not bring them back.
    if disabled {
        db::clients::bump_tokens_not_before(conn, id, now)?;
    }
    let changes = ClientChanges {
        disabled_at: Some(disabled.then_some(now)),
        updated_at: Some(now),
        ..ClientChanges::default()
    };
    let view = apply(conn, id, &changes, now)?;
    let action = if disabled {
        "client.disabled"
    } else {
        "client.enabled"
    };
    audit::record(conn, actor, client_event(action, id, None), now)?;
    Ok(view)
}

pub fn delete(conn: &mut DbConn, actor: &Actor, id: &str, now: i64) -> Result<(), ClientError> {
    if db::clients::delete(conn, id)? {
        audit::record(conn, actor, client_event("client.deleted", id, None), now)?;
        Ok(())
    } else {
        Err(ClientError::NotFound(id.to_owned()))
    }
}

/// Replaces the secret. The old one keeps working for `grace_seconds` (0: stops at once),
/// so a fleet can roll the new secret out (as fosite's rotated secret hashes allow).
pub fn rotate_secret(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    grace_seconds: i64,
    now: i64,
) -> Result<(ClientView, ClientSecret), ClientError> {
    if !(0..=MAX_TTL_SECONDS).contains(&grace_seconds) {
        return Err(ClientError::Invalid(format!(
            "grace must be between 0 and {MAX_TTL_SECONDS} seconds"
        )));
    }
    let current = db::clients::find(conn, id)?.ok_or_else(|| ClientError::NotFound(id.into()))?;
    let secret = ClientSecret::generate();
    let keep_previous = grace_seconds > 0;

    let changes = ClientChanges {
        secret_digest: Some(secret.digest().as_bytes().to_vec()),
        previous_secret_digest: Some(keep_previous.then_some(current.secret_digest)),
        previous_secret_expires_at: Some(keep_previous.then_some(now + grace_seconds)),
        updated_at: Some(now),
        ..ClientChanges::default()
    };
    // A rotation usually answers a leak: tokens issued with the old secret go too.
    db::clients::bump_tokens_not_before(conn, id, now)?;
    let view = apply(conn, id, &changes, now)?;
    let details = json!({"grace_seconds": grace_seconds});
    audit::record(
        conn,
        actor,
        client_event("client.secret_rotated", id, Some(details)),
        now,
    )?;
    Ok((view, secret))
}

/// Revokes every token issued to the client until now, without a row per token.
pub fn revoke_tokens(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    now: i64,
) -> Result<ClientView, ClientError> {
    if !db::clients::bump_tokens_not_before(conn, id, now)? {
        return Err(ClientError::NotFound(id.to_owned()));
    }
    let view = get(conn, id, now)?;
    audit::record(
        conn,
        actor,
        client_event("client.tokens_revoked", id, None),
        now,
    )?;
    Ok(view)
}

fn client_event<'a>(
    action: &'a str,
    id: &'a str,
    details: Option<serde_json::Value>,
) -> audit::Event<'a> {
    audit::Event {
        action,
        client_id: Some(id),
        subject_id: Some(id),
        details,
        ..audit::Event::default()
    }
}

fn apply(
    conn: &mut DbConn,
    id: &str,
    changes: &ClientChanges,
    now: i64,
) -> Result<ClientView, ClientError> {
    if !db::clients::update(conn, id, changes)? {
        return Err(ClientError::NotFound(id.to_owned()));
    }
    get(conn, id, now)
}
