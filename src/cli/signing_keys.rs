//! `tollgate signing-key …`: the keys that sign access tokens.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{now, print_json};
use crate::config::Settings;
use crate::crypto::signer::SigningAlgorithm;
use crate::db::DbConn;
use crate::domain::KeyState;
use crate::service::audit::Actor;
use crate::service::signing_keys;
use crate::startup::load_master_key;

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// List signing keys with their state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Generate a new signing key and make it active; the old one stays published until
    /// its tokens have expired.
    Rotate {
        /// ES256 or EdDSA (default: signing.algorithm).
        #[arg(long)]
        algorithm: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Import a PEM private key (PKCS#8, or PKCS#1 for RSA) and make it active.
    Import {
        #[arg(long, value_name = "FILE")]
        pem: PathBuf,
        /// RS256, ES256 or EdDSA.
        #[arg(long)]
        algorithm: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(
    conn: &mut DbConn,
    settings: &Settings,
    command: SigningKeyCommand,
) -> anyhow::Result<()> {
    let grace = settings.token_policy().retired_key_grace();
    let parse_algorithm = |text: &str| {
        SigningAlgorithm::parse(text)
            .ok_or_else(|| anyhow::anyhow!("unknown algorithm {text:?}: use ES256, EdDSA or RS256"))
    };
    let (view, json) = match command {
        SigningKeyCommand::List { json } => {
            let keys = signing_keys::list(conn, now())?;
            if json {
                print_json(&keys)?;
            } else {
                println!(
                    "{:<44} {:<6} {:<8} {:<26} PUBLISHED UNTIL",
                    "KID", "ALG", "STATE", "CREATED"
                );
                for k in &keys {
                    println!(
                        "{:<44} {:<6} {:<8} {:<26} {}",
                        k.kid,
                        k.algorithm,
                        k.state,
                        k.created_at.to_rfc3339(),
                        match k.publish_until {
                            _ if k.state == KeyState::Active.as_str() => "(active)".to_owned(),
                            Some(t) => t.to_rfc3339(),
                            None => "-".to_owned(),
                        }
                    );
                }
            }
            return Ok(());
        }
        SigningKeyCommand::Rotate { algorithm, json } => {
            let algorithm = match algorithm {
                Some(text) => parse_algorithm(&text)?,
                None => settings.signing_algorithm,
            };
            let master = load_master_key(&settings.master_key)?;
            (
                signing_keys::rotate(conn, &Actor::cli(), &master, algorithm, grace, now())?,
                json,
            )
        }
        SigningKeyCommand::Import {
            pem,
            algorithm,
            json,
        } => {
            let algorithm = parse_algorithm(&algorithm)?;
            let text = std::fs::read_to_string(&pem)
                .with_context(|| format!("cannot read {}", pem.display()))?;
            let master = load_master_key(&settings.master_key)?;
            (
                signing_keys::import_pem(
                    conn,
                    &Actor::cli(),
                    &master,
                    algorithm,
                    &text,
                    grace,
                    now(),
                )?,
                json,
            )
        }
    };
    if json {
        print_json(&view)?;
    } else {
        println!("active signing key: {} ({})", view.kid, view.algorithm);
        println!(
            "The previous key stays published for {grace}s so tokens it signed keep verifying; \
             running servers switch within {} ms.",
            settings.key_refresh.as_millis()
        );
    }
    Ok(())
}
