//! The optional second factor: TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, one
//! step of clock skew either way), enabled by the person with a first code, plus ten
//! single-use recovery codes shown once. A code is accepted once (RFC 6238 §5.2): the last
//! step used is stored, and a replay on any instance is refused.
//!
//! The TOTP secret is sealed under the master key (AES-256-GCM, bound to the account id);
//! recovery codes are stored as SHA-256 digests (they are 80 random bits, not guessable).

use serde_json::json;
use totp_rs::{Builder, Totp};

use super::accounts::account_event;
use super::audit::{self, Actor};
use crate::crypto::sealed::MasterKey;
use crate::crypto::secrets::{SecretDigest, random_bytes};
use crate::db::{self, DbConn, DbError};
use crate::domain::{Account, Credentials};

const RECOVERY_CODES: usize = 10;
const ISSUER_LABEL: &str = "Tollgate";

#[derive(Debug, thiserror::Error)]
pub enum SecondFactorError {
    #[error("that code is not right, or it was already used; wait for the next one")]
    WrongCode,
    #[error("the second factor is already on")]
    AlreadyEnabled,
    #[error("the second factor is not on")]
    NotEnabled,
    #[error("set a password first")]
    NoPassword,
    /// The sealed secret does not open with this master key: damage or a wrong key.
    #[error("the stored second-factor secret cannot be opened")]
    Sealed,
    #[error(transparent)]
    Store(#[from] DbError),
}

fn aad(account_id: &str) -> Vec<u8> {
    format!("totp:{account_id}").into_bytes()
}

fn totp(secret: Vec<u8>, handle: &str) -> Option<Totp> {
    Builder::new()
        .with_secret(secret)
        .with_account_name(handle)
        .with_issuer(Some(ISSUER_LABEL))
        .build()
        .ok()
}

fn open(
    master: &MasterKey,
    credentials: &Credentials,
    handle: &str,
) -> Result<Totp, SecondFactorError> {
    let sealed = credentials
        .sealed_totp_secret
        .as_deref()
        .ok_or(SecondFactorError::NotEnabled)?;
    let secret = master
        .open(sealed, &aad(&credentials.account_id))
        .map_err(|_| SecondFactorError::Sealed)?;
    totp(secret, handle).ok_or(SecondFactorError::Sealed)
}

fn credentials(conn: &mut DbConn, account: &Account) -> Result<Credentials, SecondFactorError> {
    db::credentials::of_account(conn, &account.id)?.ok_or(SecondFactorError::NoPassword)
}

/// What an authenticator app needs to enrol: the `otpauth://` URL (shown as a QR code) and
/// the secret in base32 for typing in.
pub struct Enrolment {
    pub otpauth_url: String,
    pub secret_base32: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(redacted)")
    }
}

/// Starts (or restarts) enrolment: a new secret, stored sealed but not yet in force.
pub fn begin(
    conn: &mut DbConn,
    master: &MasterKey,
    account: &Account,
) -> Result<Enrolment, SecondFactorError> {
    let current = credentials(conn, account)?;
    if current.has_second_factor() {
        return Err(SecondFactorError::AlreadyEnabled);
    }
    let secret = random_bytes::<20>().to_vec();
    let sealed = master.seal(&secret, &aad(&account.id));
    db::credentials::set_totp(conn, &account.id, Some(&sealed), None)?;
    enrolment(secret, &account.handle)
}

fn enrolment(secret: Vec<u8>, handle: &str) -> Result<Enrolment, SecondFactorError> {
    let secret_base32 = totp_rs::Secret::from(secret.clone()).to_base32();
    let totp = totp(secret, handle).ok_or(SecondFactorError::Sealed)?;
    Ok(Enrolment {
        otpauth_url: totp.to_url().map_err(|_| SecondFactorError::Sealed)?,
        secret_base32,
    })
}

/// The pending enrolment's details again (the page is reloaded before the first code).
pub fn pending(
    conn: &mut DbConn,
    master: &MasterKey,
    account: &Account,
) -> Result<Option<Enrolment>, SecondFactorError> {
    let current = credentials(conn, account)?;
    let Some(sealed) = current.sealed_totp_secret.as_deref() else {
        return Ok(None);
    };
    if current.has_second_factor() {
        return Ok(None);
    }
    let secret = master
        .open(sealed, &aad(&account.id))
        .map_err(|_| SecondFactorError::Sealed)?;
    enrolment(secret, &account.handle).map(Some)
}

