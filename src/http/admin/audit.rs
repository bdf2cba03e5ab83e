//! `/admin/audit`: the audit trail.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{Admin, AuditEvents, private_json};
use crate::app::AppState;
use crate::http::error::HttpError;
use crate::http::openapi::{BearerErrors, StoreErrors};
use crate::service::audit;

/// Every parameter narrows the listing.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// An account handle.
    account: Option<String>,
    /// A client id.
    client: Option<String>,
    /// An action, e.g. `client.created`.
    action: Option<String>,
    /// RFC 3339: events at or after.
    since: Option<String>,
    /// RFC 3339: events before.
    until: Option<String>,
    /// Only events older than this `seq` (the last one of the page before).
    before: Option<i64>,
    /// At most this many events (default 100, at most 1000).
    limit: Option<i64>,
}

fn rfc3339(name: &str, text: Option<&str>) -> Result<Option<i64>, HttpError> {
    text.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.timestamp())
            .map_err(|_| HttpError::bad_request(format!("{name} must be an RFC 3339 time")))
    })
    .transpose()
}

/// `GET /admin/audit?account=HANDLE&client=ID&action=A&since=T&until=T&before=SEQ&limit=N`:
/// newest first.
#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin",
    summary = "Search the audit trail",
    params(AuditQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Matching events, newest first.", body = AuditEvents),
        (status = 400, description = "`invalid_request`: an unknown parameter or a malformed value.", body = crate::http::error::ErrorBody),
        (status = 404, description = "`not_found`: no account with that handle.", body = crate::http::error::ErrorBody),
        BearerErrors, StoreErrors,
    ),
)]
pub(crate) async fn get_audit(
    _admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, HttpError> {
    let query = web::Query::<AuditQuery>::from_query(req.query_string())
        .map_err(|e| HttpError::bad_request(format!("invalid query: {e}")))?
        .into_inner();
    let wanted = audit::AuditQuery {
        since: rfc3339("since", query.since.as_deref())?,
        until: rfc3339("until", query.until.as_deref())?,
        account_handle: query.account,
        client_id: query.client,
        action: query.action,
        before_seq: query.before,
    };
    let limit = query.limit.unwrap_or(100);
    let events = state
        .db
        .run(move |conn| audit::search(conn, &wanted, limit))
        .await?;
    Ok(private_json(StatusCode::OK, AuditEvents { events }))
}
