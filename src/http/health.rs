//! Liveness and readiness probes.

use std::time::Duration;

use actix_web::{HttpResponse, web};

use crate::app::AppState;
use crate::db::{self, DbError};

/// The readiness check's own bound on the database: a probe must never hang.
const READY_LIMIT: Duration = Duration::from_secs(1);

/// A probe's answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// Readiness only: `ok`, `unreachable` or `refusing writes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
}

/// The process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    summary = "Liveness",
    responses((status = 200, description = "The process serves HTTP.", body = Health)),
)]
pub async fn get_live() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        database: None,
    })
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
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    summary = "Readiness",
    responses(
        (status = 200, description = "The database answers and accepts writes.", body = Health),
        (status = 503, description = "The database is unreachable or refuses writes.", body = Health),
    ),
)]
pub async fn get_ready(state: web::Data<AppState>) -> HttpResponse {
    let unavailable = |database: &'static str| {
        HttpResponse::ServiceUnavailable()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .json(Health {
                status: "unavailable",
                database: Some(database),
            })
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
    HttpResponse::Ok().json(Health {
        status: "ok",
        database: Some("ok"),
    })
}
