//! The operators' pages under `/console/operator/`: OAuth clients, signing keys, accounts
//! and the audit trail. Every handler first checks that the signed-in person is an operator
//! (403 otherwise), every form carries the session's CSRF token, and every change goes
//! through the same service function as the CLI and the admin API, so that it writes the
//! same audit event, with the actor `console:<handle>`.
//!
//! Changes follow one pattern: a GET page says what will happen and holds the form, the
//! POST does it and redirects (303) to a page with a fixed notice (`?done=…`), or shows a
//! secret once.

pub mod accounts;
pub mod audit;
pub mod clients;
pub mod signing_keys;

use actix_web::HttpResponse;
use askama::Template;
use serde::Deserialize;

use super::session::Person;
use super::{Chrome, see_other};

/// `/console/operator/`: the clients page (the first of the operators' pages).
pub async fn get_operator_home(person: Person) -> Result<HttpResponse, super::ConsoleError> {
    person.operator()?;
    Ok(see_other("/console/operator/clients"))
}

/// A form that only carries the CSRF token (confirmation pages). A missing token is an
/// empty one: refused as a forgery (403), like a wrong one.
#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// The `?done=` of a page after a change: a key into a fixed list of notices, so that
/// nothing from the URL reaches the page.
#[derive(Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

/// How long a rotated-out client secret keeps working: the choices the console offers.
pub const GRACE_CHOICES: [(i64, &str); 5] = [
    (0, "stops at once"),
    (3_600, "1 hour"),
    (86_400, "1 day"),
    (604_800, "7 days"),
    (2_592_000, "30 days"),
];

/// "Are you sure?": says what will happen; its form does it.
#[derive(Template)]
#[template(path = "console/operator/confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub csrf: String,
    pub heading: String,
    pub message: String,
    pub action: String,
    pub button: &'static str,
    pub danger: bool,
    pub cancel_href: String,
    /// Ask how long the old client secret keeps working.
    pub grace: bool,
    pub grace_choices: &'static [(i64, &'static str)],
}

impl ConfirmPage {
    #[expect(
        clippy::too_many_arguments,
        reason = "one constructor for every confirmation"
    )]
    pub fn new(
        person: &Person,
        current: &'static str,
        heading: String,
        message: String,
        action: String,
        button: &'static str,
        danger: bool,
        cancel_href: String,
    ) -> Self {
        Self {
            chrome: Chrome::for_person(person, &heading, current),
            csrf: person.session.csrf_token.clone(),
            heading,
            message,
            action,
            button,
            danger,
            cancel_href,
            grace: false,
            grace_choices: &GRACE_CHOICES,
        }
    }
}

/// Fields of a form body in order, repeated names kept (`scope=a&scope=b`), which
/// `serde_urlencoded` cannot collect.
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Self, super::ConsoleError> {
        if body.len() > 16 * 1024 {
            return Err(super::ConsoleError::BadForm(
                "The form is too large.".into(),
            ));
        }
        Ok(Self(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    /// The first value of `name`, or empty.
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}
