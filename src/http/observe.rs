//! What is recorded about every request: its id, the span its log lines carry, the access
//! log line and the metrics; and `/metrics`, served on `metrics.listen` only. The same
//! [`Observation`], the first and last step around every route (`super::around_routes`),
//! tells the connection's watchdog when each request starts and when its answer has been
//! written (`super::connection`).
//!
//! - **Request id**: a valid incoming `X-Request-Id` (1 to 128 characters among
//!   `A-Z a-z 0-9 - _ . : + / = @`) is kept, so that a proxy's id follows the request;
//!   anything else is replaced by a new id (a random per-instance prefix and a counter, see
//!   `telemetry::RequestIds`). Either way the answer carries it in `X-Request-Id`.
//! - **Span**: every line logged while the request is handled is in an ERROR-level
//!   `request` span with the fields `request_id` and `client` (the address from
//!   [`super::extract::client_ip`], which believes `X-Forwarded-For` only from
//!   `server.trusted_proxies`), so it names them, whatever the filter lets through. The span
//!   is made on the request's first line ([`crate::telemetry::request`]).
//! - **Access log** (`server.access_log`): one INFO line per request under the target
//!   `tollgate::access`: method, route, status and duration. The route is the matched
//!   pattern (`/console/invite/{token}`), never the raw path, so that a secret in a path is
//!   not written; only a request that matched no route is logged with its path. Query
//!   strings, headers and bodies are never logged.
//! - **Metrics**: see [`crate::telemetry::metrics`]; routes are labelled by pattern too,
//!   and methods outside a fixed set as `other`, so label values stay bounded.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use super::connection;
use super::error::{ErrorTag, HttpError, no_store};
use super::extract::client_ip;
use super::routes::RoutePattern;
use crate::app::AppState;
use crate::telemetry::metrics::{CONTENT_TYPE, PoolGauges, UNMATCHED_ROUTE, ViewCounts};
use crate::telemetry::request::RequestScope;
use actix_web::ResponseError;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming request id kept.
const MAX_REQUEST_ID: usize = 128;

/// The incoming request id, if it is one we keep (see the module documentation).
pub fn accepted_request_id(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.:+/=@".contains(c);
    (!text.is_empty() && text.len() <= MAX_REQUEST_ID && text.chars().all(safe)).then_some(text)
}

/// The method as a metric label: a fixed set, so that made-up methods add no series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A path logged for a request that matched no route, cut to a sane length.
fn unmatched_path(path: &str) -> &str {
    match path.char_indices().nth(200) {
        Some((at, _)) => &path[..at],
        None => path,
    }
}

/// The pattern of the route that answered: the one its resource carries, else (a wrong
/// method that fell through to the fallback) the pattern the path matches, so that a path
/// with a secret in it (`/console/invite/{token}`) is not written either way.
fn route_of(req: &HttpRequest) -> Option<Cow<'static, str>> {
    match req.app_data::<RoutePattern>() {
        Some(pattern) => Some(Cow::Borrowed(pattern.0)),
        None => req.match_pattern().map(Cow::Owned),
    }
}

/// What is noted about a request when it comes in, for [`Observation::finish`] to record
/// once it is answered. Made first and finished last by the middleware around every route
/// (`super::around_routes`), so that it sees the final answer, JSON errors included.
pub struct Observation {
    started: Instant,
    mark: Option<connection::RequestMark>,
    /// The log identity and what to record into; absent only in an app without state.
    recorded: Option<(web::Data<AppState>, Arc<RequestScope>)>,
    method: Method,
}

impl Observation {
    /// Marks the start of the request for its connection's watchdog and gives it its id.
    pub fn begin(req: &ServiceRequest) -> Self {
        let started = Instant::now();
        let mark = connection::start_request(req);
        let recorded = req.app_data::<web::Data<AppState>>().map(|state| {
            let request_id = match req.headers().get(REQUEST_ID).and_then(accepted_request_id) {
                Some(id) => id.to_owned(),
                None => state.request_ids.next(),
            };
            let client = client_ip(req.request(), &state.settings.trusted_proxies);
            (state.clone(), RequestScope::new(request_id, client))
        });
        Self {
            started,
            mark,
            recorded,
            method: req.method().clone(),
        }
    }

