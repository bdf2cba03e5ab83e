//! The account-facing API (`/api/v1`, authenticated by an API key) and app pairing
//! (`/v1/auth`). Both carry the `Tollgate-Version` header.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::ScopeInput;
use super::error::{ApiError, BearerError};
use super::extract::header_str;
use crate::db::models::{AccountRow, ApiKeyRow};
use crate::service::accounts::{
    self, AccountError, KEYS_SCOPE, KeyRejection, KeySpec, PairingRefusal,
};
use crate::service::audit::Actor;
use crate::startup::AppState;

/// The API version header, so the pairing flow can evolve without breaking apps.
pub const VERSION_HEADER: &str = "tollgate-version";
/// Versions this server speaks; requests without the header get the newest.
pub const SUPPORTED_VERSIONS: &[&str] = &["2026-11-22"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    let versioned = || {
        actix_web::middleware::DefaultHeaders::new().add((VERSION_HEADER, SUPPORTED_VERSIONS[0]))
    };
    cfg.service(
        web::scope("/v1/auth")
            .wrap(versioned())
            .app_data(web::PayloadConfig::new(16 * 1024))
            .route("/challenges", web::post().to(post_challenge))
            .route("/api_keys", web::post().to(post_redeem_challenge)),
    )
    .service(
        web::scope("/api/v1")
            .wrap(versioned())
            .app_data(web::PayloadConfig::new(16 * 1024))
            .route("/me", web::get().to(get_me))
            .route("/keys", web::get().to(list_keys))
            .route("/keys", web::post().to(post_key))
            .route("/keys/{id}", web::delete().to(delete_key))
            .route("/keys/{id}/revoke", web::post().to(post_revoke_key))
            .route("/challenges", web::get().to(list_challenges))
            .route("/challenges/{id}/deny", web::post().to(post_deny_challenge)),
    );
}

/// An unknown `Tollgate-Version` is a clear 400, never a guess.
fn check_version(req: &HttpRequest) -> Result<(), ApiError> {
    match header_str(req, header::HeaderName::from_static(VERSION_HEADER)) {
        None => Ok(()),
        Some(version) if SUPPORTED_VERSIONS.contains(&version.trim()) => Ok(()),
        Some(version) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_version",
            format!(
                "Tollgate-Version {version:?} is not supported; supported: {}",
                SUPPORTED_VERSIONS.join(", ")
            ),
        )),
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::AccountNotFound(_) | AccountError::KeyNotFound(_) => {
                Self::not_found(err.to_string())
            }
            AccountError::HandleTaken(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            AccountError::Invalid(message) => Self::bad_request(message),
            AccountError::Store(db) => db.into(),
        }
    }
}

/// An authenticated API key and its account.
pub struct KeyHolder {
    pub key: ApiKeyRow,
    pub account: AccountRow,
}

impl KeyHolder {
    fn actor(&self) -> Actor {
        Actor::account(&self.account.handle)
    }

    fn has_scope(&self, scope: &str) -> bool {
        self.key.scopes.split(' ').any(|s| s == scope)
    }
}

/// RFC 6750: the API key from `Authorization: Bearer` (§2.1), a form body `access_token`
/// (§2.2), or, for JSON bodies, the `i` field (as Misskey clients send it). Never from the
/// URL: a key in a query string ends up in logs and browser history.
fn presented_credential(req: &HttpRequest, body: &[u8]) -> Result<Option<String>, ApiError> {
    let in_query = form_urlencoded::parse(req.query_string().as_bytes())
        .any(|(name, _)| name == "access_token" || name == "i");
    if in_query {
        return Err(ApiError::bad_request(
            "credentials must not be sent in the URL; use the Authorization header",
        ));
    }
    if let Some(value) = header_str(req, header::AUTHORIZATION) {
        return match value.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Ok(Some(token.trim().to_owned()))
            }
            _ => Ok(None),
        };
    }
    if body.is_empty() {
        return Ok(None);
    }
    let content_type = header_str(req, header::CONTENT_TYPE)
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase());
    Ok(match content_type.as_deref() {
        Some("application/x-www-form-urlencoded") => form_urlencoded::parse(body)
            .find(|(name, _)| name == "access_token")
            .map(|(_, value)| value.into_owned()),
        Some("application/json") => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("i").and_then(Value::as_str).map(str::to_owned)),
        _ => None,
    })
}

