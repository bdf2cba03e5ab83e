//! Admin API under `/admin`, protected by Tollgate's own access tokens carrying the
//! `admin` scope for the admin audience (RFC 6750 bearer).

pub(super) mod accounts;
pub(super) mod audit;
pub(super) mod clients;
pub(super) mod keys;

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};

use super::error::HttpError;
use super::extract::bearer_token;
use crate::app::AppState;
use crate::db;
use crate::service::access_tokens::AccessTokenClaims;
use crate::service::audit::Actor;
use crate::service::{BearerRejection, operators};

pub use crate::oauth::ADMIN_SCOPE;

/// An authenticated operator: a valid Tollgate access token with the `admin` scope, for
/// the admin audience, whose client still exists, is enabled and holds the scope.
pub struct Admin {
    pub claims: AccessTokenClaims,
}

impl Admin {
    /// The audit trail names the operator's client.
    pub fn actor(&self) -> Actor {
        Actor::admin(&self.claims.client_id)
    }
}

impl FromRequest for Admin {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, HttpError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state
                .ok_or_else(|| HttpError::Internal("the application state is missing".into()))?;
            let token = token.ok_or(BearerRejection::Missing)?;
            let claims =
                operators::verify_token(&state.keys.current(), &state.policy, &token, state.now())?;
            let (client_id, jti) = (claims.client_id.clone(), claims.jti.clone());
            let found = state
                .db
                .run(move |conn| db::revocations::client_and_revocation(conn, &client_id, &jti))
                .await?;
            operators::check_still_valid(
                found.as_ref().map(|(client, _)| client),
                found.as_ref().is_some_and(|(_, revoked)| *revoked),
                &claims,
            )?;
            Ok(Admin { claims })
        })
    }
}

/// `{"clients": [...]}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClientList {
    pub clients: Vec<crate::service::clients::ClientView>,
}

/// A client with its new secret: the one answer that holds it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClientWithSecret<'a> {
    #[serde(flatten)]
    pub client: crate::service::clients::ClientView,
    /// Shown this once; store it now.
    pub client_secret: &'a str,
}

/// `{"keys": [...]}`: signing keys.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SigningKeyList {
    pub keys: Vec<crate::service::signing_keys::KeyView>,
}

/// `{"accounts": [...]}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AccountList {
    pub accounts: Vec<crate::service::accounts::AccountView>,
}

/// `{"events": [...]}`, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuditEvents {
    pub events: Vec<crate::service::audit::AuditView>,
}

/// Answers that carry account or client data must not be cached by anyone between.
fn private_json(status: actix_web::http::StatusCode, body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(body)
}
