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

/// Reads a DER `RSAPublicKey` (`SEQUENCE { INTEGER n, INTEGER e }`).
fn rsa_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    fn invalid() -> Error {
        ErrorKind::InvalidRsaKey("malformed RSAPublicKey".into()).into()
    }
    fn read_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&first, rest) = input.split_first()?;
        if first != tag {
            return None;
        }
        let (&len0, rest) = rest.split_first()?;
        let (len, rest) = if len0 < 0x80 {
            (usize::from(len0), rest)
        } else {
            let n = usize::from(len0 & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (len_bytes, rest) = rest.split_at(n);
            (
                len_bytes
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
                rest,
            )
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    let (seq, _) = read_tlv(der, 0x30).ok_or_else(invalid)?;
    let (n, rest) = read_tlv(seq, 0x02).ok_or_else(invalid)?;
    let (e, _) = read_tlv(rest, 0x02).ok_or_else(invalid)?;
    let strip = |v: &[u8]| {
        let skip = v.iter().take_while(|b| **b == 0).count();
        v[skip..].to_vec()
    };
    Ok((strip(n), strip(e)))
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
