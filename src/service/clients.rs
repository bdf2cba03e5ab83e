//! Managing OAuth clients: create, list, update, disable, delete, rotate the secret.
//! Each change is one transaction with its audit event.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::audit::{self, Actor};
use crate::crypto::secrets::{ClientSecret, random_id};
use crate::db::clients::ClientChanges;
use crate::db::{self, DbConn, DbError};
use crate::domain::{Client, GrantType, timestamp};
use crate::oauth::{MAX_TTL_SECONDS, Scope};

const MAX_NAME_LEN: usize = 200;
const MAX_AUDIENCES: usize = 32;
const MAX_AUDIENCE_LEN: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no client with id {}", crate::oauth::error::echo(.0))]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] DbError),
}

/// What a new client may do.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub name: String,
    pub scopes: Scope,
    pub audiences: Vec<String>,
    pub token_ttl: Option<i64>,
    /// Grant type names; empty means client credentials only.
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub grant_types: Vec<&'static str>,
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
    pub fn new(client: &Client, now: i64) -> Self {
        Self {
            client_id: client.id.clone(),
            name: client.name.clone(),
            scopes: client.scopes.tokens().to_vec(),
            audiences: client.audiences.clone(),
            grant_types: client.grant_types.iter().map(|g| g.as_str()).collect(),
            token_ttl: client.token_ttl,
            disabled: client.is_disabled(),
            disabled_at: client.disabled_at.map(timestamp),
            created_at: timestamp(client.created_at),
            updated_at: timestamp(client.updated_at),
            previous_secret_expires_at: client
                .previous_secret
                .as_ref()
                .map(|(_, until)| *until)
                .filter(|t| *t > now)
                .map(timestamp),
            tokens_revoked_before: client.tokens_not_before.map(timestamp),
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

fn validate_audiences(audiences: &[String]) -> Result<Vec<String>, ClientError> {
    if audiences.len() > MAX_AUDIENCES {
        return Err(ClientError::Invalid(format!(
            "at most {MAX_AUDIENCES} audiences"
        )));
    }
    let mut unique: Vec<String> = Vec::new();
    for audience in audiences {
        if audience.is_empty()
            || audience.len() > MAX_AUDIENCE_LEN
            || audience
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ClientError::Invalid(format!(
                "audience {} must be 1 to {MAX_AUDIENCE_LEN} characters without spaces (an absolute URI is best)",
                crate::oauth::error::echo(audience)
            )));
        }
        if !unique.contains(audience) {
            unique.push(audience.clone());
        }
    }
    Ok(unique)
}

fn validate_ttl(ttl: Option<i64>) -> Result<Option<i64>, ClientError> {
    match ttl {
        Some(t) if !(1..=MAX_TTL_SECONDS).contains(&t) => Err(ClientError::Invalid(format!(
            "token_ttl must be between 1 and {MAX_TTL_SECONDS} seconds"
        ))),
        other => Ok(other),
    }
}

fn validate_grant_types(grant_types: &[String]) -> Result<Vec<GrantType>, ClientError> {
    if grant_types.is_empty() {
        return Ok(vec![GrantType::ClientCredentials]);
    }
    let mut unique: Vec<GrantType> = Vec::new();
    for name in grant_types {
        let grant = GrantType::parse(name).ok_or_else(|| {
            let supported: Vec<&str> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
            ClientError::Invalid(format!(
                "grant type {} is not supported (supported: {})",
                crate::oauth::error::echo(name),
                supported.join(", ")
            ))
        })?;
        if !unique.contains(&grant) {
            unique.push(grant);
        }
    }
    Ok(unique)
}

/// Creates a client and returns it with its secret, which is not stored and cannot be
/// shown again.
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    spec: &ClientSpec,
    now: i64,
) -> Result<(ClientView, ClientSecret), ClientError> {
    let secret = ClientSecret::generate();
    let client = Client {
        id: random_id(),
        name: validate_name(&spec.name)?,
        secret_digest: secret.digest().as_bytes().to_vec(),
        previous_secret: None,
        scopes: spec.scopes.clone(),
        audiences: validate_audiences(&spec.audiences)?,
        grant_types: validate_grant_types(&spec.grant_types)?,
        token_ttl: validate_ttl(spec.token_ttl)?,
        disabled_at: None,
        created_at: now,
        updated_at: now,
        tokens_not_before: None,
    };
    db::transaction(conn, |conn| {
        db::clients::insert(conn, &client)?;
        let view = ClientView::new(&client, now);
        let details = json!({"name": view.name, "scopes": client.scopes.to_string(), "grant_types": view.grant_types});
        audit::record(
            conn,
            actor,
            client_event("client.created", &client.id, Some(details)),
            now,
        )?;
        Ok((view, secret))
    })
}

pub fn list(conn: &mut DbConn, now: i64) -> Result<Vec<ClientView>, ClientError> {
    Ok(db::clients::list(conn)?
        .iter()
        .map(|client| ClientView::new(client, now))
        .collect())
}

pub fn get(conn: &mut DbConn, id: &str, now: i64) -> Result<ClientView, ClientError> {
    Ok(ClientView::new(&find(conn, id)?, now))
}

fn find(conn: &mut DbConn, id: &str) -> Result<Client, ClientError> {
    db::clients::find(conn, id)?.ok_or_else(|| ClientError::NotFound(id.to_owned()))
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
        scopes: update.scopes.clone(),
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
    db::transaction(conn, |conn| {
        let view = apply(conn, id, &changes, now)?;
        let details = json!({"scopes": view.scopes, "audiences": view.audiences, "token_ttl": view.token_ttl});
        audit::record(
            conn,
            actor,
            client_event("client.updated", id, Some(details)),
            now,
        )?;
        Ok(view)
    })
}

/// Disabling revokes every token issued so far (enabling does not bring them back) and
/// takes effect on the next token request: the token endpoint reads the client each time.
pub fn set_disabled(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    disabled: bool,
    now: i64,
) -> Result<ClientView, ClientError> {
    db::transaction(conn, |conn| {
        let current = find(conn, id)?;
        if current.is_disabled() == disabled {
            return Ok(ClientView::new(&current, now));
        }
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
    })
}

pub fn delete(conn: &mut DbConn, actor: &Actor, id: &str, now: i64) -> Result<(), ClientError> {
    db::transaction(conn, |conn| {
        if !db::clients::delete(conn, id)? {
            return Err(ClientError::NotFound(id.to_owned()));
        }
        audit::record(conn, actor, client_event("client.deleted", id, None), now)?;
        Ok(())
    })
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
    let secret = ClientSecret::generate();
    db::transaction(conn, |conn| {
        let current = find(conn, id)?;
        let previous = (grace_seconds > 0).then(|| (current.secret_digest, now + grace_seconds));
        let changes = ClientChanges {
            secret: Some((secret.digest().as_bytes().to_vec(), previous)),
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
    })
}

/// Revokes every token issued to the client until now, without a row per token.
pub fn revoke_tokens(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    now: i64,
) -> Result<ClientView, ClientError> {
    db::transaction(conn, |conn| {
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
    })
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
