//! Migrations run up, down and up again on both backends, and both folders stay in step.

use tollgate::db::{Db, DbUrl, PoolOptions, revert_all_migrations, run_migrations};

use crate::both_backends;
use crate::helpers::{Backend, TestDb};

fn names(dir: &str) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    names.sort();
    names
}

#[test]
fn both_backends_have_the_same_migrations() {
    assert_eq!(names("sqlite"), names("postgres"));
    assert!(!names("sqlite").is_empty());
}

async fn migrations_round_trip_and_models_load(backend: Backend) {
    let test_db = TestDb::new(backend);
    let db = Db::connect(
        &DbUrl::parse(&test_db.url).unwrap(),
        &PoolOptions::default(),
    )
    .unwrap();
    let mut conn = db.get().unwrap();
    assert!(run_migrations(&mut conn).unwrap() > 0);
    revert_all_migrations(&mut conn).unwrap();
    assert!(run_migrations(&mut conn).unwrap() > 0);
    assert_eq!(run_migrations(&mut conn).unwrap(), 0);

    // Every model loads through the shared connection type (catches schema.rs drift).
    let now = chrono::Utc::now().timestamp();
    let spec = tollgate::service::clients::ClientSpec {
        name: "m".into(),
        scopes: tollgate::oauth::Scope::parse("a b").unwrap(),
        audiences: vec!["https://x.example".into()],
        token_ttl: Some(10),
        grant_types: vec![],
    };
    let (view, _) = tollgate::service::clients::create(
        &mut conn,
        &tollgate::service::audit::Actor::cli(),
        &spec,
        now,
    )
    .unwrap();
    assert_eq!(
        tollgate::db::clients::list(&mut conn).unwrap()[0].id,
        view.client_id
    );
    let master =
        tollgate::crypto::sealed::MasterKey::parse(crate::helpers::TEST_MASTER_KEY).unwrap();
    tollgate::service::signing_keys::rotate(
        &mut conn,
        &tollgate::service::audit::Actor::cli(),
        &master,
        tollgate::crypto::signer::SigningAlgorithm::ES256,
        60,
        now,
    )
    .unwrap();
    let ring = tollgate::service::signing_keys::load_ring(&mut conn, &master, now).unwrap();
    assert!(!ring.active().kid().is_empty());
    assert_eq!(
        tollgate::db::keys::list(&mut conn).unwrap().len(),
        2,
        "active and next"
    );
}

both_backends!(migrations_round_trip_and_models_load);
