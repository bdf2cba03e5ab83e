//! The benchmarks' HTTP helper, with the seeder's credential files (see `tollgate-seed`):
//!
//! - `tokens`: fetches access tokens (client credentials) for the introspection load;
//! - `propagation`: how long a change made through one instance takes to hold on the
//!   others, over many trials, with millisecond resolution:
//!   - `revocation`: a token is revoked (RFC 7009) on the origin; each observer is polled
//!     with introspection (RFC 7662) until it says `active: false`;
//!   - `disable`: a client is disabled through the origin's admin API; each observer is
//!     polled with a client-credentials request until it answers `invalid_client`.
//!
//!   Before each change every observer is asked until it accepts (so a cache there is
//!   warm for that token or client). Then, per observer and from the origin's answer to
//!   the change: `seen`, when the first poll that saw the change was sent, and `stale`,
//!   when the last poll still answered as before it was sent (the window in which the
//!   change was not in force). A trial counts its slowest observer. Polls follow each
//!   other `--poll-interval-ms` apart; a `503` or `429` answer is counted and polled again
//!   (it neither shows the change nor contradicts it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, Subcommand, ValueEnum};
use reqwest::StatusCode;
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(about = "Token fetching and propagation trials for the Tollgate benchmarks")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch `--count` access tokens, round robin over the clients of `--clients`, one
    /// per line to `--out`.
    Tokens {
        #[arg(long)]
        url: String,
        /// `clients.tsv` from the seeder.
        #[arg(long)]
        clients: PathBuf,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Measure how long revocations and client disables take to reach other instances.
    Propagation {
        /// The instance the changes are made on.
        #[arg(long)]
        origin: String,
        /// An instance that must see them (repeatable).
        #[arg(long = "observer", required = true)]
        observers: Vec<String>,
        /// The seeder's output directory (`clients.tsv`, `roles.tsv`).
        #[arg(long)]
        seed: PathBuf,
        #[arg(long, default_value_t = 100)]
        trials: usize,
        #[arg(long, value_enum, default_value_t = Kind::Both)]
        kind: Kind,
        /// A trial whose change is not seen by then fails.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        #[arg(long, default_value_t = 1)]
        poll_interval_ms: u64,
        /// Printed in the result lines, e.g. "idle" or "under load".
        #[arg(long, default_value = "idle")]
        label: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Revocation,
    Disable,
    Both,
}

/// One line of the seeder's `clients.tsv` or `roles.tsv`.
#[derive(Debug, Clone)]
struct Credentials {
    id: String,
    secret: String,
}

fn read_credentials(path: &Path, role: Option<&str>) -> anyhow::Result<Vec<Credentials>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut fields = line.split('\t');
        if let Some(role) = role
            && fields.next() != Some(role)
        {
            continue;
        }
        match (fields.next(), fields.next()) {
            (Some(id), Some(secret)) => found.push(Credentials {
                id: id.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => bail!("{}: malformed line", path.display()),
        }
    }
    ensure!(!found.is_empty(), "{}: no credentials", path.display());
    Ok(found)
}

/// How long after a change was acknowledged an observer saw it: the first poll that saw
/// it (`seen`), and the last poll still answered as before it (`stale`; `None` if even the
/// first poll saw it). Transient answers count for neither: `stale` is the window in which
/// the change was not in force, `seen - stale` at most one poll plus transient answers.
#[derive(Debug, Clone, Copy, Default)]
struct Delay {
    seen: Duration,
    stale: Option<Duration>,
}

/// A request's answer that says nothing about the change: the instance is overloaded
/// (`503 temporarily_unavailable`: pool exhausted, database breaker open) or throttling
/// (`429`). Polls count it and ask again; setup steps retry it.
fn transient(status: StatusCode) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
}

#[derive(Clone)]
struct Prober {
    http: reqwest::Client,
    timeout: Duration,
    poll_interval: Duration,
    /// Transient answers met, over all requests.
    transient: Arc<AtomicUsize>,
}

