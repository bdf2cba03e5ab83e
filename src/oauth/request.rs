//! Parsing of token endpoint requests (RFC 6749 §2.3.1, §3.2, §4.4.2; RFC 8707 §2).
//!
//! We parse the form ourselves instead of using a framework extractor so that the content
//! type, repeated parameters and both client authentication methods get the RFC's errors.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::{ErrorCode, OAuthError};
use super::scope::Scope;
use crate::crypto::secrets::ClientSecret;

pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// How the client presented its credentials (RFC 8414 `token_endpoint_auth_methods_supported`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// RFC 6749 §2.3.1: HTTP Basic with form-urlencoded id and secret.
    ClientSecretBasic,
    /// RFC 6749 §2.3.1: `client_id` and `client_secret` in the request body.
    ClientSecretPost,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: ClientSecret,
    pub method: ClientAuthMethod,
}

/// The grant a token request asks for, with its grant-specific parameters.
#[derive(Debug, Clone)]
pub enum Grant {
    /// RFC 6749 §4.4.2. `audiences` holds the RFC 8707 `resource` values (or one `audience`).
    ClientCredentials {
        scope: Option<Scope>,
        audiences: Vec<String>,
    },
    /// RFC 8693 §2.1: an API key (`subject_token`) traded for a short-lived access token.
    TokenExchange {
        subject_token: SubjectToken,
        scope: Option<Scope>,
        audiences: Vec<String>,
    },
}

/// The token presented for exchange; never printed.
#[derive(Clone)]
pub struct SubjectToken(pub String);

impl std::fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectToken(redacted)")
    }
}

#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub grant: Grant,
    /// Always present for the client credentials grant; optional for token exchange.
    pub credentials: Option<ClientCredentials>,
}

/// Form parameters in the order sent, each name at most once except those the RFCs allow
/// to repeat. Names and values borrow from the body unless they had to be decoded.
pub struct FormParams<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

/// RFC 8707 §2 and RFC 8693 §2.1: `resource` and `audience` may be given several times.
const REPEATABLE: &[&str] = &["resource", "audience"];

/// More parameters than any request to these endpoints needs (each is looked up by a scan,
/// and each new one is checked against those before it).
pub const MAX_FORM_PARAMS: usize = 100;

impl<'a> FormParams<'a> {
    /// Checks the content type, decodes the body and rejects repeated parameters
    /// (RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once").
    /// Empty values count as omitted (RFC 6749 §3.1).
    pub fn parse(content_type: Option<&str>, body: &'a [u8]) -> Result<Self, OAuthError> {
        let media_type = content_type
            .and_then(|ct| ct.split(';').next())
            .map(str::trim);
        if !media_type.is_some_and(|mt| mt.eq_ignore_ascii_case(FORM_CONTENT_TYPE)) {
            return Err(OAuthError::invalid_request(
                "the request body must be application/x-www-form-urlencoded",
            ));
        }
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::invalid_request(
                "the request body is not valid UTF-8",
            ));
        }
        let mut params: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            if !REPEATABLE.contains(&name.as_ref()) && params.iter().any(|(seen, _)| *seen == name)
            {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {} was sent more than once",
                    super::error::echo(&name)
                )));
            }
            if params.len() == MAX_FORM_PARAMS {
                return Err(OAuthError::invalid_request(format!(
                    "more than {MAX_FORM_PARAMS} parameters"
                )));
            }
            params.push((name, value));
        }
        Ok(Self(params))
    }

    /// The form of a revocation or introspection request and its required `token`.
    fn parse_with_token(
        content_type: Option<&str>,
        body: &'a [u8],
    ) -> Result<(Self, String), OAuthError> {
        let mut params = Self::parse(content_type, body)?;
        let token = params
            .take("token")
            .ok_or_else(|| OAuthError::invalid_request("missing token"))?;
        Ok((params, token))
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_ref())
    }

    /// Every value of `name`, in the order sent.
    pub fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + Clone + 's {
        self.0
            .iter()
            .filter(move |(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_ref())
    }

    pub fn take(&mut self, name: &str) -> Option<String> {
        let at = self.0.iter().position(|(candidate, _)| candidate == name)?;
        Some(self.0.remove(at).1.into_owned())
    }
}

