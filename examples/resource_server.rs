//! A tiny API protected by Tollgate access tokens, using `tollgate_verify` (with its `actix` feature).
//!
//! ```sh
//! cargo run --release &                          # Tollgate on 127.0.0.1:8080
//! TOLLGATE_ISSUER=http://127.0.0.1:8080 cargo run --example resource_server
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9000/reports
//! ```
//!
//! Environment: `TOLLGATE_ISSUER` (required), `RESOURCE_AUDIENCE` (default: the issuer,
//! Tollgate's default audience), `BIND` (default 127.0.0.1:9000), and optionally
//! `INTROSPECT_CLIENT_ID` / `INTROSPECT_CLIENT_SECRET` (a client with the `introspect`
//! scope) to see revocations at once on `DELETE /reports`.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;
use tollgate_verify::actix::{Authenticated, RequireScope};
use tollgate_verify::{Verifier, VerifierConfig};

/// Who is calling: any valid token, no scope needed.
async fn whoami(token: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({"client_id": token.client_id, "scopes": token.scopes}))
}

async fn list_reports(token: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({"reports": ["q3.pdf", "q4.pdf"], "for": token.client_id}))
}

async fn create_report(token: Authenticated) -> HttpResponse {
    HttpResponse::Created().json(json!({"created_by": token.client_id}))
}

/// `/reports`: GET needs `read`, POST needs `write`; DELETE needs `admin:reports` and, when
/// an introspecting verifier is given, a token that is not revoked.
pub fn build(
    listener: TcpListener,
    verifier: Verifier,
    introspecting: Option<Verifier>,
) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        let strict = introspecting.clone().unwrap_or_else(|| verifier.clone());
        App::new()
            .app_data(web::Data::new(verifier.clone()))
            .route(
                "/health",
                web::get().to(|| async { HttpResponse::Ok().body("ok") }),
            )
            .route("/whoami", web::get().to(whoami))
            .service(
                web::scope("/reports").service(
                    web::resource("")
                        .route(
                            web::get()
                                .to(list_reports)
                                .wrap(RequireScope::new(verifier.clone(), &["read"])),
                        )
                        .route(
                            web::post()
                                .to(create_report)
                                .wrap(RequireScope::new(verifier.clone(), &["write"])),
                        )
                        .route(
                            web::delete()
                                .to(|| async { HttpResponse::NoContent().finish() })
                                .wrap(RequireScope::new(strict, &["admin:reports"])),
                        ),
                ),
            )
    })
    .workers(1)
    .listen(listener)?
    .run();
    Ok(server)
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let issuer = std::env::var("TOLLGATE_ISSUER")
        .map_err(|_| anyhow::anyhow!("set TOLLGATE_ISSUER, e.g. http://127.0.0.1:8080"))?;
    let audience = std::env::var("RESOURCE_AUDIENCE").unwrap_or_else(|_| issuer.clone());
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let config = VerifierConfig::new(&issuer, &audience);
    let verifier = Verifier::discover(config.clone()).await?;
    let introspecting = match (
        std::env::var("INTROSPECT_CLIENT_ID"),
        std::env::var("INTROSPECT_CLIENT_SECRET"),
    ) {
        (Ok(id), Ok(secret)) => {
            Some(Verifier::discover(config.with_introspection(id, secret)).await?)
        }
        _ => None,
    };
    let listener = TcpListener::bind(&bind)?;
    println!("resource server on http://{bind}, trusting tokens from {issuer} for {audience}");
    build(listener, verifier, introspecting)?.await?;
    Ok(())
}
