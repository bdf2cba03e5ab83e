//! Micro-benchmarks of the token endpoint's hot path: signing, client authentication and
//! `service::grants::issue` end to end against SQLite.
//!
//! Run: `cargo bench --bench hot_path` (add `-- --quick` for a fast, rougher pass).
//! `bench/compare.sh` measures the same path over HTTP, beside a ceiling server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use diesel::prelude::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use tollgate::cache::{HotCache, feed};
use tollgate::crypto::secrets::{ClientSecret, random_id};
use tollgate::crypto::signer::{KeyRing, SigningAlgorithm, SigningKey};
use tollgate::db::schema::clients;
use tollgate::db::{Db, DbUrl, PoolOptions, run_migrations};
use tollgate::oauth::TokenPolicy;
use tollgate::oauth::{ClientAuthMethod, ClientCredentials, Scope, TokenRequest};
use tollgate::service::access_tokens::{AccessTokenClaims, Audience};
use tollgate::service::api_keys::UsageTracker;
use tollgate::service::audit::Actor;
use tollgate::service::client_auth::authenticate as authenticate_client;
use tollgate::service::clients::{ClientSpec, create};
use tollgate::service::grants::{Issuer, issue};

const NOW: i64 = 1_750_000_000;
const ISSUER: &str = "https://auth.example.com";

/// Claims of the size the token endpoint signs: a 22-character client id and jti, an
/// https issuer and audience, two scopes.
fn claims() -> AccessTokenClaims {
    let client_id = random_id();
    AccessTokenClaims {
        iss: ISSUER.into(),
        sub: client_id.clone().into(),
        aud: Audience::One("https://api.example.com".into()),
        exp: NOW + 3600,
        iat: NOW,
        nbf: NOW,
        jti: random_id().into(),
        client_id: client_id.into(),
        scope: "read write".into(),
        api_key_id: None,
    }
}

fn signing(c: &mut Criterion) {
    tollgate_verify::jwt_provider::install();
    let claims = claims();
    let (es256, es256_der) = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
    let (eddsa, eddsa_der) = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();

    let mut group = c.benchmark_group("sign");
    group.bench_function("es256/SigningKey::sign_jwt", |b| {
        b.iter(|| es256.sign_jwt(black_box(&claims)).unwrap());
    });
    group.bench_function("eddsa/SigningKey::sign_jwt", |b| {
        b.iter(|| eddsa.sign_jwt(black_box(&claims)).unwrap());
    });

    // For contrast: `jsonwebtoken::encode` parses the PKCS#8 key (and, for ECDSA, checks
    // the key pair) on every call, which is why the token endpoint signs with a pre-parsed key.
    let header = |alg| {
        let mut header = Header::new(alg);
        header.typ = Some("at+jwt".into());
        header.kid = Some("bench".into());
        header
    };
    let (es256_header, es256_key) = (
        header(Algorithm::ES256),
        EncodingKey::from_ec_der(&es256_der),
    );
    group.bench_function("es256/jsonwebtoken::encode", |b| {
        b.iter(|| jsonwebtoken::encode(&es256_header, black_box(&claims), &es256_key).unwrap());
    });
    let (eddsa_header, eddsa_key) = (
        header(Algorithm::EdDSA),
        EncodingKey::from_ed_der(&eddsa_der),
    );
    group.bench_function("eddsa/jsonwebtoken::encode", |b| {
        b.iter(|| jsonwebtoken::encode(&eddsa_header, black_box(&claims), &eddsa_key).unwrap());
    });
    group.finish();
}

fn secrets(c: &mut Criterion) {
    let secret = ClientSecret::generate();
    let stored = secret.digest().as_bytes().to_vec();
    let presented = ClientSecret::from_presented(secret.expose().to_owned());

    let mut group = c.benchmark_group("secret");
    group.bench_function("ClientSecret::generate", |b| b.iter(ClientSecret::generate));
    group.bench_function("digest+matches", |b| {
        b.iter(|| black_box(&presented).digest().matches(black_box(&stored)));
    });
    group.finish();
}

/// A migrated SQLite database in a temporary directory with one client.
struct Fixture {
    _dir: tempfile::TempDir,
    db: Db,
    client_id: String,
    secret: ClientSecret,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = DbUrl::parse(&format!("sqlite://{}/bench.db", dir.path().display())).unwrap();
    let db = Db::connect(&url, &PoolOptions::default()).unwrap();
    let mut conn = db.get().unwrap();
    run_migrations(&mut conn).unwrap();
    let spec = ClientSpec {
        name: "bench".into(),
        scopes: Scope::parse("read write").unwrap(),
        audiences: vec!["https://api.example.com".into()],
        token_ttl: None,
        grant_types: vec!["client_credentials".into()],
    };
    let (view, secret) = create(&mut conn, &Actor::cli(), &spec, NOW).unwrap();
    drop(conn);
    Fixture {
        _dir: dir,
        db,
        client_id: view.client_id,
        secret,
    }
}

