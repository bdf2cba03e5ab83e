//! `tollgate signing-key …`: the keys that sign access tokens.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{master_key, now, print_json};
use crate::config::Settings;
use crate::crypto::signer::SigningAlgorithm;
use crate::db::DbConn;
use crate::domain::KeyState;
use crate::service::audit::Actor;
use crate::service::signing_keys;

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// List the signing keys with their state (next, active, retired) and dates.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rotate the signing keys now.
    ///
    /// The published `next` key becomes active, the active
    /// key retires (still published for tokens.max_ttl_seconds + 60 s, so the tokens it
    /// signed keep verifying), and a new `next` key is published; with no `next` key to
    /// promote, one is only published. A new key never signs before it was published,
    /// unless --immediately is given. Writes nothing if the master key does not open the
    /// stored keys.
    Rotate {
        /// Algorithm of the new key: ES256 or EdDSA (default: signing.algorithm). Without
        /// --immediately that is the new `next` key, so a change of algorithm signs from
        /// the rotation after this one.
        #[arg(long, value_name = "ALG", value_parser = ["ES256", "EdDSA"])]
        algorithm: Option<String>,
        /// Make a new, unannounced key active at once instead of promoting the published
        /// `next` key (which stays if it is of the same algorithm); resource servers that
        /// cached the JWKS refetch it on the unknown `kid`.
        #[arg(long)]
        immediately: bool,
        /// Print the new key (the active one, or the `next` one when only that was
        /// published) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import a PEM private key as the `next` key.
    ///
    /// The key (PKCS#8, or PKCS#1 for RSA) is published now and signs from the next
    /// rotation (it replaces a pending `next` key), or at once with --immediately. The
    /// way to sign with RS256, whose keys Tollgate cannot generate.
    Import {
        /// The PEM file holding the private key.
        #[arg(long, value_name = "FILE")]
        pem: PathBuf,
        /// The key's algorithm: RS256, ES256 or EdDSA.
        #[arg(long, value_name = "ALG", value_parser = ["RS256", "ES256", "EdDSA"])]
        algorithm: String,
        /// Make the imported key active at once instead.
        #[arg(long)]
        immediately: bool,
        /// Print the imported key as JSON.
        #[arg(long)]
        json: bool,
    },
}

impl SigningKeyCommand {
    /// Whether the command writes to the database.
    pub fn mutates(&self) -> bool {
        !matches!(self, Self::List { .. })
    }
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
        SigningKeyCommand::Rotate {
            algorithm,
            immediately,
            json,
        } => {
            let algorithm = match algorithm {
                Some(text) => parse_algorithm(&text)?,
                None => settings.signing_algorithm,
            };
            let master = master_key(conn, settings)?;
            (
                signing_keys::rotate(
                    conn,
                    &Actor::cli(),
                    &master,
                    algorithm,
                    grace,
                    now(),
                    activation(immediately),
                )?,
                json,
            )
        }
        SigningKeyCommand::Import {
            pem,
            algorithm,
            immediately,
            json,
        } => {
            let algorithm = parse_algorithm(&algorithm)?;
            let text = std::fs::read_to_string(&pem)
                .with_context(|| format!("cannot read {}", pem.display()))?;
            let master = master_key(conn, settings)?;
            (
                signing_keys::import_pem(
                    conn,
                    &Actor::cli(),
                    &master,
                    algorithm,
                    &text,
                    grace,
                    now(),
                    activation(immediately),
                )?,
                json,
            )
        }
    };
    if json {
        print_json(&view)?;
    } else if view.state == KeyState::Next.as_str() {
        println!(
            "next signing key: {} ({}), published now; it signs from the next rotation",
            view.kid, view.algorithm
        );
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

fn activation(immediately: bool) -> signing_keys::Activation {
    if immediately {
        signing_keys::Activation::Immediately
    } else {
        signing_keys::Activation::PrePublished
    }
}
