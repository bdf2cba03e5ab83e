//! Migrations run up, down and up again on both backends, and both folders stay in step.
//! Then a row of every table is written and read back through the `db` layer, as domain
//! values, which catches `schema.rs` drift and any column that does not round-trip.

use serde_json::json;
use tollgate::crypto::sealed::MasterKey;
use tollgate::crypto::signer::{SigningAlgorithm, SigningKey};
use tollgate::db::audit::AuditFilter;
use tollgate::db::clients::ClientChanges;
use tollgate::db::keys::KeySummary;
use tollgate::db::{self, Db, DbConn, DbUrl, PoolOptions, revert_all_migrations, run_migrations};
use tollgate::domain::{
    Account, ApiKey, AuditEvent, Challenge, ChallengeStatus, Client, GrantType, KeyState,
    NewAuditEvent, SigningKeyRecord,
};
use tollgate::oauth::Scope;
use tollgate::service::audit::Actor;

use crate::both_backends;
use crate::helpers::{Backend, TEST_MASTER_KEY, TestDb};

type AuditFields = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    serde_json::Value,
);

fn audit_fields(e: &AuditEvent) -> AuditFields {
    (
        e.occurred_at,
        e.action.clone(),
        e.actor.clone(),
        e.account_id.clone(),
        e.client_id.clone(),
        e.subject_id.clone(),
        e.details.clone(),
    )
}

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

/// A fixed moment, so that every stored time is a known value.
const NOW: i64 = 1_700_000_000;
/// 2100-01-01: past `i32::MAX`, so a 32-bit column anywhere would show.
const FAR: i64 = 4_102_444_800;

fn scope(text: &str) -> Scope {
    Scope::parse(text).unwrap()
}

/// Every field (`Client` has a redacting `Debug` and no `PartialEq`).
/// Everything but `seq`, which the database assigns.
fn clients_round_trip(conn: &mut DbConn) -> Client {
    let mut client = Client {
        id: "client-1".into(),
        name: "Model client ü".into(),
        secret_digest: vec![0x01; 32],
        previous_secret: None,
        scopes: scope("read write:all urn:example:scope/x!#$"),
        audiences: vec!["https://a.example".into(), "https://b.example/api".into()],
        grant_types: vec![GrantType::TokenExchange, GrantType::ClientCredentials],
        token_ttl: Some(600),
        disabled_at: None,
        created_at: NOW,
        updated_at: NOW,
        tokens_not_before: None,
    };
    db::clients::insert(conn, &client).unwrap();
    let found = db::clients::find(conn, &client.id).unwrap().unwrap();
    assert_eq!(found, client);

    // The columns an insert leaves empty: the rotated-out secret, disabling, bulk revocation.
    let changes = ClientChanges {
        secret: Some((vec![0x02; 32], Some((vec![0x01; 32], FAR)))),
        disabled_at: Some(Some(NOW + 5)),
        token_ttl: Some(None),
        updated_at: Some(NOW + 5),
        ..ClientChanges::default()
    };
    assert!(db::clients::update(conn, &client.id, &changes).unwrap());
    assert!(db::clients::bump_tokens_not_before(conn, &client.id, NOW + 5).unwrap());
    client.secret_digest = vec![0x02; 32];
    client.previous_secret = Some((vec![0x01; 32], FAR));
    client.disabled_at = Some(NOW + 5);
    client.token_ttl = None;
    client.updated_at = NOW + 5;
    client.tokens_not_before = Some(NOW + 6);
    let found = db::clients::find(conn, &client.id).unwrap().unwrap();
    assert_eq!(found, client);
    let listed = db::clients::list(conn).unwrap();
    assert_eq!(listed, [client.clone()]);
    assert_eq!(db::clients::count(conn).unwrap(), 1);
    assert!(db::clients::find(conn, "client-2").unwrap().is_none());
    client
}

