//! Console passwords: argon2id with OWASP's parameters, stored as PHC strings.
//!
//! Unlike client secrets and API keys (256 random bits, a fast digest suffices), passwords are
//! chosen by people and guessable, so they get a slow, memory-hard hash.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::secrets::random_bytes;

/// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB of memory, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Beyond this a password is not stronger, only slower to hash: a cap on the work a request
/// can ask for.
pub const MAX_PASSWORD_CHARS: usize = 256;

fn hasher() -> Argon2<'static> {
    // The constants are valid argon2 parameters; `Params::new` only fails on out-of-range ones.
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a new password is refused, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("use at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("use at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("the password must not be your handle")]
    SameAsHandle,
}

/// Checks a new password against the policy: length, and not the handle itself.
pub fn check_new_password(password: &str, handle: &str) -> Result<(), WeakPassword> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(WeakPassword::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(WeakPassword::TooLong);
    }
    if password.trim().eq_ignore_ascii_case(handle.trim()) {
        return Err(WeakPassword::SameAsHandle);
    }
    Ok(())
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) for storage.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())?;
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the stored PHC string (compared in constant time by argon2). A
/// damaged stored value never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same time as [`verify_password`] when there is no account or no password, so
/// that the answer's timing does not tell an unknown handle from a wrong password.
pub fn verify_against_nothing(password: &str) {
    let salt = [0u8; 16];
    let mut out = [0u8; 32];
    let _ = hasher().hash_password_into(password.as_bytes(), &salt, &mut out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_same_password_and_use_owasp_parameters() {
        let stored = hash_password("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse battery", &stored));
        assert!(!verify_password("correct horse batterx", &stored));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert_ne!(stored, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn policy_refuses_short_long_and_handle_passwords() {
        assert_eq!(
            check_new_password("short", "ana"),
            Err(WeakPassword::TooShort)
        );
        assert_eq!(
            check_new_password(&"x".repeat(257), "ana"),
            Err(WeakPassword::TooLong)
        );
        assert_eq!(
            check_new_password("Ana.Lovelace1", "ana.lovelace1"),
            Err(WeakPassword::SameAsHandle)
        );
        assert_eq!(check_new_password("twelve chars", "ana"), Ok(()));
    }
}
