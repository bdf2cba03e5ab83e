//! The audit trail: newest first, filtered by account, client, action and time, paged by
//! the last event's `seq` ("older" link), so that new events do not shift the pages.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;

use crate::app::AppState;
use crate::http::console::error::ConsoleError;
use crate::http::console::session::Person;
use crate::http::console::{Chrome, human_time, page};
use crate::service::audit::{self, AuditError, AuditQuery, AuditView};

const NAV: &str = "audit";
const NO_SUCH_ACCOUNT: &str = "No account has this handle.";
/// Events per page.
const PAGE_SIZE: i64 = 50;

/// Actions the filter suggests (it takes any).
const KNOWN_ACTIONS: &[&str] = &[
    "account.created",
    "account.deleted",
    "account.demoted",
    "account.disabled",
    "account.enabled",
    "account.invited",
    "account.password_changed",
    "account.password_set",
    "account.promoted",
    "account.second_factor_disabled",
    "account.second_factor_enabled",
    "api_key.created",
    "api_key.deleted",
    "api_key.first_used",
    "api_key.regenerated",
    "api_key.revoked",
    "challenge.approved",
    "challenge.blocked",
    "challenge.created",
    "challenge.denied",
    "challenge.expired",
    "challenge.failed",
    "challenge.owner_approved",
    "client.created",
    "client.deleted",
    "client.disabled",
    "client.enabled",
    "client.secret_rotated",
    "client.tokens_revoked",
    "client.updated",
    "console.signed_in",
    "console.signed_out",
    "signing_key.imported",
    "signing_key.rotated",
];

#[derive(Deserialize, Default)]
pub struct AuditFilterQuery {
    #[serde(default)]
    account: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: Option<i64>,
}

pub struct EventRow {
    when: String,
    when_iso: String,
    action: String,
    actor: String,
    account: Option<String>,
    client: Option<String>,
    subject: Option<String>,
    details: Option<String>,
}

#[derive(Template)]
#[template(path = "console/operator/audit.html")]
struct AuditPage {
    chrome: Chrome,
    filter: AuditFilterQuery,
    account_error: Option<String>,
    from_error: Option<String>,
    to_error: Option<String>,
    known_actions: &'static [&'static str],
    events: Vec<EventRow>,
    /// The link to the next older page, when there is one.
    older: Option<String>,
    /// The link back to the newest events, when this is not the first page.
    newest: Option<String>,
}

/// `YYYY-MM-DDTHH:MM[:SS]` (what a `datetime-local` input sends) or `YYYY-MM-DD`, in UTC.
fn parse_time(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        });
    parsed
        .map(|t| Some(t.and_utc().timestamp()))
        .ok_or_else(|| "Use a date and time like 2026-12-02T06:30 (UTC).".to_owned())
}

fn non_empty(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// The query string of this filter, optionally at another page.
fn link(filter: &AuditFilterQuery, before: Option<i64>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("account", &filter.account),
        ("client", &filter.client),
        ("action", &filter.action),
        ("from", &filter.from),
        ("to", &filter.to),
    ] {
        if !value.trim().is_empty() {
            query.append_pair(name, value.trim());
        }
    }
    if let Some(before) = before {
        query.append_pair("before", &before.to_string());
    }
    match query.finish() {
        query if query.is_empty() => "/console/operator/audit".to_owned(),
        query => format!("/console/operator/audit?{query}"),
    }
}

/// `GET /console/operator/audit?account=&client=&action=&from=&to=&before=`
pub async fn get_audit(
    state: web::Data<AppState>,
    person: Person,
    query: web::Query<AuditFilterQuery>,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let filter = query.into_inner();
    let since = parse_time(&filter.from);
    let until = parse_time(&filter.to);
    let mut page_data = AuditPage {
        chrome: Chrome::for_person(&person, "Audit trail", NAV),
        account_error: None,
        from_error: since.as_ref().err().cloned(),
        to_error: until.as_ref().err().cloned(),
        known_actions: KNOWN_ACTIONS,
        events: Vec::new(),
        older: None,
        newest: filter.before.is_some().then(|| link(&filter, None)),
        filter,
    };
    let (Ok(since), Ok(until)) = (since, until) else {
        // Every field's problem at once: also whether the account exists.
        if let Some(handle) = non_empty(&page_data.filter.account) {
            let handle = handle.to_ascii_lowercase();
            let found = state
                .db
                .run(move |conn| crate::db::accounts::by_handle(conn, &handle))
                .await?;
            if found.is_none() {
                page_data.account_error = Some(NO_SUCH_ACCOUNT.into());
            }
        }
        return Ok(page(StatusCode::BAD_REQUEST, &page_data));
    };
    let wanted = AuditQuery {
        account_handle: non_empty(&page_data.filter.account),
        client_id: non_empty(&page_data.filter.client),
        action: non_empty(&page_data.filter.action),
        since,
        until,
        before_seq: page_data.filter.before,
    };
    // One more than a page tells whether there is an older page.
    let found = state
        .db
        .run(move |conn| {
            let events = audit::search(conn, &wanted, PAGE_SIZE + 1)?;
            let handles: HashMap<String, String> = crate::db::accounts::list(conn)?
                .into_iter()
                .map(|a| (a.id, a.handle))
                .collect();
            Ok::<_, AuditError>((events, handles))
        })
        .await;
    let (mut events, handles) = match found {
        Ok(found) => found,
        Err(AuditError::UnknownAccount(_)) => {
            page_data.account_error = Some(NO_SUCH_ACCOUNT.into());
            return Ok(page(StatusCode::BAD_REQUEST, &page_data));
        }
        Err(AuditError::Store(err)) => return Err(err.into()),
    };
    if events.len() > PAGE_SIZE as usize {
        events.truncate(PAGE_SIZE as usize);
        page_data.older = events.last().map(|e| link(&page_data.filter, Some(e.seq)));
    }
    page_data.events = events.into_iter().map(|e| row(e, &handles)).collect();
    Ok(page(StatusCode::OK, &page_data))
}

fn row(event: AuditView, handles: &HashMap<String, String>) -> EventRow {
    EventRow {
        when: human_time(event.occurred_at),
        when_iso: event.occurred_at.to_rfc3339(),
        action: event.action,
        actor: event.actor,
        account: event
            .account_id
            .map(|id| handles.get(&id).cloned().unwrap_or(id)),
        client: event.client_id,
        subject: event.subject_id,
        details: (!event.details.is_null()).then(|| event.details.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::{AuditFilterQuery, link, parse_time};

    #[test]
    fn times_are_read_as_utc_in_the_forms_a_browser_sends() {
        assert_eq!(parse_time(""), Ok(None));
        assert_eq!(parse_time("2026-01-01T10:00"), Ok(Some(1_767_261_600)));
        assert_eq!(parse_time("2026-01-01T10:00:00"), Ok(Some(1_767_261_600)));
        assert_eq!(parse_time("2026-01-01"), Ok(Some(1_767_225_600)));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-13-01").is_err());
    }

    #[test]
    fn page_links_keep_the_filters_encoded() {
        let filter = AuditFilterQuery {
            account: " ana ".into(),
            action: "client.created&x=1".into(),
            ..AuditFilterQuery::default()
        };
        assert_eq!(
            link(&filter, Some(42)),
            "/console/operator/audit?account=ana&action=client.created%26x%3D1&before=42"
        );
        assert_eq!(
            link(&AuditFilterQuery::default(), None),
            "/console/operator/audit"
        );
    }
}
