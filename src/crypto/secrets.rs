//! Generated identifiers and secrets, and the digests we store instead of secrets.
//!
//! Client secrets carry 256 random bits, so a single SHA-256 is as strong as any password
//! hash here and costs a microsecond on the token path; a slow hash would protect nothing
//! that brute force could reach.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// Prefix of client secrets. Secret scanners match on it: never change it.
pub const CLIENT_SECRET_PREFIX: &str = "tgs_";

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS RNG does not fail on any platform we run on; if it ever did, an all-zero
    // secret would be catastrophic, so abort instead.
    #[expect(clippy::expect_used, reason = "no safe fallback for a broken OS RNG")]
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes
}

/// A random, URL-safe identifier with 128 bits of entropy (client ids, key ids, `jti`).
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// A plaintext client secret: shown once at creation, never stored, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// 256 random bits, URL-safe, with a recognisable prefix.
    pub fn generate() -> Self {
        Self(format!(
            "{CLIENT_SECRET_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        ))
    }

    pub fn from_presented(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> SecretDigest {
        SecretDigest::of(self.0.as_bytes())
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(redacted)")
    }
}

/// SHA-256 of a secret: what the database holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    pub fn of(secret: &[u8]) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, secret).as_ref());
        Self(out)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time comparison with a stored digest; a stored value of the wrong length
    /// never matches.
    pub fn matches(&self, stored: &[u8]) -> bool {
        stored.len() == self.0.len() && bool::from(self.0.ct_eq(stored))
    }
}

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretDigest(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_long_unique_and_url_safe() {
        let a = ClientSecret::generate();
        let b = ClientSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(CLIENT_SECRET_PREFIX));
        let random_part = &a.expose()[CLIENT_SECRET_PREFIX.len()..];
        assert_eq!(URL_SAFE_NO_PAD.decode(random_part).map(|v| v.len()), Ok(32));
        assert!(
            a.expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn digest_matches_only_the_same_secret() {
        let secret = ClientSecret::generate();
        let stored = secret.digest();
        assert!(secret.digest().matches(stored.as_bytes()));
        assert!(!ClientSecret::generate().digest().matches(stored.as_bytes()));
        assert!(!secret.digest().matches(&stored.as_bytes()[..31]));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = ClientSecret::generate();
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }
}
