//! What a console page fails with, rendered as an HTML page (the JSON APIs' errors are in
//! `http::error`). Causes of 5xx answers are logged, never shown.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::{Chrome, page};
use crate::db::DbError;
use crate::service::accounts::AccountError;
use crate::service::clients::ClientError;
use crate::service::signing_keys::KeyServiceError;

#[derive(Debug)]
pub enum ConsoleError {
    /// Not signed in: to the sign-in page, then back to `next`.
    SignInRequired {
        next: String,
    },
    /// Signed in with a password; the second factor is still owed.
    SecondFactorRequired,
    /// A sign-in page asked for while signed in.
    AlreadySignedIn,
    /// An operator page asked for by someone who is not an operator.
    Forbidden,
    /// A form without this session's CSRF token, or from another origin.
    Forgery,
    NotFound,
    BadForm(String),
    Store(DbError),
    Internal(String),
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SignInRequired { .. } => f.write_str("sign-in required"),
            Self::SecondFactorRequired => f.write_str("second factor required"),
            Self::AlreadySignedIn => f.write_str("already signed in"),
            Self::Forbidden => f.write_str("operators only"),
            Self::Forgery => f.write_str("CSRF check failed"),
            Self::NotFound => f.write_str("not found"),
            Self::BadForm(why) => f.write_str(why),
            Self::Store(err) => err.fmt(f),
            Self::Internal(detail) => f.write_str(detail),
        }
    }
}

impl From<DbError> for ConsoleError {
    fn from(err: DbError) -> Self {
        Self::Store(err)
    }
}

impl From<AccountError> for ConsoleError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::AccountNotFound(_)
            | AccountError::KeyNotFound(_)
            | AccountError::ChallengeNotFound(_) => Self::NotFound,
            AccountError::Store(err) => Self::Store(err),
            other => Self::BadForm(other.to_string()),
        }
    }
}

impl From<ClientError> for ConsoleError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::NotFound(_) => Self::NotFound,
            ClientError::Invalid(why) => Self::BadForm(why),
            ClientError::Store(err) => Self::Store(err),
        }
    }
}

impl From<KeyServiceError> for ConsoleError {
    fn from(err: KeyServiceError) -> Self {
        match err {
            KeyServiceError::Store(err) => Self::Store(err),
            KeyServiceError::ConcurrentRotation => Self::BadForm(err.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
}

fn error_page(
    status: StatusCode,
    heading: &'static str,
    message: impl Into<String>,
) -> HttpResponse {
    let mut chrome = Chrome::signed_out(heading);
    chrome.narrow = false;
    page(
        status,
        &ErrorPage {
            chrome,
            heading,
            message: message.into(),
        },
    )
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignInRequired { .. } | Self::SecondFactorRequired | Self::AlreadySignedIn => {
                StatusCode::SEE_OTHER
            }
            Self::Forbidden | Self::Forgery => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadForm(_) => StatusCode::BAD_REQUEST,
            Self::Store(err) if err.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::SignInRequired { next } => {
                let query: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish();
                redirect(&format!("/console/sign-in?{query}"))
            }
            Self::SecondFactorRequired => redirect("/console/sign-in/second-factor"),
            Self::AlreadySignedIn => redirect("/console/"),
            Self::Forbidden => error_page(
                status,
                "Operators only",
                "This page is for operators. Ask an operator if you need access.",
            ),
            Self::Forgery => error_page(
                status,
                "Form expired",
                "This form expired or was sent from another site, so nothing was changed. \
                 Go back, reload the page and try again.",
            ),
            Self::NotFound => error_page(status, "Not found", "There is nothing here."),
            Self::BadForm(why) => error_page(status, "That did not work", why.clone()),
            Self::Store(err) if err.is_unavailable() => {
                tracing::warn!(error = %err, "database unavailable");
                error_page(
                    status,
                    "Temporarily unavailable",
                    "The server cannot reach its database right now. Try again in a moment.",
                )
            }
            Self::Store(_) | Self::Internal(_) => {
                tracing::error!(error = %self, "console request failed");
                error_page(
                    status,
                    "Something went wrong",
                    "The server could not complete this request. Nothing was changed.",
                )
            }
        }
    }
}

/// Malformed or oversized form bodies.
pub fn form_error(err: actix_web::error::UrlencodedError, _: &HttpRequest) -> actix_web::Error {
    tracing::debug!(error = %err, "console form refused");
    ConsoleError::BadForm(
        "The form could not be read. Go back, reload the page and try again.".into(),
    )
    .into()
}

pub async fn page_not_found() -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::NotFound)
}
