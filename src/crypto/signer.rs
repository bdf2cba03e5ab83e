//! Signing keys held in memory, and JWT signing without re-parsing the key.
//!
//! `jsonwebtoken::encode` re-parses the private key on every call; the token endpoint signs
//! with a key pair parsed once, and with the JOSE header encoded once per key.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use serde::Serialize;
use serde_json::json;

/// The algorithms Tollgate signs with: an explicit allow-list (never `none`, never HMAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    ES256,
    EdDSA,
    RS256,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 3] = [Self::ES256, Self::EdDSA, Self::RS256];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            Self::ES256 => Algorithm::ES256,
            Self::EdDSA => Algorithm::EdDSA,
            Self::RS256 => Algorithm::RS256,
        }
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "ring cannot generate RSA keys: import an RSA private key (PKCS#8 or PKCS#1 PEM) with `tollgate signing-key import`"
    )]
    CannotGenerateRsa,
    #[error("the private key was rejected: {0}")]
    Rejected(String),
    #[error(
        "the PEM file holds no private key (expected BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)"
    )]
    NotPem,
    #[error("signing failed")]
    Signing,
    #[error("claims could not be serialized: {0}")]
    Claims(#[from] serde_json::Error),
}

enum Pair {
    Ecdsa(sig::EcdsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
    Rsa(sig::RsaKeyPair),
}

/// A private signing key, parsed once.
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    pair: Pair,
    /// `base64url(JOSE header) + "."`, computed once per key.
    header_prefix: String,
    public_jwk: serde_json::Value,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key; returns it with its private key as PKCS#8 DER (to be sealed).
    pub fn generate(algorithm: SigningAlgorithm) -> Result<(Self, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let der = match algorithm {
            SigningAlgorithm::ES256 => {
                sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            SigningAlgorithm::EdDSA => sig::Ed25519KeyPair::generate_pkcs8(&rng),
            SigningAlgorithm::RS256 => return Err(KeyError::CannotGenerateRsa),
        }
        .map_err(|_| KeyError::Rejected("key generation failed".into()))?
        .as_ref()
        .to_vec();
        let key = Self::from_private_der(algorithm, &der)?;
        Ok((key, der))
    }

    /// Parses a private key (PKCS#8 DER; for RSA also PKCS#1). The key id is the RFC 7638
    /// thumbprint of the public key, so it is stable and derivable by anyone holding it.
    pub fn from_private_der(algorithm: SigningAlgorithm, der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let reject = |e: ring::error::KeyRejected| KeyError::Rejected(e.to_string());
        let (pair, thumbprint_input, mut jwk) = match algorithm {
            SigningAlgorithm::ES256 => {
                let pair =
                    sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                        .map_err(reject)?;
                let point = pair.public_key().as_ref();
                let (x, y) = point
                    .get(1..33)
                    .zip(point.get(33..65))
                    .ok_or_else(|| KeyError::Rejected("unexpected EC point".into()))?;
                let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
                let thumb = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y});
                (Pair::Ecdsa(pair), thumb, jwk)
            }
            SigningAlgorithm::EdDSA => {
                let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(reject)?;
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                let thumb = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
                (Pair::Ed25519(pair), thumb, jwk)
            }
            SigningAlgorithm::RS256 => {
                let pair = sig::RsaKeyPair::from_pkcs8(der)
                    .or_else(|_| sig::RsaKeyPair::from_der(der))
                    .map_err(reject)?;
                let components = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                let (n, e) = (
                    URL_SAFE_NO_PAD.encode(&components.n),
                    URL_SAFE_NO_PAD.encode(&components.e),
                );
                let thumb = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
                let jwk = json!({"kty": "RSA", "n": n, "e": e});
                (Pair::Rsa(pair), thumb, jwk)
            }
        };
        let kid = URL_SAFE_NO_PAD.encode(
            ring::digest::digest(&ring::digest::SHA256, thumbprint_input.as_bytes()).as_ref(),
        );
        if let Some(members) = jwk.as_object_mut() {
            members.insert("kid".into(), json!(kid));
            members.insert("alg".into(), json!(algorithm.as_str()));
            members.insert("use".into(), json!("sig"));
        }
        // RFC 9068 §2.1: `typ` is "at+jwt".
        let header = json!({"alg": algorithm.as_str(), "kid": kid, "typ": "at+jwt"});
        let header_prefix = format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string()));
        Ok(Self {
            kid,
            algorithm,
            pair,
            header_prefix,
            public_jwk: jwk,
            rng,
        })
    }

    /// Reads a PEM private key for import (PKCS#8 `PRIVATE KEY`, or PKCS#1 `RSA PRIVATE KEY`).
    pub fn der_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
        for label in ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"] {
            let begin = format!("-----BEGIN {label}-----");
            let end = format!("-----END {label}-----");
            if let Some(start) = pem.find(&begin) {
                let body_start = start + begin.len();
                let body_end = pem[body_start..]
                    .find(&end)
                    .map(|i| body_start + i)
                    .ok_or(KeyError::NotPem)?;
                let body: String = pem[body_start..body_end]
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                return base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .map_err(|_| KeyError::NotPem);
            }
        }
        Err(KeyError::NotPem)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The public key as a JWK (RFC 7517), with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.public_jwk
    }

    /// Serializes `claims` and signs a compact JWS with this key's header.
    pub fn sign_jwt<C: Serialize>(&self, claims: &C) -> Result<String, KeyError> {
        // Our claims serialise to about 300 bytes: one buffer that does not have to grow.
        let mut payload = Vec::with_capacity(512);
        serde_json::to_writer(&mut payload, claims)?;
        let mut token = String::with_capacity(self.header_prefix.len() + payload.len() * 2 + 96);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// Signs a JWS signing input (`base64url(header).base64url(payload)`) with this key.
    pub fn sign(&self, message: &[u8]) -> Result<Signature, KeyError> {
        match &self.pair {
            Pair::Ecdsa(pair) => pair
                .sign(&self.rng, message)
                .map(Signature::Fixed)
                .map_err(|_| KeyError::Signing),
            Pair::Ed25519(pair) => Ok(Signature::Fixed(pair.sign(message))),
            Pair::Rsa(pair) => {
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(&sig::RSA_PKCS1_SHA256, &self.rng, message, &mut out)
                    .map_err(|_| KeyError::Signing)?;
                Ok(Signature::Sized(out))
            }
        }
    }
}

