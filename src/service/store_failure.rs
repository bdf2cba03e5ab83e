//! [`StoreFailure`] for each use-case error family, so that `Db::run` sees the database
//! error inside them (an outage opens the breaker; a refused write shows in readiness).

use crate::db::{DbError, StoreFailure};

use super::accounts::AccountError;
use super::app_authorizations::AuthorizationError;
use super::audit::AuditError;
use super::clients::ClientError;
use super::error::ProtocolError;
use super::invites::InviteError;
use super::second_factor::SecondFactorError;
use super::signing_keys::KeyServiceError;

/// Every family keeps its database error in a `Store` variant.
macro_rules! store_failure {
    ($($family:ty),* $(,)?) => {
        $(
            impl StoreFailure for $family {
                fn store_error(&self) -> Option<&DbError> {
                    match self {
                        Self::Store(err) => Some(err),
                        _ => None,
                    }
                }
            }
        )*
    };
}

store_failure!(
    ProtocolError,
    AccountError,
    ClientError,
    AuditError,
    KeyServiceError,
    InviteError,
    SecondFactorError,
    AuthorizationError,
);
