//! Configuration, layered: built-in defaults < config file < environment < command-line flags.
//!
//! The file is `--config FILE`, else `TOLLGATE_CONFIG`, else `config/default.toml` when it
//! exists (every key is documented there). Environment variables:
//!
//! | variable              | setting                         |
//! |-----------------------|---------------------------------|
//! | `TOLLGATE_CONFIG`     | config file path                |
//! | `TOLLGATE_BIND`       | `server.bind`                   |
//! | `TOLLGATE_ISSUER`     | `server.issuer`                 |
//! | `DATABASE_URL`        | `database.url` (secret)         |
//! | `TOLLGATE_MASTER_KEY` | the master key itself (secret)  |
//! | `TOLLGATE_MASTER_KEY_FILE` | `signing.master_key_file`  |
//! | `TOLLGATE_LOG`        | `log.level` (a tracing filter)  |
//! | `TOLLGATE_LOG_FORMAT` | `log.format` (`text` or `json`) |
//! | `TOLLGATE_METRICS_LISTEN` | `metrics.listen`            |
//!
//! Flags and environment for `bind`, `issuer`, `database-url` and `config` are read by
//! clap (`cli`), which applies "flag beats env"; they arrive here as [`Overrides`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::crypto::signer::SigningAlgorithm;
use crate::db::{DbUrl, PoolOptions};
use crate::oauth::TokenPolicy;
use crate::service::sessions::SessionPolicy;

pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSettings {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub tokens: TokensSection,
    pub signing: SigningSection,
    pub console: ConsoleSection,
    pub log: LogSection,
    pub limits: LimitsSection,
    pub metrics: MetricsSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub bind: String,
    pub issuer: String,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub access_log: bool,
    pub trusted_proxies: Vec<String>,
    pub request_head_timeout_ms: u64,
    pub request_body_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            issuer: String::new(),
            workers: 0,
            max_body_bytes: 8 * 1024,
            access_log: false,
            trusted_proxies: Vec::new(),
            request_head_timeout_ms: 5_000,
            request_body_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_connections: 1_000,
            max_connections_per_address: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    pub url: String,
    pub pool_size: u32,
    pub connection_timeout_seconds: u64,
    pub statement_timeout_ms: u64,
    pub sqlite_max_size_bytes: u64,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            url: "sqlite://data/tollgate.db".into(),
            pool_size: 4,
            connection_timeout_seconds: 1,
            statement_timeout_ms: 5_000,
            sqlite_max_size_bytes: 0,
        }
    }
}

/// `[limits]`: throttling of failed client authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub auth_failures_per_client_and_address: usize,
    pub auth_failures_per_address: usize,
    pub auth_failure_window_seconds: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            auth_failures_per_client_and_address: 10,
            auth_failures_per_address: 50,
            auth_failure_window_seconds: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensSection {
    pub default_ttl_seconds: i64,
    pub max_ttl_seconds: i64,
    pub default_audience: String,
    pub admin_audience: String,
    pub exchange_ttl_seconds: i64,
}

