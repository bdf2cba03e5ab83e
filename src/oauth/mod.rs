//! The OAuth 2.0 protocol core: request parsing, scopes, audiences and error codes.
//! Pure: it knows neither HTTP framework nor database.

pub mod error;
pub mod policy;
pub mod request;
pub mod scope;

pub use error::{ErrorCode, OAuthError};
pub use policy::{CLOCK_SKEW_SECONDS, MAX_TTL_SECONDS, TokenPolicy};
pub use request::{
    ClientAuthMethod, ClientCredentials, Grant, IntrospectionCaller, IntrospectionRequest,
    RevocationRequest, TokenRequest,
};
pub use scope::{ADMIN_SCOPE, INTROSPECT_SCOPE, KEYS_SCOPE, RESERVED_SCOPES, Scope};

/// RFC 6749 §4.4: the client credentials grant.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
/// RFC 8693: token exchange.
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: the token type of issued access tokens.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Tollgate's token type URI for its API keys, as `subject_token_type`.
pub const TOKEN_TYPE_API_KEY: &str = "urn:tollgate:params:oauth:token-type:api_key";