impl TokenRequest {
    /// Parses a token request. Errors, in order: malformed request (`invalid_request`),
    /// unknown grant (`unsupported_grant_type`), malformed grant parameters, then missing or
    /// malformed client credentials (`invalid_client`). Checking the secret is the service's job.
    pub fn parse(
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Self, OAuthError> {
        let mut params = FormParams::parse(content_type, body)?;
        let grant_type = params
            .one("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("missing grant_type"))?;
        let grant = match grant_type {
            super::GRANT_CLIENT_CREDENTIALS => parse_client_credentials(&params)?,
            super::GRANT_TOKEN_EXCHANGE => parse_token_exchange(&params)?,
            other => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    format!("grant_type {} is not supported", super::error::echo(other)),
                ));
            }
        };
        let credentials = match grant {
            Grant::ClientCredentials { .. } => {
                Some(client_credentials(authorization, &mut params)?)
            }
            Grant::TokenExchange { .. } => optional_client_credentials(authorization, &mut params)?,
        };
        Ok(Self { grant, credentials })
    }
}

/// RFC 8693 §2.1. Only Tollgate API keys can be exchanged, for access tokens.
fn parse_token_exchange(params: &FormParams) -> Result<Grant, OAuthError> {
    let subject_token = params
        .one("subject_token")
        .ok_or_else(|| OAuthError::invalid_request("missing subject_token"))?;
    match params.one("subject_token_type") {
        Some(super::TOKEN_TYPE_API_KEY) => {}
        Some(other) => {
            return Err(OAuthError::invalid_request(format!(
                "subject_token_type {} is not supported; use {}",
                super::error::echo(other),
                super::TOKEN_TYPE_API_KEY
            )));
        }
        None => return Err(OAuthError::invalid_request("missing subject_token_type")),
    }
    if params.one("actor_token").is_some() {
        return Err(OAuthError::invalid_request(
            "delegation (actor_token) is not supported",
        ));
    }
    if let Some(requested) = params.one("requested_token_type")
        && requested != super::TOKEN_TYPE_ACCESS_TOKEN
    {
        return Err(OAuthError::invalid_request(format!(
            "requested_token_type must be {}",
            super::TOKEN_TYPE_ACCESS_TOKEN
        )));
    }
    let scope = params
        .one("scope")
        .map(Scope::parse)
        .transpose()
        .map_err(|e| OAuthError::invalid_scope(e.0))?;
    Ok(Grant::TokenExchange {
        subject_token: SubjectToken(subject_token.to_owned()),
        scope,
        audiences: requested_audiences(params)?,
    })
}

fn parse_client_credentials(params: &FormParams) -> Result<Grant, OAuthError> {
    let scope = params
        .one("scope")
        .map(Scope::parse)
        .transpose()
        .map_err(|e| OAuthError::invalid_scope(e.0))?;
    let audiences = requested_audiences(params)?;
    Ok(Grant::ClientCredentials { scope, audiences })
}

/// RFC 8707 `resource` (absolute URIs without fragment) and RFC 8693 `audience` (logical
/// names); both may repeat, and together they name every audience the token is for.
pub fn requested_audiences(params: &FormParams) -> Result<Vec<String>, OAuthError> {
    let resources = params.all("resource");
    let audiences = params.all("audience");
    for resource in resources.clone() {
        match url::Url::parse(resource) {
            Ok(uri) if uri.fragment().is_none() => {}
            _ => {
                return Err(OAuthError::invalid_target(format!(
                    "resource {} must be an absolute URI without a fragment (RFC 8707 section 2)",
                    super::error::echo(resource)
                )));
            }
        }
    }
    if audiences
        .clone()
        .any(|a| a.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(OAuthError::invalid_target(
            "audience must not contain spaces or control characters",
        ));
    }
    let mut requested: Vec<String> = Vec::new();
    for value in resources.chain(audiences) {
        if !requested.iter().any(|r| r == value) {
            requested.push(value.to_owned());
        }
    }
    Ok(requested)
}

