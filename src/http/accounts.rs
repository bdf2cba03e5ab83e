//! The account-facing API (`/api/v1`), authenticated by an API key. Carries the
//! `Tollgate-Version` header, like the pairing API.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use super::error::{ErrorBody, HttpError};
use super::extract::{ScopeInput, bearer_token, describable, header_str, json_body};
use super::openapi::{BearerErrors, NotFound, StoreErrors, VersionedErrors};
use crate::app::AppState;
use crate::crypto::secrets::ApiKeySecret;
use crate::oauth::KEYS_SCOPE;
use crate::service::accounts::AccountView;
use crate::service::api_keys::{self, ApiKeyView, KeyHolder, KeyRejection, KeySpec, Within};
use crate::service::pairing::ChallengeView;
use crate::service::{BearerRejection, pairing};

/// The API version header, so the pairing flow can evolve without breaking apps.
pub const VERSION_HEADER: &str = "tollgate-version";
/// Versions this server speaks; requests without the header get the newest.
pub const SUPPORTED_VERSIONS: &[&str] = &["2026-11-22"];

pub fn versioned() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new().add((VERSION_HEADER, SUPPORTED_VERSIONS[0]))
}

/// The scope of the account and pairing APIs (their routes are in `http::routes`): the
/// `Tollgate-Version` header on every answer, and a 16 KiB body limit.
pub(super) fn scope(
    scope: actix_web::Scope,
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    scope
        .wrap(versioned())
        .app_data(web::PayloadConfig::new(16 * 1024))
}

/// The `Tollgate-Version` request header, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(dead_code, reason = "describes the header for the OpenAPI document")]
pub struct VersionHeader {
    /// The API version; default the newest.
    #[param(rename = "Tollgate-Version", inline, required = false)]
    version: Version,
}

/// One of [`SUPPORTED_VERSIONS`] (checked by a test).
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the header for the OpenAPI document")]
enum Version {
    #[schema(rename = "2026-11-22")]
    V20261122,
}

/// `{"keys": [...]}`: API keys.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKeyView>,
}

/// `{"challenges": [...]}`: pending pairing requests.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ChallengeList {
    pub challenges: Vec<ChallengeView>,
}

/// A key with its secret: the one answer that holds it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyWithSecret<'a> {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The key itself: shown this once; store it now.
    pub api_key: &'a str,
}

/// Who the presented key belongs to, and what it may do.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Me {
    pub account: AccountView,
    pub credential: Credential,
    /// The scopes the key carries.
    pub scopes: Vec<String>,
}

/// The credential of the request.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Credential {
    /// `api_key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub key: ApiKeyView,
}

/// A pairing request the owner settled.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ChallengeSettled {
    pub challenge_id: String,
    /// `denied` or `approved`.
    pub status: &'static str,
}

// Describes the form for the OpenAPI document.
/// The form of a call with no fields of its own (RFC 6750 §2.2).
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
pub struct CredentialForm {
    /// The API key, instead of the `Authorization` header.
    #[schema(required = false)]
    access_token: String,
}

// Describes the form for the OpenAPI document; it is read as a `CreateKeyBody`.
/// A new key for the presenting key's account, as a form.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
pub struct CreateKeyForm {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Space-separated; within the presenting key's scopes. Default: all of them.
    #[schema(required = false)]
    scope: String,
    /// Lifetime in seconds (at least 60), instead of `expires_at`.
    #[schema(required = false)]
    expires_in: i64,
    /// RFC 3339, instead of `expires_in`.
    #[schema(required = false)]
    expires_at: String,
    /// The API key, instead of the `Authorization` header.
    #[schema(required = false)]
    access_token: String,
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

/// A request body of the account API, parsed once: the credential it may carry and the
/// call's own fields.
enum Body {
    Empty,
    /// A JSON object (its `i` member, if any, is the credential).
    Json(serde_json::Map<String, Value>),
    /// `application/x-www-form-urlencoded` pairs (`access_token` is the credential).
    Form(Vec<(String, String)>),
}

impl Body {
    fn parse(req: &HttpRequest, body: &[u8]) -> Result<Self, HttpError> {
        if body.is_empty() {
            return Ok(Self::Empty);
        }
        let content_type = header_str(req, header::CONTENT_TYPE)
            .and_then(|ct| ct.split(';').next())
            .map(|ct| ct.trim().to_ascii_lowercase());
        match content_type.as_deref() {
            Some("application/x-www-form-urlencoded") => {
                let pairs: Vec<(String, String)> =
                    form_urlencoded::parse(body).into_owned().collect();
                let mut seen = std::collections::HashSet::new();
                if let Some((name, _)) = pairs.iter().find(|(name, _)| !seen.insert(name)) {
                    return Err(HttpError::bad_request(format!(
                        "form parameter {} is repeated",
                        describable(name)
                    )));
                }
                Ok(Self::Form(pairs))
            }
            Some("application/json") => Ok(Self::Json(json_body(body)?)),
            _ => Err(HttpError::bad_request(
                "the request body must be application/json or application/x-www-form-urlencoded",
            )),
        }
    }

