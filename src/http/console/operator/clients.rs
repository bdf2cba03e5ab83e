//! OAuth clients: list, create (the secret shown once), edit, rotate the secret with a
//! grace period, disable/enable, revoke every token, delete.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{ConfirmPage, DoneQuery, Fields};
use crate::app::AppState;
use crate::domain::GrantType;
use crate::http::console::error::ConsoleError;
use crate::http::console::session::Person;
use crate::http::console::{Chrome, csrf, human_time, ok_page, page, see_other};
use crate::oauth::Scope;
use crate::service::clients::{self, ClientError, ClientSpec, ClientUpdate, ClientView};

const NAV: &str = "clients";

/// A client as the list and the detail page show it.
pub struct ClientRow {
    id: String,
    name: String,
    scopes: Vec<String>,
    audiences: Vec<String>,
    grant_types: Vec<&'static str>,
    ttl: Option<i64>,
    disabled: bool,
    created: String,
    updated: String,
    old_secret_until: Option<String>,
    tokens_revoked_before: Option<String>,
}

impl From<ClientView> for ClientRow {
    fn from(view: ClientView) -> Self {
        Self {
            created: human_time(view.created_at),
            updated: human_time(view.updated_at),
            old_secret_until: view.previous_secret_expires_at.map(human_time),
            tokens_revoked_before: view.tokens_revoked_before.map(human_time),
            id: view.client_id,
            name: view.name,
            scopes: view.scopes,
            audiences: view.audiences,
            grant_types: view.grant_types,
            ttl: view.token_ttl,
            disabled: view.disabled,
        }
    }
}

/// A grant type checkbox.
pub struct GrantChoice {
    name: &'static str,
    checked: bool,
}

/// What the create or edit form holds, and what is wrong with it, field by field.
#[derive(Default)]
pub struct ClientForm {
    name: String,
    scopes: String,
    audiences: String,
    ttl: String,
    grant_types: Vec<String>,
    name_error: Option<String>,
    scopes_error: Option<String>,
    audiences_error: Option<String>,
    ttl_error: Option<String>,
    grant_types_error: Option<String>,
    form_error: Option<String>,
}

impl ClientForm {
    fn of(view: &ClientRow) -> Self {
        Self {
            name: view.name.clone(),
            scopes: view.scopes.join(" "),
            audiences: view.audiences.join("\n"),
            ttl: view.ttl.map(|t| t.to_string()).unwrap_or_default(),
            grant_types: view.grant_types.iter().map(|g| (*g).to_owned()).collect(),
            ..Self::default()
        }
    }

    fn from_fields(fields: &Fields) -> Self {
        Self {
            name: fields.get("name"),
            scopes: fields.get("scopes"),
            audiences: fields.get("audiences"),
            ttl: fields.get("token_ttl").trim().to_owned(),
            grant_types: fields.all("grant_type"),
            ..Self::default()
        }
    }

    fn grant_choices(&self) -> Vec<GrantChoice> {
        GrantType::ALL
            .iter()
            .map(|g| GrantChoice {
                name: g.as_str(),
                checked: self.grant_types.iter().any(|chosen| chosen == g.as_str())
                    || (self.grant_types.is_empty() && *g == GrantType::ClientCredentials),
            })
            .collect()
    }

    fn has_errors(&self) -> bool {
        self.name_error.is_some()
            || self.scopes_error.is_some()
            || self.audiences_error.is_some()
            || self.ttl_error.is_some()
            || self.grant_types_error.is_some()
            || self.form_error.is_some()
    }

    /// The parts that parse here; the service checks the rest.
    fn parsed(&mut self) -> (Scope, Vec<String>, Option<i64>) {
        let scopes = Scope::parse(&self.scopes).unwrap_or_else(|e| {
            self.scopes_error = Some(e.0);
            Scope::default()
        });
        // One per line: a line with a space in it is the service's error to report.
        let audiences = self
            .audiences
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        let ttl = match self.ttl.as_str() {
            "" => None,
            text => text.parse::<i64>().ok().or_else(|| {
                self.ttl_error = Some("A whole number of seconds, or empty.".into());
                None
            }),
        };
        (scopes, audiences, ttl)
    }

    /// Puts the service's complaint next to the field it is about.
    fn place(&mut self, err: ClientError) -> Result<(), ConsoleError> {
        let ClientError::Invalid(why) = err else {
            return Err(err.into());
        };
        let slot = if why.starts_with("name") {
            &mut self.name_error
        } else if why.starts_with("audience") || why.contains("audiences") {
            &mut self.audiences_error
        } else if why.starts_with("token_ttl") {
            &mut self.ttl_error
        } else if why.starts_with("grant type") {
            &mut self.grant_types_error
        } else if why.starts_with("scope") {
            &mut self.scopes_error
        } else {
            &mut self.form_error
        };
        *slot = Some(capitalized(&why));
        Ok(())
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "console/operator/clients.html")]
struct ClientsPage {
    chrome: Chrome,
    csrf: String,
    clients: Vec<ClientRow>,
    notice: Option<&'static str>,
    form: ClientForm,
    grant_choices: Vec<GrantChoice>,
    form_action: String,
    submit: &'static str,
}