/// RFC 7009 §2.1: a revocation request from an authenticated client.
#[derive(Debug, Clone)]
pub struct RevocationRequest {
    pub token: String,
    pub credentials: ClientCredentials,
}

impl RevocationRequest {
    pub fn parse(
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Self, OAuthError> {
        let (mut params, token) = FormParams::parse_with_token(content_type, body)?;
        // token_type_hint is optional and only a hint (RFC 7009 §2.1): we search all types.
        let credentials = client_credentials(authorization, &mut params)?;
        Ok(Self { token, credentials })
    }
}

/// Who calls the introspection endpoint (RFC 7662 §2.1).
#[derive(Debug, Clone)]
pub enum IntrospectionCaller {
    /// A resource server's client credentials.
    Client(ClientCredentials),
    /// An access token of this server (an admin token).
    Bearer(String),
}

#[derive(Debug, Clone)]
pub struct IntrospectionRequest {
    pub token: String,
    pub caller: IntrospectionCaller,
}

impl IntrospectionRequest {
    pub fn parse(
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Self, OAuthError> {
        let (mut params, token) = FormParams::parse_with_token(content_type, body)?;
        let bearer = authorization.and_then(|header| {
            let (scheme, value) = header.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| value.trim().to_owned())
        });
        let caller = match bearer {
            Some(bearer) => IntrospectionCaller::Bearer(bearer),
            None => IntrospectionCaller::Client(client_credentials(authorization, &mut params)?),
        };
        Ok(Self { token, caller })
    }
}

/// RFC 6749 §2.3.1: exactly one of HTTP Basic or `client_id` + `client_secret` in the body.
fn client_credentials(
    authorization: Option<&str>,
    params: &mut FormParams,
) -> Result<ClientCredentials, OAuthError> {
    optional_client_credentials(authorization, params)?.ok_or_else(|| {
        OAuthError::invalid_client(
            "client authentication is required (client_secret_basic or client_secret_post)",
        )
    })
}

/// Client credentials if the request carries any (token exchange may come without).
fn optional_client_credentials(
    authorization: Option<&str>,
    params: &mut FormParams,
) -> Result<Option<ClientCredentials>, OAuthError> {
    let body_id = params.take("client_id");
    let body_secret = params.take("client_secret");
    match authorization {
        Some(header) => {
            let (id, secret) = parse_basic(header)?;
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: HTTP Basic or client_secret in the body, not both",
                ));
            }
            if body_id.as_deref().is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the one in the Authorization header",
                ));
            }
            Ok(Some(ClientCredentials {
                client_id: id,
                secret: ClientSecret::from_presented(secret),
                method: ClientAuthMethod::ClientSecretBasic,
            }))
        }
        None => match (body_id, body_secret) {
            (Some(client_id), Some(secret)) => Ok(Some(ClientCredentials {
                client_id,
                secret: ClientSecret::from_presented(secret),
                method: ClientAuthMethod::ClientSecretPost,
            })),
            (None, Some(_)) => Err(OAuthError::invalid_request(
                "client_secret was sent without client_id",
            )),
            (Some(_), None) => Err(OAuthError::invalid_client(
                "client authentication is required (client_secret_basic or client_secret_post)",
            )),
            (None, None) => Ok(None),
        },
    }
}

/// Decodes `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
pub fn parse_basic(header: &str) -> Result<(String, String), OAuthError> {
    let unsupported =
        || OAuthError::invalid_client("unsupported client authentication scheme, use Basic");
    let malformed = || OAuthError::invalid_client("malformed HTTP Basic credentials");
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(unsupported)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(unsupported());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let mut decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let colon = decoded.find(':').ok_or_else(malformed)?;
    let secret = form_decode(&decoded[colon + 1..]);
    // The id is most often plain: the decoded buffer, cut at the colon, is it.
    decoded.truncate(colon);
    let id = if is_plain(&decoded) {
        Some(decoded)
    } else {
        form_decode(&decoded)
    };
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok((id, secret)),
        _ => Err(malformed()),
    }
}

