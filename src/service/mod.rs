//! Use cases, as synchronous functions over a database connection. HTTP handlers (through
//! `Db::run`) and the CLI call the same functions. Time is always a parameter.
//!
//! Every mutating use case runs in one transaction (`db::transaction`) with its audit row,
//! so a failure leaves neither. Errors are per use-case family (`ClientError`,
//! `AccountError`, …) or, for the OAuth endpoints, [`ProtocolError`]; none of them knows
//! HTTP: `http::error` maps them once.

pub mod access_tokens;
pub mod accounts;
pub mod api_keys;
pub mod app_authorizations;
pub mod audit;
pub mod client_auth;
pub mod clients;
pub mod error;
pub mod grants;
pub mod introspection;
pub mod invites;
pub mod operators;
pub mod pairing;
pub mod revocation;
pub mod second_factor;
pub mod sessions;
pub mod sign_in;
pub mod signing_keys;
mod store_failure;

pub use error::{BearerRejection, ProtocolError};

use serde::Serialize;
use serde_json::{Value, json};

/// A view with a freshly made secret added under `field`: the one answer that ever holds
/// it (client creation and rotation, key creation).
pub fn with_secret_once<T: Serialize>(view: &T, field: &str, secret: &str) -> Value {
    let mut body = serde_json::to_value(view).unwrap_or_else(|_| json!({}));
    if let Some(members) = body.as_object_mut() {
        members.insert(field.to_owned(), json!(secret));
    }
    body
}
