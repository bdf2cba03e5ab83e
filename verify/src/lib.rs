//! Validating Tollgate access tokens in a resource server (RFC 9068 §4, RFC 8725).
//!
//! This crate is what an API needs to trust Tollgate's tokens, and nothing of the server:
//! no database, no diesel, no libpq, no SQLite. The optional `actix` feature adds an
//! actix-web middleware and extractor (module `actix`).
//!
//! ```no_run
//! # async fn example() -> Result<(), tollgate_verify::VerifyError> {
//! use tollgate_verify::{Verifier, VerifierConfig};
//! let verifier = Verifier::discover(VerifierConfig::new(
//!     "https://auth.example.com",
//!     "https://api.example.com",
//! ))
//! .await?;
//! let token = verifier.verify_with_scopes("eyJ...", &["read"]).await?;
//! println!("call from {}", token.client_id);
//! # Ok(()) }
//! ```
//!
//! The verifier fetches the JWKS named by the server's metadata, caches it, refetches on an
//! unknown `kid` (at most once per `min_refresh_interval`), and checks an explicit algorithm
//! allow-list (never `none`, never HMAC), `typ` = `at+jwt`, `iss`, `aud`, `exp`/`nbf` with a
//! small leeway, and required scopes. With introspection on, it also asks the server
//! (RFC 7662) so that revocations count at once.
//!
//! jsonwebtoken 11 brings no cryptography of its own: [`Verifier::discover`] installs the
//! ring-backed provider of [`jwt_provider`] unless the process already has one.

#![warn(missing_docs)]

#[cfg(feature = "actix")]
pub mod actix;
pub mod jwt_provider;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Algorithms a verifier may accept. HMAC is absent on purpose: a public key must never be
/// used as an HMAC secret.
pub const ASYMMETRIC_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Credentials for RFC 7662 introspection: a client of Tollgate with the `introspect` scope.
#[derive(Clone)]
pub struct IntrospectionCredentials {
    /// The introspecting client's id.
    pub client_id: String,
    /// Its secret; kept out of `Debug`.
    pub client_secret: String,
}

impl std::fmt::Debug for IntrospectionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What a [`Verifier`] trusts: built with [`VerifierConfig::new`] and the `with_…` methods.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The issuer URL (`iss`); its metadata is at `{issuer}/.well-known/oauth-authorization-server`.
    pub issuer: String,
    /// This resource server's audience; tokens must carry it in `aud`.
    pub audience: String,
    /// Accepted signature algorithms (default: ES256, EdDSA, RS256).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub leeway: Duration,
    /// The JWKS is refetched at most this often when a token names an unknown `kid`
    /// (default 10 s), so a flood of forged `kid`s cannot hammer the server.
    pub min_refresh_interval: Duration,
    /// The JWKS is refetched when older than this (default 5 min).
    pub max_cache_age: Duration,
    /// Ask the introspection endpoint too, so revoked tokens fail at once.
    pub introspection: Option<IntrospectionCredentials>,
}

impl VerifierConfig {
    /// Trusts tokens from `issuer` (a trailing `/` is ignored) that are meant for `audience`,
    /// with the defaults documented on each field.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience: audience.into(),
            algorithms: vec![Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256],
            leeway: Duration::from_secs(30),
            min_refresh_interval: Duration::from_secs(10),
            max_cache_age: Duration::from_secs(300),
            introspection: None,
        }
    }

    /// Sets [`VerifierConfig::leeway`].
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets [`VerifierConfig::algorithms`]; only asymmetric ones ([`ASYMMETRIC_ALGORITHMS`])
    /// pass [`Verifier::discover`].
    pub fn with_algorithms(mut self, algorithms: Vec<Algorithm>) -> Self {
        self.algorithms = algorithms;
        self
    }

    /// Turns on RFC 7662 introspection with a client that has the `introspect` scope.
    pub fn with_introspection(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.introspection = Some(IntrospectionCredentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        });
        self
    }

    /// Sets [`VerifierConfig::min_refresh_interval`].
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }
}

/// Why a token was not accepted, or why the verifier could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token is not acceptable (RFC 6750 `invalid_token`, 401).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token lacks required scopes (RFC 6750 `insufficient_scope`, 403); holds only the
    /// missing ones, in the order they were required.
    #[error("the token lacks scope: {}", .0.join(" "))]
    InsufficientScope(Vec<String>),
    /// The authorization server could not be reached for keys or introspection (503).
    #[error("the authorization server is unavailable: {0}")]
    Unavailable(String),
    /// The verifier was set up wrongly.
    #[error("verifier configuration: {0}")]
    Config(String),
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// `sub`: the client, or the account for tokens exchanged from an API key.
    pub subject: String,
    /// `client_id` (RFC 9068 §2.2), or `sub` when the token has none.
    pub client_id: String,
    /// `scope`, split on spaces.
    pub scopes: Vec<String>,
    /// `exp`, in Unix seconds.
    pub expires_at: i64,
    /// `jti`, the token's id (what revocation and introspection name).
    pub jti: Option<String>,
    /// Every claim, for anything not lifted into a field.
    pub claims: serde_json::Value,
}

