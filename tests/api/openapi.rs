//! `/openapi.json` against the route table: every JSON route is described, nothing is
//! described that is not served, and no route is registered outside the table.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::Method;
use serde_json::Value;
use tollgate::http::routes::{self, Kind};

use crate::helpers::{Backend, TestApp, spawn_app};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cache = response.headers()["cache-control"].to_str().unwrap();
    assert!(cache.starts_with("public"), "{cache}");
    response.json().await.unwrap()
}

/// (METHOD, path) of every operation in the document.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                found.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    found
}

/// A concrete path for a template: each `{param}` becomes a sample value.
fn sample(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(match &rest[start + 1..end] {
            "session" => "0f8e4b6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            "handle" => "nobody",
            _ => "x1",
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The completeness check: the route table (which is what the server registers) and the
/// document list the same operations, and each one is really answered by its route.
#[tokio::test]
async fn every_json_route_is_described_and_every_description_is_served() {
    let app = spawn_app(Backend::Sqlite).await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    let described = operations(&document);
    let routed: BTreeSet<(String, String)> = routes::api_routes()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let missing: Vec<_> = routed.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json (add #[utoipa::path] to the handler and list it in \
         http::openapi::ApiDoc): {missing:?}"
    );
    let unserved: Vec<_> = described.difference(&routed).collect();
    assert!(
        unserved.is_empty(),
        "operations in /openapi.json that no route serves: {unserved:?}"
    );
    // The console's pages are left out, and only they.
    for route in routes::ROUTES.iter().filter(|r| r.kind == Kind::Page) {
        assert!(route.path.starts_with("/console"), "{route:?}");
    }
    // Each operation reaches its handler: never the fallback's 404 or 405 (unauthenticated,
    // the answers are 200, 400 or 401).
    for (method, path) in &routed {
        let response = app
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&sample(path)),
            )
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            [200, 400, 401].contains(&status),
            "{method} {path}: {status}"
        );
    }
}

/// Operation ids are unique (clients generate method names from them), every operation has
/// a tag and answers, and the version header's values are the server's.
#[tokio::test]
async fn operations_are_named_tagged_and_versioned() {
    let app = spawn_app(Backend::Sqlite).await;
    let document = document(&app).await;
    let mut ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap().to_owned();
            assert!(ids.insert(id.clone()), "operationId {id} is used twice");
            assert!(
                operation["tags"].as_array().is_some_and(|t| t.len() == 1),
                "{method} {path}"
            );
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["name"] == "Tollgate-Version" {
                    let schema = &parameter["schema"];
                    assert_eq!(parameter["in"], "header");
                    let listed: Vec<&str> = schema["enum"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    assert_eq!(listed, tollgate::http::accounts::SUPPORTED_VERSIONS);
                }
            }
        }
    }
}

/// Files that build routes of a listener other than the API's: the Prometheus metrics
/// (`metrics.listen`). Their routes are not served by the app that `/openapi.json` describes.
const SEPARATE_LISTENERS: &[&str] = &["src/http/observe.rs"];

/// What registers a route in actix-web (paths with handlers); a default service is not
/// a route.
const REGISTRATIONS: &[&str] = &[
    "web::resource(",
    "web::scope(",
    ".route(",
    "Resource::new(",
    "Scope::new(",
    "web::service(",
    ".service(",
    "web::get()",
    "web::post()",
    "web::put()",
    "web::patch()",
    "web::delete()",
    "web::head()",
    "web::method(",
    "#[get(",
    "#[post(",
    "#[put(",
    "#[patch(",
    "#[delete(",
    "#[route(",
    "#[routes]",
];

fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The route table is the one place routes are registered: a route added anywhere else
/// would be served without being in `ROUTES`, and so could be missing from the document
/// without the test above noticing.
#[test]
fn routes_are_registered_only_by_the_route_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 20, "found {} files", files.len());
    let table = root.join("src/http/routes.rs");
    let mut offenders = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if file == table || SEPARATE_LISTENERS.contains(&relative.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(pattern) = REGISTRATIONS.iter().find(|p| code.contains(*p)) {
                offenders.push(format!("{relative}:{}: {pattern}", number + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "register routes in src/http/routes.rs (the route table), not here: {offenders:#?}"
    );
    // The scan would notice a registration: the table itself has them.
    let table_text = std::fs::read_to_string(&table).unwrap();
    assert!(REGISTRATIONS.iter().any(|p| table_text.contains(p)));
}
