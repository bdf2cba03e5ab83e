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

/// A random identifier with 128 bits of entropy (client ids, key ids), in base58:
/// URL-safe, and never starting with '-', which a command line would take for an option.
pub fn random_id() -> String {
    bs58::encode(random_bytes::<16>()).into_string()
}

/// A fresh JWT ID (RFC 7519 §4.1.7) with 128 bits of entropy, in base64url (22 characters).
/// Made on every token, where base58's division-heavy encoding cost more than the rest of
/// the claims together; nobody types a `jti`.
pub fn token_id() -> String {
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

    pub fn to_array(self) -> [u8; 32] {
        self.0
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

/// Prefix of API keys. Secret scanners match on it: never change it.
pub const API_KEY_PREFIX: &str = "tg_";
/// Characters of the key (after the prefix) shown in listings to tell keys apart.
const API_KEY_SHORT_ID_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyFormatError {
    #[error("not a Tollgate API key (they start with tg_)")]
    Prefix,
    #[error("the API key is malformed or mistyped (checksum mismatch)")]
    Checksum,
}

/// A plaintext API key: shown once at creation, never stored, never logged.
///
/// Format: `tg_` + base58(32 random bytes ‖ CRC-32 of those bytes, big-endian). The prefix
/// lets secret scanners find leaked keys; the checksum rejects a typo without a lookup.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    pub fn generate() -> Self {
        let random = random_bytes::<32>();
        let mut bytes = random.to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&random).to_be_bytes());
        Self(format!(
            "{API_KEY_PREFIX}{}",
            bs58::encode(bytes).into_string()
        ))
    }

    /// Checks prefix and checksum; says nothing about whether the key exists.
    pub fn parse(text: &str) -> Result<Self, ApiKeyFormatError> {
        let body = text
            .trim()
            .strip_prefix(API_KEY_PREFIX)
            .ok_or(ApiKeyFormatError::Prefix)?;
        // 36 bytes are at most 50 base58 characters; refuse anything longer before decoding
        // (base58 decoding is quadratic in the input length).
        if body.len() > 50 {
            return Err(ApiKeyFormatError::Checksum);
        }
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| ApiKeyFormatError::Checksum)?;
        if bytes.len() != 36 {
            return Err(ApiKeyFormatError::Checksum);
        }
        let (random, checksum) = bytes.split_at(32);
        if crc32fast::hash(random).to_be_bytes() != checksum {
            return Err(ApiKeyFormatError::Checksum);
        }
        Ok(Self(text.trim().to_owned()))
    }

    pub fn looks_like_api_key(text: &str) -> bool {
        text.trim().starts_with(API_KEY_PREFIX)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> SecretDigest {
        SecretDigest::of(self.0.as_bytes())
    }

    /// A short, non-secret identifier for listings: the prefix and 8 characters
    /// (about 46 of the key's 256 random bits).
    pub fn short_id(&self) -> String {
        self.0
            .chars()
            .take(API_KEY_PREFIX.len() + API_KEY_SHORT_ID_LEN)
            .collect()
    }
}

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret(redacted)")
    }
}

#[cfg(test)]
mod api_key_tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_carry_256_random_bits() {
        let key = ApiKeySecret::generate();
        assert!(key.expose().starts_with("tg_"));
        assert_eq!(ApiKeySecret::parse(key.expose()), Ok(key.clone()));
        assert_ne!(key, ApiKeySecret::generate());
        assert_eq!(key.short_id().len(), 11);
        assert!(key.expose().starts_with(&key.short_id()));
    }

    #[test]
    fn a_typo_fails_the_checksum() {
        let key = ApiKeySecret::generate();
        let text = key.expose();
        let last = text.chars().last().unwrap_or('1');
        let replacement = if last == '2' { '3' } else { '2' };
        let typo = format!("{}{replacement}", &text[..text.len() - 1]);
        assert_eq!(ApiKeySecret::parse(&typo), Err(ApiKeyFormatError::Checksum));
        assert_eq!(
            ApiKeySecret::parse("tg_short"),
            Err(ApiKeyFormatError::Checksum)
        );
        assert_eq!(
            ApiKeySecret::parse("ghp_abcdef"),
            Err(ApiKeyFormatError::Prefix)
        );
        assert!(!format!("{key:?}").contains(key.expose()));
    }
}
