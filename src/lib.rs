//! Tollgate: an OAuth 2.0 authorization server for machine-to-machine APIs.
//!
//! Layers, dependencies pointing one way:
//!
//! - `startup` builds the server from `config`, `app` and `http`; `cli` (and `main`) call
//!   `startup` or the services directly;
//! - `http` (the only module that names actix-web) parses requests, calls `service` and
//!   renders, mapping every error in `http::error`;
//! - `app` holds the shared state, the clock and the background maintenance;
//! - `service` holds the use cases, as synchronous functions over a connection;
//! - `db` stores and loads `domain` values (rows stay inside it);
//! - `domain`, `oauth` (protocol, pure) and `crypto` are the leaves.

pub mod app;
pub mod cache;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod http;
pub mod oauth;
pub mod service;
pub mod startup;
pub mod telemetry;