    /// The credential the body carries, if any.
    fn credential(&self) -> Result<Option<String>, HttpError> {
        match self {
            Self::Empty => Ok(None),
            Self::Json(map) => match map.get("i") {
                None => Ok(None),
                Some(Value::String(key)) => Ok(Some(key.clone())),
                Some(_) => Err(HttpError::bad_request("i must be a string (the API key)")),
            },
            Self::Form(pairs) => Ok(pairs
                .iter()
                .find(|(name, _)| name == "access_token")
                .map(|(_, value)| value.clone())),
        }
    }

    /// The call's fields as `T` (which must allow and ignore `i`, and refuse unknown
    /// fields); a form body is read as strings, numbers where `T` wants them.
    fn fields<T: serde::de::DeserializeOwned>(&self, numeric: &[&str]) -> Result<T, HttpError> {
        let object = match self {
            Self::Empty => serde_json::Map::new(),
            Self::Json(map) => map.clone(),
            Self::Form(pairs) => {
                let mut object = serde_json::Map::new();
                for (name, value) in pairs {
                    if name == "access_token" {
                        continue;
                    }
                    let value = match value.trim().parse::<i64>() {
                        Ok(number) if numeric.contains(&name.as_str()) => Value::from(number),
                        _ => Value::String(value.clone()),
                    };
                    object.insert(name.clone(), value);
                }
                object
            }
        };
        serde_json::from_value(Value::Object(object)).map_err(|e| {
            HttpError::bad_request(format!(
                "invalid request body: {}",
                describable(&e.to_string())
            ))
        })
    }
}

/// A call with no fields of its own: the body may carry only the credential.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoFields {
    /// The API key, instead of the `Authorization` header (as Misskey clients send it).
    #[serde(default, rename = "i")]
    #[schema(value_type = String, required = false)]
    _credential: Option<Value>,
}

/// RFC 6750: the API key from `Authorization: Bearer` (§2.1), a form body `access_token`
/// (§2.2), or, for JSON bodies, the `i` field (as Misskey clients send it). Never from the
/// URL: a key in a query string ends up in logs and browser history. More than one at
/// once is refused (§2: a client uses one method).
fn presented_credential(req: &HttpRequest, body: &Body) -> Result<Option<String>, HttpError> {
    let in_query = form_urlencoded::parse(req.query_string().as_bytes())
        .any(|(name, _)| name == "access_token" || name == "i");
    if in_query {
        return Err(HttpError::bad_request(
            "credentials must not be sent in the URL; use the Authorization header",
        ));
    }
    let in_body = body.credential()?;
    if req.headers().contains_key(header::AUTHORIZATION) {
        if in_body.is_some() {
            return Err(HttpError::bad_request(
                "send the credential one way only: the Authorization header or the body",
            ));
        }
        return Ok(bearer_token(req));
    }
    Ok(in_body)
}

/// Authenticates the request's API key (one indexed read) and checks `scope`; returns the
/// key's holder and the parsed body.
async fn key_holder(
    req: &HttpRequest,
    body: &[u8],
    state: &web::Data<AppState>,
    scope: Option<&'static str>,
) -> Result<(KeyHolder, Body), HttpError> {
    check_version(req)?;
    let body = Body::parse(req, body)?;
    let credential = presented_credential(req, &body)?.ok_or(BearerRejection::Missing)?;
    let now = state.now();
    let found = state
        .read_through(move |lookup, app| {
            api_keys::authenticate(lookup, &app.usage, &credential, now)
        })
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
    Ok((holder, body))
}

