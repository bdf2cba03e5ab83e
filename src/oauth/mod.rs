//! The OAuth 2.0 protocol core: request parsing, scopes, audiences and error codes.
//! Pure: it knows neither HTTP framework nor database.

pub mod error;
pub mod request;
pub mod scope;

pub use error::{ErrorCode, OAuthError};
pub use request::{
    ClientAuthMethod, ClientCredentials, Grant, IntrospectionCaller, IntrospectionRequest,
    RevocationRequest, TokenRequest,
};
pub use scope::Scope;

/// RFC 6749 §4.4: the client credentials grant.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