impl VerifiedToken {
    /// Whether the token was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Fails with the scopes that are missing, if any.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), VerifyError> {
        let missing: Vec<String> = required
            .iter()
            .filter(|s| !self.has_scope(s))
            .map(|s| (*s).to_owned())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(VerifyError::InsufficientScope(missing))
        }
    }
}

#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    introspection_endpoint: Option<String>,
}

struct KeyCache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    fetched_at: Option<Instant>,
}

struct Inner {
    config: VerifierConfig,
    http: reqwest::Client,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
    cache: RwLock<KeyCache>,
    /// One JWKS fetch at a time; others wait for its result.
    refresh: tokio::sync::Mutex<()>,
}

/// Validates Tollgate tokens locally. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Verifier(Arc<Inner>);

impl Verifier {
    /// Reads the issuer's RFC 8414 metadata (checking that it names the same issuer, §3.3),
    /// then loads its JWKS.
    pub async fn discover(config: VerifierConfig) -> Result<Self, VerifyError> {
        crate::jwt_provider::install();
        validate_config(&config)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| VerifyError::Config(e.to_string()))?;
        let url = format!("{}/.well-known/oauth-authorization-server", config.issuer);
        let metadata: Metadata = fetch_json(&http, &url).await?;
        if metadata.issuer.trim_end_matches('/') != config.issuer {
            return Err(VerifyError::Config(format!(
                "the metadata names issuer {:?}, not {:?}",
                metadata.issuer, config.issuer
            )));
        }
        // The metadata must not send us (or our introspection secret) elsewhere.
        for url in std::iter::once(&metadata.jwks_uri).chain(&metadata.introspection_endpoint) {
            if !same_origin(url, &config.issuer) {
                return Err(VerifyError::Config(format!(
                    "the metadata points outside the issuer's origin: {url}"
                )));
            }
        }
        if config.introspection.is_some() && metadata.introspection_endpoint.is_none() {
            return Err(VerifyError::Config(
                "introspection requested but the server has no introspection_endpoint".into(),
            ));
        }
        let verifier = Self(Arc::new(Inner {
            config,
            http,
            jwks_uri: metadata.jwks_uri,
            introspection_endpoint: metadata.introspection_endpoint,
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fetched_at: None,
            }),
            refresh: tokio::sync::Mutex::new(()),
        }));
        verifier.refresh_keys(None).await?;
        Ok(verifier)
    }

    /// The configuration this verifier was discovered with.
    pub fn config(&self) -> &VerifierConfig {
        &self.0.config
    }

    /// Validates `token`; with introspection configured, also asks the server.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let verified = self.verify_locally(token).await?;
        if self.0.config.introspection.is_some() {
            self.introspect(token).await?;
        }
        Ok(verified)
    }

    /// [`Verifier::verify`], then requires every scope in `required`; a token lacking some
    /// fails with [`VerifyError::InsufficientScope`] naming only those.
    pub async fn verify_with_scopes(
        &self,
        token: &str,
        required: &[&str],
    ) -> Result<VerifiedToken, VerifyError> {
        let verified = self.verify(token).await?;
        verified.require_scopes(required)?;
        Ok(verified)
    }

    /// Signature and claims only, without introspection.
    pub async fn verify_locally(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let invalid = |why: &str| VerifyError::InvalidToken(why.to_owned());
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("malformed token or unsupported algorithm"))?;
        if !self.0.config.algorithms.contains(&header.alg) {
            return Err(invalid("algorithm not allowed"));
        }
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(invalid("not an access token (typ must be at+jwt)"));
        }
        // RFC 7515 §4.1.11: a `crit` header names extensions the verifier must understand;
        // this one understands none, so any `crit` (even an empty one, itself invalid) fails.
        if header.crit.is_some() {
            return Err(invalid("the token has critical header extensions (crit)"));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("the token names no key (kid)"))?;
        if self.cache_is_stale()
            && let Err(err) = self.refresh_keys(None).await
        {
            // Keep trusting the keys we have rather than failing every request.
            tracing::warn!(error = %err, "JWKS refresh failed; using the cached keys");
        }
        let (key_alg, key) = match self.key(&kid) {
            Some(found) => found,
            None => {
                self.refresh_keys(Some(&kid)).await?;
                self.key(&kid)
                    .ok_or_else(|| invalid("unknown signing key"))?
            }
        };
        if key_alg != header.alg {
            return Err(invalid("the algorithm does not match the key"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.0.config.issuer]);
        validation.set_audience(&[&self.0.config.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.0.config.leeway.as_secs();
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| VerifyError::InvalidToken(describe(&e)))?;
        let claims = data.claims;
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let subject = text("sub").ok_or_else(|| invalid("no subject"))?;
        Ok(VerifiedToken {
            client_id: text("client_id").unwrap_or_else(|| subject.clone()),
            subject,
            scopes: text("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            expires_at: claims
                .get("exp")
                .and_then(|v| v.as_i64())
                .unwrap_or_default(),
            jti: text("jti"),
            claims,
        })
    }

    fn key(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        self.0.cache.read().ok()?.keys.get(kid).cloned()
    }

    fn cache_is_stale(&self) -> bool {
        self.0.cache.read().map_or(true, |cache| {
            cache
                .fetched_at
                .is_none_or(|at| at.elapsed() >= self.0.config.max_cache_age)
        })
    }

    /// Refetches the JWKS, unless another task just did, or (for an unknown `kid`) the last
    /// fetch is more recent than `min_refresh_interval`.
    async fn refresh_keys(&self, wanted_kid: Option<&str>) -> Result<(), VerifyError> {
        let _single_flight = self.0.refresh.lock().await;
        if let Ok(cache) = self.0.cache.read() {
            let age = cache.fetched_at.map(|at| at.elapsed());
            let stale = age.is_none_or(|age| age >= self.0.config.max_cache_age);
            // Another task refreshed while this one waited.
            if wanted_kid.is_none() && !stale {
                return Ok(());
            }
            if let Some(kid) = wanted_kid
                && !stale
                && (cache.keys.contains_key(kid)
                    || age.is_some_and(|age| age < self.0.config.min_refresh_interval))
            {
                return Ok(());
            }
        }
        let jwks: JwkSet = fetch_json(&self.0.http, &self.0.jwks_uri).await?;
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let (Some(kid), Some(alg)) = (&jwk.common.key_id, jwk.common.key_algorithm) else {
                continue;
            };
            let Ok(alg) = alg.to_string().parse::<Algorithm>() else {
                continue;
            };
            if !self.0.config.algorithms.contains(&alg) {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid.clone(), (alg, key));
            }
        }
        let mut cache = self
            .0
            .cache
            .write()
            .map_err(|_| VerifyError::Unavailable("key cache poisoned".into()))?;
        cache.keys = keys;
        cache.fetched_at = Some(Instant::now());
        Ok(())
    }

    /// RFC 7662: `active: false` fails the token.
    async fn introspect(&self, token: &str) -> Result<(), VerifyError> {
        let (Some(credentials), Some(endpoint)) =
            (&self.0.config.introspection, &self.0.introspection_endpoint)
        else {
            return Ok(());
        };
        let response = self
            .0
            .http
            .post(endpoint)
            .basic_auth(
                form_encode(&credentials.client_id),
                Some(form_encode(&credentials.client_secret)),
            )
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| VerifyError::Unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(VerifyError::Unavailable(format!(
                "introspection answered {}",
                response.status()
            )));
        }
        #[derive(Deserialize)]
        struct Answer {
            active: bool,
        }
        let answer: Answer = response
            .json()
            .await
            .map_err(|e| VerifyError::Unavailable(e.to_string()))?;
        if answer.active {
            Ok(())
        } else {
            Err(VerifyError::InvalidToken(
                "the token is not active (revoked?)".into(),
            ))
        }
    }
}