fn accounts_round_trip(conn: &mut DbConn) -> Account {
    let mut account = Account {
        id: "account-1".into(),
        handle: "alice".into(),
        display_name: "Alice Example".into(),
        scopes: scope("read keys"),
        created_at: NOW,
        disabled_at: None,
        is_operator: true,
    };
    db::accounts::insert(conn, &account).unwrap();
    let by_handle = db::accounts::by_handle(conn, "alice").unwrap().unwrap();
    assert_eq!(by_handle, account);
    assert!(db::accounts::set_disabled(conn, &account.id, Some(NOW + 7)).unwrap());
    account.disabled_at = Some(NOW + 7);
    assert!(db::accounts::set_operator(conn, &account.id, false).unwrap());
    account.is_operator = false;
    let by_id = db::accounts::by_id(conn, &account.id).unwrap().unwrap();
    assert_eq!(by_id, account);
    assert_eq!(db::accounts::list(conn).unwrap(), [account.clone()]);
    account
}

fn api_keys_round_trip(conn: &mut DbConn, account: &Account) -> ApiKey {
    let digest = [0x09; 32];
    let mut key = ApiKey {
        id: "key-1".into(),
        account_id: account.id.clone(),
        name: "CI deploy".into(),
        prefix: "tg_abc123".into(),
        scopes: scope("read"),
        created_at: NOW,
        last_used_at: None,
        expires_at: Some(FAR),
        revoked_at: None,
    };
    db::api_keys::insert(conn, &key, &digest).unwrap();
    let listed = db::api_keys::of_account(conn, &account.id).unwrap();
    assert_eq!(listed, [key.clone()]);
    let (found, owner) = db::api_keys::by_digest(conn, &digest).unwrap().unwrap();
    assert_eq!(found, key);
    assert_eq!(owner, *account);
    assert!(
        db::api_keys::by_digest(conn, &[0x08; 32])
            .unwrap()
            .is_none()
    );

    assert!(db::api_keys::touch(conn, &key.id, NOW + 8).unwrap());
    assert!(db::api_keys::revoke(conn, &key.id, NOW + 9).unwrap());
    assert!(
        !db::api_keys::revoke(conn, &key.id, NOW + 10).unwrap(),
        "once"
    );
    key.last_used_at = Some(NOW + 8);
    key.revoked_at = Some(NOW + 9);
    let (found, _) = db::api_keys::by_digest(conn, &digest).unwrap().unwrap();
    assert_eq!(found, key);
    let (found, _) = db::api_keys::by_id(conn, &key.id).unwrap().unwrap();
    assert_eq!(found, key);
    key
}

fn challenges_round_trip(conn: &mut DbConn, account: &Account, key: &ApiKey) {
    let mut challenge = Challenge {
        id: "challenge-1".into(),
        account_id: Some(account.id.clone()),
        app_name: "Photo Sync".into(),
        scopes: scope("read keys"),
        failed_attempts: 0,
        status: ChallengeStatus::Pending,
        created_at: NOW,
        expires_at: FAR,
        resolved_at: None,
        api_key_id: None,
        owner_approved_at: None,
    };
    // A challenge made before 2026-12-02 may name no account.
    let orphan = Challenge {
        id: "challenge-2".into(),
        account_id: None,
        ..challenge.clone()
    };
    db::challenges::insert(conn, &challenge).unwrap();
    db::challenges::insert(conn, &orphan).unwrap();
    let found = db::challenges::find(conn, &challenge.id).unwrap().unwrap();
    assert_eq!(found, challenge);
    let found = db::challenges::find(conn, &orphan.id).unwrap().unwrap();
    assert_eq!(found, orphan);
    let pending = db::challenges::pending(conn, &account.id, NOW).unwrap();
    assert_eq!(pending, [challenge.clone()]);

    assert_eq!(
        db::challenges::record_failed_attempt(conn, &challenge.id, 3, NOW + 1).unwrap(),
        Some(1)
    );
    assert!(db::challenges::approve(conn, &challenge.id, NOW + 2).unwrap());
    challenge.owner_approved_at = Some(NOW + 2);

    // The daily guessing budget: taken up to the limit, given back, pruned by day.
    let day = NOW / 86_400;
    for _ in 0..2 {
        assert!(db::pairing_guesses::take(conn, &account.id, day, 2).unwrap());
    }
    assert!(!db::pairing_guesses::take(conn, &account.id, day, 2).unwrap());
    db::pairing_guesses::give_back(conn, &account.id, day).unwrap();
    assert_eq!(
        db::pairing_guesses::taken(conn, &account.id, day).unwrap(),
        1
    );
    assert!(db::pairing_guesses::take(conn, &account.id, day - 1, 2).unwrap());
    assert_eq!(db::pairing_guesses::prune(conn, day).unwrap(), 1);
    assert_eq!(
        db::pairing_guesses::taken(conn, &account.id, day).unwrap(),
        1
    );
    assert!(
        db::challenges::resolve(
            conn,
            &challenge.id,
            ChallengeStatus::Approved,
            Some(&key.id),
            NOW + 10
        )
        .unwrap()
    );
    challenge.failed_attempts = 1;
    challenge.status = ChallengeStatus::Approved;
    challenge.resolved_at = Some(NOW + 10);
    challenge.api_key_id = Some(key.id.clone());
    let found = db::challenges::find(conn, &challenge.id).unwrap().unwrap();
    assert_eq!(found, challenge);
}