/// A JWS signature's bytes: ECDSA and EdDSA signatures are short and kept inline (no
/// allocation on the token endpoint), RSA's are as long as the key's modulus.
pub enum Signature {
    Fixed(sig::Signature),
    Sized(Vec<u8>),
}

impl AsRef<[u8]> for Signature {
    fn as_ref(&self) -> &[u8] {
        match self {
            Self::Fixed(signature) => signature.as_ref(),
            Self::Sized(bytes) => bytes,
        }
    }
}

/// A public key that verifies our tokens.
#[derive(Clone)]
pub struct VerifyingKey {
    pub algorithm: SigningAlgorithm,
    pub key: DecodingKey,
}

/// The keys one instance signs and verifies with. Swapped whole when the key table
/// changes, so readers never take a lock (see `KeyStore`).
pub struct KeyRing {
    active: Arc<SigningKey>,
    verifying: HashMap<String, VerifyingKey>,
    /// Pre-rendered JWKS document, served as is.
    jwks_json: Arc<str>,
    fingerprint: Vec<(String, String, Option<i64>)>,
    /// When the active key began to sign (Unix seconds), when known.
    active_since: Option<i64>,
}

impl KeyRing {
    /// `published` holds the public JWK of every key to publish; `active` signs.
    pub fn new(
        active: Arc<SigningKey>,
        published: &[serde_json::Value],
        fingerprint: Vec<(String, String, Option<i64>)>,
    ) -> Self {
        let mut verifying = HashMap::new();
        let mut keys = Vec::with_capacity(published.len());
        for public_jwk in published {
            keys.push(public_jwk.clone());
            let parsed: Option<(SigningAlgorithm, DecodingKey)> = (|| {
                let jwk: jsonwebtoken::jwk::Jwk =
                    serde_json::from_value(public_jwk.clone()).ok()?;
                let alg = SigningAlgorithm::parse(public_jwk.get("alg")?.as_str()?)?;
                Some((alg, DecodingKey::from_jwk(&jwk).ok()?))
            })();
            if let (Some(kid), Some((algorithm, key))) =
                (public_jwk.get("kid").and_then(|k| k.as_str()), parsed)
            {
                verifying.insert(kid.to_owned(), VerifyingKey { algorithm, key });
            }
        }
        let jwks = json!({ "keys": keys }).to_string();
        Self {
            active,
            verifying,
            jwks_json: Arc::from(jwks),
            fingerprint,
            active_since: None,
        }
    }

