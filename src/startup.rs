//! Building the application: database, migrations, master key, signing keys, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;

use crate::app::{AppState, Clock, maintenance};
use crate::config::{MasterKeySource, Settings};
use crate::crypto::sealed::MasterKey;
use crate::crypto::signer::KeyStore;
use crate::db::{self, Db};
use crate::service;

/// Opens the database, applies migrations and loads the master key: what both the server
/// and the CLI need.
pub fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    // The error names the database (or the directory or file in the way) and the cause.
    let db = Db::connect(&settings.database_url, &settings.pool)?;
    let mut conn = db.get().with_context(|| {
        format!(
            "cannot connect to the database {}",
            settings.database_url.describe()
        )
    })?;
    let applied = db::run_migrations(&mut conn).context("cannot migrate the database")?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(db)
}

/// One migrated connection for the CLI (no pool, see `Db::connect_one`).
pub fn open_connection(settings: &Settings) -> anyhow::Result<db::DbConn> {
    let mut conn = Db::connect_one(&settings.database_url)?;
    db::run_migrations(&mut conn).context("cannot migrate the database")?;
    Ok(conn)
}

/// Reads (or, for the embedded default, creates) the master key.
pub fn load_master_key(source: &MasterKeySource) -> anyhow::Result<MasterKey> {
    match source {
        MasterKeySource::Inline(text) => MasterKey::parse(text.expose_secret())
            .context("TOLLGATE_MASTER_KEY is not a valid master key"),
        MasterKeySource::Ephemeral => Ok(MasterKey::parse(&MasterKey::generate_encoded())?),
        MasterKeySource::Missing(why) => Err(anyhow::anyhow!(*why)),
        MasterKeySource::File { path, create } => {
            if !path.exists() && *create {
                write_new_key_file(path)
                    .with_context(|| format!("cannot create master key file {}", path.display()))?;
                tracing::info!(path = %path.display(), "created a new master key file (mode 0600); back it up: signing keys cannot be decrypted without it");
            }
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read master key file {} (set TOLLGATE_MASTER_KEY, TOLLGATE_MASTER_KEY_FILE or signing.master_key_file)",
                    path.display()
                )
            })?;
            MasterKey::parse(&text)
                .with_context(|| format!("{} does not hold a valid master key", path.display()))
        }
    }
}

