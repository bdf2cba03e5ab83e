//! Cryptography, all on ring: random secrets and their digests, signing keys sealed at rest
//! under the master key, and JWT signing with keys held in memory. The ring-backed
//! `jsonwebtoken` provider lives in `tollgate_verify::jwt_provider`, shared with resource servers.
//!
//! Nothing here knows about HTTP or the database.

pub mod passwords;
pub mod sealed;
pub mod secrets;
pub mod signer;
