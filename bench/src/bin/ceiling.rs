//! The ceiling: the least a token endpoint can do on this machine. A bare actix-web server
//! that answers `POST /oauth/token` by signing the claims Tollgate signs (RFC 9068: `iss`,
//! `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `client_id`, `scope`; ES256 with `kid` and
//! `typ: at+jwt`) with a key parsed once, in the same JSON answer with the same headers.
//! It checks nothing and stores nothing: the client id comes from the Basic header as is.
//!
//! `POST /oauth/introspect` is the same for RFC 7662: it verifies the ES256 signature of
//! one of its own tokens, checks `exp` and `nbf`, and answers with the claims.
//!
//! bench/compare.sh runs it under the same load as Tollgate and prints Tollgate's figures
//! as ratios to it.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::Parser;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(about = "Minimal ES256 token endpoint: the ceiling Tollgate is measured against")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18090")]
    bind: SocketAddr,
    /// `iss`, and the default `aud` (as Tollgate's default audience is its issuer).
    #[arg(long, default_value = "http://127.0.0.1:18090")]
    issuer: String,
    /// Worker threads; 0: one per core (as Tollgate's `server.workers = 0`).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Token lifetime in seconds (Tollgate's default).
    #[arg(long, default_value_t = 3600)]
    ttl: i64,
    /// The `scope` of every token.
    #[arg(long, default_value = "read write")]
    scope: String,
}

/// Tollgate's `AccessTokenClaims`, field for field.
#[derive(Serialize, Deserialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
}

/// Tollgate's `IssuedToken` (RFC 6749 §5.1).
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: &'a str,
}

/// Tollgate's introspection answer for a JWT (RFC 7662 §2.2).
#[derive(Serialize)]
struct IntrospectionResponse<'a> {
    active: bool,
    scope: &'a str,
    client_id: &'a str,
    sub: &'a str,
    aud: &'a str,
    iss: &'a str,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: &'a str,
    token_type: &'static str,
}

struct Ceiling {
    pair: EcdsaKeyPair,
    public_key: Vec<u8>,
    /// `base64url(JOSE header) + "."`, encoded once.
    header_prefix: String,
    rng: SystemRandom,
    issuer: String,
    ttl: i64,
    scope: String,
}

impl Ceiling {
    fn new(args: &Args) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate a P-256 key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
            .map_err(|e| anyhow::anyhow!("cannot parse the P-256 key: {e}"))?;
        let public_key = pair.public_key().as_ref().to_vec();
        // The RFC 7638 thumbprint as `kid`, as Tollgate derives it.
        let (x, y) = public_key
            .get(1..33)
            .zip(public_key.get(33..65))
            .context("unexpected EC point")?;
        let thumbprint = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(x),
            URL_SAFE_NO_PAD.encode(y)
        );
        let kid = URL_SAFE_NO_PAD
            .encode(ring::digest::digest(&ring::digest::SHA256, thumbprint.as_bytes()).as_ref());
        let header = serde_json::json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"});
        Ok(Self {
            pair,
            public_key,
            header_prefix: format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string())),
            rng,
            issuer: args.issuer.clone(),
            ttl: args.ttl,
            scope: args.scope.clone(),
        })
    }

    fn sign(&self, client_id: &str, now: i64) -> Result<String, &'static str> {
        let mut random = [0u8; 16];
        self.rng.fill(&mut random).map_err(|_| "random")?;
        // As Tollgate makes a `jti` (`crypto::secrets::token_id`).
        let jti = URL_SAFE_NO_PAD.encode(random);
        let claims = Claims {
            iss: &self.issuer,
            sub: client_id,
            aud: &self.issuer,
            exp: now + self.ttl,
            iat: now,
            nbf: now,
            jti: &jti,
            client_id,
            scope: &self.scope,
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| "claims")?;
        let mut token = String::with_capacity(self.header_prefix.len() + payload.len() * 2 + 96);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self
            .pair
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| "signing")?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The client id of an RFC 6749 §2.3.1 Basic header (ids are base58: no form-decoding).
fn basic_client_id(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, _secret) = text.split_once(':')?;
    Some(id.to_owned())
}

fn form_value(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// RFC 6749 §5.1/§5.2 answers carry `Cache-Control: no-store` and `Pragma: no-cache`.
fn no_store(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn bad_request(error: &'static str) -> HttpResponse {
    no_store(HttpResponse::BadRequest().json(serde_json::json!({ "error": error })))
}

async fn post_token(
    req: HttpRequest,
    body: web::Bytes,
    ceiling: web::Data<Ceiling>,
) -> HttpResponse {
    if form_value(&body, "grant_type").as_deref() != Some("client_credentials") {
        return bad_request("unsupported_grant_type");
    }
    let Some(client_id) = basic_client_id(&req) else {
        return bad_request("invalid_client");
    };
    match ceiling.sign(&client_id, now()) {
        Ok(access_token) => no_store(HttpResponse::Ok().json(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ceiling.ttl,
            scope: &ceiling.scope,
        })),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn post_introspect(
    req: HttpRequest,
    body: web::Bytes,
    ceiling: web::Data<Ceiling>,
) -> HttpResponse {
    if basic_client_id(&req).is_none() {
        return bad_request("invalid_client");
    }
    let Some(token) = form_value(&body, "token") else {
        return bad_request("invalid_request");
    };
    let inactive = || no_store(HttpResponse::Ok().json(serde_json::json!({ "active": false })));
    let Some((signing_input, signature)) = token.rsplit_once('.') else {
        return inactive();
    };
    let Some((header, payload)) = signing_input.split_once('.') else {
        return inactive();
    };
    let (Ok(signature), Ok(payload)) = (
        URL_SAFE_NO_PAD.decode(signature),
        URL_SAFE_NO_PAD.decode(payload),
    ) else {
        return inactive();
    };
    // Our own header, byte for byte (Tollgate parses it and looks up the `kid`).
    if ceiling.header_prefix.strip_suffix('.') != Some(header) {
        return inactive();
    }
    let key = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &ceiling.public_key);
    if key.verify(signing_input.as_bytes(), &signature).is_err() {
        return inactive();
    }
    let Ok(claims) = serde_json::from_slice::<Claims<'_>>(&payload) else {
        return inactive();
    };
    let now = now();
    if claims.exp <= now || claims.nbf > now || claims.iss != ceiling.issuer {
        return inactive();
    }
    no_store(HttpResponse::Ok().json(IntrospectionResponse {
        active: true,
        scope: claims.scope,
        client_id: claims.client_id,
        sub: claims.sub,
        aud: claims.aud,
        iss: claims.iss,
        exp: claims.exp,
        iat: claims.iat,
        nbf: claims.nbf,
        jti: claims.jti,
        token_type: "Bearer",
    }))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ceiling = web::Data::new(Ceiling::new(&args)?);
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.workers
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(ceiling.clone())
            .route("/oauth/token", web::post().to(post_token))
            .route("/oauth/introspect", web::post().to(post_introspect))
            .route("/health/ready", web::get().to(HttpResponse::Ok))
    })
    .workers(workers)
    .bind(args.bind)
    .with_context(|| format!("cannot listen on {}", args.bind))?
    .run();
    println!("ceiling listening on {}", args.bind);
    actix_web::rt::System::new()
        .block_on(server)
        .context("server failed")
}
