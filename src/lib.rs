//! Tollgate: an OAuth 2.0 authorization server for machine-to-machine APIs.
//!
//! Layers, dependencies pointing one way: `http` and `cli` call `service`, which uses
//! `oauth` (protocol, pure), `crypto` and `db`. Only `http` and `startup` know actix-web.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod http;
pub mod oauth;
pub mod service;
pub mod startup;
pub mod telemetry;
