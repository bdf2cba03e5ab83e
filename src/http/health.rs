//! Liveness and readiness probes.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::AppState;
use crate::db::{self, DbError};

/// The process is up and serving HTTP.
pub async fn get_live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers: the instance can issue tokens.
pub async fn get_ready(state: web::Data<AppState>) -> HttpResponse {
    match state.db.run(db::ping).await as Result<(), DbError> {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"})),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "database": "unreachable"}))
        }
    }
}
