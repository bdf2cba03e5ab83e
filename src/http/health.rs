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
/// breaker is open (at once, without asking the database) and for a while after a write
/// was refused (disk full, read-only).
///
/// A pooled `SELECT 1` that cannot run within a second (the pool or the blocking threads
/// are busy) is not a database outage: the breaker's check then asks the database with a
/// connection of its own, and only if that fails too is the answer 503 (and the breaker
/// open). Readiness never opens the breaker on its own bound, and a busy instance is not
/// pulled from service for being busy.
pub async fn get_ready(state: web::Data<AppState>) -> HttpResponse {
    let unavailable = |database: &str| {
        HttpResponse::ServiceUnavailable()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .json(json!({"status": "unavailable", "database": database}))
    };
    let health = state.db.health();
    if health.is_down() {
        return unavailable("unreachable");
    }
    if let Err(err) = state.db.run_within(READY_LIMIT, db::ping).await as Result<(), DbError> {
        if !health.confirm().await {
            tracing::warn!(error = %err, "readiness check failed");
            return unavailable("unreachable");
        }
        tracing::debug!(error = %err, "readiness: pooled check failed, the database answers");
    }
    if health.writes_failing() {
        return unavailable("refusing writes");
    }
    HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"}))
}