fn write_new_key_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        db::create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(MasterKey::generate_encoded().as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

pub struct Application {
    port: u16,
    server: Server,
    /// The `/metrics` listener (`metrics.listen`): its port and server.
    metrics: Option<(u16, Server)>,
    state: Arc<AppState>,
}

impl Application {
    /// Prepares storage and keys and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// [`Application::build`] with a given clock (tests move it forward).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        tollgate_verify::jwt_provider::install();
        let prepared = {
            let (settings, now) = (settings.clone(), clock.now());
            tokio::task::spawn_blocking(move || prepare(settings, now))
                .await
                .context("start-up task failed")??
        };
        let (db, keys, master_key) = prepared;
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let bound = listener.local_addr()?;
        let port = bound.port();
        let settings = settings.with_bound_address(bound);
        tracing::info!(issuer = %settings.issuer, "listening on http://{bound}");
        let state = Arc::new(AppState::new(db, keys, master_key, settings.clone(), clock));
        let app_state = web::Data::from(state.clone());
        let metrics = match settings.metrics_listen {
            Some(address) => Some(metrics_server(address, app_state.clone())?),
            None => None,
        };
        let console_enabled = settings.console.enabled;
        let document =
            crate::http::openapi::Document::build().context("cannot build the API description")?;
        let watch = crate::http::connection::WatchSettings {
            head_timeout: settings.request_head_timeout,
            request_timeout: settings.request_timeout,
            max_per_address: settings.max_connections_per_address,
            trusted_proxies: settings.trusted_proxies.clone(),
            counts: Default::default(),
        };
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                // Request id, log identity, watchdog, body deadline, read-your-writes, JSON
                // errors, HEAD, nosniff, access log, metrics: see `http::around_routes`.
                .wrap(crate::http::around_routes::AroundRoutes)
                .configure(|cfg| {
                    let options = crate::http::routes::Options {
                        console: console_enabled,
                    };
                    crate::http::configure(cfg, options, &document);
                })
        })
        // Every connection gets a watchdog (head timeout on every request, not only the
        // first) and counts toward its address's cap; see `http::connection`.
        .on_connect(move |connection, data| {
            crate::http::connection::on_connect(&watch, connection, data)
        })
        .listen(listener)?;
        let workers = if settings.workers > 0 {
            settings.workers
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        };
        // As many blocking threads as pooled connections: more would only park on the
        // pool's lock and wake to contend for it; fewer queue in the thread pool instead.
        let blocking_threads = (settings.pool.max_size as usize).div_ceil(workers).max(1);
        // The cap is per worker in actix; at it, new connections wait in the listen backlog.
        let per_worker = settings.max_connections.div_ceil(workers).max(1);
        server = server
            .workers(workers)
            .worker_max_blocking_threads(blocking_threads)
            .max_connections(per_worker)
            .client_request_timeout(settings.request_head_timeout)
            // actix's keep-alive deadline is taken from a clock it updates every 500 ms, so
            // it can strike up to 500 ms early; the connection watchdog enforces the exact
            // idle time (and the head timeout on every request), this is only a backstop.
            .keep_alive(settings.request_head_timeout + std::time::Duration::from_millis(500));
        let server = server.disable_signals().run();
        Ok(Self {
            port,
            server,
            metrics,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the `/metrics` listener, when `metrics.listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// The issuer in effect (derived from the bound address unless configured).
    pub fn issuer(&self) -> &str {
        &self.state.policy.issuer
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The running application's state (tests wait on its change feed).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// The application's clock (tests move it forward).
    pub fn clock(&self) -> Clock {
        self.state.clock.clone()
    }

    /// Serves until the server is stopped (through its handle or a signal), running the
    /// background maintenance meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // Ends (and the view stops being trusted) when this future ends or is dropped.
        let _feed = crate::cache::feed::start(self.state.cache.clone(), &self.state.db);
        let maintenance = tokio::spawn(maintenance::run(self.state.clone()));
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let result = self.server.await;
        maintenance.abort();
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        // Keep the API key uses noted since the last flush.
        if let Err(err) = maintenance::flush_usage(&self.state).await {
            tracing::warn!(error = %err, "writing API key last-used times at shutdown failed");
        }
        result
    }

    /// Like `run_until_stopped`, and stops gracefully on SIGINT/SIGTERM.
    pub async fn run_with_signals(self) -> std::io::Result<()> {
        let handle = self.handle();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            handle.stop(true).await;
        });
        self.run_until_stopped().await
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The `/metrics` listener: one worker, nothing but `GET /metrics`.
fn metrics_server(
    address: std::net::SocketAddr,
    state: web::Data<AppState>,
) -> anyhow::Result<(u16, Server)> {
    let listener = TcpListener::bind(address)
        .with_context(|| format!("cannot listen on {address} (metrics.listen)"))?;
    let bound = listener.local_addr()?;
    tracing::info!("metrics on http://{bound}/metrics");
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(crate::http::observe::metrics_routes)
    })
    .workers(1)
    .max_connections(64)
    .listen(listener)?
    .disable_signals()
    .run();
    Ok((bound.port(), server))
}

type Prepared = (Db, KeyStore, MasterKey);

fn prepare(settings: Settings, now: i64) -> anyhow::Result<Prepared> {
    let db = open_database(&settings)?;
    let master_key = load_master_key(&settings.master_key)?;
    let policy = settings.token_policy();
    let mut conn = db.get()?;
    if let Some(created) = service::signing_keys::ensure_signing_key(
        &mut conn,
        &master_key,
        settings.signing_algorithm,
        policy.retired_key_grace(),
        now,
    )
    .context("cannot create the first signing key")?
    {
        tracing::info!(kid = %created.kid, algorithm = %created.algorithm, "generated a signing key");
    }
    let ring = service::signing_keys::load_ring(&mut conn, &master_key, now)
        .context("cannot load the signing keys")?;
    if db::clients::count(&mut conn)? == 0 {
        // Once per start, only while there is nothing to issue tokens to.
        println!(
            "Tollgate has no clients yet. Create one (its secret is shown once):\n  \
             tollgate client create --name my-service --scope \"read write\"\n\
             An operator client for the admin API: tollgate client create --name ops --scope admin"
        );
    }
    tracing::info!(
        database = %settings.database_url.describe(),
        kid = %ring.active().kid(),
        "ready"
    );
    Ok((db, KeyStore::new(ring), master_key))
}

/// Runs the server until SIGINT/SIGTERM, on an actix system over a tokio runtime (what
/// `tollgate serve` does).
pub fn serve(settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let system = actix_web::rt::System::with_tokio_rt(|| runtime);
    system.block_on(async move {
        let app = Application::build(settings).await?;
        app.run_with_signals().await.context("server failed")
    })
}