fn signing_keys_round_trip(conn: &mut DbConn, master: &MasterKey) {
    let (key, der) = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
    let mut record = SigningKeyRecord {
        kid: key.kid().to_owned(),
        algorithm: SigningAlgorithm::EdDSA,
        state: KeyState::Active,
        sealed_private_key: master.seal(&der, key.kid().as_bytes()),
        public_jwk: key.public_jwk().clone(),
        created_at: NOW,
        activated_at: Some(NOW),
        retired_at: None,
        publish_until: None,
    };
    db::keys::insert(conn, &record).unwrap();
    let listed = db::keys::list(conn).unwrap();
    assert_eq!(listed, [record.clone()]);
    // The sealed bytes come back intact: they still open to the same private key.
    assert_eq!(
        master
            .open(&listed[0].sealed_private_key, key.kid().as_bytes())
            .unwrap(),
        der
    );
    assert_eq!(
        db::keys::fingerprint(conn).unwrap(),
        [KeySummary {
            kid: record.kid.clone(),
            state: KeyState::Active,
            publish_until: None,
        }]
    );

    assert_eq!(db::keys::retire_active(conn, NOW + 11, FAR).unwrap(), 1);
    record.state = KeyState::Retired;
    record.retired_at = Some(NOW + 11);
    record.publish_until = Some(FAR);
    let found = db::keys::find(conn, &record.kid).unwrap().unwrap();
    assert_eq!(found, record);
    assert_eq!(
        db::keys::fingerprint(conn).unwrap(),
        [KeySummary {
            kid: record.kid.clone(),
            state: KeyState::Retired,
            publish_until: Some(FAR),
        }]
    );
    assert_eq!(
        db::keys::published(conn, NOW + 12).unwrap(),
        [record.clone()],
        "a retired key is published until publish_until"
    );
}

fn revocations_round_trip(conn: &mut DbConn, client: &Client) {
    db::revocations::insert(conn, "jti-1", &client.id, FAR, NOW + 12).unwrap();
    db::revocations::insert(conn, "jti-1", &client.id, FAR, NOW + 13).unwrap(); // twice: fine
    assert_eq!(db::revocations::count(conn).unwrap(), 1);
    let (found, revoked) = db::revocations::client_and_revocation(conn, &client.id, "jti-1")
        .unwrap()
        .unwrap();
    assert!(revoked);
    assert_eq!(found, *client);
    let (_, revoked) = db::revocations::client_and_revocation(conn, &client.id, "jti-2")
        .unwrap()
        .unwrap();
    assert!(!revoked);
    assert!(
        db::revocations::client_and_revocation(conn, "client-2", "jti-1")
            .unwrap()
            .is_none()
    );
    // `expires_at` is stored as FAR: not pruned now, pruned after.
    assert_eq!(db::revocations::prune_expired(conn, NOW).unwrap(), 0);
    assert_eq!(db::revocations::prune_expired(conn, FAR + 1).unwrap(), 1);
    assert_eq!(db::revocations::count(conn).unwrap(), 0);
}

