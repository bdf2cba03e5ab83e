//! actix-web integration (cargo feature `actix`): a middleware that protects routes with
//! required scopes, and an extractor for the verified token. Failures answer per RFC 6750 §3:
//! 401 with `WWW-Authenticate: Bearer … error="invalid_token"`, or 403 with
//! `error="insufficient_scope", scope="…"`, where `scope` lists every scope the route
//! requires (§3: "the scope necessary to access the protected resource") and the JSON body's
//! `error_description` names the missing ones.
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, web};
//! use tollgate_verify::Verifier;
//! use tollgate_verify::actix::{Authenticated, RequireScope};
//!
//! async fn reports(token: Authenticated) -> HttpResponse {
//!     HttpResponse::Ok().body(format!("hello {}", token.client_id))
//! }
//!
//! fn app(verifier: Verifier) -> App<impl actix_web::dev::ServiceFactory<
//!     actix_web::dev::ServiceRequest, Config = (), Error = actix_web::Error,
//!     Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, InitError = ()>> {
//!     App::new().service(
//!         web::resource("/reports")
//!             .wrap(RequireScope::new(verifier, &["read"]))
//!             .route(web::get().to(reports)),
//!     )
//! }
//! ```

use std::future::{Future, Ready, ready};
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;

use super::{VerifiedToken, Verifier, VerifyError};

/// Why a request was refused; renders the RFC 6750 challenge.
#[derive(Debug)]
pub struct BearerRejection {
    realm: String,
    /// Every scope the route requires, for the challenge's `scope` attribute.
    required: Vec<String>,
    error: Option<VerifyError>,
}

impl std::fmt::Display for BearerRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            Some(e) => e.fmt(f),
            None => f.write_str("a bearer token is required"),
        }
    }
}

/// RFC 6750 §3 / RFC 6749 §5.2: challenge values and `error_description` only hold
/// %x20-21 / %x23-5B / %x5D-7E; anything else (quotes, backslashes, control characters,
/// non-ASCII) is replaced.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

impl ResponseError for BearerRejection {
    fn status_code(&self) -> StatusCode {
        match &self.error {
            None | Some(VerifyError::InvalidToken(_)) => StatusCode::UNAUTHORIZED,
            Some(VerifyError::InsufficientScope(_)) => StatusCode::FORBIDDEN,
            Some(VerifyError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Some(VerifyError::Config(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let realm = quoted(&self.realm);
        let (challenge, body) = match &self.error {
            None => (
                Some(format!("Bearer realm=\"{realm}\"")),
                json!({"error": "invalid_request", "error_description": "a bearer token is required"}),
            ),
            Some(VerifyError::InvalidToken(why)) => (
                Some(format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                    quoted(why)
                )),
                json!({"error": "invalid_token", "error_description": quoted(why)}),
            ),
            Some(VerifyError::InsufficientScope(missing)) => {
                let scope = self.required.join(" ");
                (
                    Some(format!(
                        "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{}\"",
                        quoted(&scope)
                    )),
                    json!({
                        "error": "insufficient_scope",
                        "error_description": format!("missing scope: {}", missing.join(" ")),
                        "scope": scope,
                    }),
                )
            }
            Some(other) => {
                tracing::warn!(error = %other, "token verification unavailable");
                (
                    None,
                    json!({"error": "temporarily_unavailable", "error_description": "cannot verify tokens right now"}),
                )
            }
        };
        let mut builder = HttpResponse::build(self.status_code());
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            builder.insert_header((header::WWW_AUTHENTICATE, value));
        }
        builder.json(body)
    }
}

/// RFC 6750 §2.1: the token from `Authorization: Bearer …` (never from the URL).
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

async fn check(
    verifier: &Verifier,
    token: Option<String>,
    scopes: &[String],
) -> Result<VerifiedToken, BearerRejection> {
    let realm = verifier.config().audience.clone();
    let rejection = |error| BearerRejection {
        realm,
        required: scopes.to_vec(),
        error,
    };
    let Some(token) = token else {
        return Err(rejection(None));
    };
    let required: Vec<&str> = scopes.iter().map(String::as_str).collect();
    verifier
        .verify_with_scopes(&token, &required)
        .await
        .map_err(|error| rejection(Some(error)))
}

/// Middleware: only requests bearing a valid token with all `scopes` get through; the
/// token is then available to handlers as [`Authenticated`].
#[derive(Clone)]
pub struct RequireScope {
    verifier: Verifier,
    scopes: Rc<Vec<String>>,
}

impl RequireScope {
    /// Requires a valid token from `verifier` that carries every scope in `scopes` (none:
    /// any valid token).
    pub fn new(verifier: Verifier, scopes: &[&str]) -> Self {
        Self {
            verifier,
            scopes: Rc::new(scopes.iter().map(|s| (*s).to_owned()).collect()),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequireScope
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireScopeService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireScopeService {
            service: Rc::new(service),
            verifier: self.verifier.clone(),
            scopes: self.scopes.clone(),
        }))
    }
}

/// The service [`RequireScope`] wraps around a route; built by actix-web.
pub struct RequireScopeService<S> {
    service: Rc<S>,
    verifier: Verifier,
    scopes: Rc<Vec<String>>,
}

impl<S, B> Service<ServiceRequest> for RequireScopeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let (service, verifier, scopes) = (
            self.service.clone(),
            self.verifier.clone(),
            self.scopes.clone(),
        );
        Box::pin(async move {
            let token = bearer_token(req.request()).map(str::to_owned);
            match check(&verifier, token, &scopes).await {
                Ok(verified) => {
                    req.extensions_mut().insert(verified);
                    service
                        .call(req)
                        .await
                        .map(ServiceResponse::map_into_left_body)
                }
                Err(rejection) => {
                    let response = rejection.error_response();
                    Ok(req.into_response(response).map_into_right_body())
                }
            }
        })
    }
}