impl Default for TokensSection {
    fn default() -> Self {
        Self {
            default_ttl_seconds: 3600,
            max_ttl_seconds: 86_400,
            exchange_ttl_seconds: 300,
            default_audience: String::new(),
            admin_audience: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningSection {
    pub algorithm: String,
    pub master_key_file: String,
    pub key_refresh_ms: u64,
    pub rotation_period_seconds: i64,
}

impl Default for SigningSection {
    fn default() -> Self {
        Self {
            algorithm: "ES256".into(),
            master_key_file: String::new(),
            key_refresh_ms: 500,
            rotation_period_seconds: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    pub enabled: bool,
    pub session_idle_minutes: i64,
    pub session_absolute_hours: i64,
    pub invite_valid_hours: i64,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        Self {
            enabled: true,
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            invite_valid_hours: 7 * 24,
        }
    }
}

/// `[console]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSettings {
    pub enabled: bool,
    pub sessions: SessionPolicy,
    pub invite_ttl_seconds: i64,
}

impl ConsoleSettings {
    fn validate(section: &ConsoleSection) -> Result<Self, ConfigError> {
        if !(1..=24 * 60).contains(&section.session_idle_minutes) {
            return Err(invalid(
                "console.session_idle_minutes",
                "must be between 1 and 1440",
            ));
        }
        if !(1..=24 * 30).contains(&section.session_absolute_hours)
            || section.session_absolute_hours * 60 < section.session_idle_minutes
        {
            return Err(invalid(
                "console.session_absolute_hours",
                "must be between 1 and 720, and not shorter than console.session_idle_minutes",
            ));
        }
        if !(1..=24 * 30).contains(&section.invite_valid_hours) {
            return Err(invalid(
                "console.invite_valid_hours",
                "must be between 1 and 720",
            ));
        }
        Ok(Self {
            enabled: section.enabled,
            sessions: SessionPolicy {
                idle_seconds: section.session_idle_minutes * 60,
                absolute_seconds: section.session_absolute_hours * 3600,
            },
            invite_ttl_seconds: section.invite_valid_hours * 3600,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub level: String,
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line, with the request's span fields (`request_id`, `client`).
    Json,
}

/// `[metrics]`: the Prometheus endpoint, on an address of its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Empty: no metrics endpoint.
    pub listen: String,
}

/// `server.trusted_proxies`, validated: addresses and CIDR ranges of the reverse proxies
/// whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Each entry is an address (`10.0.0.5`, `::1`) or a range (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let text = entry.as_ref().trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is a trusted proxy (an IPv4-mapped IPv6 peer counts as its IPv4 address).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Values from flags or the environment, which beat the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub bind: Option<String>,
    pub database_url: Option<String>,
    pub issuer: Option<String>,
    pub master_key: Option<String>,
    pub master_key_file: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub metrics_listen: Option<String>,
}

impl Overrides {
    /// The variables clap does not read itself (clap handles TOLLGATE_CONFIG, TOLLGATE_BIND,
    /// DATABASE_URL and TOLLGATE_ISSUER for its flags).
    pub fn with_process_env(mut self) -> Self {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        self.master_key = self.master_key.or_else(|| non_empty("TOLLGATE_MASTER_KEY"));
        self.master_key_file = self
            .master_key_file
            .or_else(|| non_empty("TOLLGATE_MASTER_KEY_FILE"));
        self.log_level = self.log_level.or_else(|| non_empty("TOLLGATE_LOG"));
        self.log_format = self.log_format.or_else(|| non_empty("TOLLGATE_LOG_FORMAT"));
        self.metrics_listen = self
            .metrics_listen
            .or_else(|| non_empty("TOLLGATE_METRICS_LISTEN"));
        self
    }
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `TOLLGATE_MASTER_KEY`.
    Inline(SecretString),
    /// A file; `create` when it may be generated on first start (embedded SQLite).
    File { path: PathBuf, create: bool },
    /// `sqlite::memory:`: nothing outlives the process, so neither does the key.
    Ephemeral,
    /// PostgreSQL without a configured key: fine for commands that never touch signing
    /// keys, an error (with this message) for those that do.
    Missing(&'static str),
}

/// `[limits]`, validated.
#[derive(Debug, Clone, Copy)]
pub struct AuthThrottleSettings {
    pub per_client_and_address: usize,
    pub per_address: usize,
    pub window: Duration,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub issuer: String,
    /// The issuer was not configured and follows the listening address.
    pub issuer_from_bind: bool,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub access_log: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: TrustedProxies,
    /// Time allowed to receive a request's head, and then its body.
    pub request_head_timeout: Duration,
    pub request_body_timeout: Duration,
    /// From a request's head to the end of its answer (the connection watchdog's backstop).
    pub request_timeout: Duration,
    /// Concurrent connections, over all workers.
    pub max_connections: usize,
    /// Concurrent connections per client address (IPv6 per /64); 0: no cap.
    pub max_connections_per_address: usize,
    /// Failed client authentications tolerated per window.
    pub auth_throttle: AuthThrottleSettings,
    pub database_url: DbUrl,
    pub pool: PoolOptions,
    pub default_ttl: i64,
    pub max_ttl: i64,
    pub exchange_ttl: i64,
    pub default_audience: String,
    pub admin_audience: String,
    /// Which audiences were not configured and follow the issuer.
    pub audiences_from_issuer: (bool, bool),
    pub signing_algorithm: SigningAlgorithm,
    pub master_key: MasterKeySource,
    pub key_refresh: Duration,
    /// Automatic signing key rotation; `None` when off.
    pub rotation_period: Option<i64>,
    pub console: ConsoleSettings,
    /// A tracing filter, checked (see `telemetry::check_filter`).
    pub log_level: String,
    pub log_format: LogFormat,
    /// Where `/metrics` is served; `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The OS error is part of the message, not a `source`: an error chain printed in
    /// full would name it twice.
    #[error("cannot read config file {path} (from --config or TOLLGATE_CONFIG): {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// `origin` says where the value came from (" in FILE", " (from TOLLGATE_BIND …)"),
    /// when known.
    #[error("invalid setting {key}{origin}: {message}")]
    Invalid {
        key: &'static str,
        message: String,
        origin: String,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
        origin: String::new(),
    }
}

impl ConfigError {
    /// Names where an invalid value came from: the flag or variable that overrode the key,
    /// else the config file read.
    fn with_origin(self, overrides: &Overrides, file: Option<&Path>) -> Self {
        let ConfigError::Invalid {
            key,
            message,
            origin,
        } = self
        else {
            return self;
        };
        let overridden = match key {
            "server.bind" => overrides
                .bind
                .is_some()
                .then_some("--bind or TOLLGATE_BIND"),
            "server.issuer" => overrides
                .issuer
                .is_some()
                .then_some("--issuer or TOLLGATE_ISSUER"),
            "database.url" => overrides
                .database_url
                .is_some()
                .then_some("--database-url or DATABASE_URL"),
            _ => None,
        };
        let origin = match (overridden, file) {
            _ if !origin.is_empty() => origin,
            (Some(source), _) => format!(" (from {source})"),
            (None, Some(file)) => format!(" in {}", file.display()),
            (None, None) => String::new(),
        };
        ConfigError::Invalid {
            key,
            message,
            origin,
        }
    }
}

impl Settings {
    /// Reads the file (if any), applies the overrides and validates everything once.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let path = config_file(overrides);
        let file = match &path {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        Self::from_parts(file, overrides).map_err(|e| e.with_origin(overrides, path.as_deref()))
    }

    /// Validates every section of `file` with `overrides` applied, into typed settings.
    pub fn from_parts(file: FileSettings, overrides: &Overrides) -> Result<Self, ConfigError> {
        let server = ServerSettings::validate(&file.server, overrides)?;
        let database_url = DbUrl::parse(
            overrides
                .database_url
                .as_deref()
                .unwrap_or(&file.database.url),
        )
        .map_err(|m| invalid("database.url", m))?;
        let pool = pool_options(&file.database)?;
        let tokens = TokenSettings::validate(&file.tokens, &server.issuer)?;
        let signing = SigningSettings::validate(&file.signing, &file.tokens)?;
        let master_key = master_key_source(overrides, &file.signing, &database_url);
        let console = ConsoleSettings::validate(&file.console)?;
        let (log_level, log_format) = log_settings(&file.log, overrides)?;
        let metrics_listen = metrics_listen(&file.metrics, overrides)?;
        Ok(Self {
            bind: server.bind,
            issuer: server.issuer,
            issuer_from_bind: server.issuer_from_bind,
            audiences_from_issuer: tokens.audiences_from_issuer,
            workers: file.server.workers,
            max_body_bytes: server.max_body_bytes,
            access_log: file.server.access_log,
            trusted_proxies: server.trusted_proxies,
            request_head_timeout: server.request_head_timeout,
            request_body_timeout: server.request_body_timeout,
            request_timeout: server.request_timeout,
            max_connections: server.max_connections,
            max_connections_per_address: server.max_connections_per_address,
            auth_throttle: auth_throttle(&file.limits)?,
            database_url,
            pool,
            default_ttl: file.tokens.default_ttl_seconds,
            max_ttl: file.tokens.max_ttl_seconds,
            exchange_ttl: file.tokens.exchange_ttl_seconds,
            default_audience: tokens.default_audience,
            admin_audience: tokens.admin_audience,
            signing_algorithm: signing.algorithm,
            master_key,
            key_refresh: signing.key_refresh,
            rotation_period: signing.rotation_period,
            console,
            log_level,
            log_format,
            metrics_listen,
        })
    }

    /// Once the listener is bound (port 0 picks a port), a derived issuer names the real
    /// address, and so do the audiences derived from it.
    pub fn with_bound_address(mut self, bound: SocketAddr) -> Self {
        if self.issuer_from_bind {
            self.issuer = format!("http://{bound}");
            if self.audiences_from_issuer.0 {
                self.default_audience = self.issuer.clone();
            }
            if self.audiences_from_issuer.1 {
                self.admin_audience = admin_audience_of(&self.issuer);
            }
        }
        self
    }

    /// JWKS `Cache-Control: max-age`. With scheduled rotation a key is published one period
    /// before it signs, so caches younger than half a period always hold it; without, a
    /// short age (resource servers also refetch on an unknown `kid`).
    pub fn jwks_max_age(&self) -> i64 {
        self.rotation_period
            .map_or(300, |period| (period / 2).clamp(60, 86_400))
    }

    pub fn token_policy(&self) -> TokenPolicy {
        TokenPolicy {
            issuer: self.issuer.clone(),
            default_audience: self.default_audience.clone(),
            default_ttl: self.default_ttl,
            max_ttl: self.max_ttl,
            admin_audience: self.admin_audience.clone(),
            exchange_ttl: self.exchange_ttl,
        }
    }
}

/// `[server]`, validated.
struct ServerSettings {
    bind: SocketAddr,
    issuer: String,
    issuer_from_bind: bool,
    trusted_proxies: TrustedProxies,
    max_body_bytes: usize,
    request_head_timeout: Duration,
    request_body_timeout: Duration,
    request_timeout: Duration,
    max_connections: usize,
    max_connections_per_address: usize,
}

impl ServerSettings {
    fn validate(section: &ServerSection, overrides: &Overrides) -> Result<Self, ConfigError> {
        let bind_text = overrides.bind.as_deref().unwrap_or(&section.bind);
        let bind: SocketAddr = bind_text.trim().parse().map_err(|_| {
            invalid(
                "server.bind",
                format!("{bind_text:?} is not an address like 127.0.0.1:8080"),
            )
        })?;
        let issuer_text = overrides.issuer.as_deref().unwrap_or(&section.issuer);
        let issuer_from_bind = issuer_text.trim().is_empty();
        let issuer = if issuer_from_bind {
            format!("http://{bind}")
        } else {
            validate_issuer(issuer_text.trim())?
        };
        let trusted_proxies = TrustedProxies::parse(&section.trusted_proxies)
            .map_err(|m| invalid("server.trusted_proxies", m))?;
        if !(512..=1024 * 1024).contains(&section.max_body_bytes) {
            return Err(invalid(
                "server.max_body_bytes",
                "must be between 512 and 1048576",
            ));
        }
        for (key, ms) in [
            (
                "server.request_head_timeout_ms",
                section.request_head_timeout_ms,
            ),
            (
                "server.request_body_timeout_ms",
                section.request_body_timeout_ms,
            ),
        ] {
            if !(100..=300_000).contains(&ms) {
                return Err(invalid(key, "must be between 100 and 300000"));
            }
        }
        if !(100..=3_600_000).contains(&section.request_timeout_ms) {
            return Err(invalid(
                "server.request_timeout_ms",
                "must be between 100 and 3600000",
            ));
        }
        if !(1..=1_000_000).contains(&section.max_connections) {
            return Err(invalid(
                "server.max_connections",
                "must be between 1 and 1000000",
            ));
        }
        if section.max_connections_per_address > 1_000_000 {
            return Err(invalid(
                "server.max_connections_per_address",
                "must be between 0 (no per-address cap) and 1000000",
            ));
        }
        Ok(Self {
            bind,
            issuer,
            issuer_from_bind,
            trusted_proxies,
            max_body_bytes: section.max_body_bytes,
            request_head_timeout: Duration::from_millis(section.request_head_timeout_ms),
            request_body_timeout: Duration::from_millis(section.request_body_timeout_ms),
            request_timeout: Duration::from_millis(section.request_timeout_ms),
            max_connections: section.max_connections,
            max_connections_per_address: section.max_connections_per_address,
        })
    }
}

/// `[log]` with `TOLLGATE_LOG`/`TOLLGATE_LOG_FORMAT` applied. A filter that would silently
/// hide lines (an unknown level, a misspelt directive) is refused, naming where it came from.
fn log_settings(
    section: &LogSection,
    overrides: &Overrides,
) -> Result<(String, LogFormat), ConfigError> {
    let (level, level_key) = match &overrides.log_level {
        Some(level) => (level.clone(), "TOLLGATE_LOG"),
        None => (section.level.clone(), "log.level"),
    };
    crate::telemetry::check_filter(&level).map_err(|m| invalid(level_key, m))?;
    let (format, format_key) = match &overrides.log_format {
        Some(format) => (format.as_str(), "TOLLGATE_LOG_FORMAT"),
        None => (section.format.as_str(), "log.format"),
    };
    let format = match format.trim().to_ascii_lowercase().as_str() {
        "text" | "" => LogFormat::Text,
        "json" => LogFormat::Json,
        _ => {
            return Err(invalid(
                format_key,
                format!("{format:?} is not one of text, json"),
            ));
        }
    };
    Ok((level, format))
}

/// `metrics.listen` (or `TOLLGATE_METRICS_LISTEN`): empty turns the endpoint off.
fn metrics_listen(
    section: &MetricsSection,
    overrides: &Overrides,
) -> Result<Option<SocketAddr>, ConfigError> {
    let (text, key) = match &overrides.metrics_listen {
        Some(text) => (text.as_str(), "TOLLGATE_METRICS_LISTEN"),
        None => (section.listen.as_str(), "metrics.listen"),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim().parse().map(Some).map_err(|_| {
        invalid(
            key,
            format!("{text:?} is not an address like 127.0.0.1:9090"),
        )
    })
}

fn auth_throttle(section: &LimitsSection) -> Result<AuthThrottleSettings, ConfigError> {
    if section.auth_failures_per_client_and_address == 0 {
        return Err(invalid(
            "limits.auth_failures_per_client_and_address",
            "must be at least 1",
        ));
    }
    if section.auth_failures_per_address < section.auth_failures_per_client_and_address {
        return Err(invalid(
            "limits.auth_failures_per_address",
            "must be at least limits.auth_failures_per_client_and_address",
        ));
    }
    if !(1..=86_400).contains(&section.auth_failure_window_seconds) {
        return Err(invalid(
            "limits.auth_failure_window_seconds",
            "must be between 1 and 86400",
        ));
    }
    Ok(AuthThrottleSettings {
        per_client_and_address: section.auth_failures_per_client_and_address,
        per_address: section.auth_failures_per_address,
        window: Duration::from_secs(section.auth_failure_window_seconds),
    })
}

fn pool_options(section: &DatabaseSection) -> Result<PoolOptions, ConfigError> {
    if section.pool_size == 0 || section.pool_size > 1000 {
        return Err(invalid("database.pool_size", "must be between 1 and 1000"));
    }
    if !(1..=60).contains(&section.connection_timeout_seconds) {
        return Err(invalid(
            "database.connection_timeout_seconds",
            "must be between 1 and 60",
        ));
    }
    if !(100..=600_000).contains(&section.statement_timeout_ms) {
        return Err(invalid(
            "database.statement_timeout_ms",
            "must be between 100 and 600000",
        ));
    }
    if section.sqlite_max_size_bytes != 0 && section.sqlite_max_size_bytes < 64 * 1024 {
        return Err(invalid(
            "database.sqlite_max_size_bytes",
            "must be 0 (no limit) or at least 65536",
        ));
    }
    Ok(PoolOptions {
        max_size: section.pool_size,
        connection_timeout: Duration::from_secs(section.connection_timeout_seconds),
        statement_timeout: Duration::from_millis(section.statement_timeout_ms),
        sqlite_max_size_bytes: (section.sqlite_max_size_bytes != 0)
            .then_some(section.sqlite_max_size_bytes),
    })
}

/// `[tokens]`, validated; audiences default from the issuer.
struct TokenSettings {
    default_audience: String,
    admin_audience: String,
    audiences_from_issuer: (bool, bool),
}

impl TokenSettings {
    fn validate(section: &TokensSection, issuer: &str) -> Result<Self, ConfigError> {
        if section.default_ttl_seconds < 1 {
            return Err(invalid("tokens.default_ttl_seconds", "must be at least 1"));
        }
        if section.max_ttl_seconds < section.default_ttl_seconds
            || section.max_ttl_seconds > crate::oauth::MAX_TTL_SECONDS
        {
            return Err(invalid(
                "tokens.max_ttl_seconds",
                "must be at least tokens.default_ttl_seconds and at most ten years",
            ));
        }
        if section.exchange_ttl_seconds < 1
            || section.exchange_ttl_seconds > section.max_ttl_seconds
        {
            return Err(invalid(
                "tokens.exchange_ttl_seconds",
                "must be between 1 and tokens.max_ttl_seconds",
            ));
        }
        let default_audience = non_empty_or(&section.default_audience, issuer);
        if default_audience.chars().any(char::is_whitespace) {
            return Err(invalid(
                "tokens.default_audience",
                "must not contain spaces",
            ));
        }
        let admin_audience = non_empty_or(&section.admin_audience, &admin_audience_of(issuer));
        if admin_audience == default_audience {
            return Err(invalid(
                "tokens.admin_audience",
                "must differ from tokens.default_audience, so that tokens for resource servers \
                 cannot be replayed against the admin API",
            ));
        }
        Ok(Self {
            default_audience,
            admin_audience,
            audiences_from_issuer: (
                section.default_audience.trim().is_empty(),
                section.admin_audience.trim().is_empty(),
            ),
        })
    }
}

/// `[signing]`, validated (the master key is [`master_key_source`]).
struct SigningSettings {
    algorithm: SigningAlgorithm,
    key_refresh: Duration,
    rotation_period: Option<i64>,
}

impl SigningSettings {
    fn validate(section: &SigningSection, tokens: &TokensSection) -> Result<Self, ConfigError> {
        let algorithm = SigningAlgorithm::parse(section.algorithm.trim())
            .filter(|a| *a != SigningAlgorithm::RS256)
            .ok_or_else(|| {
                invalid(
                    "signing.algorithm",
                    format!(
                        "{:?} is not one of ES256, EdDSA (RS256 keys are imported with `tollgate signing-key import`)",
                        section.algorithm
                    ),
                )
            })?;
        if !(50..=60_000).contains(&section.key_refresh_ms) {
            return Err(invalid(
                "signing.key_refresh_ms",
                "must be between 50 and 60000",
            ));
        }
        let rotation_period = match section.rotation_period_seconds {
            0 => None,
            p if p >= 3600 && p >= tokens.max_ttl_seconds => Some(p),
            _ => {
                return Err(invalid(
                    "signing.rotation_period_seconds",
                    "must be 0 (off), or at least an hour and at least tokens.max_ttl_seconds",
                ));
            }
        };
        Ok(Self {
            algorithm,
            key_refresh: Duration::from_millis(section.key_refresh_ms),
            rotation_period,
        })
    }
}

/// Where the master key comes from: the environment, a file (beside an embedded SQLite
/// database by default, created on first start), nowhere for an in-memory database.
fn master_key_source(
    overrides: &Overrides,
    section: &SigningSection,
    database_url: &DbUrl,
) -> MasterKeySource {
    let file = overrides
        .master_key_file
        .as_deref()
        .unwrap_or(&section.master_key_file)
        .trim();
    match (&overrides.master_key, database_url) {
        (Some(inline), _) => MasterKeySource::Inline(SecretString::from(inline.clone())),
        (None, DbUrl::SqliteMemory) if file.is_empty() => MasterKeySource::Ephemeral,
        (None, _) if !file.is_empty() => MasterKeySource::File {
            path: PathBuf::from(file),
            create: database_url.is_sqlite(),
        },
        (None, DbUrl::SqliteFile(db_path)) => MasterKeySource::File {
            // Beside the database, so the CLI and the server find the same key.
            path: db_path
                .parent()
                .map(|dir| dir.join("master.key"))
                .unwrap_or_else(|| PathBuf::from("master.key")),
            create: true,
        },
        (None, _) => MasterKeySource::Missing(
            "PostgreSQL needs a master key: set TOLLGATE_MASTER_KEY (32 bytes, hex or base64; \
             `openssl rand -hex 32`), or a file holding it in TOLLGATE_MASTER_KEY_FILE or \
             signing.master_key_file",
        ),
    }
}

/// The default audience of the admin API: its own, not the issuer's.
fn admin_audience_of(issuer: &str) -> String {
    format!("{issuer}/admin")
}

fn non_empty_or(value: &str, fallback: &str) -> String {
    if value.trim().is_empty() {
        fallback.to_owned()
    } else {
        value.trim().to_owned()
    }
}

/// RFC 8414 §2: the issuer is an https URL (http allowed for local use) without query or
/// fragment. A trailing slash is dropped so that endpoint URLs join cleanly.
fn validate_issuer(text: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(text)
        .map_err(|e| invalid("server.issuer", format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(
            "server.issuer",
            "must be an http(s) URL without query or fragment",
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// The config file [`Settings::load`] reads: `--config`/`TOLLGATE_CONFIG`, else
/// `config/default.toml` when it exists (relative to the working directory), else none.
pub fn config_file(overrides: &Overrides) -> Option<PathBuf> {
    match &overrides.config {
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|path| path.exists()),
    }
}

/// Whether the config file at `path` sets `database.url` itself (for error messages).
pub fn file_sets_database_url(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| table.get("database")?.get("url").cloned())
        .is_some()
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse_file(&text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// Parses a config file; an error names the key (`server.workers`) and the line.
fn parse_file(text: &str) -> Result<FileSettings, String> {
    let line_of = |error: &toml::de::Error| {
        error
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1))
    };
    let with_line = |message: String, line: Option<usize>| match line {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    };
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|e| with_line(e.message().to_owned(), line_of(&e)))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let message = plain_type_names(e.inner().message());
        let line = line_of(e.inner());
        if key == "." {
            with_line(message, line)
        } else {
            with_line(format!("{key}: {message}"), line)
        }
    })
}

/// serde names Rust types ("expected usize"); say what to write instead.
fn plain_type_names(message: &str) -> String {
    let mut out = message.to_owned();
    for (rust, plain) in [
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
    ] {
        out = out.replace(rust, plain);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(file: &str, overrides: Overrides) -> Result<Settings, ConfigError> {
        let parsed: FileSettings = toml::from_str(file).unwrap();
        Settings::from_parts(parsed, &overrides)
    }

    #[test]
    fn the_shipped_config_file_parses_with_every_key() {
        let text = include_str!("../config/default.toml");
        let parsed: FileSettings = toml::from_str(text).unwrap();
        let defaults = FileSettings::default();
        assert_eq!(parsed.server.bind, defaults.server.bind);
        assert_eq!(parsed.database.url, defaults.database.url);
        assert!(Settings::from_parts(parsed, &Overrides::default()).is_ok());
    }

    #[test]
    fn the_example_production_config_is_valid() {
        let text = include_str!("../config/production.toml");
        let parsed: FileSettings = toml::from_str(text).unwrap();
        let settings = Settings::from_parts(
            parsed,
            &Overrides {
                database_url: Some("postgres://db.internal/tollgate".into()),
                master_key: Some("ab".repeat(32)),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(settings.rotation_period, Some(30 * 86_400));
        assert_eq!(settings.jwks_max_age(), 86_400);
        assert_eq!(settings.issuer, "https://auth.example.com");
        // What its comment says: the admin API has an audience of its own.
        assert_eq!(settings.admin_audience, "https://auth.example.com/admin");
        assert_eq!(settings.default_audience, "https://api.example.com");
    }

    #[test]
    fn the_per_address_connection_cap_is_read_and_checked() {
        let shipped: FileSettings = toml::from_str(include_str!("../config/default.toml")).unwrap();
        assert_eq!(shipped.server.max_connections_per_address, 100);
        let default = settings("", Overrides::default()).unwrap();
        assert_eq!(default.max_connections_per_address, 100);
        let off = settings(
            "[server]\nmax_connections_per_address = 0\n",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(off.max_connections_per_address, 0);
        let Err(err) = settings(
            "[server]\nmax_connections_per_address = 1000001\n",
            Overrides::default(),
        ) else {
            panic!("too large a cap is accepted");
        };
        assert!(
            err.to_string()
                .contains("server.max_connections_per_address"),
            "{err}"
        );
    }

    #[test]
    fn overrides_beat_the_file() {
        let s = settings(
            "[server]\nbind = \"127.0.0.1:9000\"\n",
            Overrides {
                bind: Some("127.0.0.1:9100".into()),
                issuer: Some("https://auth.example.com/".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(s.bind.port(), 9100);
        assert_eq!(s.issuer, "https://auth.example.com");
        assert_eq!(s.default_audience, "https://auth.example.com");
    }

    #[test]
    fn bad_values_fail_with_the_key_named() {
        let err = settings("[server]\nbind = \"nowhere\"\n", Overrides::default())
            .err()
            .map(|e| e.to_string())
            .unwrap();
        assert!(err.contains("server.bind"), "{err}");
        let err = settings("[signing]\nalgorithm = \"HS256\"\n", Overrides::default())
            .err()
            .map(|e| e.to_string())
            .unwrap();
        assert!(err.contains("signing.algorithm"), "{err}");
        assert!(toml::from_str::<FileSettings>("[server]\nbnid = \"x\"\n").is_err());
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let s = settings(
            "[server]\ntrusted_proxies = [\"10.0.0.5\", \"192.168.0.0/16\", \"fd00::/8\"]\n",
            Overrides::default(),
        )
        .unwrap();
        let ip = |t: &str| t.parse::<std::net::IpAddr>().unwrap();
        assert!(s.trusted_proxies.contains(ip("10.0.0.5")));
        assert!(!s.trusted_proxies.contains(ip("10.0.0.6")));
        assert!(s.trusted_proxies.contains(ip("192.168.44.1")));
        assert!(s.trusted_proxies.contains(ip("::ffff:192.168.1.1")));
        assert!(s.trusted_proxies.contains(ip("fd00::1")));
        assert!(!s.trusted_proxies.contains(ip("2001:db8::1")));
        assert!(
            settings("", Overrides::default())
                .unwrap()
                .trusted_proxies
                .is_empty()
        );
        let err = settings(
            "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
            Overrides::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap();
        assert!(
            err.contains("server.trusted_proxies") && err.contains("10.0.0.0/33"),
            "{err}"
        );
    }

    #[test]
    fn log_and_metrics_settings_name_where_a_bad_value_came_from() {
        let s = settings("", Overrides::default()).unwrap();
        assert_eq!(
            (s.log_level.as_str(), s.log_format),
            ("info", LogFormat::Text)
        );
        assert_eq!(s.metrics_listen, None, "metrics are off by default");
        let s = settings(
            "[log]\nlevel = \"warn,tollgate=debug\"\nformat = \"json\"\n[metrics]\nlisten = \"127.0.0.1:9090\"\n",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
        let error = |file: &str, overrides: Overrides| {
            settings(file, overrides)
                .err()
                .map(|e| e.to_string())
                .unwrap()
        };
        let err = error(
            "",
            Overrides {
                log_level: Some("verbose".into()),
                ..Overrides::default()
            },
        );
        assert!(
            err.contains("TOLLGATE_LOG") && err.contains("\"verbose\""),
            "{err}"
        );
        let err = error("[log]\nlevel = \"loud\"\n", Overrides::default());
        assert!(
            err.contains("log.level") && err.contains("\"loud\""),
            "{err}"
        );
        let err = error("[log]\nformat = \"xml\"\n", Overrides::default());
        assert!(err.contains("log.format") && err.contains("xml"), "{err}");
        let err = error(
            "",
            Overrides {
                log_format: Some("yaml".into()),
                ..Overrides::default()
            },
        );
        assert!(err.contains("TOLLGATE_LOG_FORMAT"), "{err}");
        let err = error("[metrics]\nlisten = \"9090\"\n", Overrides::default());
        assert!(err.contains("metrics.listen"), "{err}");
        let err = error(
            "",
            Overrides {
                metrics_listen: Some("nowhere".into()),
                ..Overrides::default()
            },
        );
        assert!(err.contains("TOLLGATE_METRICS_LISTEN"), "{err}");
    }

    #[test]
    fn a_wrongly_typed_value_names_its_key_and_line() {
        let err = parse_file("# comment\n[server]\nworkers = \"four\"\n").unwrap_err();
        assert_eq!(
            err,
            "line 3: server.workers: invalid type: string \"four\", expected a whole number, 0 or more"
        );
        let err = parse_file("[database]\npool_size = -1\n").unwrap_err();
        assert!(err.starts_with("line 2: database.pool_size: "), "{err}");
        let err = parse_file("[console]\nenabled = \"yes\"\n").unwrap_err();
        assert!(err.contains("console.enabled"), "{err}");
        assert!(err.contains("expected true or false"), "{err}");
        let err = parse_file("[server]\nbnid = \"x\"\n").unwrap_err();
        assert!(err.contains("server.bnid: unknown field `bnid`"), "{err}");
        let err = parse_file("[server\n").unwrap_err();
        assert!(err.starts_with("line 1: "), "{err}");
        assert!(parse_file(include_str!("../config/default.toml")).is_ok());
    }

    #[test]
    fn postgres_requires_a_master_key() {
        let result = settings(
            "[database]\nurl = \"postgres://localhost/x\"\n",
            Overrides::default(),
        );
        assert!(matches!(
            result.map(|s| s.master_key),
            Ok(MasterKeySource::Missing(_))
        ));
    }

    #[test]
    fn the_master_key_file_may_come_from_the_environment() {
        let s = settings(
            "[database]\nurl = \"postgres://localhost/x\"\n[signing]\nmaster_key_file = \"/a\"\n",
            Overrides {
                master_key_file: Some("/run/secrets/master.key".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        match s.master_key {
            MasterKeySource::File { path, create } => {
                assert_eq!(path, PathBuf::from("/run/secrets/master.key"));
                assert!(!create, "never generated for PostgreSQL");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn master_key_file_defaults_to_beside_the_sqlite_database() {
        let s = settings(
            "[database]\nurl = \"sqlite:///tmp/x/tollgate.db\"\n",
            Overrides::default(),
        )
        .unwrap();
        match s.master_key {
            MasterKeySource::File { path, create } => {
                assert_eq!(path, PathBuf::from("/tmp/x/master.key"));
                assert!(create);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
#[cfg(test)]
mod rotation_tests {
    use super::*;

    #[test]
    fn jwks_max_age_follows_the_rotation_period() {
        let parsed: FileSettings = toml::from_str(
            "[tokens]\nmax_ttl_seconds = 3600\n[signing]\nrotation_period_seconds = 3600\n",
        )
        .unwrap();
        let s = Settings::from_parts(parsed, &Overrides::default()).unwrap();
        assert_eq!(s.rotation_period, Some(3600));
        assert_eq!(s.jwks_max_age(), 1800);
        let off = Settings::from_parts(FileSettings::default(), &Overrides::default()).unwrap();
        assert_eq!(off.jwks_max_age(), 300);
        let too_short: FileSettings =
            toml::from_str("[signing]\nrotation_period_seconds = 60\n").unwrap();
        assert!(Settings::from_parts(too_short, &Overrides::default()).is_err());
    }
}