fn audit_round_trip(conn: &mut DbConn) {
    let details = json!({"scopes": "read keys", "n": 3, "nested": {"ok": true}, "none": null});
    db::audit::insert(
        conn,
        "admin:client-1",
        &NewAuditEvent {
            action: "client.updated",
            account_id: Some("account-1"),
            client_id: Some("client-1"),
            subject_id: Some("key-1"),
            details: Some(details.clone()),
        },
        NOW + 14,
    )
    .unwrap();
    db::audit::insert(
        conn,
        Actor::system().as_str(),
        &NewAuditEvent {
            action: "signing_key.rotated",
            ..NewAuditEvent::default()
        },
        FAR,
    )
    .unwrap();
    let first = (
        NOW + 14,
        "client.updated".to_owned(),
        "admin:client-1".to_owned(),
        Some("account-1".to_owned()),
        Some("client-1".to_owned()),
        Some("key-1".to_owned()),
        details,
    );
    let second = (
        FAR,
        "signing_key.rotated".to_owned(),
        "system".to_owned(),
        None,
        None,
        None,
        serde_json::Value::Null,
    );
    let all = db::audit::list(conn, &AuditFilter::default(), 10).unwrap();
    assert_eq!(
        all.iter().map(audit_fields).collect::<Vec<_>>(),
        [second, first.clone()],
        "newest first"
    );
    assert!(all[0].seq > all[1].seq);
    for filter in [
        AuditFilter {
            account_id: Some("account-1".into()),
            ..AuditFilter::default()
        },
        AuditFilter {
            client_id: Some("client-1".into()),
            ..AuditFilter::default()
        },
    ] {
        let found = db::audit::list(conn, &filter, 10).unwrap();
        assert_eq!(
            found.iter().map(audit_fields).collect::<Vec<_>>(),
            std::slice::from_ref(&first),
            "{filter:?}"
        );
    }
    assert_eq!(
        db::audit::list(conn, &AuditFilter::default(), 1)
            .unwrap()
            .len(),
        1,
        "limit"
    );
}