/// [`key_holder`] for a call with no fields of its own.
async fn key_holder_only(
    req: &HttpRequest,
    body: &[u8],
    state: &web::Data<AppState>,
    scope: Option<&'static str>,
) -> Result<KeyHolder, HttpError> {
    let (holder, body) = key_holder(req, body, state, scope).await?;
    body.fields::<NoFields>(&[])?;
    Ok(holder)
}

fn private_json(status: StatusCode, body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

/// The one answer that holds a new key's secret.
pub fn key_created(view: ApiKeyView, secret: &ApiKeySecret) -> HttpResponse {
    private_json(
        StatusCode::CREATED,
        ApiKeyWithSecret {
            key: view,
            api_key: secret.expose(),
        },
    )
}

/// `GET /api/v1/me`: who the presented key belongs to, and what it may do.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "account",
    summary = "Who am I",
    params(VersionHeader),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The key's account, the key, and its scopes.", body = Me),
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn get_me(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder_only(&req, &body, &state, None).await?;
    Ok(private_json(
        StatusCode::OK,
        Me {
            account: AccountView::from(&*holder.account),
            credential: Credential {
                kind: "api_key",
                key: ApiKeyView::new(holder.key(), state.now()),
            },
            scopes: holder.scopes().tokens().to_vec(),
        },
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "account",
    summary = "List the account's API keys (scope `keys`)",
    params(VersionHeader),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The account's keys.", body = KeyList),
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn get_keys(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder_only(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let keys = state
        .db
        .run(move |conn| api_keys::list(conn, &holder.account.id, now))
        .await?;
    Ok(private_json(StatusCode::OK, KeyList { keys }))
}

/// A new key for the presenting key's account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = KeyRequest)]
pub(crate) struct CreateKeyBody {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Within the presenting key's scopes (`scope` is accepted too); default: all of them.
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    /// Lifetime in seconds (at least 60), instead of `expires_at`; never beyond the
    /// presenting key's.
    #[serde(default)]
    expires_in: Option<i64>,
    /// RFC 3339, instead of `expires_in`.
    #[serde(default)]
    expires_at: Option<String>,
    /// The credential, when sent in the body (Misskey style); not a key setting.
    #[serde(default, rename = "i")]
    #[schema(value_type = String, required = false)]
    _credential: Option<Value>,
}

impl CreateKeyBody {
    /// What the caller asked for, with `expires_at` turned into a lifetime from `now`.
    fn spec(self, now: i64) -> Result<KeySpec, HttpError> {
        key_spec(
            self.name,
            self.scopes.as_ref(),
            self.expires_in,
            self.expires_at.as_deref(),
            now,
        )
    }
}

/// A key request of the account or admin API: `expires_in` (seconds) or `expires_at`
/// (RFC 3339), not both, and not in the past.
pub(crate) fn key_spec(
    name: String,
    scopes: Option<&ScopeInput>,
    expires_in: Option<i64>,
    expires_at: Option<&str>,
    now: i64,
) -> Result<KeySpec, HttpError> {
    let expires_in = match (expires_in, expires_at) {
        (Some(_), Some(_)) => {
            return Err(HttpError::bad_request(
                "give expires_in or expires_at, not both",
            ));
        }
        (Some(seconds), None) => Some(seconds),
        (None, Some(text)) => {
            let at = chrono::DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
                HttpError::bad_request(
                    "expires_at must be an RFC 3339 time, e.g. 2027-01-31T12:00:00Z",
                )
            })?;
            let seconds = at.timestamp().saturating_sub(now);
            if seconds <= 0 {
                return Err(HttpError::bad_request("expires_at is in the past"));
            }
            Some(seconds)
        }
        (None, None) => None,
    };
    Ok(KeySpec {
        name,
        scopes: scopes.map(ScopeInput::parse).transpose()?,
        expires_in,
    })
}

/// The new key is in the answer once, and never again. The body is JSON or, per RFC 6750
/// §2.2, a form (`name`, `scope`, `expires_in` or `expires_at`, `access_token`).
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "account",
    summary = "Create an API key (scope `keys`)",
    description = "The new key's scopes and lifetime are within the presenting key's (403 `forbidden` otherwise).",
    params(VersionHeader),
    request_body(content(
        (CreateKeyBody = "application/json"),
        (CreateKeyForm = "application/x-www-form-urlencoded"),
    )),
    security(("api_key" = []), ()),
    responses(
        (status = 201, description = "The key, with its secret (shown once).", body = ApiKeyWithSecret),
        (status = 404, description = "`not_found`: the account is gone.", body = ErrorBody),
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (holder, body) = key_holder(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let asked = body.fields::<CreateKeyBody>(&["expires_in"])?.spec(now)?;
    let spec = api_keys::delegated_spec(&holder, asked, now)?;
    let (view, secret) = state
        .db
        .run(move |conn| api_keys::create(conn, &holder.actor(), &holder.account, &spec, now))
        .await?;
    Ok(key_created(view, &secret))
}

#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "account",
    summary = "Delete an API key (scope `keys`)",
    params(VersionHeader, ("id" = String, Path, description = "The API key id")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Deleted."),
        NotFound,
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn delete_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder_only(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    state
        .db
        .run(move |conn| api_keys::delete(conn, &holder.actor(), &id, Within::Key(&holder), now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// "Rotate regularly": a new secret for the key `id` (same name, scopes and lifetime, never
/// beyond the presenting key's), the old one revoked; the new key is shown once.
#[utoipa::path(
    post,
    path = "/api/v1/keys/{id}/regenerate",
    tag = "account",
    summary = "Give an API key a new secret (scope `keys`)",
    params(VersionHeader, ("id" = String, Path, description = "The API key id")),
    request_body(content(
        (Option<NoFields> = "application/json"),
        (Option<CredentialForm> = "application/x-www-form-urlencoded"),
    ), description = "Optional: the credential, instead of the header."),
    security(("api_key" = []), ()),
    responses(
        (status = 201, description = "The new key, with its secret (shown once); the old one is revoked.", body = ApiKeyWithSecret),
        NotFound,
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_regenerate_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder_only(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let (view, secret) = state
        .db
        .run(move |conn| {
            api_keys::regenerate(conn, &holder.actor(), &id, Within::Key(&holder), now)
        })
        .await?;
    Ok(key_created(view, &secret))
}

#[utoipa::path(
    post,
    path = "/api/v1/keys/{id}/revoke",
    tag = "account",
    summary = "Revoke an API key (scope `keys`)",
    params(VersionHeader, ("id" = String, Path, description = "The API key id")),
    request_body(content(
        (Option<NoFields> = "application/json"),
        (Option<CredentialForm> = "application/x-www-form-urlencoded"),
    ), description = "Optional: the credential, instead of the header."),
    security(("api_key" = []), ()),
    responses(
        (status = 200, description = "The key.", body = ApiKeyView),
        NotFound,
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_revoke_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder_only(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let view = state
        .db
        .run(move |conn| api_keys::revoke(conn, &holder.actor(), &id, Within::Key(&holder), now))
        .await?;
    Ok(private_json(StatusCode::OK, view))
}

/// Pending pairing requests, with the codes to give the apps.
#[utoipa::path(
    get,
    path = "/api/v1/challenges",
    tag = "account",
    summary = "List pending pairing requests (scope `keys`)",
    params(VersionHeader),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Pending pairing requests (with their codes where the key could itself make the key they would produce).", body = ChallengeList),
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn get_challenges(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder_only(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let (app, now) = (state.clone(), state.now());
    let challenges = state
        .db
        .run(move |conn| pairing::pending_challenges(conn, &app.pairing, Within::Key(&holder), now))
        .await?;
    Ok(private_json(StatusCode::OK, ChallengeList { challenges }))
}

#[utoipa::path(
    post,
    path = "/api/v1/challenges/{id}/deny",
    tag = "account",
    summary = "Deny a pairing request (scope `keys`)",
    params(VersionHeader, ("id" = String, Path, description = "The pairing request (challenge) id")),
    request_body(content(
        (Option<NoFields> = "application/json"),
        (Option<CredentialForm> = "application/x-www-form-urlencoded"),
    ), description = "Optional: the credential, instead of the header."),
    security(("api_key" = []), ()),
    responses(
        (status = 200, description = "Denied.", body = ChallengeSettled),
        NotFound,
        (status = 409, description = "`conflict`: the request is no longer pending.", body = ErrorBody),
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_deny_challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    settle_challenge(req, body, state, id, "denied").await
}

/// The owner vouches for a request: the app may redeem it even past the daily budget.
#[utoipa::path(
    post,
    path = "/api/v1/challenges/{id}/approve",
    tag = "account",
    summary = "Approve a pairing request (scope `keys`)",
    params(VersionHeader, ("id" = String, Path, description = "The pairing request (challenge) id")),
    request_body(content(
        (Option<NoFields> = "application/json"),
        (Option<CredentialForm> = "application/x-www-form-urlencoded"),
    ), description = "Optional: the credential, instead of the header."),
    security(("api_key" = []), ()),
    responses(
        (status = 200, description = "Approved: the app may redeem it even past the daily budget.", body = ChallengeSettled),
        NotFound,
        (status = 409, description = "`conflict`: the request is no longer pending.", body = ErrorBody),
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_approve_challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    settle_challenge(req, body, state, id, "approved").await
}

async fn settle_challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
    outcome: &'static str,
) -> Result<HttpResponse, HttpError> {
    let holder = key_holder_only(&req, &body, &state, Some(KEYS_SCOPE)).await?;
    let now = state.now();
    let challenge_id = id.into_inner();
    let target = challenge_id.clone();
    state
        .db
        .run(move |conn| {
            let (actor, within) = (holder.actor(), Within::Key(&holder));
            if outcome == "denied" {
                pairing::deny_challenge(conn, &actor, &target, within, now)
            } else {
                pairing::approve_challenge(conn, &actor, &target, within, now)
            }
        })
        .await?;
    Ok(private_json(
        StatusCode::OK,
        ChallengeSettled {
            challenge_id,
            status: outcome,
        },
    ))
}

/// `POST /api/v1/me`: [`get_me`], the credential possibly in the body.
#[utoipa::path(
    post,
    path = "/api/v1/me",
    tag = "account",
    summary = "Who am I",
    params(VersionHeader),
    request_body(content(
        (Option<NoFields> = "application/json"),
        (Option<CredentialForm> = "application/x-www-form-urlencoded"),
    ), description = "Optional: the credential, instead of the header."),
    security(("api_key" = []), ()),
    responses(
        (status = 200, description = "The key's account, the key, and its scopes.", body = Me),
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_me(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    get_me(req, body, state).await
}

/// `POST /api/v1/keys/list`: [`get_keys`], the credential possibly in the body.
#[utoipa::path(
    post,
    path = "/api/v1/keys/list",
    tag = "account",
    summary = "List the account's API keys (scope `keys`)",
    params(VersionHeader),
    request_body(content(
        (Option<NoFields> = "application/json"),
        (Option<CredentialForm> = "application/x-www-form-urlencoded"),
    ), description = "Optional: the credential, instead of the header."),
    security(("api_key" = []), ()),
    responses(
        (status = 200, description = "The account's keys.", body = KeyList),
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_list_keys(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    get_keys(req, body, state).await
}

/// `POST /api/v1/keys/{id}/delete`: [`delete_key`], the credential possibly in the body.
#[utoipa::path(
    post,
    path = "/api/v1/keys/{id}/delete",
    tag = "account",
    summary = "Delete an API key (scope `keys`)",
    params(VersionHeader, ("id" = String, Path, description = "The API key id")),
    request_body(content(
        (Option<NoFields> = "application/json"),
        (Option<CredentialForm> = "application/x-www-form-urlencoded"),
    ), description = "Optional: the credential, instead of the header."),
    security(("api_key" = []), ()),
    responses(
        (status = 204, description = "Deleted."),
        NotFound,
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_delete_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    delete_key(req, body, state, id).await
}

/// `POST /api/v1/challenges/list`: [`get_challenges`], the credential possibly in the body.
#[utoipa::path(
    post,
    path = "/api/v1/challenges/list",
    tag = "account",
    summary = "List pending pairing requests (scope `keys`)",
    params(VersionHeader),
    request_body(content(
        (Option<NoFields> = "application/json"),
        (Option<CredentialForm> = "application/x-www-form-urlencoded"),
    ), description = "Optional: the credential, instead of the header."),
    security(("api_key" = []), ()),
    responses(
        (status = 200, description = "Pending pairing requests (with their codes where the key could itself make the key they would produce).", body = ChallengeList),
        BearerErrors, VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_list_challenges(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    get_challenges(req, body, state).await
}
