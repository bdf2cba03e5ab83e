//! Fills a Tollgate database for the benchmarks: `--clients` OAuth clients, `--accounts`
//! accounts holding `--keys` API keys between them, plus an introspecting client and an
//! operator client, all through Tollgate's own service functions (so digests, audit
//! events and every row are exactly what the CLI would write), in one transaction.
//!
//! The credentials go to files in `--out` (mode 0600), for the load generator and the
//! prober, and nowhere else:
//! - `clients.tsv`: `client_id`, secret, `Basic …` header value, tab-separated;
//! - `api_keys.txt`: one API key per line;
//! - `roles.tsv`: `introspector` and `admin`, then the same three columns.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use tollgate::db::{self, Db, DbUrl};
use tollgate::oauth::{GRANT_TOKEN_EXCHANGE, Scope};
use tollgate::service::accounts::{self, NewAccount};
use tollgate::service::api_keys::{self, KeySpec};
use tollgate::service::audit::Actor;
use tollgate::service::clients::{self, ClientSpec};

#[derive(Debug, Parser)]
#[command(about = "Create clients, accounts and API keys for the benchmarks")]
struct Args {
    /// sqlite://PATH or postgres://… (migrations are applied first).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Directory for the credential files (created, mode 0700).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    #[arg(long, default_value_t = 10_000)]
    accounts: usize,
    /// API keys, spread evenly over the accounts.
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn private_file(dir: &Path, name: &str) -> anyhow::Result<BufWriter<File>> {
    let path = dir.join(name);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::new(file))
}

/// One `id<TAB>secret<TAB>Basic …` line (RFC 6749 §2.3.1; ids and secrets are URL-safe,
/// so form-encoding leaves them as they are).
fn credential_line(id: &str, secret: &str) -> String {
    let basic = STANDARD.encode(format!("{id}:{secret}"));
    format!("{id}\t{secret}\tBasic {basic}\n")
}

fn scope(text: &str) -> anyhow::Result<Scope> {
    Scope::parse(text).map_err(|e| anyhow::anyhow!("invalid scope {text:?}: {}", e.0))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.accounts > 0 || args.keys == 0, "keys need accounts");
    let url = DbUrl::parse(&args.database_url).map_err(|e| anyhow::anyhow!(e))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut conn = Db::connect_one(&url).with_context(|| format!("cannot open {url:?}"))?;
    db::run_migrations(&mut conn).context("cannot migrate the database")?;

    let started = Instant::now();
    let (actor, now) = (Actor::cli(), now());
    let (read_write, introspect, admin) =
        (scope("read write")?, scope("introspect")?, scope("admin")?);
    let mut client_lines = String::with_capacity(args.clients * 140);
    let mut role_lines = String::new();
    let mut key_lines = String::with_capacity(args.keys * 60);
    db::transaction(&mut conn, |conn| -> anyhow::Result<()> {
        for i in 0..args.clients {
            let spec = ClientSpec {
                name: format!("bench-{i}"),
                scopes: read_write.clone(),
                audiences: vec![],
                token_ttl: None,
                grant_types: vec!["client_credentials".into(), GRANT_TOKEN_EXCHANGE.into()],
            };
            let (view, secret) = clients::create(conn, &actor, &spec, now)?;
            client_lines.push_str(&credential_line(&view.client_id, secret.expose()));
        }
        for (role, scopes) in [("introspector", &introspect), ("admin", &admin)] {
            let spec = ClientSpec {
                name: format!("bench-{role}"),
                scopes: scopes.clone(),
                audiences: vec![],
                token_ttl: None,
                grant_types: vec![],
            };
            let (view, secret) = clients::create(conn, &actor, &spec, now)?;
            role_lines.push_str(role);
            role_lines.push('\t');
            role_lines.push_str(&credential_line(&view.client_id, secret.expose()));
        }
        for a in 0..args.accounts {
            // Keys spread evenly: the first `keys % accounts` accounts hold one more.
            let count = args.keys / args.accounts + usize::from(a < args.keys % args.accounts);
            let handle = format!("bench{a}");
            let new = NewAccount {
                handle: &handle,
                display_name: None,
                scopes: &read_write,
                operator: false,
            };
            accounts::create(conn, &actor, &new, now)?;
            let account = accounts::by_handle(conn, &handle)?;
            for k in 0..count {
                let spec = KeySpec {
                    name: format!("key-{k}"),
                    scopes: None,
                    expires_in: None,
                };
                let (_, secret) = api_keys::create(conn, &actor, &account, &spec, now)?;
                key_lines.push_str(secret.expose());
                key_lines.push('\n');
            }
        }
        Ok(())
    })?;
    let elapsed = started.elapsed();

    for (name, text) in [
        ("clients.tsv", &client_lines),
        ("roles.tsv", &role_lines),
        ("api_keys.txt", &key_lines),
    ] {
        let mut file = private_file(&args.out, name)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.flush())
            .with_context(|| format!("cannot write {name}"))?;
    }
    println!(
        "seeded {} clients (+2), {} accounts, {} API keys in {:.1} s",
        args.clients,
        args.accounts,
        args.keys,
        elapsed.as_secs_f64()
    );
    Ok(())
}
