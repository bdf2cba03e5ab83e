//! A ring-backed `jsonwebtoken` [`CryptoProvider`], shared by the Tollgate server (signing)
//! and resource servers (verification).
//!
//! jsonwebtoken 11 ships no crypto of its own unless one of its backend features is on; ring
//! is already here for keys, AEAD and digests, so signing and verification go through ring
//! too, and neither crate enables `rust_crypto` or `aws_lc_rs` (features unify across a build,
//! and a second provider would be compiled in for nothing).
//! HMAC is deliberately not supported: Tollgate never issues HS* tokens, so a token that
//! claims HS256 (the "HMAC signed with the public key" attack) fails here even if a caller
//! forgot to restrict `Validation::algorithms`.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature;
use jsonwebtoken::{
    Algorithm, AlgorithmFamily as Family, DecodingKey, DecodingKeyKind, EncodingKey,
};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};

/// Installs the provider for this process. Safe to call more than once.
pub fn install() {
    // `Err` only means a provider is already installed (ours, by an earlier call).
    let _already_installed = PROVIDER.install_default();
}

/// The provider itself, for callers that install or compose providers on their own.
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key: ed_components_from_private_key,
        compute_digest,
    },
};

enum SigningPair {
    Ecdsa(sig::EcdsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
    Rsa(sig::RsaKeyPair, &'static dyn sig::RsaEncoding),
}

struct RingSigner {
    algorithm: Algorithm,
    pair: SigningPair,
}

impl signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        match &self.pair {
            SigningPair::Ecdsa(pair) => pair
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
            SigningPair::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
            SigningPair::Rsa(pair, encoding) => {
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(*encoding, &rng, msg, &mut out)
                    .map_err(|_| signature::Error::new())?;
                Ok(out)
            }
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn ecdsa_signing(alg: Algorithm) -> Option<&'static sig::EcdsaSigningAlgorithm> {
    match alg {
        Algorithm::ES256 => Some(&sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Some(&sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

fn rsa_signing(alg: Algorithm) -> Option<&'static dyn sig::RsaEncoding> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        _ => return None,
    })
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    let der = key.as_bytes();
    let pair = if let Some(ecdsa) = ecdsa_signing(*algorithm) {
        SigningPair::Ecdsa(
            sig::EcdsaKeyPair::from_pkcs8(ecdsa, der, &SystemRandom::new())
                .map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?,
        )
    } else if *algorithm == Algorithm::EdDSA {
        SigningPair::Ed25519(
            sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?,
        )
    } else if let Some(encoding) = rsa_signing(*algorithm) {
        let pair = sig::RsaKeyPair::from_pkcs8(der)
            .or_else(|_| sig::RsaKeyPair::from_der(der))
            .map_err(|e| Error::from(ErrorKind::InvalidRsaKey(e.to_string())))?;
        SigningPair::Rsa(pair, encoding)
    } else {
        return Err(ErrorKind::UnsupportedAlgorithm.into());
    };
    Ok(Box::new(RingSigner {
        algorithm: *algorithm,
        pair,
    }))
}

enum VerifyingKey {
    Unparsed(Vec<u8>),
    RsaComponents { n: Vec<u8>, e: Vec<u8> },
}

struct RingVerifier {
    algorithm: Algorithm,
    verification: &'static dyn sig::VerificationAlgorithm,
    rsa_params: Option<&'static sig::RsaParameters>,
    key: VerifyingKey,
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let verified = match (&self.key, self.rsa_params) {
            (VerifyingKey::RsaComponents { n, e }, Some(params)) => {
                sig::RsaPublicKeyComponents { n, e }.verify(params, msg, signature)
            }
            (VerifyingKey::Unparsed(bytes), _) => {
                sig::UnparsedPublicKey::new(self.verification, bytes).verify(msg, signature)
            }
            (VerifyingKey::RsaComponents { .. }, None) => Err(ring::error::Unspecified),
        };
        verified.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let (verification, rsa_params, family): (&'static dyn sig::VerificationAlgorithm, _, _) =
        match algorithm {
            Algorithm::ES256 => (&sig::ECDSA_P256_SHA256_FIXED, None, Family::Ec),
            Algorithm::ES384 => (&sig::ECDSA_P384_SHA384_FIXED, None, Family::Ec),
            Algorithm::EdDSA => (&sig::ED25519, None, Family::Ed),
            Algorithm::RS256 => (
                &sig::RSA_PKCS1_2048_8192_SHA256,
                Some(&sig::RSA_PKCS1_2048_8192_SHA256),
                Family::Rsa,
            ),
            Algorithm::RS384 => (
                &sig::RSA_PKCS1_2048_8192_SHA384,
                Some(&sig::RSA_PKCS1_2048_8192_SHA384),
                Family::Rsa,
            ),
            Algorithm::RS512 => (
                &sig::RSA_PKCS1_2048_8192_SHA512,
                Some(&sig::RSA_PKCS1_2048_8192_SHA512),
                Family::Rsa,
            ),
            Algorithm::PS256 => (
                &sig::RSA_PSS_2048_8192_SHA256,
                Some(&sig::RSA_PSS_2048_8192_SHA256),
                Family::Rsa,
            ),
            Algorithm::PS384 => (
                &sig::RSA_PSS_2048_8192_SHA384,
                Some(&sig::RSA_PSS_2048_8192_SHA384),
                Family::Rsa,
            ),
            Algorithm::PS512 => (
                &sig::RSA_PSS_2048_8192_SHA512,
                Some(&sig::RSA_PSS_2048_8192_SHA512),
                Family::Rsa,
            ),
            // No HMAC, ever: see the module doc.
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        };
    // A key of another family (an EC key presented for RS256, say) never verifies.
    if key.family() != family {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let key = match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => VerifyingKey::Unparsed(bytes.clone()),
        DecodingKeyKind::RsaModulusExponent { n, e } => VerifyingKey::RsaComponents {
            n: n.clone(),
            e: e.clone(),
        },
    };
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        verification,
        rsa_params,
        key,
    }))
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair = sig::RsaKeyPair::from_pkcs8(der)
        .or_else(|_| sig::RsaKeyPair::from_der(der))
        .map_err(|e| Error::from(ErrorKind::InvalidRsaKey(e.to_string())))?;
    let components = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((components.n, components.e))
}

/// Reads a DER `RSAPublicKey` (RFC 8017 A.1.1: `SEQUENCE { INTEGER n, INTEGER e }`).
///
/// The bytes come from whoever built the `DecodingKey`, so nothing here may panic or read past
/// the input, and anything that is not exactly one well-formed structure is refused: trailing
/// bytes, indefinite or non-minimal lengths, negative or empty integers.
fn rsa_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let invalid = || Error::from(ErrorKind::InvalidRsaKey("malformed RSAPublicKey".into()));
    let (sequence, rest) = der::read(der, der::SEQUENCE).ok_or_else(invalid)?;
    if !rest.is_empty() {
        return Err(invalid());
    }
    let (n, rest) = der::read_positive_integer(sequence).ok_or_else(invalid)?;
    let (e, rest) = der::read_positive_integer(rest).ok_or_else(invalid)?;
    if !rest.is_empty() {
        return Err(invalid());
    }
    Ok((n.to_vec(), e.to_vec()))
}