#[derive(Template)]
#[template(path = "console/operator/client.html")]
struct ClientPage {
    chrome: Chrome,
    csrf: String,
    client: ClientRow,
    notice: Option<&'static str>,
    form: ClientForm,
    grant_choices: Vec<GrantChoice>,
    form_action: String,
    submit: &'static str,
}

#[derive(Template)]
#[template(path = "console/operator/client_secret.html")]
struct SecretPage {
    chrome: Chrome,
    heading: &'static str,
    client: ClientRow,
    secret: String,
}

async fn clients_page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    form: ClientForm,
    notice: Option<&'static str>,
) -> Result<HttpResponse, ConsoleError> {
    let now = state.now();
    let list = state.db.run(move |conn| clients::list(conn, now)).await?;
    Ok(page(
        status,
        &ClientsPage {
            chrome: Chrome::for_person(person, "OAuth clients", NAV),
            csrf: person.session.csrf_token.clone(),
            clients: list.into_iter().map(ClientRow::from).collect(),
            notice,
            grant_choices: form.grant_choices(),
            form,
            form_action: "/console/operator/clients".into(),
            submit: "Create client",
        },
    ))
}

/// `GET /console/operator/clients`
pub async fn get_clients(
    state: web::Data<AppState>,
    person: Person,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let notice = match query.done.as_deref() {
        Some("deleted") => Some("Client deleted. Its tokens stopped working at once."),
        _ => None,
    };
    clients_page(
        &state,
        &person,
        StatusCode::OK,
        ClientForm::default(),
        notice,
    )
    .await
}

/// `POST /console/operator/clients`: creates a client and shows its secret once.
pub async fn post_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let fields = Fields::parse(&body)?;
    csrf::check(&req, &state, &person, &fields.get("csrf"))?;
    let mut form = ClientForm::from_fields(&fields);
    let (scopes, audiences, token_ttl) = form.parsed();
    if !form.has_errors() {
        let spec = ClientSpec {
            name: form.name.clone(),
            scopes,
            audiences,
            token_ttl,
            grant_types: form.grant_types.clone(),
        };
        let (actor, now) = (person.actor(), state.now());
        match state
            .db
            .run(move |conn| clients::create(conn, &actor, &spec, now))
            .await
        {
            Ok((view, secret)) => {
                return Ok(secret_page(
                    &person,
                    "Client created",
                    view,
                    secret.expose(),
                ));
            }
            Err(err) => form.place(err)?,
        }
    }
    clients_page(
        &state,
        &person,
        StatusCode::UNPROCESSABLE_ENTITY,
        form,
        None,
    )
    .await
}

fn secret_page(
    person: &Person,
    heading: &'static str,
    view: ClientView,
    secret: &str,
) -> HttpResponse {
    ok_page(&SecretPage {
        chrome: Chrome::for_person(person, heading, NAV),
        heading,
        client: view.into(),
        secret: secret.to_owned(),
    })
}

async fn find(state: &AppState, id: String) -> Result<ClientRow, ConsoleError> {
    let now = state.now();
    Ok(state
        .db
        .run(move |conn| clients::get(conn, &id, now))
        .await?
        .into())
}

fn client_page(
    person: &Person,
    status: StatusCode,
    client: ClientRow,
    form: Option<ClientForm>,
    notice: Option<&'static str>,
) -> HttpResponse {
    let form = form.unwrap_or_else(|| ClientForm::of(&client));
    page(
        status,
        &ClientPage {
            chrome: Chrome::for_person(person, &client.name, NAV),
            csrf: person.session.csrf_token.clone(),
            grant_choices: form.grant_choices(),
            form_action: format!("/console/operator/clients/{}", client.id),
            submit: "Save changes",
            client,
            notice,
            form,
        },
    )
}

/// `GET /console/operator/clients/{id}`: the client, its settings form and its actions.
pub async fn get_client(
    state: web::Data<AppState>,
    person: Person,
    id: web::Path<String>,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let client = find(&state, id.into_inner()).await?;
    let notice = match query.done.as_deref() {
        Some("updated") => Some("Changes saved. New tokens follow them at once."),
        Some("disabled") => {
            Some("Client disabled: it gets no tokens, and its tokens were revoked.")
        }
        Some("enabled") => Some("Client enabled: it can get tokens again."),
        Some("tokens-revoked") => Some("Every token issued to this client until now is revoked."),
        _ => None,
    };
    Ok(client_page(&person, StatusCode::OK, client, None, notice))
}