    /// Notes when the active key began to sign (for the signing key age metric).
    pub fn with_active_since(mut self, at: i64) -> Self {
        self.active_since = Some(at);
        self
    }

    pub fn active_since(&self) -> Option<i64> {
        self.active_since
    }

    pub fn active(&self) -> &Arc<SigningKey> {
        &self.active
    }

    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    /// The JWKS document (RFC 7517 §5).
    pub fn jwks_json(&self) -> Arc<str> {
        self.jwks_json.clone()
    }

    pub fn fingerprint(&self) -> &[(String, String, Option<i64>)] {
        &self.fingerprint
    }
}

/// The current key ring, readable without locks from every request.
#[derive(Clone)]
pub struct KeyStore(Arc<arc_swap::ArcSwap<KeyRing>>);

impl KeyStore {
    pub fn new(ring: KeyRing) -> Self {
        Self(Arc::new(arc_swap::ArcSwap::from_pointee(ring)))
    }

    pub fn current(&self) -> Arc<KeyRing> {
        self.0.load_full()
    }

    /// The current ring for a short, synchronous use: no reference count is taken (that
    /// would be a write to a line every worker shares, on every token).
    pub fn borrow(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.0.load()
    }

    pub fn replace(&self, ring: KeyRing) {
        self.0.store(Arc::new(ring));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Validation, decode};

    #[derive(Debug, Serialize, serde::Deserialize)]
    struct Claims {
        sub: String,
        exp: u64,
    }

    fn round_trip(algorithm: SigningAlgorithm) {
        tollgate_verify::jwt_provider::install();
        let (key, der) = SigningKey::generate(algorithm).unwrap();
        let again = SigningKey::from_private_der(algorithm, &der).unwrap();
        assert_eq!(key.kid(), again.kid(), "kid is derived from the key");
        let ring = KeyRing::new(Arc::new(key), &[again.public_jwk().clone()], vec![]);
        let claims = Claims {
            sub: "me".into(),
            exp: jsonwebtoken::get_current_timestamp() + 60,
        };
        let token = ring.active().sign_jwt(&claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(ring.active().kid()));
        let verifying = ring
            .verifying_key(ring.active().kid())
            .expect("the published key verifies");
        let mut validation = Validation::new(verifying.algorithm.jwt_algorithm());
        validation.validate_aud = false;
        let decoded = decode::<Claims>(&token, &verifying.key, &validation).unwrap();
        assert_eq!(decoded.claims.sub, "me");

        // Flip one bit of the signature itself (not a base64 character, whose low bits may
        // be padding), so the tampered token always differs where it counts.
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        signature[0] ^= 0x01;
        let tampered = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&signature));
        assert_ne!(tampered, token);
        let refused = decode::<Claims>(&tampered, &verifying.key, &validation)
            .expect_err("a changed signature must not verify");
        assert_eq!(
            refused.kind(),
            &jsonwebtoken::errors::ErrorKind::InvalidSignature,
            "{refused:?}"
        );
    }

    #[test]
    fn es256_tokens_verify_with_the_published_jwk() {
        round_trip(SigningAlgorithm::ES256);
    }

    #[test]
    fn eddsa_tokens_verify_with_the_published_jwk() {
        round_trip(SigningAlgorithm::EdDSA);
    }

    #[test]
    fn rsa_cannot_be_generated_only_imported() {
        assert!(matches!(
            SigningKey::generate(SigningAlgorithm::RS256),
            Err(KeyError::CannotGenerateRsa)
        ));
    }

    #[test]
    fn only_allow_listed_algorithms_parse() {
        assert_eq!(
            SigningAlgorithm::parse("ES256"),
            Some(SigningAlgorithm::ES256)
        );
        assert_eq!(SigningAlgorithm::parse("none"), None);
        assert_eq!(SigningAlgorithm::parse("HS256"), None);
    }
}