impl Prober {
    fn new(timeout: Duration, poll_interval: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            timeout,
            poll_interval,
            transient: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn transient_count(&self) -> usize {
        self.transient.load(Ordering::Relaxed)
    }

    /// Sends `request` (built anew each time) until its answer is not transient, for at
    /// most the trial timeout: the status and the JSON body.
    async fn send(
        &self,
        what: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let started = Instant::now();
        loop {
            let (status, body) = self.send_once(what, request()).await?;
            if !transient(status) || started.elapsed() > self.timeout {
                return Ok((status, body));
            }
            self.transient.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn send_once(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let response = request.send().await.with_context(|| what.to_owned())?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    fn token_request(&self, base: &str, client: &Credentials) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{base}/oauth/token"))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("grant_type", "client_credentials")])
    }

    fn introspection_request(
        &self,
        base: &str,
        caller: &Credentials,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{base}/oauth/introspect"))
            .basic_auth(&caller.id, Some(&caller.secret))
            .form(&[("token", token)])
    }

    async fn access_token(&self, base: &str, client: &Credentials) -> anyhow::Result<String> {
        let what = format!("POST {base}/oauth/token");
        let (status, body) = self
            .send(&what, || self.token_request(base, client))
            .await?;
        match body.get("access_token").and_then(Value::as_str) {
            Some(token) if status == StatusCode::OK => Ok(token.to_owned()),
            _ => bail!("{what}: {status} {body}"),
        }
    }

    /// RFC 7662 `active` as `base` sees it (`None`: a transient answer).
    async fn active_once(
        &self,
        base: &str,
        caller: &Credentials,
        token: &str,
    ) -> anyhow::Result<Option<bool>> {
        let what = format!("POST {base}/oauth/introspect");
        let request = self.introspection_request(base, caller, token);
        let (status, body) = self.send_once(&what, request).await?;
        if transient(status) {
            self.transient.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        match body.get("active").and_then(Value::as_bool) {
            Some(active) if status == StatusCode::OK => Ok(Some(active)),
            _ => bail!("{what}: {status} {body}"),
        }
    }

    /// Whether `base` still issues tokens to `client` (`Some(false)` once it answers
    /// `invalid_client`; `None`: a transient answer). Any other refusal is an error.
    async fn accepts_once(&self, base: &str, client: &Credentials) -> anyhow::Result<Option<bool>> {
        let what = format!("POST {base}/oauth/token");
        let (status, body) = self
            .send_once(&what, self.token_request(base, client))
            .await?;
        if transient(status) {
            self.transient.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        if status == StatusCode::OK {
            return Ok(Some(true));
        }
        if status == StatusCode::UNAUTHORIZED
            && body.get("error").and_then(Value::as_str) == Some("invalid_client")
        {
            return Ok(Some(false));
        }
        bail!("{what}: {status} {body}")
    }

    /// Polls `check` on `base` until it answers `Some(wanted)`, a transient answer counting
    /// as not yet.
    async fn wait_for<F, Fut>(
        &self,
        base: &str,
        since: Instant,
        wanted: bool,
        check: F,
    ) -> anyhow::Result<Delay>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = anyhow::Result<Option<bool>>>,
    {
        let mut stale = None;
        loop {
            let sent = Instant::now();
            match check().await? {
                Some(answer) if answer == wanted => {
                    return Ok(Delay {
                        seen: sent.saturating_duration_since(since),
                        stale,
                    });
                }
                Some(_) => stale = Some(sent.saturating_duration_since(since)),
                None => {}
            }
            if sent.duration_since(since) > self.timeout {
                bail!(
                    "{base} did not answer as expected within {} ms",
                    self.timeout.as_millis()
                );
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// Every observer at once, each polled with `check` until `wanted`: the slowest.
    async fn slowest<F, Fut>(
        &self,
        observers: &[String],
        since: Instant,
        wanted: bool,
        check: F,
    ) -> anyhow::Result<Delay>
    where
        F: Fn(Prober, String) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Option<bool>>> + Send + 'static,
    {
        let mut waits = tokio::task::JoinSet::new();
        for base in observers {
            let (prober, base, check) = (self.clone(), base.clone(), check.clone());
            waits.spawn(async move {
                prober
                    .wait_for(&base, since, wanted, || check(prober.clone(), base.clone()))
                    .await
            });
        }
        let mut slowest = Delay::default();
        while let Some(delay) = waits.join_next().await {
            let delay = delay.context("an observer's poll panicked")??;
            slowest.seen = slowest.seen.max(delay.seen);
            slowest.stale = slowest.stale.max(delay.stale);
        }
        Ok(slowest)
    }

    async fn revocation_trial(
        &self,
        origin: &str,
        observers: &[String],
        client: &Credentials,
        introspector: &Credentials,
    ) -> anyhow::Result<Delay> {
        let token = self.access_token(origin, client).await?;
        let (introspector, shared) = (introspector.clone(), Arc::<str>::from(token.as_str()));
        let check = move |prober: Prober, base: String| {
            let (introspector, token) = (introspector.clone(), shared.clone());
            async move { prober.active_once(&base, &introspector, &token).await }
        };
        // Every observer accepts the token first (a cache there now holds it).
        self.slowest(observers, Instant::now(), true, check.clone())
            .await
            .context("a fresh token is not active everywhere")?;
        let what = format!("POST {origin}/oauth/revoke");
        let (status, _) = self
            .send(&what, || {
                self.http
                    .post(format!("{origin}/oauth/revoke"))
                    .basic_auth(&client.id, Some(&client.secret))
                    .form(&[("token", token.as_str())])
            })
            .await?;
        let acknowledged = Instant::now();
        ensure!(status == StatusCode::OK, "{what}: {status}");
        self.slowest(observers, acknowledged, false, check).await
    }

    async fn disable_trial(
        &self,
        origin: &str,
        observers: &[String],
        admin_token: &str,
        trial: usize,
    ) -> anyhow::Result<Delay> {
        let what = format!("POST {origin}/admin/clients");
        let (status, body) = self
            .send(&what, || {
                self.http
                    .post(format!("{origin}/admin/clients"))
                    .bearer_auth(admin_token)
                    .json(&serde_json::json!({"name": format!("probe-{trial}"), "scopes": "read"}))
            })
            .await?;
        let client = match (
            body.get("client_id").and_then(Value::as_str),
            body.get("client_secret").and_then(Value::as_str),
        ) {
            (Some(id), Some(secret)) if status == StatusCode::CREATED => Credentials {
                id: id.to_owned(),
                secret: secret.to_owned(),
            },
            _ => bail!("{what}: {status}"),
        };
        let id = client.id.clone();
        let check = move |prober: Prober, base: String| {
            let client = client.clone();
            async move { prober.accepts_once(&base, &client).await }
        };
        // Every observer accepts the new client first (a cache there now holds it).
        self.slowest(observers, Instant::now(), true, check.clone())
            .await
            .context("a new client is not accepted everywhere")?;
        let what = format!("POST {origin}/admin/clients/{id}/disable");
        let (status, _) = self
            .send(&what, || {
                self.http
                    .post(format!("{origin}/admin/clients/{id}/disable"))
                    .bearer_auth(admin_token)
            })
            .await?;
        let acknowledged = Instant::now();
        ensure!(status == StatusCode::OK, "{what}: {status}");
        self.slowest(observers, acknowledged, false, check).await
    }
}

/// p50, p90, p99 and max in milliseconds, nearest rank.
/// One result line: percentiles (nearest rank) of `seen` and the largest `stale`, in
/// milliseconds; `failed` trials are not in `delays`, `transient` answers were retried.
fn summary(
    kind: &str,
    label: &str,
    observers: usize,
    delays: &[Delay],
    failed: usize,
    transient: usize,
) -> String {
    let mut seen: Vec<Duration> = delays.iter().map(|d| d.seen).collect();
    seen.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rank = |p: f64| {
        let index = ((p / 100.0) * seen.len() as f64).ceil() as usize;
        seen.get(index.saturating_sub(1).min(seen.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| ms(*d))
    };
    let stale = delays.iter().filter_map(|d| d.stale).max();
    format!(
        "PROPAGATION kind={kind} label={} observers={observers} trials={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} stale_max_ms={} stale_trials={} failed={failed} transient={transient}",
        label.replace(' ', "_"),
        delays.len(),
        rank(50.0),
        rank(90.0),
        rank(99.0),
        rank(100.0),
        stale.map_or_else(|| "none".to_owned(), |d| format!("{:.2}", ms(d))),
        delays.iter().filter(|d| d.stale.is_some()).count(),
    )
}

async fn fetch_tokens(url: &str, clients: &Path, count: usize, out: &Path) -> anyhow::Result<()> {
    let clients = read_credentials(clients, None)?;
    let prober = Prober::new(Duration::from_secs(5), Duration::ZERO)?;
    let mut lines = String::with_capacity(count * 600);
    for client in clients.iter().cycle().take(count) {
        lines.push_str(&prober.access_token(url, client).await?);
        lines.push('\n');
    }
    std::fs::write(out, lines).with_context(|| format!("cannot write {}", out.display()))
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call from main with the parsed flags"
)]
async fn propagation(
    origin: &str,
    observers: &[String],
    seed: &Path,
    trials: usize,
    kind: Kind,
    timeout: Duration,
    poll_interval: Duration,
    label: &str,
) -> anyhow::Result<()> {
    let prober = Prober::new(timeout, poll_interval)?;
    let roles = seed.join("roles.tsv");
    let introspector = read_credentials(&roles, Some("introspector"))?.swap_remove(0);
    let admin = read_credentials(&roles, Some("admin"))?.swap_remove(0);
    let clients = read_credentials(&seed.join("clients.tsv"), None)?;
    let mut failed_in_all = 0;
    if matches!(kind, Kind::Revocation | Kind::Both) {
        let (mut delays, mut failed) = (Vec::with_capacity(trials), 0);
        let transient_before = prober.transient_count();
        for client in clients.iter().cycle().take(trials) {
            match prober
                .revocation_trial(origin, observers, client, &introspector)
                .await
            {
                Ok(delay) => delays.push(delay),
                Err(err) => {
                    eprintln!("revocation trial failed: {err:#}");
                    failed += 1;
                }
            }
        }
        let transient = prober.transient_count() - transient_before;
        let line = summary(
            "revocation",
            label,
            observers.len(),
            &delays,
            failed,
            transient,
        );
        println!("{line}");
        failed_in_all += failed;
    }
    if matches!(kind, Kind::Disable | Kind::Both) {
        let admin_token = prober.access_token(origin, &admin).await?;
        let (mut delays, mut failed) = (Vec::with_capacity(trials), 0);
        let transient_before = prober.transient_count();
        for trial in 0..trials {
            match prober
                .disable_trial(origin, observers, &admin_token, trial)
                .await
            {
                Ok(delay) => delays.push(delay),
                Err(err) => {
                    eprintln!("disable trial failed: {err:#}");
                    failed += 1;
                }
            }
        }
        let transient = prober.transient_count() - transient_before;
        let line = summary(
            "disable",
            label,
            observers.len(),
            &delays,
            failed,
            transient,
        );
        println!("{line}");
        failed_in_all += failed;
    }
    ensure!(failed_in_all == 0, "{failed_in_all} trials failed");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match args.command {
            Command::Tokens {
                url,
                clients,
                count,
                out,
            } => fetch_tokens(&url, &clients, count, &out).await,
            Command::Propagation {
                origin,
                observers,
                seed,
                trials,
                kind,
                timeout_ms,
                poll_interval_ms,
                label,
            } => {
                propagation(
                    &origin,
                    &observers,
                    &seed,
                    trials,
                    kind,
                    Duration::from_millis(timeout_ms),
                    Duration::from_millis(poll_interval_ms),
                    &label,
                )
                .await
            }
        }
    })
}
