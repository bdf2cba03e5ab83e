//! Small request helpers shared by the handlers.

use actix_web::http::header::HeaderName;
use actix_web::{HttpRequest, web};

use crate::oauth::OAuthError;

pub fn header_str(req: &HttpRequest, name: HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads the whole body, refusing more than `limit` bytes with 413 (checked against
/// `Content-Length` first, so an oversized body is not even read).
pub async fn read_body_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, OAuthError> {
    let too_large = || {
        OAuthError::invalid_request(format!("the request body exceeds {limit} bytes"))
            .with_status(413)
    };
    let declared = header_str(req, actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(OAuthError::invalid_request(
            "the request body could not be read",
        )),
    }
}
