//! [`StoreFailure`] for each use-case error family, so that `Db::run` sees the database
//! error inside them (an outage opens the breaker; a refused write shows in readiness).

use crate::db::{DbError, StoreFailure};

use super::accounts::AccountError;
use super::audit::AuditError;
use super::clients::ClientError;
use super::error::ProtocolError;
use super::signing_keys::KeyServiceError;

impl StoreFailure for ProtocolError {
    fn store_error(&self) -> Option<&DbError> {
        match self {
            Self::Store(err) => Some(err),
            _ => None,
        }
    }
}

impl StoreFailure for AccountError {
    fn store_error(&self) -> Option<&DbError> {
        match self {
            Self::Store(err) => Some(err),
            _ => None,
        }
    }
}

impl StoreFailure for ClientError {
    fn store_error(&self) -> Option<&DbError> {
        match self {
            Self::Store(err) => Some(err),
            _ => None,
        }
    }
}

impl StoreFailure for AuditError {
    fn store_error(&self) -> Option<&DbError> {
        match self {
            Self::Store(err) => Some(err),
            _ => None,
        }
    }
}

impl StoreFailure for KeyServiceError {
    fn store_error(&self) -> Option<&DbError> {
        match self {
            Self::Store(err) => Some(err),
            _ => None,
        }
    }
}