fn console_round_trip(conn: &mut DbConn, account: &Account) {
    use tollgate::domain::{ConsoleSession, Invite};
    assert!(
        db::credentials::of_account(conn, &account.id)
            .unwrap()
            .is_none()
    );
    db::credentials::set_password(conn, &account.id, "$argon2id$stored", NOW).unwrap();
    db::credentials::record_failure(conn, &account.id, Some(NOW + 30)).unwrap();
    assert!(db::credentials::set_totp(conn, &account.id, Some(b"sealed"), Some(NOW)).unwrap());
    assert!(db::credentials::spend_totp_step(conn, &account.id, 10).unwrap());
    assert!(!db::credentials::spend_totp_step(conn, &account.id, 10).unwrap());
    let stored = db::credentials::of_account(conn, &account.id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.password_hash, "$argon2id$stored");
    assert_eq!(stored.failed_sign_ins, 1);
    assert_eq!(stored.sign_in_blocked_until, Some(NOW + 30));
    assert_eq!(stored.sealed_totp_secret.as_deref(), Some(&b"sealed"[..]));
    assert_eq!(
        (stored.totp_enabled_at, stored.totp_last_step),
        (Some(NOW), Some(10))
    );
    db::credentials::replace_recovery_codes(conn, &account.id, &[vec![1; 32], vec![2; 32]], NOW)
        .unwrap();
    assert!(db::credentials::spend_recovery_code(conn, &account.id, &[1; 32], NOW).unwrap());
    assert!(!db::credentials::spend_recovery_code(conn, &account.id, &[1; 32], NOW).unwrap());
    assert_eq!(
        db::credentials::unused_recovery_codes(conn, &account.id).unwrap(),
        1
    );

    let session = ConsoleSession {
        id: "session-1".into(),
        account_id: account.id.clone(),
        csrf_token: "csrf".into(),
        second_factor_pending: true,
        created_at: NOW,
        last_seen_at: NOW,
        expires_at: NOW + 100,
        user_agent: "agent".into(),
        address: "192.0.2.1".into(),
    };
    db::console_sessions::insert(conn, &session, &[9; 32]).unwrap();
    assert_eq!(
        db::console_sessions::by_token_digest(conn, &[9; 32]).unwrap(),
        Some(session.clone())
    );
    assert!(db::console_sessions::complete_second_factor(conn, &session.id, NOW + 1).unwrap());
    assert_eq!(
        db::console_sessions::of_account(conn, &account.id)
            .unwrap()
            .len(),
        1
    );

    let invite = Invite {
        id: "invite-1".into(),
        account_id: account.id.clone(),
        created_by: "cli".into(),
        created_at: NOW,
        expires_at: NOW + 60,
        used_at: None,
    };
    db::invites::insert(conn, &invite, &[7; 32]).unwrap();
    assert_eq!(
        db::invites::by_token_digest(conn, &[7; 32]).unwrap(),
        Some(invite.clone())
    );
    assert!(db::invites::mark_used(conn, &invite.id, NOW).unwrap());
    assert!(!db::invites::mark_used(conn, &invite.id, NOW).unwrap());
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

    // A row of every table, written and read back through the shared connection type.
    let master = MasterKey::parse(TEST_MASTER_KEY).unwrap();
    let client = clients_round_trip(&mut conn);
    let account = accounts_round_trip(&mut conn);
    let key = api_keys_round_trip(&mut conn, &account);
    challenges_round_trip(&mut conn, &account, &key);
    signing_keys_round_trip(&mut conn, &master);
    revocations_round_trip(&mut conn, &client);
    audit_round_trip(&mut conn);
    console_round_trip(&mut conn, &account);

    // And the use cases on top: a client and a rotation, with their audit rows.
    let now = chrono::Utc::now().timestamp();
    let spec = tollgate::service::clients::ClientSpec {
        name: "m".into(),
        scopes: scope("a b"),
        audiences: vec!["https://x.example".into()],
        token_ttl: Some(10),
        grant_types: vec![],
    };
    let (view, _) =
        tollgate::service::clients::create(&mut conn, &Actor::cli(), &spec, now).unwrap();
    let created = db::clients::find(&mut conn, &view.client_id)
        .unwrap()
        .unwrap();
    assert_eq!(created.scopes, scope("a b"));
    assert_eq!(created.grant_types, [GrantType::ClientCredentials]);
    tollgate::service::signing_keys::rotate(
        &mut conn,
        &Actor::cli(),
        &master,
        SigningAlgorithm::ES256,
        60,
        now,
        tollgate::service::signing_keys::Activation::PrePublished,
    )
    .unwrap();
    let ring = tollgate::service::signing_keys::load_ring(&mut conn, &master, now).unwrap();
    assert!(!ring.active().kid().is_empty());
    let states: Vec<KeyState> = db::keys::list(&mut conn)
        .unwrap()
        .iter()
        .map(|k| k.state)
        .collect();
    assert_eq!(states.iter().filter(|s| **s == KeyState::Active).count(), 1);
    assert_eq!(states.iter().filter(|s| **s == KeyState::Next).count(), 1);
    assert_eq!(
        states.len(),
        3,
        "the retired key from above, active and next"
    );
    let actions: Vec<String> = db::audit::list(&mut conn, &AuditFilter::default(), 2)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["signing_key.rotated", "client.created"]);
}

both_backends!(migrations_round_trip_and_models_load);