/// Authenticates the request's API key (one indexed read) and checks `scope`.
async fn key_holder(
    req: &HttpRequest,
    body: &[u8],
    state: &web::Data<AppState>,
    scope: Option<&'static str>,
) -> Result<KeyHolder, actix_web::Error> {
    check_version(req)?;
    let credential = presented_credential(req, body)?.ok_or(BearerError::Missing)?;
    let (app, now) = (state.clone(), state.now());
    let found = state
        .db
        .run(move |conn| accounts::authenticate_key(conn, &app.usage, &credential, now))
        .await
        .map_err(ApiError::from)?;
    let (key, account) = found.map_err(|why| {
        BearerError::InvalidToken(match why {
            KeyRejection::AccountDisabled => "the account is disabled".into(),
            other => other.to_string(),
        })
    })?;
    let holder = KeyHolder { key, account };
    if let Some(scope) = scope
        && !holder.has_scope(scope)
    {
        return Err(BearerError::InsufficientScope(scope).into());
    }
    Ok(holder)
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn no_store(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

/// `GET /api/v1/me`: who the presented key belongs to, and what it may do.
async fn get_me(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let holder = key_holder(&req, &body, &state, None).await?;
    let now = state.now();
    Ok(HttpResponse::Ok().json(json!({
        "account": accounts::AccountView::from(&holder.account),
        "credential": {
            "type": "api_key",
            "key": accounts::ApiKeyView::from_row(&holder.key, now),
        },
        "scopes": holder.key.scopes.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
    })))
}

async fn list_keys(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let keys = state
        .db
        .run(move |conn| accounts::list_keys(conn, &holder.account.id, now))
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}

#[derive(Deserialize)]
struct CreateKeyBody {
    name: String,
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    #[serde(default)]
    expires_in: Option<i64>,
    /// The credential, when sent in the body (Misskey style); not a key setting.
    #[serde(default, rename = "i")]
    _credential: Option<String>,
}

impl CreateKeyBody {
    fn into_spec(self) -> Result<KeySpec, ApiError> {
        Ok(KeySpec {
            name: self.name,
            scopes: self.scopes.as_ref().map(ScopeInput::parse).transpose()?,
            expires_in: self.expires_in,
        })
    }
}

/// The new key is in the answer once, and never again.
async fn post_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let spec = accounts::delegated_spec(
        &holder.key,
        json_body::<CreateKeyBody>(&body)?.into_spec()?,
        now,
    )
    .map_err(ApiError::from)?;
    let (view, secret) = state
        .db
        .run(move |conn| accounts::create_key(conn, &holder.actor(), &holder.account, &spec, now))
        .await
        .map_err(ApiError::from)?;
    Ok(key_created(&view, secret.expose()))
}

pub fn key_created(view: &accounts::ApiKeyView, secret: &str) -> HttpResponse {
    let mut body = serde_json::to_value(view).unwrap_or_else(|_| json!({}));
    if let Some(members) = body.as_object_mut() {
        members.insert("api_key".into(), json!(secret));
    }
    no_store(StatusCode::CREATED, body)
}

async fn delete_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    state
        .db
        .run(move |conn| {
            accounts::delete_key(conn, &holder.actor(), &id, Some(&holder.account.id), now)
        })
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn post_revoke_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let view = state
        .db
        .run(move |conn| {
            accounts::revoke_key(conn, &holder.actor(), &id, Some(&holder.account.id), now)
        })
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(view))
}

