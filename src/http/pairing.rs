//! App pairing (`/v1/auth`): an app asks an account for a key, then trades the challenge
//! id and the owner's 4-digit code for it.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::json;

use super::accounts::check_version;
use super::error::HttpError;
use super::extract::{ScopeInput, header_str, json_body};
use crate::app::AppState;
use crate::app::rate_limit::{address_key, client_ip};
use crate::service::pairing::{self, CHALLENGE_TTL_SECONDS};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeBody {
    app_name: String,
    account: String,
    scopes: ScopeInput,
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

fn private_json(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

/// `POST /v1/auth/challenges`: an app asks an account for a key. The answer is the same
/// whether or not the account exists. The request is checked in full before it counts
/// against either limiter, so junk cannot fill them.
pub(crate) async fn post_challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    check_version(&req)?;
    let body = json_body::<ChallengeBody>(&body)?;
    let request = pairing::validate_request(&body.app_name, &body.account, body.scopes.parse()?)?;
    let address = client_ip(
        req.peer_addr().map(|a| a.ip()),
        header_str(&req, header::HeaderName::from_static("x-forwarded-for")),
        &state.settings.trusted_proxies,
    )
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
        json!({
            "challenge_id": created.challenge_id,
            "expires_in": CHALLENGE_TTL_SECONDS,
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
        json!({
            "api_key": redeemed.secret.expose(),
            "key_id": redeemed.key.id,
            "name": redeemed.key.name,
            "scopes": redeemed.key.scopes,
            "account": redeemed.account.handle,
        }),
    ))
}
