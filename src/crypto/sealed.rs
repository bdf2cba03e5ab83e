//! AES-256-GCM sealing of signing keys at rest under the master key.
//!
//! Layout: `nonce (12 bytes) || ciphertext || tag`. The key id is the associated data, so
//! a sealed key copied onto another row does not open.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;

use super::secrets::random_bytes;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the master key must be 32 bytes, given as 64 hex digits or base64")]
    BadMasterKey,
    #[error(
        "a signing key could not be decrypted: the master key is not the one it was sealed with, or the row is corrupt"
    )]
    Open,
}

/// The 256-bit key that seals signing keys. Never printed. It also derives the other
/// server secrets (see [`MasterKey::derive`]), so there is one secret to keep.
pub struct MasterKey(LessSafeKey, hmac::Key);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

impl MasterKey {
    pub fn generate_encoded() -> String {
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    }

    /// Accepts 64 hex digits, or standard / URL-safe base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let bytes = decode_hex(text)
            .or_else(|| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok())
            .or_else(|| STANDARD.decode(text).ok())
            .filter(|b| b.len() == 32)
            .ok_or(SealError::BadMasterKey)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadMasterKey)?;
        Ok(Self(
            LessSafeKey::new(key),
            hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        ))
    }

    /// A 256-bit secret for one `purpose` (HMAC-SHA256 of the purpose under the master key):
    /// independent of the sealing key and of every other purpose's secret.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.1, purpose.as_bytes()).as_ref());
        out
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        // Sealing only fails for inputs larger than GCM's limit (64 GiB).
        #[expect(clippy::expect_used, reason = "keys are a few hundred bytes")]
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut body,
            )
            .expect("AES-GCM sealing of a small buffer cannot fail");
        out.extend_from_slice(&body);
        out
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plaintext = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| SealError::Open)?;
        Ok(plaintext.to_vec())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_aad() {
        let key = MasterKey::parse(&MasterKey::generate_encoded()).unwrap();
        let sealed = key.seal(b"private key bytes", b"kid-1");
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        assert_eq!(
            key.open(&sealed, b"kid-1").ok().as_deref(),
            Some(&b"private key bytes"[..])
        );
        assert!(key.open(&sealed, b"kid-2").is_err());
        let other = MasterKey::parse(&MasterKey::generate_encoded()).unwrap();
        assert!(other.open(&sealed, b"kid-1").is_err());
        assert!(key.open(&sealed[..10], b"kid-1").is_err());
    }

    #[test]
    fn master_key_accepts_hex_and_base64_of_32_bytes_only() {
        // Every encoding of the same 32 bytes must give the same key: what one seals, the
        // others open.
        let bytes = [0xab_u8; 32];
        let encodings = [
            "ab".repeat(32),
            "AB".repeat(32),
            STANDARD.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            format!("  {}\n", "ab".repeat(32)),
        ];
        let sealed = MasterKey::parse(&encodings[0])
            .unwrap()
            .seal(b"secret", b"kid");
        for text in &encodings {
            let key = MasterKey::parse(text).expect(text);
            assert_eq!(key.open(&sealed, b"kid").unwrap(), b"secret", "{text:?}");
        }
        let other = MasterKey::parse(&"cd".repeat(32)).unwrap();
        assert!(
            other.open(&sealed, b"kid").is_err(),
            "hex digits are decoded"
        );

        for bad in [
            "ab".repeat(16),
            "ab".repeat(33),
            STANDARD.encode([7u8; 31]),
            "not a key".to_owned(),
            String::new(),
        ] {
            assert!(
                matches!(MasterKey::parse(&bad), Err(SealError::BadMasterKey)),
                "{bad:?}"
            );
        }
    }
}
