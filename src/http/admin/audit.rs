//! `/admin/audit`: the audit trail.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{Admin, private_json};
use crate::app::AppState;
use crate::http::error::HttpError;
use crate::service::audit;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/audit").route(web::get().to(get_audit)));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    account: Option<String>,
    client: Option<String>,
    limit: Option<i64>,
}

/// `GET /admin/audit?account=HANDLE&client=ID&limit=N`: newest first.
async fn get_audit(
    _admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, HttpError> {
    let query = web::Query::<AuditQuery>::from_query(req.query_string())
        .map_err(|e| HttpError::bad_request(format!("invalid query: {e}")))?
        .into_inner();
    let events = state
        .db
        .run(move |conn| {
            audit::list(
                conn,
                query.account.as_deref(),
                query.client.as_deref(),
                query.limit.unwrap_or(100),
            )
        })
        .await?;
    Ok(private_json(StatusCode::OK, json!({ "events": events })))
}