/// Just enough DER (X.690 §10) for an `RSAPublicKey`; ring keeps its own parser private.
mod der {
    pub const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;

    /// One tag-length-value with the given (single-byte) tag: `(value, rest)`.
    pub fn read(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&first, rest) = input.split_first()?;
        if first != tag {
            return None;
        }
        let (&len0, rest) = rest.split_first()?;
        let (len, rest) = if len0 < 0x80 {
            (usize::from(len0), rest)
        } else {
            // 0x80 is BER's indefinite length; more than 4 length bytes is no key of ours.
            let count = usize::from(len0 & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let (len_bytes, rest) = rest.split_at(count);
            let len = len_bytes.iter().try_fold(0usize, |acc, b| {
                acc.checked_mul(256)?.checked_add(usize::from(*b))
            })?;
            // DER: the shortest form, so no leading zero byte and no long form below 128.
            if len_bytes.first() == Some(&0) || len < 0x80 {
                return None;
            }
            (len, rest)
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }

    /// A non-negative INTEGER, minimally encoded and not zero, as big-endian bytes without
    /// the sign byte: `(magnitude, rest)`.
    pub fn read_positive_integer(input: &[u8]) -> Option<(&[u8], &[u8])> {
        let (value, rest) = read(input, INTEGER)?;
        let magnitude = match value {
            // A leading zero is only allowed to keep the next byte's high bit from meaning
            // "negative"; anything else is zero or a non-minimal encoding.
            [0, tail @ ..] if tail.first().is_some_and(|b| b & 0x80 != 0) => tail,
            [] | [0, ..] => return None,
            [first, ..] if first & 0x80 != 0 => return None,
            _ => value,
        };
        Some((magnitude, rest))
    }
}

fn ec_components_from_private_key(
    der: &[u8],
    alg: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let (curve, coordinate_len) = match alg {
        Algorithm::ES256 => (EllipticCurve::P256, 32),
        Algorithm::ES384 => (EllipticCurve::P384, 48),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let signing = ecdsa_signing(alg).ok_or(ErrorKind::InvalidEcdsaKey)?;
    let pair = sig::EcdsaKeyPair::from_pkcs8(signing, der, &SystemRandom::new())
        .map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?;
    let point = pair.public_key().as_ref();
    match point.split_first() {
        Some((4, xy)) if xy.len() == 2 * coordinate_len => {
            let (x, y) = xy.split_at(coordinate_len);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn ed_components_from_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    match curve {
        EllipticCurve::Ed25519 => Ok(sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?
            .public_key()
            .as_ref()
            .to_vec()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
    use jsonwebtoken::{Header, Validation, decode, encode};
    use ring::rand::SystemRandom;
    use ring::signature::{self as sig, KeyPair};
    use serde_json::{Value, json};

    use super::*;

    /// A throwaway RSA key: ring cannot generate RSA keys, so it is a fixture.
    const RSA_PEM: &str = include_str!("../tests/fixtures/rsa2048-test-only.pem");

    fn rsa_pkcs8() -> Vec<u8> {
        let body: String = RSA_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        STANDARD.decode(body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The DER `RSAPublicKey` of the fixture, as ring writes it.
    fn rsa_public_der() -> Vec<u8> {
        let pair = sig::RsaKeyPair::from_pkcs8(&rsa_pkcs8()).unwrap_or_else(|e| panic!("{e}"));
        pair.public_key().as_ref().to_vec()
    }

    fn refused(der: &[u8]) -> bool {
        matches!(
            rsa_components_from_public_key(der).map_err(|e| e.into_kind()),
            Err(ErrorKind::InvalidRsaKey(_))
        )
    }

    #[test]
    fn rsa_public_key_der_gives_the_key_pair_components() {
        let (n, e) =
            rsa_components_from_public_key(&rsa_public_der()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n.len(), 256, "2048-bit modulus, without the sign byte");
        assert_eq!(e, [1, 0, 1]);
        let from_private =
            rsa_components_from_private_key(&rsa_pkcs8()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((n, e), from_private);
    }

    #[test]
    fn hand_built_rsa_public_keys_parse() {
        // Short lengths, no sign byte.
        let (n, e) =
            rsa_components_from_public_key(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03])
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((n, e), (vec![5], vec![3]));
        // A sign byte before a high bit, and a long-form (0x81) length.
        let mut modulus = vec![0x00];
        modulus.extend(std::iter::repeat_n(0xab, 200));
        let mut der = vec![0x30, 0x81, 0xd1, 0x02, 0x81, 0xc9];
        der.extend(&modulus);
        der.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(der.len(), 3 + 0xd1, "the SEQUENCE length is right");
        let (n, e) = rsa_components_from_public_key(&der).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, modulus[1..]);
        assert_eq!(e, [1, 0, 1]);
    }

    #[test]
    fn truncated_rsa_public_keys_are_refused() {
        let der = rsa_public_der();
        for len in 0..der.len() {
            assert!(refused(&der[..len]), "a prefix of {len} bytes parsed");
        }
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let mut after = rsa_public_der();
        after.push(0);
        assert!(refused(&after), "a byte after the SEQUENCE");
        // A third INTEGER inside the SEQUENCE.
        assert!(refused(&[
            0x30, 0x09, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03, 0x02, 0x01, 0x01
        ]));
    }

    #[test]
    fn wrong_tags_are_refused() {
        let mut set = rsa_public_der();
        set[0] = 0x31;
        assert!(refused(&set), "SET instead of SEQUENCE");
        // BIT STRING instead of INTEGER for n, then for e.
        assert!(refused(&[0x30, 0x06, 0x03, 0x01, 0x05, 0x02, 0x01, 0x03]));
        assert!(refused(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x03, 0x01, 0x03]));
        // A PKCS#8 private key is a SEQUENCE too, but not of two INTEGERs.
        assert!(refused(&rsa_pkcs8()));
    }

    #[test]
    fn non_der_encodings_are_refused() {
        for (der, why) in [
            (
                &[0x30, 0x80, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03, 0x00, 0x00][..],
                "indefinite length",
            ),
            (
                &[0x30, 0x81, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03],
                "long form for a short length",
            ),
            (
                &[0x30, 0x82, 0x00, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03],
                "leading zero length byte",
            ),
            (
                &[0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00],
                "five length bytes",
            ),
            (
                &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
                "length past the input",
            ),
            (&[0x30, 0x05, 0x02, 0x00, 0x02, 0x01, 0x03], "empty INTEGER"),
            (
                &[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x03],
                "zero modulus",
            ),
            (
                &[0x30, 0x06, 0x02, 0x01, 0x85, 0x02, 0x01, 0x03],
                "negative modulus",
            ),
            (
                &[0x30, 0x07, 0x02, 0x02, 0x00, 0x05, 0x02, 0x01, 0x03],
                "non-minimal INTEGER",
            ),
        ] {
            assert!(refused(der), "{why}");
        }
    }

    #[test]
    fn no_single_byte_change_panics() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03];
        for i in 0..der.len() {
            for byte in 0..=u8::MAX {
                let mut changed = der;
                changed[i] = byte;
                // Any answer will do; what matters is getting here without a panic.
                let _ = rsa_components_from_public_key(&changed);
            }
        }
    }

    fn round_trip(algorithm: Algorithm, encoding: &EncodingKey, decoding: &DecodingKey) {
        install();
        let claims = json!({"sub": "me"});
        let token = encode(&Header::new(algorithm), &claims, encoding)
            .unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
        let mut validation = Validation::new(algorithm);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let decoded = decode::<Value>(&token, decoding, &validation)
            .unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
        assert_eq!(decoded.claims, claims);

        let (head, _) = token.rsplit_once('.').unwrap_or_else(|| panic!("a JWT"));
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
        assert!(decode::<Value>(&forged, decoding, &validation).is_err());
    }

    #[test]
    fn es256_eddsa_and_rs256_tokens_round_trip() {
        let rng = SystemRandom::new();
        let es256 = sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        let pair = sig::EcdsaKeyPair::from_pkcs8(
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            es256.as_ref(),
            &rng,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        round_trip(
            Algorithm::ES256,
            &EncodingKey::from_ec_der(es256.as_ref()),
            &DecodingKey::from_ec_der(pair.public_key().as_ref()),
        );

        let ed = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap_or_else(|e| panic!("{e}"));
        let pair = sig::Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap_or_else(|e| panic!("{e}"));
        round_trip(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_der(ed.as_ref()),
            &DecodingKey::from_ed_der(pair.public_key().as_ref()),
        );

        round_trip(
            Algorithm::RS256,
            &EncodingKey::from_rsa_der(&rsa_pkcs8()),
            &DecodingKey::from_rsa_der(&rsa_public_der()),
        );
    }

    #[test]
    fn hmac_is_refused_both_ways() {
        install();
        let secret = b"the public key, say";
        let header = Header::new(Algorithm::HS256);
        assert!(encode(&header, &json!({}), &EncodingKey::from_secret(secret)).is_err());
        assert!(matches!(
            new_verifier(&Algorithm::HS256, &DecodingKey::from_secret(secret)),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidAlgorithm)
        ));
    }

    #[test]
    fn a_key_of_another_family_never_verifies() {
        let rsa = DecodingKey::from_rsa_der(&rsa_public_der());
        assert!(new_verifier(&Algorithm::ES256, &rsa).is_err());
        assert!(new_verifier(&Algorithm::RS256, &rsa).is_ok());
    }

    #[test]
    fn rsa_public_jwk_comes_from_the_der_parser() {
        install();
        let key = DecodingKey::from_rsa_der(&rsa_public_der());
        let jwk =
            Jwk::from_decoding_key(&key, Some(Algorithm::RS256)).unwrap_or_else(|e| panic!("{e}"));
        let AlgorithmParameters::RSA(rsa) = jwk.algorithm else {
            panic!("not an RSA JWK: {jwk:?}");
        };
        assert_eq!(rsa.e, "AQAB");
        let (n, _) =
            rsa_components_from_private_key(&rsa_pkcs8()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rsa.n, URL_SAFE_NO_PAD.encode(n));
    }
}