fn validate_config(config: &VerifierConfig) -> Result<(), VerifyError> {
    if config.algorithms.is_empty() {
        return Err(VerifyError::Config("allow at least one algorithm".into()));
    }
    if let Some(bad) = config
        .algorithms
        .iter()
        .find(|a| !ASYMMETRIC_ALGORITHMS.contains(a))
    {
        return Err(VerifyError::Config(format!(
            "{bad:?} is not allowed: only asymmetric algorithms verify tokens from a JWKS"
        )));
    }
    if config.audience.is_empty() {
        return Err(VerifyError::Config("the audience must not be empty".into()));
    }
    Ok(())
}

fn describe(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
        ErrorKind::InvalidIssuer => "wrong issuer".into(),
        ErrorKind::InvalidAudience => "wrong audience".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing claim {claim}"),
        _ => "invalid token".into(),
    }
}

fn same_origin(url: &str, issuer: &str) -> bool {
    match (url::Url::parse(url), url::Url::parse(issuer)) {
        (Ok(url), Ok(issuer)) => url.origin() == issuer.origin(),
        _ => false,
    }
}

fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn fetch_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, VerifyError> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| VerifyError::Unavailable(format!("GET {url}: {e}")))?;
    if !response.status().is_success() {
        return Err(VerifyError::Unavailable(format!(
            "GET {url} answered {}",
            response.status()
        )));
    }
    response
        .json()
        .await
        .map_err(|e| VerifyError::Unavailable(format!("GET {url}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_with(scopes: &[&str]) -> VerifiedToken {
        VerifiedToken {
            subject: "svc".into(),
            client_id: "svc".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: 0,
            jti: None,
            claims: serde_json::Value::Null,
        }
    }

    #[test]
    fn insufficient_scope_names_only_the_missing_scopes() {
        let token = token_with(&["read", "write"]);
        let err = token
            .require_scopes(&["read", "admin", "write", "delete"])
            .err();
        assert_eq!(
            err,
            Some(VerifyError::InsufficientScope(vec![
                "admin".into(),
                "delete".into()
            ]))
        );
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("the token lacks scope: admin delete")
        );
    }

    #[test]
    fn granted_scopes_pass() {
        let token = token_with(&["read", "write"]);
        assert_eq!(token.require_scopes(&["write", "read"]), Ok(()));
        assert_eq!(token.require_scopes(&[]), Ok(()));
        assert!(token.has_scope("read"));
        assert!(!token.has_scope("rea"), "scopes match whole words");
    }

    #[test]
    fn only_asymmetric_algorithms_and_an_audience_are_accepted() {
        let config = VerifierConfig::new("https://auth.example/", "https://api.example");
        assert_eq!(config.issuer, "https://auth.example", "no trailing slash");
        assert_eq!(validate_config(&config), Ok(()));
        for algorithms in [
            vec![],
            vec![Algorithm::HS256],
            vec![Algorithm::ES256, Algorithm::HS512],
        ] {
            let config = config.clone().with_algorithms(algorithms.clone());
            assert!(
                matches!(validate_config(&config), Err(VerifyError::Config(_))),
                "{algorithms:?}"
            );
        }
        let no_audience = VerifierConfig::new("https://auth.example", "");
        assert!(matches!(
            validate_config(&no_audience),
            Err(VerifyError::Config(_))
        ));
    }

    #[tokio::test]
    async fn discover_refuses_a_bad_config_before_any_request() {
        // Port 9 (discard) on a reserved TLD: a request would fail as Unavailable, not Config.
        let config = VerifierConfig::new("http://auth.invalid:9", "api")
            .with_algorithms(vec![Algorithm::HS256]);
        assert!(matches!(
            Verifier::discover(config).await,
            Err(VerifyError::Config(_))
        ));
    }

    #[test]
    fn metadata_urls_must_share_the_issuer_origin() {
        let issuer = "https://auth.example";
        assert!(same_origin(
            "https://auth.example/.well-known/jwks.json",
            issuer
        ));
        assert!(!same_origin("https://auth.example:8443/jwks", issuer));
        assert!(!same_origin("http://auth.example/jwks", issuer));
        assert!(!same_origin("https://evil.example/jwks", issuer));
        assert!(!same_origin("not a url", issuer));
    }

    #[test]
    fn introspection_secret_stays_out_of_debug() {
        let config = VerifierConfig::new("https://auth.example", "api")
            .with_introspection("rs-client", "hunter2");
        let debug = format!("{config:?}");
        assert!(debug.contains("rs-client"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn introspection_credentials_are_form_encoded_for_basic_auth() {
        // RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Basic.
        assert_eq!(form_encode("a b:c/é"), "a+b%3Ac%2F%C3%A9");
    }

    #[test]
    fn jsonwebtoken_errors_become_short_reasons() {
        use jsonwebtoken::errors::ErrorKind;
        let reason = |kind: ErrorKind| describe(&kind.into());
        assert_eq!(reason(ErrorKind::ExpiredSignature), "the token has expired");
        assert_eq!(reason(ErrorKind::InvalidAudience), "wrong audience");
        assert_eq!(
            reason(ErrorKind::MissingRequiredClaim("sub".into())),
            "missing claim sub"
        );
        assert_eq!(reason(ErrorKind::InvalidToken), "invalid token");
    }
}
