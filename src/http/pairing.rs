//! App pairing (`/v1/auth`): an app asks an account for a key, then trades the challenge
//! id and the owner's 4-digit code for it.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;

use super::accounts::{VersionHeader, check_version};
use super::error::{ErrorBody, HttpError};
use super::extract::{ScopeInput, json_body};
use super::openapi::{StoreErrors, VersionedErrors};
use crate::app::AppState;
use crate::app::rate_limit::address_key;
use crate::http::extract::client_ip;
use crate::service::pairing::{self, CHALLENGE_TTL_SECONDS};

/// An app's request for a key.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChallengeBody {
    /// What the owner sees: 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    app_name: String,
    /// The account's handle.
    #[schema(
        min_length = 2,
        max_length = 40,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )]
    account: String,
    /// The scopes the key should carry: 1 to 16.
    scopes: ScopeInput,
}

/// A pairing request made (or, for an unknown account, pretended to be).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ChallengeCreated {
    pub challenge_id: String,
    /// Seconds until the request expires.
    pub expires_in: i64,
}

/// The key an app received for its code.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Redeemed<'a> {
    /// The key itself: shown this once.
    pub api_key: &'a str,
    pub key_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// The account's handle.
    pub account: String,
}

fn slow_down(wait: Duration) -> HttpResponse {
    let seconds = wait.as_secs().max(1);
    let mut response = HttpError::api(
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

fn private_json(status: StatusCode, body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

/// `POST /v1/auth/challenges`: an app asks an account for a key. The answer is the same
/// whether or not the account exists. The request is checked in full before it counts
/// against either limiter, so junk cannot fill them.
#[utoipa::path(
    post,
    path = "/v1/auth/challenges",
    tag = "pairing",
    summary = "Ask an account for a key",
    description = "The account's owner sees the request and a 4-digit code to give the app. \
        The answer is the same whether or not the account exists.",
    params(VersionHeader),
    request_body = ChallengeBody,
    responses(
        (status = 201, description = "The request; redeem it with the owner's code.", body = ChallengeCreated),
        (status = 429, description = "`slow_down`: too many pairing requests from this address \
            (or for this account from it).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    check_version(&req)?;
    let body = json_body::<ChallengeBody>(&body)?;
    let request = pairing::validate_request(&body.app_name, &body.account, body.scopes.parse()?)?;
    let address = client_ip(&req, &state.settings.trusted_proxies)
        .map(address_key)
        .unwrap_or_default();
    if let Err(wait) = state.pairing_by_address.check(&address) {
        return Ok(slow_down(wait));
    }
    // Per account *and* address: keyed by the account alone, anyone could keep an account's
    // own apps from pairing by asking in its name every few minutes.
    if let Err(wait) = state
        .pairing_by_account
        .check(&format!("{}|{address}", request.handle))
    {
        return Ok(slow_down(wait));
    }
    let (app, now, started) = (state.clone(), state.now(), Instant::now());
    let created = state
        .db
        .run(move |conn| pairing::create_challenge(conn, &app.pairing, &request, now))
        .await?;
    // An unknown account's answer takes about as long as a real one's (which also writes).
    if created.stored {
        state.pairing.note_write_cost(started.elapsed());
    } else {
        actix_web::rt::time::sleep(state.pairing.decoy_delay(started.elapsed())).await;
    }
    Ok(private_json(
        StatusCode::CREATED,
        ChallengeCreated {
            challenge_id: created.challenge_id,
            expires_in: CHALLENGE_TTL_SECONDS,
        },
    ))
}

/// The challenge and the owner's code.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedeemBody {
    challenge_id: String,
    /// The 4 digits the account owner sees.
    #[schema(pattern = "^[0-9]{4}$")]
    code: String,
}

/// `POST /v1/auth/api_keys`: the app trades the challenge id and the owner's code for a key.
#[utoipa::path(
    post,
    path = "/v1/auth/api_keys",
    tag = "pairing",
    summary = "Trade the owner's code for the key",
    params(VersionHeader),
    request_body = RedeemBody,
    responses(
        (status = 201, description = "The key (shown once).", body = Redeemed),
        (status = 400, description = "`invalid_request` (malformed body or code), \
            `unsupported_version`, or a refusal: `invalid_challenge`, `invalid_code` (with \
            `attempts_remaining`), `challenge_failed`, `challenge_expired`, `challenge_used`, \
            `challenge_denied`.", body = ErrorBody),
        VersionedErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_redeem_challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    check_version(&req)?;
    let request = json_body::<RedeemBody>(&body)?;
    let code = request.code.trim().to_owned();
    if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::bad_request(
            "code must be the 4 digits the account owner sees",
        ));
    }
    let (app, now) = (state.clone(), state.now());
    let redeemed = state
        .db
        .run(move |conn| {
            pairing::redeem_challenge(conn, &app.pairing, &request.challenge_id, &code, now)
        })
        .await?;
    Ok(private_json(
        StatusCode::CREATED,
        Redeemed {
            api_key: redeemed.secret.expose(),
            key_id: redeemed.key.id,
            name: redeemed.key.name,
            scopes: redeemed.key.scopes,
            account: redeemed.account.handle,
        },
    ))
}
