//! Cryptography, all on ring: random secrets and their digests, signing keys sealed at rest
//! under the master key, JWT signing with keys held in memory, and the ring-backed
//! `jsonwebtoken` provider used to verify tokens.
//!
//! Nothing here knows about HTTP or the database.

pub mod jwt_provider;
pub mod sealed;
pub mod secrets;
pub mod signer;