/// Checks a TOTP code (and spends its step) or a recovery code (and spends it).
fn accept_code(
    conn: &mut DbConn,
    master: &MasterKey,
    credentials: &Credentials,
    handle: &str,
    code: &str,
    now: i64,
) -> Result<bool, SecondFactorError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
        let totp = open(master, credentials, handle)?;
        let Some(step) = totp.check(&code, u64::try_from(now).unwrap_or_default()) else {
            return Ok(false);
        };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        return Ok(db::credentials::spend_totp_step(
            conn,
            &credentials.account_id,
            step,
        )?);
    }
    if code.len() == RECOVERY_CODE_LEN {
        let digest = SecretDigest::of(code.to_ascii_lowercase().as_bytes());
        return Ok(db::credentials::spend_recovery_code(
            conn,
            &credentials.account_id,
            digest.as_bytes(),
            now,
        )?);
    }
    Ok(false)
}

/// Turns the second factor on with a first code from the app; returns the recovery codes,
/// shown once.
pub fn confirm(
    conn: &mut DbConn,
    master: &MasterKey,
    actor: &Actor,
    account: &Account,
    code: &str,
    now: i64,
) -> Result<Vec<String>, SecondFactorError> {
    db::transaction(conn, |conn| {
        let current = credentials(conn, account)?;
        if current.has_second_factor() {
            return Err(SecondFactorError::AlreadyEnabled);
        }
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let totp = open(master, &current, &account.handle)?;
        let step = totp
            .check(&code, u64::try_from(now).unwrap_or_default())
            .ok_or(SecondFactorError::WrongCode)?;
        let sealed = current.sealed_totp_secret.clone().unwrap_or_default();
        db::credentials::set_totp(conn, &account.id, Some(&sealed), Some(now))?;
        // The first code is spent like any other.
        db::credentials::spend_totp_step(
            conn,
            &account.id,
            i64::try_from(step).unwrap_or(i64::MAX),
        )?;
        let codes = new_recovery_codes(conn, account, now)?;
        audit::record(
            conn,
            actor,
            account_event("account.second_factor_enabled", account, None, None),
            now,
        )?;
        Ok(codes)
    })
}

const RECOVERY_CODE_LEN: usize = 16;

/// Ten codes of 16 base32 characters (80 bits), shown grouped as `xxxx-xxxx-xxxx-xxxx`.
fn new_recovery_codes(
    conn: &mut DbConn,
    account: &Account,
    now: i64,
) -> Result<Vec<String>, DbError> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            random_bytes::<RECOVERY_CODE_LEN>()
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
                .collect()
        })
        .collect();
    let digests: Vec<Vec<u8>> = codes
        .iter()
        .map(|c| SecretDigest::of(c.as_bytes()).as_bytes().to_vec())
        .collect();
    db::credentials::replace_recovery_codes(conn, &account.id, &digests, now)?;
    Ok(codes
        .iter()
        .map(|c| {
            c.as_bytes()
                .chunks(4)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect())
}

/// The second step of a sign-in: a TOTP code or a recovery code.
pub fn verify(
    conn: &mut DbConn,
    master: &MasterKey,
    account: &Account,
    code: &str,
    now: i64,
) -> Result<(), SecondFactorError> {
    let current = credentials(conn, account)?;
    if !current.has_second_factor() {
        return Err(SecondFactorError::NotEnabled);
    }
    let code = code.replace('-', "");
    if accept_code(conn, master, &current, &account.handle, &code, now)? {
        Ok(())
    } else {
        Err(SecondFactorError::WrongCode)
    }
}

/// Turns the second factor off; the person proves it with a current code.
pub fn disable(
    conn: &mut DbConn,
    master: &MasterKey,
    actor: &Actor,
    account: &Account,
    code: &str,
    now: i64,
) -> Result<(), SecondFactorError> {
    db::transaction(conn, |conn| {
        verify(conn, master, account, code, now)?;
        db::credentials::set_totp(conn, &account.id, None, None)?;
        db::credentials::replace_recovery_codes(conn, &account.id, &[], now)?;
        audit::record(
            conn,
            actor,
            account_event(
                "account.second_factor_disabled",
                account,
                None,
                Some(json!({})),
            ),
            now,
        )?;
        Ok(())
    })
}

/// Unused recovery codes left, for the account page.
pub fn recovery_codes_left(conn: &mut DbConn, account: &Account) -> Result<i64, DbError> {
    db::credentials::unused_recovery_codes(conn, &account.id)
}
