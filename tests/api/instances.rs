//! Several instances on one database, and scheduled rotation by exactly one of them.

use std::sync::{Arc, Barrier};

use serde_json::Value;
use tollgate::db::{Db, DbUrl, PoolOptions};

use crate::both_backends;
use crate::helpers::{Backend, TEST_MASTER_KEY, TestDb, eventually, spawn_app_on};

async fn two_instances_agree_on_revocations_keys_and_clients(backend: Backend) {
    let db = TestDb::new(backend);
    // Instances of one deployment share the issuer (behind one public URL).
    let config = "[server]\nissuer = \"https://auth.example.test\"\n";
    let a = spawn_app_on(db.clone(), config).await;
    let b = spawn_app_on(db.clone(), config).await;
    let client = a.create_client("svc", "read", &[]);
    let resource_server = a.create_client("api", "introspect", &[]);

    // A token from A, revoked on B, is inactive when introspected on A.
    let token = a.access_token(&client, &[]).await;
    let revoked = b
        .http
        .post(b.url("/oauth/revoke"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    // Within the change feed's bound (one second; `cache_propagation` measures it).
    let inactive = eventually(1, || async {
        a.introspect_as(&resource_server, token.as_str()).await
            == serde_json::json!({"active": false})
    })
    .await;
    assert!(inactive, "a token revoked on B is inactive on A");

    // A key rotated on A appears in B's JWKS and signs B's tokens.
    let admin = a.admin_token().await;
    let rotated = a
        .http
        .post(a.url("/admin/keys/rotate"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 201);
    let rotated: Value = rotated.json().await.unwrap();
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    let seen = eventually(5, || async {
        let token = b.access_token(&client, &[]).await;
        jsonwebtoken::decode_header(&token).unwrap().kid.as_deref() == Some(new_kid.as_str())
    })
    .await;
    assert!(seen, "B signs with the key rotated on A");
    let (status_b, jwks_b) = b.get_json("/.well-known/jwks.json").await;
    let (status_a, jwks_a) = a.get_json("/.well-known/jwks.json").await;
    assert_eq!((status_a, status_b), (200, 200));
    assert!(
        jwks_a["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == new_kid.as_str()),
        "{jwks_a}"
    );
    assert_eq!(jwks_a, jwks_b, "both publish the same keys");

    // A client disabled on B cannot get tokens from A.
    let disabled = b
        .http
        .post(b.url(&format!("/admin/clients/{}/disable", client.id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    let refused = eventually(1, || async {
        a.token_request(Some(&client), &[("grant_type", "client_credentials")])
            .await
            .status()
            == 401
    })
    .await;
    assert!(refused, "a client disabled on B is refused by A");
}

async fn scheduled_rotation_happens_once_across_instances(backend: Backend) {
    let db = TestDb::new(backend);
    let url = DbUrl::parse(&db.url).unwrap();
    let pool = Db::connect(&url, &PoolOptions::default()).unwrap();
    let master = tollgate::crypto::sealed::MasterKey::parse(TEST_MASTER_KEY).unwrap();
    let algorithm = tollgate::crypto::signer::SigningAlgorithm::ES256;
    {
        let mut conn = pool.get().unwrap();
        tollgate::db::run_migrations(&mut conn).unwrap();
        let long_ago = chrono::Utc::now().timestamp() - 10 * 86_400;
        tollgate::service::signing_keys::ensure_signing_key(
            &mut conn, &master, algorithm, 60, long_ago,
        )
        .unwrap();
    }
    let now = chrono::Utc::now().timestamp();
    let period = 86_400;
    let barrier = Arc::new(Barrier::new(4));
    let master = Arc::new(master);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (pool, barrier, master) = (pool.clone(), barrier.clone(), master.clone());
            std::thread::spawn(move || {
                let mut conn = pool.get().unwrap();
                barrier.wait();
                tollgate::service::signing_keys::rotate_if_due(
                    &mut conn, &master, algorithm, period, 60, now,
                )
                .unwrap()
                .is_some()
            })
        })
        .collect();
    let rotations = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|r| *r)
        .count();
    assert_eq!(rotations, 1, "exactly one instance rotates");

    let mut conn = pool.get().unwrap();
    let keys = tollgate::service::signing_keys::list(&mut conn, now).unwrap();
    let count = |state: &str| keys.iter().filter(|k| k.state == state).count();
    assert_eq!(
        (count("active"), count("next"), count("retired")),
        (1, 1, 1),
        "{keys:#?}"
    );
    // Not due again.
    assert!(
        tollgate::service::signing_keys::rotate_if_due(
            &mut conn, &master, algorithm, period, 60, now
        )
        .unwrap()
        .is_none()
    );
}

async fn a_running_server_rotates_on_schedule(backend: Backend) {
    // An hour-long period with a key made "two hours ago" is due at once.
    let db = TestDb::new(backend);
    let overdue_kid = {
        let pool = Db::connect(&DbUrl::parse(&db.url).unwrap(), &PoolOptions::default()).unwrap();
        let mut conn = pool.get().unwrap();
        tollgate::db::run_migrations(&mut conn).unwrap();
        // The SQLite server reads its key file beside the database; PostgreSQL gets the
        // same key through the environment (see helpers).
        std::fs::write(db.dir.path().join("master.key"), TEST_MASTER_KEY).unwrap();
        let master = tollgate::crypto::sealed::MasterKey::parse(TEST_MASTER_KEY).unwrap();
        let two_hours_ago = chrono::Utc::now().timestamp() - 7200;
        tollgate::service::signing_keys::ensure_signing_key(
            &mut conn,
            &master,
            tollgate::crypto::signer::SigningAlgorithm::ES256,
            60,
            two_hours_ago,
        )
        .unwrap()
        .unwrap()
        .kid
    };
    let config = "[tokens]\nmax_ttl_seconds = 3600\n[signing]\nrotation_period_seconds = 3600\n";
    let app = spawn_app_on(db, config).await;
    let cache = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(cache, "public, max-age=1800", "half the rotation period");
    let client = app.create_client("svc", "read", &[]);
    let rotated = eventually(20, || async {
        jsonwebtoken::decode_header(app.access_token(&client, &[]).await)
            .unwrap()
            .kid
            .is_some_and(|kid| kid != overdue_kid)
    })
    .await;
    assert!(rotated, "the overdue key was rotated by the server");
}

both_backends!(
    two_instances_agree_on_revocations_keys_and_clients,
    scheduled_rotation_happens_once_across_instances,
    a_running_server_rotates_on_schedule,
);