/// Whether form decoding would leave `text` as it is.
fn is_plain(text: &str) -> bool {
    !text.bytes().any(|b| b == b'+' || b == b'%')
}

/// `application/x-www-form-urlencoded` decoding of one value ('+' is a space).
fn form_decode(text: &str) -> Option<String> {
    if is_plain(text) {
        return Some(text.to_owned());
    }
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    fn parse(auth: Option<&str>, body: &str) -> Result<TokenRequest, OAuthError> {
        TokenRequest::parse(FORM, auth, body.as_bytes())
    }

    fn code(result: Result<TokenRequest, OAuthError>) -> ErrorCode {
        result.expect_err("the request must be refused").code
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = basic("my%20client", "s%3Acr+t");
        let request = parse(Some(&header), "grant_type=client_credentials").unwrap();
        let credentials = request.credentials.expect("Basic credentials");
        assert_eq!(credentials.client_id, "my client");
        assert_eq!(credentials.secret.expose(), "s:cr t");
        assert_eq!(credentials.method, ClientAuthMethod::ClientSecretBasic);
    }

    #[test]
    fn post_credentials_are_accepted() {
        let request = parse(
            None,
            "grant_type=client_credentials&client_id=a&client_secret=b&scope=read+write",
        )
        .unwrap();
        let credentials = request.credentials.expect("post credentials");
        assert_eq!(credentials.client_id, "a");
        assert_eq!(credentials.secret.expose(), "b");
        assert_eq!(credentials.method, ClientAuthMethod::ClientSecretPost);
        let Grant::ClientCredentials { scope, .. } = request.grant else {
            panic!("client credentials grant")
        };
        assert_eq!(scope.map(|s| s.to_string()).as_deref(), Some("read write"));
    }

    #[test]
    fn both_methods_at_once_is_invalid_request() {
        let header = basic("a", "b");
        assert_eq!(
            code(parse(
                Some(&header),
                "grant_type=client_credentials&client_secret=b"
            )),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn no_credentials_is_invalid_client() {
        assert_eq!(
            code(parse(None, "grant_type=client_credentials")),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            code(parse(None, "grant_type=client_credentials&client_id=a")),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            code(parse(Some("Bearer abc"), "grant_type=client_credentials")),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            code(parse(Some("Basic !!!"), "grant_type=client_credentials")),
            ErrorCode::InvalidClient
        );
    }

    #[test]
    fn repeated_parameters_are_invalid_request() {
        assert_eq!(
            code(parse(
                None,
                "grant_type=client_credentials&scope=a&scope=b&client_id=a&client_secret=b"
            )),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn names_are_compared_decoded_and_the_count_is_bounded() {
        assert_eq!(
            code(parse(
                None,
                "grant_type=client_credentials&scop%65=a&scope=b&client_id=a&client_secret=b"
            )),
            ErrorCode::InvalidRequest
        );
        let mut body = "grant_type=client_credentials&client_id=a&client_secret=b".to_owned();
        for i in 3..MAX_FORM_PARAMS {
            body.push_str(&format!("&resource=https%3A%2F%2Fr{i}.example"));
        }
        let Grant::ClientCredentials { audiences, .. } = parse(None, &body).unwrap().grant else {
            panic!("client credentials grant")
        };
        assert_eq!(audiences.len(), MAX_FORM_PARAMS - 3);
        body.push_str("&resource=https%3A%2F%2Fone-too-many.example");
        let err = parse(None, &body).expect_err("over the bound");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(err.description, "more than 100 parameters");
    }

    #[test]
    fn resource_may_repeat_and_must_be_absolute() {
        let request = parse(
            None,
            "grant_type=client_credentials&client_id=a&client_secret=b&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example",
        )
        .unwrap();
        let Grant::ClientCredentials { audiences, .. } = request.grant else {
            panic!("client credentials grant")
        };
        assert_eq!(audiences, ["https://a.example", "https://b.example"]);
        assert_eq!(
            code(parse(
                None,
                "grant_type=client_credentials&client_id=a&client_secret=b&resource=relative"
            )),
            ErrorCode::InvalidTarget
        );
    }

    #[test]
    fn token_exchange_needs_an_api_key_subject_and_may_skip_client_auth() {
        let body = format!(
            "grant_type={}&subject_token=tg_x&subject_token_type={}",
            crate::oauth::GRANT_TOKEN_EXCHANGE,
            crate::oauth::TOKEN_TYPE_API_KEY
        );
        let request = parse(None, &body).unwrap();
        assert!(request.credentials.is_none());
        let Grant::TokenExchange {
            subject_token,
            scope,
            audiences,
        } = request.grant
        else {
            panic!("token exchange grant")
        };
        assert_eq!(subject_token.0, "tg_x");
        assert!(scope.is_none() && audiences.is_empty());
        let jwt_subject = format!(
            "grant_type={}&subject_token=x&subject_token_type=urn:ietf:params:oauth:token-type:jwt",
            crate::oauth::GRANT_TOKEN_EXCHANGE
        );
        assert_eq!(code(parse(None, &jwt_subject)), ErrorCode::InvalidRequest);
        let no_subject = format!("grant_type={}", crate::oauth::GRANT_TOKEN_EXCHANGE);
        assert_eq!(code(parse(None, &no_subject)), ErrorCode::InvalidRequest);
    }

    #[test]
    fn grant_type_is_checked() {
        assert_eq!(code(parse(None, "scope=a")), ErrorCode::InvalidRequest);
        assert_eq!(
            code(parse(
                None,
                "grant_type=password&client_id=a&client_secret=b"
            )),
            ErrorCode::UnsupportedGrantType
        );
    }

    #[test]
    fn content_type_must_be_form() {
        let result = TokenRequest::parse(
            Some("application/json"),
            None,
            b"{\"grant_type\":\"client_credentials\"}",
        );
        assert_eq!(code(result), ErrorCode::InvalidRequest);
        let result = TokenRequest::parse(
            Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
            None,
            b"grant_type=client_credentials&client_id=a&client_secret=b",
        );
        let request = result.expect("media type and parameters are case-insensitive");
        let credentials = request.credentials.expect("post credentials");
        assert_eq!(credentials.client_id, "a");
        assert_eq!(credentials.method, ClientAuthMethod::ClientSecretPost);
        assert!(matches!(
            request.grant,
            Grant::ClientCredentials { scope: None, .. }
        ));
    }

    #[test]
    fn malformed_scope_is_invalid_scope() {
        assert_eq!(
            code(parse(
                None,
                "grant_type=client_credentials&client_id=a&client_secret=b&scope=a%22b"
            )),
            ErrorCode::InvalidScope
        );
    }

    /// RFC 6749 §5.2: every `error_description` the parsers can produce stays within
    /// %x20-21 / %x23-5B / %x5D-7E, before any sanitising, whatever the input echoes. Drives
    /// every failure path (checked by the list of messages below) with hostile input:
    /// quotes, backslashes, control characters, non-ASCII, invalid UTF-8.
    #[test]
    fn every_error_description_is_within_the_rfc_character_set() {
        use crate::oauth::error::is_rfc_text;
        let hostile_basic = |id: &str| format!("Basic {}", STANDARD.encode(id));
        let authorizations: Vec<Option<String>> = vec![
            None,
            Some("Bearer x\"y".into()),
            Some("Digest \"é\"".into()),
            Some("Basic !!!".into()),
            Some(hostile_basic("no-colon\"\\")),
            Some(format!(
                "Basic {}",
                STANDARD.encode([0xff, 0xfe, b':', b'x'])
            )),
            Some(basic("a%22%5C%C3%A9%01", "s")),
            Some(basic("a", "%FF")),
            Some(basic("a", "b")),
        ];
        let content_types = [
            None,
            Some("text/plain; charset=\"\u{e9}\""),
            FORM,
            Some("application/x-www-form-urlencoded; charset=utf-8"),
        ];
        let exchange = format!("grant_type={}", crate::oauth::GRANT_TOKEN_EXCHANGE);
        let api_key = crate::oauth::TOKEN_TYPE_API_KEY;
        let bodies: Vec<Vec<u8>> = [
            String::new(),
            "grant_type=pa%22ss%5Cw%C3%B6rd%01%0A".into(),
            "grant_type=client_credentials&grant_type=x".into(),
            "x%22%5C%C3%A9%07=1&x%22%5C%C3%A9%07=2".into(),
            "grant_type=client_credentials&scope=a%22b%5C".into(),
            "grant_type=client_credentials&scope=a%20%20b".into(),
            "grant_type=client_credentials&scope=%20a".into(),
            "grant_type=client_credentials&scope=r%C3%A9ad%01".into(),
            "grant_type=client_credentials&resource=%22%5C%C3%A9%23frag".into(),
            "grant_type=client_credentials&resource=https://a.example/%23f%22".into(),
            "grant_type=client_credentials&audience=a%20%22b".into(),
            "grant_type=client_credentials&client_secret=s".into(),
            "grant_type=client_credentials&client_id=%22%5C&client_secret=s".into(),
            "grant_type=client_credentials&client_id=x%22".into(),
            exchange.clone(),
            format!("{exchange}&subject_token=t"),
            format!("{exchange}&subject_token=t&subject_token_type=%22%5C%C3%A9%00"),
            format!("{exchange}&subject_token=t&subject_token_type={api_key}&actor_token=a"),
            format!(
                "{exchange}&subject_token=t&subject_token_type={api_key}&requested_token_type=%22"
            ),
            format!("{exchange}&subject_token=t&subject_token_type={api_key}&scope=%22"),
            format!("{exchange}&subject_token=t&subject_token_type={api_key}&resource=%5C"),
            "token=t".into(),
            "token=t&client_id=a&client_secret=b".into(),
            "token=t&token=u".into(),
            "client_id=a".into(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .chain([vec![0xff, b'=', 0xfe], b"token=%FF%FE".to_vec()])
        .collect();
        let mut seen: Vec<String> = Vec::new();
        for content_type in content_types {
            for authorization in &authorizations {
                let auth = authorization.as_deref();
                for body in &bodies {
                    let errors = [
                        TokenRequest::parse(content_type, auth, body).err(),
                        RevocationRequest::parse(content_type, auth, body).err(),
                        IntrospectionRequest::parse(content_type, auth, body).err(),
                    ];
                    for error in errors.into_iter().flatten() {
                        assert!(
                            is_rfc_text(&error.description),
                            "{:?} for body {:?}",
                            error.description,
                            String::from_utf8_lossy(body)
                        );
                        if !seen.contains(&error.description.to_string()) {
                            seen.push(error.description.to_string());
                        }
                    }
                }
            }
        }
        // Every failure path of the parsers was driven.
        for message in [
            "the request body must be application/x-www-form-urlencoded",
            "the request body is not valid UTF-8",
            "was sent more than once",
            "missing token",
            "missing grant_type",
            "grant_type 'pa'ss/w?rd?",
            "missing subject_token",
            "missing subject_token_type",
            "subject_token_type ''/??' is not supported",
            "delegation (actor_token) is not supported",
            "requested_token_type must be",
            "scope tokens must be separated by single spaces",
            "contains a character RFC 6749 section 3.3 does not allow",
            "must be an absolute URI without a fragment",
            "audience must not contain spaces or control characters",
            "client authentication is required",
            "use one client authentication method",
            "client_id in the body differs",
            "client_secret was sent without client_id",
            "unsupported client authentication scheme, use Basic",
            "malformed HTTP Basic credentials",
        ] {
            assert!(
                seen.iter().any(|d| d.contains(message)),
                "no input produced {message:?}; seen: {seen:#?}"
            );
        }
    }
}