/// Pending pairing requests, with the codes to give the apps.
async fn list_challenges(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let challenges = state
        .db
        .run(move |conn| accounts::pending_challenges(conn, &holder.account.id, now))
        .await
        .map_err(ApiError::from)?;
    Ok(no_store(
        StatusCode::OK,
        json!({ "challenges": challenges }),
    ))
}

async fn post_deny_challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let challenge_id = id.into_inner();
    let denied = challenge_id.clone();
    state
        .db
        .run(move |conn| {
            accounts::deny_challenge(
                conn,
                &holder.actor(),
                &denied,
                Some(&holder.account.id),
                now,
            )
        })
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(json!({"challenge_id": challenge_id, "status": "denied"})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeBody {
    app_name: String,
    account: String,
    scopes: ScopeInput,
}

fn slow_down(wait: Duration) -> HttpResponse {
    let seconds = wait.as_secs().max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "slow_down",
        format!("too many pairing requests; try again in {seconds} s"),
    )
    .error_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// `POST /v1/auth/challenges`: an app asks an account for a key. The answer is the same
/// whether or not the account exists.
async fn post_challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    check_version(&req)?;
    let request = json_body::<ChallengeBody>(&body)?;
    let scopes = request.scopes.parse()?;
    let address = super::rate_limit::client_ip(
        req.peer_addr().map(|a| a.ip()),
        header_str(&req, header::HeaderName::from_static("x-forwarded-for")),
        &state.settings.trusted_proxies,
    )
    .map(super::rate_limit::address_key)
    .unwrap_or_default();
    let handle = request.account.trim().to_ascii_lowercase();
    if handle.len() > 64 {
        return Err(ApiError::bad_request("account must be a handle").into());
    }
    if let Err(wait) = state.pairing_by_address.check(&address) {
        return Ok(slow_down(wait));
    }
    if let Err(wait) = state.pairing_by_account.check(&handle) {
        return Ok(slow_down(wait));
    }
    let now = state.now();
    let challenge = state
        .db
        .run(move |conn| accounts::create_challenge(conn, &request.app_name, &handle, &scopes, now))
        .await
        .map_err(ApiError::from)?;
    Ok(no_store(
        StatusCode::CREATED,
        json!({
            "challenge_id": challenge.id,
            "expires_in": accounts::CHALLENGE_TTL_SECONDS,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemBody {
    challenge_id: String,
    code: String,
}

/// `POST /v1/auth/api_keys`: the app trades the challenge id and the owner's code for a key.
async fn post_redeem_challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    check_version(&req)?;
    let request = json_body::<RedeemBody>(&body)?;
    let code = request.code.trim().to_owned();
    if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            ApiError::bad_request("code must be the 4 digits the account owner sees").into(),
        );
    }
    let now = state.now();
    let outcome = state
        .db
        .run(move |conn| accounts::redeem_challenge(conn, &request.challenge_id, &code, now))
        .await
        .map_err(ApiError::from)?;
    match outcome {
        Ok((view, secret, account)) => Ok(no_store(
            StatusCode::CREATED,
            json!({
                "api_key": secret.expose(),
                "key_id": view.id,
                "name": view.name,
                "scopes": view.scopes,
                "account": account.handle,
            }),
        )),
        Err(refusal) => {
            let (code, mut body) = match &refusal {
                PairingRefusal::UnknownChallenge => ("invalid_challenge", json!({})),
                PairingRefusal::WrongCode { remaining } => {
                    ("invalid_code", json!({"attempts_remaining": remaining}))
                }
                PairingRefusal::TooManyAttempts => ("challenge_failed", json!({})),
                PairingRefusal::Expired => ("challenge_expired", json!({})),
                PairingRefusal::AlreadyUsed => ("challenge_used", json!({})),
                PairingRefusal::Denied => ("challenge_denied", json!({})),
            };
            body["error"] = json!(code);
            body["error_description"] = json!(refusal.to_string());
            Ok(no_store(StatusCode::BAD_REQUEST, body))
        }
    }
}
