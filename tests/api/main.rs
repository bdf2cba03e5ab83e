//! One integration test binary (link time on 2 cores): the real app on a random port,
//! driven over HTTP with real clients, on SQLite and on PostgreSQL.
// clippy.toml's allow-*-in-tests covers `#[test]` fns and `#[cfg(test)]` modules only; the
// helpers and the `async fn`s that `both_backends!` wraps are neither, so allow it here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod accounts;
mod admin;
mod atomicity;
mod audit;
mod browser;
mod cache_propagation;
mod cli;
mod console;
mod console_operator;
mod damaged_rows;
mod delegation;
mod deleted_meanwhile;
mod discovery;
mod instances;
mod junk;
mod limits;
mod logs;
mod migrations;
mod observability;
mod openapi;
mod outage;
mod readme;
mod revocation;
mod signing_keys;
mod surface;
mod token;
mod verifier;
