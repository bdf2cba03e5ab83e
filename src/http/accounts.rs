//! The account-facing API (`/api/v1`), authenticated by an API key. Carries the
//! `Tollgate-Version` header, like the pairing API.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::HttpError;
use super::extract::{ScopeInput, bearer_token, header_str, json_body};
use super::surface;
use crate::app::AppState;
use crate::crypto::secrets::ApiKeySecret;
use crate::oauth::KEYS_SCOPE;
use crate::service::api_keys::{self, ApiKeyView, KeyHolder, KeyRejection, KeySpec};
use crate::service::{BearerRejection, accounts, pairing, with_secret_once};

/// The API version header, so the pairing flow can evolve without breaking apps.
pub const VERSION_HEADER: &str = "tollgate-version";
/// Versions this server speaks; requests without the header get the newest.
pub const SUPPORTED_VERSIONS: &[&str] = &["2026-11-22"];

pub fn versioned() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new().add((VERSION_HEADER, SUPPORTED_VERSIONS[0]))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(versioned())
            .app_data(web::PayloadConfig::new(16 * 1024))
            .route("/me", surface::get().to(get_me))
            .route("/keys", surface::get().to(list_keys))
            .route("/keys", surface::post().to(post_key))
            .route("/keys/{id}", surface::delete().to(delete_key))
            .route("/keys/{id}/revoke", surface::post().to(post_revoke_key))
            .route("/challenges", surface::get().to(list_challenges))
            .route(
                "/challenges/{id}/deny",
                surface::post().to(post_deny_challenge),
            ),
    );
}

/// An unknown `Tollgate-Version` is a clear 400, never a guess.
pub fn check_version(req: &HttpRequest) -> Result<(), HttpError> {
    match header_str(req, header::HeaderName::from_static(VERSION_HEADER)) {
        None => Ok(()),
        Some(version) if SUPPORTED_VERSIONS.contains(&version.trim()) => Ok(()),
        Some(version) => Err(HttpError::api(
            StatusCode::BAD_REQUEST,
            "unsupported_version",
            format!(
                "Tollgate-Version {} is not supported; supported: {}",
                crate::oauth::error::echo(version),
                SUPPORTED_VERSIONS.join(", ")
            ),
        )),
    }
}

/// RFC 6750: the API key from `Authorization: Bearer` (§2.1), a form body `access_token`
/// (§2.2), or, for JSON bodies, the `i` field (as Misskey clients send it). Never from the
/// URL: a key in a query string ends up in logs and browser history.
fn presented_credential(req: &HttpRequest, body: &[u8]) -> Result<Option<String>, HttpError> {
    let in_query = form_urlencoded::parse(req.query_string().as_bytes())
        .any(|(name, _)| name == "access_token" || name == "i");
    if in_query {
        return Err(HttpError::bad_request(
            "credentials must not be sent in the URL; use the Authorization header",
        ));
    }
    if req.headers().contains_key(header::AUTHORIZATION) {
        return Ok(bearer_token(req));
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
) -> Result<KeyHolder, HttpError> {
    check_version(req)?;
    let credential = presented_credential(req, body)?.ok_or(BearerRejection::Missing)?;
    let (app, now) = (state.clone(), state.now());
    let found = state
        .db
        .run(move |conn| api_keys::authenticate(conn, &app.usage, &credential, now))
        .await?;
    let holder = found.map_err(|why| {
        BearerRejection::InvalidToken(match why {
            KeyRejection::AccountDisabled => "the account is disabled".into(),
            other => other.to_string(),
        })
    })?;
    if let Some(scope) = scope
        && !holder.scopes().contains(scope)
    {
        return Err(BearerRejection::InsufficientScope(scope).into());
    }
    Ok(holder)
}

fn private_json(status: StatusCode, body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

/// The one answer that holds a new key's secret.
pub fn key_created(view: &ApiKeyView, secret: &ApiKeySecret) -> HttpResponse {
    private_json(
        StatusCode::CREATED,
        with_secret_once(view, "api_key", secret.expose()),
    )
}

/// `GET /api/v1/me`: who the presented key belongs to, and what it may do.
async fn get_me(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder(&req, &body, &state, None).await?;
    Ok(private_json(
        StatusCode::OK,
        json!({
            "account": accounts::AccountView::from(&holder.account),
            "credential": {
                "type": "api_key",
                "key": ApiKeyView::new(&holder.key, state.now()),
            },
            "scopes": holder.scopes().tokens(),
        }),
    ))
}

async fn list_keys(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let keys = state
        .db
        .run(move |conn| api_keys::list(conn, &holder.account.id, now))
        .await?;
    Ok(private_json(StatusCode::OK, json!({ "keys": keys })))
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

/// The new key is in the answer once, and never again.
async fn post_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let request = json_body::<CreateKeyBody>(&body)?;
    let asked = KeySpec {
        name: request.name,
        scopes: request.scopes.as_ref().map(ScopeInput::parse).transpose()?,
        expires_in: request.expires_in,
    };
    let spec = api_keys::delegated_spec(&holder.key, asked, now)?;
    let (view, secret) = state
        .db
        .run(move |conn| api_keys::create(conn, &holder.actor(), &holder.account, &spec, now))
        .await?;
    Ok(key_created(&view, &secret))
}

async fn delete_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    state
        .db
        .run(move |conn| {
            api_keys::delete(conn, &holder.actor(), &id, Some(&holder.account.id), now)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn post_revoke_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let view = state
        .db
        .run(move |conn| {
            api_keys::revoke(conn, &holder.actor(), &id, Some(&holder.account.id), now)
        })
        .await?;
    Ok(private_json(StatusCode::OK, view))
}

/// Pending pairing requests, with the codes to give the apps.
async fn list_challenges(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let challenges = state
        .db
        .run(move |conn| pairing::pending_challenges(conn, &holder.account.id, now))
        .await?;
    Ok(private_json(
        StatusCode::OK,
        json!({ "challenges": challenges }),
    ))
}

async fn post_deny_challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let challenge_id = id.into_inner();
    let denied = challenge_id.clone();
    state
        .db
        .run(move |conn| {
            pairing::deny_challenge(
                conn,
                &holder.actor(),
                &denied,
                Some(&holder.account.id),
                now,
            )
        })
        .await?;
    Ok(private_json(
        StatusCode::OK,
        json!({"challenge_id": challenge_id, "status": "denied"}),
    ))
}