    /// The request's identity in the log, to be made current while it is handled.
    pub fn scope(&self) -> Option<Arc<RequestScope>> {
        self.recorded.as_ref().map(|(_, scope)| scope.clone())
    }

    /// Records the answer (metrics, access log), gives it the request id and hands it to
    /// the connection's watchdog, which learns when it has been written.
    pub fn finish(
        self,
        result: Result<ServiceResponse<BoxBody>, actix_web::Error>,
    ) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
        let Some((state, scope)) = self.recorded else {
            return result.map(|res| connection::end_with_response(self.mark, res));
        };
        let seconds = self.started.elapsed().as_secs_f64();
        let (status, route, path, error) = match &result {
            Ok(res) => {
                let route = route_of(res.request());
                let path = match &route {
                    Some(_) => None,
                    None => Some(unmatched_path(res.request().path()).to_owned()),
                };
                let error = res
                    .response()
                    .extensions()
                    .get::<ErrorTag>()
                    .map(|tag| tag.0);
                (res.status(), route, path, error)
            }
            Err(err) => (err.as_response_error().status_code(), None, None, None),
        };
        let route = route.unwrap_or(Cow::Borrowed(UNMATCHED_ROUTE));
        state
            .metrics
            .request(&route, method_label(&self.method), status, seconds, error);
        if state.settings.access_log {
            let shown = path.as_deref().unwrap_or(&route);
            let duration_ms = (seconds * 1_000_000.0).round() / 1_000.0;
            scope.span().in_scope(|| {
                tracing::info!(
                    target: "tollgate::access",
                    method = %self.method,
                    path = %shown,
                    status = status.as_u16(),
                    duration_ms,
                    "answered"
                );
            });
        }
        let mut res = result?;
        if let Ok(value) = HeaderValue::from_str(scope.request_id()) {
            res.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(connection::end_with_response(self.mark, res))
    }
}

/// `GET /metrics` (Prometheus text format) on the metrics listener.
pub async fn get_metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.db.pool_state();
    let age = state
        .keys
        .current()
        .active_since()
        .map(|since| state.now() - since);
    let body = state.metrics.render(
        PoolGauges {
            connections: pool.connections,
            idle: pool.idle,
            max: pool.max,
            waiting: pool.waiting,
            up: pool.up,
        },
        age,
        ViewCounts {
            stale_lookups: state.cache.stats.stale.load(Ordering::Relaxed),
            resyncs: state.cache.stats.resyncs.load(Ordering::Relaxed),
        },
    );
    no_store(&mut HttpResponse::Ok())
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .body(body)
}

/// The metrics listener's routes: `/metrics` and nothing else.
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(get_metrics))
            .default_service(web::to(super::error::get_only)),
    )
    .default_service(web::to(|| async {
        HttpError::api(
            StatusCode::NOT_FOUND,
            "not_found",
            "only /metrics is served here",
        )
        .error_response()
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_request_ids_are_kept_only_when_short_and_plain() {
        let id = |text: &str| {
            accepted_request_id(&HeaderValue::from_str(text).unwrap()).map(str::to_owned)
        };
        for kept in [
            "abc-123",
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            "Root=1-67891233-abcdef012345678912345678",
            "edge:1/2+3@x.y_z",
        ] {
            assert_eq!(id(kept).as_deref(), Some(kept));
        }
        assert_eq!(id(&"a".repeat(128)), Some("a".repeat(128)));
        for refused in [
            "",
            "has space",
            "new\tline",
            "quote\"d",
            "semi;colon",
            "<script>",
            "ümlaut",
        ] {
            let value = HeaderValue::from_bytes(refused.as_bytes()).unwrap();
            assert_eq!(accepted_request_id(&value), None, "{refused:?}");
        }
        assert_eq!(id(&"a".repeat(129)), None);
    }

    #[test]
    fn methods_and_unmatched_paths_are_bounded() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        let long = "/é".repeat(300);
        assert_eq!(unmatched_path(&long).chars().count(), 200);
        assert_eq!(unmatched_path("/x"), "/x");
    }
}
