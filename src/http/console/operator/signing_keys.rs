//! Signing keys: their states (next, active, retired, expired) with dates, and rotation.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{ConfirmPage, CsrfOnly, DoneQuery};
use crate::app::{AppState, maintenance};
use crate::http::console::error::ConsoleError;
use crate::http::console::session::Person;
use crate::http::console::{Chrome, csrf, human_time, ok_page, see_other};
use crate::service::signing_keys::{self, KeyView};

const NAV: &str = "signing-keys";

pub struct KeyRow {
    kid: String,
    algorithm: &'static str,
    state: &'static str,
    created: String,
    activated: Option<String>,
    retired: Option<String>,
    publish_until: Option<String>,
}

impl From<KeyView> for KeyRow {
    fn from(view: KeyView) -> Self {
        Self {
            kid: view.kid,
            algorithm: view.algorithm,
            state: view.state,
            created: human_time(view.created_at),
            activated: view.activated_at.map(human_time),
            retired: view.retired_at.map(human_time),
            publish_until: view.publish_until.map(human_time),
        }
    }
}

#[derive(Template)]
#[template(path = "console/operator/signing_keys.html")]
struct SigningKeysPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    notice: Option<&'static str>,
    algorithm: &'static str,
    retired_grace_hours: i64,
}

/// `GET /console/operator/signing-keys`
pub async fn get_signing_keys(
    state: web::Data<AppState>,
    person: Person,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let now = state.now();
    let keys = state
        .db
        .run(move |conn| signing_keys::list(conn, now))
        .await?;
    let notice = match query.done.as_deref() {
        Some("rotated") => Some(
            "Signing key rotated. This server signs with the new key now; other instances \
             follow within their refresh interval.",
        ),
        _ => None,
    };
    Ok(ok_page(&SigningKeysPage {
        chrome: Chrome::for_person(&person, "Signing keys", NAV),
        keys: keys.into_iter().map(KeyRow::from).collect(),
        notice,
        algorithm: state.settings.signing_algorithm.as_str(),
        retired_grace_hours: state.policy.retired_key_grace() / 3600,
    }))
}

/// `GET /console/operator/signing-keys/rotate`: says what a rotation does and asks.
pub async fn get_rotate(person: Person) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    Ok(ok_page(&ConfirmPage::new(
        &person,
        NAV,
        "Rotate the signing key?".into(),
        "The published next key starts signing and the active key retires: it signs nothing \
         more but stays published until the tokens it signed have expired. A new next key is \
         published for the following rotation. If no next key is published yet, this only \
         publishes one, so resource servers see every key before it signs."
            .into(),
        "/console/operator/signing-keys/rotate".into(),
        "Rotate signing key",
        false,
        "/console/operator/signing-keys".into(),
    )))
}

/// `POST /console/operator/signing-keys/rotate`
pub async fn post_rotate(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    csrf::check(&req, &state, &person, &form.csrf)?;
    maintenance::rotate_now(&state, person.actor()).await?;
    Ok(see_other("/console/operator/signing-keys?done=rotated"))
}