/// The verified token of the request: set by [`RequireScope`], or, on routes without it,
/// verified here with the `web::Data<Verifier>` of the app (no scope required).
#[derive(Debug, Clone)]
pub struct Authenticated(pub VerifiedToken);

impl Deref for Authenticated {
    type Target = VerifiedToken;

    fn deref(&self) -> &VerifiedToken {
        &self.0
    }
}

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(verified) = req.extensions().get::<VerifiedToken>() {
            let verified = verified.clone();
            return Box::pin(async move { Ok(Authenticated(verified)) });
        }
        let verifier = req.app_data::<web::Data<Verifier>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let verifier = verifier.ok_or_else(|| {
                actix_web::error::ErrorInternalServerError("no Verifier in app data")
            })?;
            check(&verifier, token, &[])
                .await
                .map(Authenticated)
                .map_err(actix_web::Error::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn only_bearer_authorization_headers_carry_a_token() {
        let token = |value: &str| {
            let req = TestRequest::default()
                .insert_header((header::AUTHORIZATION, value))
                .to_http_request();
            bearer_token(&req).map(str::to_owned)
        };
        assert_eq!(token("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearer "), None);
        assert_eq!(
            bearer_token(&TestRequest::default().to_http_request()),
            None
        );
    }

    #[tokio::test]
    async fn insufficient_scope_challenges_with_the_required_and_describes_the_missing() {
        let rejection = BearerRejection {
            realm: "https://api.example".into(),
            required: vec!["read".into(), "write".into()],
            error: Some(VerifyError::InsufficientScope(vec!["write".into()])),
        };
        let response = rejection.error_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(
            challenge.as_deref(),
            Some(
                "Bearer realm=\"https://api.example\", error=\"insufficient_scope\", scope=\"read write\""
            )
        );
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap_or_else(|_| panic!("body"));
        let body: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["error_description"], "missing scope: write");
        assert_eq!(body["scope"], "read write");
    }

    #[test]
    fn quotes_in_reasons_cannot_break_the_challenge() {
        let rejection = BearerRejection {
            realm: "api".into(),
            required: vec![],
            error: Some(VerifyError::InvalidToken(
                "bad \"kid\" \\ \u{e9}\u{1}".into(),
            )),
        };
        let response = rejection.error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers().get(header::WWW_AUTHENTICATE);
        assert_eq!(
            challenge.and_then(|v| v.to_str().ok()),
            Some(
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"bad 'kid' / ??\""
            )
        );
    }
}
