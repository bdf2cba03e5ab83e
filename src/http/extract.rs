//! Small request helpers shared by the handlers: headers, bodies, bearer tokens, the
//! client's address.

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpRequest, web};

use crate::config::TrustedProxies;
use crate::oauth::OAuthError;

pub fn header_str(req: &HttpRequest, name: HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The client's address: the TCP peer, or, only when the peer is one of
/// `server.trusted_proxies`, the address its `X-Forwarded-For` names (see
/// [`crate::app::rate_limit::client_ip`]). The one place the server reads that header: the
/// logs, the rate limits and the console's session list all use this.
pub fn client_ip(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    // Most deployments trust nobody: skip the header lookup then.
    if trusted.is_empty() {
        return peer;
    }
    crate::app::rate_limit::client_ip(
        peer,
        header_str(req, HeaderName::from_static("x-forwarded-for")),
        trusted,
    )
}

/// RFC 6750 §2.1: the token of `Authorization: Bearer <token>`; `None` when the header is
/// absent, of another scheme, or empty. The one bearer parser of the server.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = header_str(req, header::AUTHORIZATION)?;
    match value.trim().split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Some(token.trim().to_owned())
        }
        _ => None,
    }
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
    let declared =
        header_str(req, header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
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

/// A scope list given as `"a b"` or `["a", "b"]` in a JSON body.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ScopeInput {
    Text(String),
    List(Vec<String>),
}

impl ScopeInput {
    pub fn parse(&self) -> Result<crate::oauth::Scope, super::error::HttpError> {
        match self {
            Self::Text(text) => crate::oauth::Scope::parse(text),
            Self::List(list) => crate::oauth::Scope::from_tokens(list),
        }
        .map_err(|e| super::error::HttpError::bad_request(format!("invalid scopes: {}", e.0)))
    }
}

/// A JSON request body that must be an object. serde's derive also reads a struct from an
/// array of its fields in order (`["name", "scope"]`), which no client means and the API
/// description does not allow: the body is read as an object first.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<T> Object<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<'de, T: serde::de::DeserializeOwned> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let members = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        T::deserialize(serde_json::Value::Object(members))
            .map(Object)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a JSON object body read as bytes, with our 400. serde's message names an unknown
/// or missing field (see [`describable`]).
pub fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, super::error::HttpError> {
    serde_json::from_slice::<Object<T>>(body)
        .map(Object::into_inner)
        .map_err(|e| {
            super::error::HttpError::bad_request(format!(
                "invalid JSON body: {}",
                describable(&e.to_string())
            ))
        })
}

/// `text` (which may quote the request) within RFC 6749 §5.2's `error_description`
/// characters: `"` becomes `'`, `\` and anything outside printable ASCII `?`; at most 200
/// characters.
pub fn describable(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| match c {
            '"' => '\'',
            ' '..='~' if c != '\\' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Named {
        name: String,
        #[serde(default)]
        size: Option<i64>,
    }

    #[test]
    fn a_json_body_is_an_object_never_an_array_of_fields() {
        let named: Named = json_body(br#"{"name": "a", "size": 2}"#).unwrap();
        assert_eq!((named.name.as_str(), named.size), ("a", Some(2)));
        // serde alone would read these as `Named { name: "a", size: None }`.
        for body in [&br#"["a"]"#[..], br#"["a", null]"#, b"null", b"\"a\""] {
            assert!(json_body::<Named>(body).is_err(), "{body:?}");
        }
        assert!(json_body::<Named>(br#"{"name": "a", "other": 1}"#).is_err());
    }
}