/// `POST /console/operator/clients/{id}`: saves the settings form.
pub async fn post_client_update(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let fields = Fields::parse(&body)?;
    csrf::check(&req, &state, &person, &fields.get("csrf"))?;
    let id = id.into_inner();
    let mut form = ClientForm::from_fields(&fields);
    let (scopes, audiences, token_ttl) = form.parsed();
    if !form.has_errors() {
        let update = ClientUpdate {
            name: Some(form.name.clone()),
            scopes: Some(scopes),
            audiences: Some(audiences),
            token_ttl: Some(token_ttl),
            grant_types: Some(form.grant_types.clone()),
        };
        let (actor, now, target) = (person.actor(), state.now(), id.clone());
        match state
            .db
            .run(move |conn| clients::update(conn, &actor, &target, &update, now))
            .await
        {
            Ok(_) => {
                return Ok(see_other(&format!(
                    "/console/operator/clients/{id}?done=updated"
                )));
            }
            Err(err) => form.place(err)?,
        }
    }
    let client = find(&state, id).await?;
    Ok(client_page(
        &person,
        StatusCode::UNPROCESSABLE_ENTITY,
        client,
        Some(form),
        None,
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientAction {
    RotateSecret,
    Disable,
    Enable,
    RevokeTokens,
    Delete,
}

impl ClientAction {
    fn parse(text: &str) -> Result<Self, ConsoleError> {
        Ok(match text {
            "rotate-secret" => Self::RotateSecret,
            "disable" => Self::Disable,
            "enable" => Self::Enable,
            "revoke-tokens" => Self::RevokeTokens,
            "delete" => Self::Delete,
            _ => return Err(ConsoleError::NotFound),
        })
    }
}

/// `GET /console/operator/clients/{id}/{action}`: says what will happen and asks.
pub async fn get_client_action(
    state: web::Data<AppState>,
    person: Person,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let (id, action_text) = path.into_inner();
    let action = ClientAction::parse(&action_text)?;
    let client = find(&state, id).await?;
    let name = &client.name;
    let (heading, message, button, danger) = match action {
        ClientAction::RotateSecret => (
            format!("Rotate the secret of \u{201c}{name}\u{201d}?"),
            "A new secret is made and shown once. The old secret keeps working for the time you \
             choose, so that every holder can switch; tokens issued so far are revoked."
                .to_owned(),
            "Rotate secret",
            false,
        ),
        ClientAction::Disable => (
            format!("Disable \u{201c}{name}\u{201d}?"),
            "The client gets no more tokens, and every token it holds is revoked at once. \
             Enabling it later does not bring those tokens back."
                .to_owned(),
            "Disable client",
            true,
        ),
        ClientAction::Enable => (
            format!("Enable \u{201c}{name}\u{201d}?"),
            "The client can get tokens again with its current secret.".to_owned(),
            "Enable client",
            false,
        ),
        ClientAction::RevokeTokens => (
            format!("Revoke every token of \u{201c}{name}\u{201d}?"),
            "Every token issued to this client until now stops working at once. The client \
             can get new tokens with its secret."
                .to_owned(),
            "Revoke all tokens",
            true,
        ),
        ClientAction::Delete => (
            format!("Delete \u{201c}{name}\u{201d} permanently?"),
            format!(
                "The client {} and its settings are deleted, and its tokens stop working at \
                 once. This cannot be undone.",
                client.id
            ),
            "Delete permanently",
            true,
        ),
    };
    let mut confirm = ConfirmPage::new(
        &person,
        NAV,
        heading,
        message,
        format!("/console/operator/clients/{}/{action_text}", client.id),
        button,
        danger,
        format!("/console/operator/clients/{}", client.id),
    );
    confirm.grace = action == ClientAction::RotateSecret;
    Ok(ok_page(&confirm))
}

/// `POST /console/operator/clients/{id}/{action}`
pub async fn post_client_action(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let (id, action) = path.into_inner();
    let action = ClientAction::parse(&action)?;
    let fields = Fields::parse(&body)?;
    csrf::check(&req, &state, &person, &fields.get("csrf"))?;
    let (actor, now) = (person.actor(), state.now());
    let done = |what: &str| see_other(&format!("/console/operator/clients/{id}?done={what}"));
    match action {
        ClientAction::RotateSecret => {
            // No silent default: a grace that does not parse would cut every holder off.
            let grace = fields.get("grace_seconds").parse::<i64>().map_err(|_| {
                ConsoleError::BadForm("Choose how long the old secret keeps working.".into())
            })?;
            let target = id.clone();
            let (view, secret) = state
                .db
                .run(move |conn| clients::rotate_secret(conn, &actor, &target, grace, now))
                .await?;
            Ok(secret_page(
                &person,
                "Secret rotated",
                view,
                secret.expose(),
            ))
        }
        ClientAction::Disable | ClientAction::Enable => {
            let disabled = action == ClientAction::Disable;
            let target = id.clone();
            state
                .db
                .run(move |conn| clients::set_disabled(conn, &actor, &target, disabled, now))
                .await?;
            Ok(done(if disabled { "disabled" } else { "enabled" }))
        }
        ClientAction::RevokeTokens => {
            let target = id.clone();
            state
                .db
                .run(move |conn| clients::revoke_tokens(conn, &actor, &target, now))
                .await?;
            Ok(done("tokens-revoked"))
        }
        ClientAction::Delete => {
            state
                .db
                .run(move |conn| clients::delete(conn, &actor, &id, now))
                .await?;
            Ok(see_other("/console/operator/clients?done=deleted"))
        }
    }
}
