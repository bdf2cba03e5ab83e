//! What every response shares, whatever produced it: a JSON body on every error (ours,
//! actix's extractor errors, wrong methods, unknown paths), 405 with `Allow` for a wrong
//! method, HEAD wherever GET is served, `X-Content-Type-Options: nosniff`, and
//! `Cache-Control: no-store` unless the handler chose a cache policy.
//!
//! Wrong methods: every route of the table (`super::routes`) is a resource of its own with
//! an [`on`] guard, so a wrong method falls through to the default service. The guards
//! note the methods of every route whose path matched, and [`fallback`] answers 405 with
//! those in `Allow`. (A resource with routes of its own, like the OAuth endpoints, answers
//! 405 itself.)

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::guard::{Guard, GuardContext};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};

use super::error::{ErrorBody, HttpError, no_store, rfc_text};
use actix_web::ResponseError;

/// The methods of the routes whose path matched the request (set by [`MethodGuard`]).
#[derive(Debug, Clone, Default)]
struct MatchedMethods(Vec<Method>);

/// A method guard that remembers what it was asked to match, for `Allow`.
struct MethodGuard(Method);

impl Guard for MethodGuard {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        // `Allow` is only needed when no route's method matched, and then every guard of
        // the path has been asked: a match need not note anything (and so allocates nothing).
        if ctx.head().method == self.0 {
            return true;
        }
        let mut data = ctx.req_data_mut();
        let mut methods = data.remove::<MatchedMethods>().unwrap_or_default();
        if !methods.0.contains(&self.0) {
            methods.0.push(self.0.clone());
        }
        data.insert(methods);
        false
    }
}

/// A method guard that notes nothing: for a resource that answers a wrong method itself
/// (its own default service sets `Allow`). actix's `web::method` guard notes its method in
/// the request's extensions on every request, two allocations on the hot path.
struct OnlyMethod(Method);

impl Guard for OnlyMethod {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.head().method == self.0
    }
}

/// A method guard for a route's resource that takes part in `Allow`; where GET is, HEAD is
/// served too.
pub fn on(method: Method) -> impl Guard {
    MethodGuard(method)
}

/// A route guard for `method` on a resource with a default service of its own.
pub fn only(method: Method) -> impl Guard {
    OnlyMethod(method)
}

/// The `Allow` value for these methods: HEAD goes with GET, and the order is fixed.
pub fn allow_value(methods: &[Method]) -> String {
    const ORDER: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let has = |name: &str| methods.iter().any(|m| m.as_str() == name);
    let mut names: Vec<&str> = ORDER
        .into_iter()
        .filter(|name| has(name) || (*name == "HEAD" && has("GET")))
        .collect();
    for method in methods {
        if !names.contains(&method.as_str()) {
            names.push(method.as_str());
        }
    }
    names.join(", ")
}

/// 405 with `Allow` and a JSON body.
pub fn method_not_allowed(methods: &[Method]) -> HttpResponse {
    let allow = allow_value(methods);
    let mut response = HttpError::api(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this endpoint accepts {allow} only"),
    )
    .error_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The default service: 405 when the path exists with other methods, 404 otherwise.
pub async fn fallback(req: HttpRequest) -> HttpResponse {
    let matched = req.extensions().get::<MatchedMethods>().cloned();
    match matched {
        Some(methods) if !methods.0.is_empty() => method_not_allowed(&methods.0),
        _ => HttpError::not_found("no such endpoint").error_response(),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("application/json") || v.to_ascii_lowercase().ends_with("+json")
        })
}

/// The console's own pages: people read those errors in a browser, next to the form they
/// are about, so they stay HTML.
fn is_console_page(res: &ServiceResponse<BoxBody>) -> bool {
    res.request().path().starts_with("/console/")
        && res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"))
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
        StatusCode::TOO_MANY_REQUESTS => "slow_down",
        s if s.is_server_error() => "server_error",
        _ => "invalid_request",
    }
}

/// Rebuilds an error answer that is not JSON (actix's extractor errors are plain text, its
/// 405 is empty) as `{"error","error_description"}`, keeping the status and the headers
/// that matter (`Allow`, `WWW-Authenticate`, `Retry-After`, ...).
fn as_json_error(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let description = if status.is_server_error() {
        // The cause may name internals; it was (or is here) logged, never sent.
        if let Some(err) = res.response().error() {
            tracing::error!(error = %err, status = status.as_u16(), "server error");
        }
        "internal server error".to_owned()
    } else {
        match res.response().error() {
            Some(err) => rfc_text(&err.to_string()),
            None => status
                .canonical_reason()
                .unwrap_or("request refused")
                .to_ascii_lowercase(),
        }
    };
    let description = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "request body too large".to_owned()
    } else {
        description
    };
    let (req, old) = res.into_parts();
    let mut builder = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    let mut response = no_store(&mut builder).json(ErrorBody::new(code_for(status), &description));
    super::error::tag_error(&mut response, code_for(status));
    ServiceResponse::new(req, response)
}

/// Before routing: RFC 9110 §9.3.2, HEAD wherever GET is (actix strips the body of the
/// answer itself).
pub fn prepare(req: &mut ServiceRequest) {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
}

/// The answer as every client sees it (see the module documentation).
pub fn finish(
    result: Result<ServiceResponse<BoxBody>, actix_web::Error>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut res = match result {
        Ok(res) => res,
        // An error that escaped the handlers (a middleware's): answer it as JSON too.
        Err(err) => {
            let status = err.as_response_error().status_code();
            let response = if status.is_server_error() {
                tracing::error!(error = %err, "request failed");
                HttpError::Internal(err.to_string()).error_response()
            } else {
                HttpError::api(status, code_for(status), rfc_text(&err.to_string()))
                    .error_response()
            };
            return Err(actix_web::error::InternalError::from_response(err, response).into());
        }
    };
    let status = res.status();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        // actix's own 405 names GET but not HEAD.
        let listed: Option<Vec<Method>> = res
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').filter_map(|m| m.trim().parse().ok()).collect());
        if let Some(methods) = listed
            && let Ok(value) = HeaderValue::from_str(&allow_value(&methods))
        {
            res.headers_mut().insert(header::ALLOW, value);
        }
    }
    if (status.is_client_error() || status.is_server_error())
        && !is_json(res.headers())
        && !is_console_page(&res)
    {
        res = as_json_error(res);
    }
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Answers carry account or client data unless a handler said otherwise (the JWKS and
    // the metadata are public and say so): nobody in between may store them.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_head_with_get_in_a_fixed_order() {
        assert_eq!(allow_value(&[Method::POST, Method::GET]), "GET, HEAD, POST");
        assert_eq!(allow_value(&[Method::DELETE]), "DELETE");
        assert_eq!(
            allow_value(&[Method::GET, Method::HEAD, Method::PATCH]),
            "GET, HEAD, PATCH"
        );
    }
}