/// What client authentication reads (the real query selects every column).
const CLIENT_AUTH_COLUMNS: (clients::id, clients::secret_digest, clients::scopes) =
    (clients::id, clients::secret_digest, clients::scopes);

fn client_authentication(c: &mut Criterion) {
    let fx = fixture();
    let credentials = ClientCredentials {
        client_id: fx.client_id.clone(),
        secret: ClientSecret::from_presented(fx.secret.expose().to_owned()),
        method: ClientAuthMethod::ClientSecretBasic,
    };
    let unknown = ClientCredentials {
        client_id: random_id(),
        ..credentials.clone()
    };

    let mut group = c.benchmark_group("authenticate_client/sqlite");
    // Without a change feed the view is never trusted: every lookup reads the database.
    let cold = HotCache::new();
    let mut conn = fx.db.get().unwrap();
    group.bench_function("held connection", |b| {
        b.iter(|| {
            authenticate_client(&mut cold.backed(&mut conn), black_box(&credentials), NOW).unwrap()
        });
    });
    group.bench_function("unknown client id", |b| {
        b.iter(|| {
            authenticate_client(&mut cold.backed(&mut conn), black_box(&unknown), NOW).unwrap_err()
        });
    });
    // With the feed running, after the first lookup: memory only.
    let warm = Arc::new(HotCache::new());
    let _feed = feed::start(warm.clone(), &fx.db).unwrap();
    while !warm.is_fresh() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    authenticate_client(&mut warm.backed(&mut conn), &credentials, NOW).unwrap();
    group.bench_function("in-memory view", |b| {
        b.iter(|| authenticate_client(&mut warm.memory(), black_box(&credentials), NOW).unwrap());
    });
    // The same primary-key read written two ways. `.first()` appends `LIMIT ?`; the bundled
    // SQLite (3.50, `computeLimitRegisters`) plans with the bound LIMIT value, so rebinding
    // it expires the cached statement and every call re-parses the SQL (`sqlite3Reprepare`).
    // `.get_result()` has no LIMIT and reuses the prepared statement.
    group.bench_function("find: .first() (LIMIT ?)", |b| {
        b.iter(|| {
            clients::table
                .find(black_box(&fx.client_id))
                .select(CLIENT_AUTH_COLUMNS)
                .first::<(String, Vec<u8>, String)>(&mut **conn)
                .optional()
                .unwrap()
                .unwrap()
        });
    });
    group.bench_function("find: .get_result() (no LIMIT)", |b| {
        b.iter(|| {
            clients::table
                .find(black_box(&fx.client_id))
                .select(CLIENT_AUTH_COLUMNS)
                .get_result::<(String, Vec<u8>, String)>(&mut **conn)
                .optional()
                .unwrap()
                .unwrap()
        });
    });
    drop(conn);
    // What a request does: check a connection out of the pool, then query.
    group.bench_function("pool checkout per call", |b| {
        b.iter(|| {
            let mut conn = fx.db.get().unwrap();
            authenticate_client(&mut cold.backed(&mut conn), black_box(&credentials), NOW).unwrap()
        });
    });
    group.finish();
}

fn token_issue(c: &mut Criterion) {
    let fx = fixture();
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", fx.client_id, fx.secret.expose()))
    );
    let body: &[u8] = b"grant_type=client_credentials&scope=read";
    let content_type = Some("application/x-www-form-urlencoded");
    let policy = TokenPolicy {
        issuer: ISSUER.into(),
        default_audience: ISSUER.into(),
        default_ttl: 3600,
        max_ttl: 86_400,
        admin_audience: ISSUER.into(),
        exchange_ttl: 3600,
    };
    let usage = UsageTracker::default();
    let cold = HotCache::new();

    let mut group = c.benchmark_group("token");
    group.bench_function("TokenRequest::parse", |b| {
        b.iter(|| {
            TokenRequest::parse(content_type, Some(black_box(&basic)), black_box(body)).unwrap()
        });
    });
    let mut conn = fx.db.get().unwrap();
    for algorithm in [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
        let (key, _der) = SigningKey::generate(algorithm).unwrap();
        let jwk = key.public_jwk().clone();
        let keys = KeyRing::new(Arc::new(key), &[jwk], vec![]);
        // The handler's work minus HTTP: parse, then (in `Db::run`) authenticate, authorize, sign.
        group.bench_function(format!("parse+issue/sqlite/{algorithm}"), |b| {
            b.iter(|| {
                let request = TokenRequest::parse(content_type, Some(&basic), body).unwrap();
                let issuer = Issuer {
                    keys: &keys,
                    policy: &policy,
                    usage: &usage,
                    now: NOW,
                };
                issue(&mut cold.backed(&mut conn), &issuer, &request).unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    signing,
    secrets,
    client_authentication,
    token_issue
);
criterion_main!(benches);
