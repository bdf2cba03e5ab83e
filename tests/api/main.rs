//! One integration test binary (link time on 2 cores): the real app on a random port,
//! driven over HTTP with real clients, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod accounts;
mod admin;
mod cli;
mod discovery;
mod instances;
mod migrations;
mod revocation;
mod token;
mod verifier;
