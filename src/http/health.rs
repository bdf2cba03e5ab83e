//! Liveness and readiness probes.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::AppState;
use crate::db::{self, DbError};

/// The readiness check's own bound on the database: a probe must never hang.
const READY_LIMIT: Duration = Duration::from_secs(1);

/// The process is up and serving HTTP.
pub async fn get_live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers and accepts writes: the instance can do its work. 503 while the
/// database is seen down (at once, without asking it), when it does not answer within a
/// second, and for a while after it refused a write (disk full, read-only).
pub async fn get_ready(state: web::Data<AppState>) -> HttpResponse {
    let unavailable = |database: &str| {
        HttpResponse::ServiceUnavailable()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .json(json!({"status": "unavailable", "database": database}))
    };
    if state.db.health().is_down() {
        return unavailable("unreachable");
    }
    if let Err(err) = state.db.run_within(READY_LIMIT, db::ping).await as Result<(), DbError> {
        tracing::warn!(error = %err, "readiness check failed");
        return unavailable("unreachable");
    }
    if state.db.health().writes_failing() {
        return unavailable("refusing writes");
    }
    HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"}))
}
