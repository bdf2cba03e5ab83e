//! Prometheus metrics: one [`Metrics`] registry per running instance (tests run several
//! servers in one process, so nothing here is global), rendered in the Prometheus text
//! format by `http::observe` on the separate `metrics.listen` address.
//!
//! On the request path everything is an add to a counter slot of the worker thread's own
//! ([`ShardedCounter`], [`ShardedHistogram`]): a counter that every worker adds to moves
//! between cores on every add. The per-grant token counts and the cache counts are made at
//! start-up; the per-route counts are resolved once per worker thread and kept there (the
//! last few used, see [`RecentAnswers`]), so that answering does not hash label values and
//! take a lock. A scrape sums the slots: the Prometheus counters are brought up to the
//! sums, and the duration histograms are read from them ([`DurationHistograms`]). Gauges
//! that describe state (the database pool, the signing key's age) are set when scraped.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `tollgate_tokens_issued_total` | counter | `grant_type` |
//! | `tollgate_http_requests_total` | counter | `route`, `method`, `status` |
//! | `tollgate_http_request_duration_seconds` | histogram | `route`, `method` |
//! | `tollgate_http_errors_total` | counter | `route`, `error` |
//! | `tollgate_cache_requests_total` | counter | `cache`, `result` (`hit`, `miss`) |
//! | `tollgate_cache_stale_lookups_total` | counter | |
//! | `tollgate_cache_resyncs_total` | counter | |
//! | `tollgate_db_pool_connections` | gauge | |
//! | `tollgate_db_pool_idle_connections` | gauge | |
//! | `tollgate_db_pool_max_connections` | gauge | |
//! | `tollgate_db_pool_waiting` | gauge | |
//! | `tollgate_db_up` | gauge | |
//! | `tollgate_signing_key_age_seconds` | gauge | |
//! | `tollgate_build_info` | gauge | `version` |

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use prometheus::core::{Collector, Desc};
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder, proto,
};

use super::sharded::{HistogramCounts, ShardedCounter, ShardedHistogram};
use crate::domain::GrantType;

/// Route label of requests that matched no route (404s, junk): one series for all of them,
/// so that scanning for paths cannot create series without bound.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Latency buckets, in seconds: the token endpoint answers in about a millisecond, a
/// console sign-in (argon2id) in tens of milliseconds, a database outage in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The database pool at a glance, for the gauges (see `db::Db::pool_state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolGauges {
    /// Open connections, idle or in use.
    pub connections: u32,
    pub idle: u32,
    pub max: u32,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// The database answers (the circuit breaker is closed).
    pub up: bool,
}

/// Tells apart the registries of the instances one process runs (tests run several).
static NEXT_REGISTRY: AtomicU64 = AtomicU64::new(0);

/// What the in-memory view has counted since start-up (see `cache::Stats`), set when
/// scraped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewCounts {
    /// Lookups made while the view was not trusted (the change feed late or gone), so
    /// answered by the database.
    pub stale_lookups: u64,
    /// Times the whole view was forgotten (the feed connected again, or lost track).
    pub resyncs: u64,
}

/// The metrics of one running instance. Cheap to share: every series is reference-counted.
pub struct Metrics {
    /// This registry among the process's, for [`RecentAnswers`].
    id: u64,
    registry: Registry,
    /// Indexed like [`GrantType::ALL`]: the series, and the per-thread counts they are
    /// brought up to when rendered.
    tokens_issued: [(IntCounter, ShardedCounter); 2],
    requests: IntCounterVec,
    /// Every kind of answer counted so far (`requests` and the duration histograms).
    answers: Arc<AnswerTable>,
    errors: IntCounterVec,
    cache_requests: IntCounterVec,
    /// Each cache's counts with its hit and miss series, brought up to date on render.
    cache_counts: Mutex<Vec<(CacheMetrics, IntCounter, IntCounter)>>,
    cache_stale_lookups: IntCounter,
    cache_resyncs: IntCounter,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
    pool_waiting: IntGauge,
    db_up: IntGauge,
    signing_key_age: IntGauge,
}

/// The hit and miss counts of one cache. Counted per thread ([`ShardedCounter`]: a lookup
/// on the hot path writes no cache line another worker writes) and brought into the
/// Prometheus series when `/metrics` is rendered.
///
/// The cache module gets one from [`Metrics::cache`] when it is built (in `AppState::new`)
/// and calls [`CacheMetrics::hit`] or [`CacheMetrics::miss`] on each lookup.
#[derive(Clone, Default)]
pub struct CacheMetrics(Arc<CacheCounts>);

#[derive(Default)]
struct CacheCounts {
    hits: ShardedCounter,
    misses: ShardedCounter,
}

impl CacheMetrics {
    /// A lookup answered from the cache.
    #[inline]
    pub fn hit(&self) {
        self.0.hits.inc();
    }

    /// A lookup that had to go to the database.
    #[inline]
    pub fn miss(&self) {
        self.0.misses.inc();
    }

    pub fn hits(&self) -> u64 {
        self.0.hits.get()
    }

    pub fn misses(&self) -> u64 {
        self.0.misses.get()
    }

    /// Counts into no Prometheus series: for a cache used outside a server (the CLI, unit
    /// tests).
    pub fn detached() -> Self {
        Self::default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every Tollgate series registered.
    pub fn new() -> Self {
        #[expect(
            clippy::expect_used,
            reason = "names, help texts and label sets are constants: registration fails only on \
                      a programming error, which the unit tests catch"
        )]
        Self::build().expect("the metric definitions are valid")
    }

    fn build() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let tokens = IntCounterVec::new(
            Opts::new(
                "tollgate_tokens_issued_total",
                "Access tokens issued by the token endpoint, by grant type.",
            ),
            &["grant_type"],
        )?;
        registry.register(Box::new(tokens.clone()))?;
        let tokens_issued = [
            (
                tokens.get_metric_with_label_values(&[GrantType::ALL[0].as_str()])?,
                ShardedCounter::default(),
            ),
            (
                tokens.get_metric_with_label_values(&[GrantType::ALL[1].as_str()])?,
                ShardedCounter::default(),
            ),
        ];
        let requests = IntCounterVec::new(
            Opts::new(
                "tollgate_http_requests_total",
                "HTTP requests answered, by route pattern, method and status code.",
            ),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        let answers = Arc::new(AnswerTable::default());
        registry.register(Box::new(DurationHistograms {
            desc: Desc::new(
                "tollgate_http_request_duration_seconds".to_owned(),
                "Time from a request's head to its answer, by route pattern and method.".to_owned(),
                vec!["route".to_owned(), "method".to_owned()],
                HashMap::new(),
            )?,
            answers: answers.clone(),
        }))?;
        let errors = IntCounterVec::new(
            Opts::new(
                "tollgate_http_errors_total",
                "Error answers by route pattern and error code (the `error` member of the \
                 JSON body: RFC 6749 §5.2 codes on the OAuth endpoints).",
            ),
            &["route", "error"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "tollgate_cache_requests_total",
                "Lookups in the in-memory caches, by cache and result (hit or miss).",
            ),
            &["cache", "result"],
        )?;
        registry.register(Box::new(cache_requests.clone()))?;
        let counter = |name: &str, help: &str| registered(&registry, IntCounter::new(name, help)?);
        let cache_stale_lookups = counter(
            "tollgate_cache_stale_lookups_total",
            "Lookups made while the in-memory view was not trusted (its change feed late or \
             gone), so answered by the database.",
        )?;
        let cache_resyncs = counter(
            "tollgate_cache_resyncs_total",
            "Times the in-memory view was forgotten whole (its change feed connected again or \
             lost track).",
        )?;
        let gauge = |name: &str, help: &str| registered(&registry, IntGauge::new(name, help)?);
        let pool_connections = gauge(
            "tollgate_db_pool_connections",
            "Open database connections in the pool, idle or in use.",
        )?;
        let pool_idle = gauge(
            "tollgate_db_pool_idle_connections",
            "Idle database connections in the pool.",
        )?;
        let pool_max = gauge(
            "tollgate_db_pool_max_connections",
            "The pool's size (database.pool_size).",
        )?;
        let pool_waiting = gauge(
            "tollgate_db_pool_waiting",
            "Requests waiting for a database connection.",
        )?;
        let db_up = gauge(
            "tollgate_db_up",
            "1 while the database answers, 0 while the circuit breaker is open.",
        )?;
        let signing_key_age = gauge(
            "tollgate_signing_key_age_seconds",
            "Time since the active signing key began to sign.",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "tollgate_build_info",
                "The running Tollgate version (always 1).",
            ),
            &["version"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .get_metric_with_label_values(&[env!("CARGO_PKG_VERSION")])?
            .set(1);
        Ok(Self {
            id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
            registry,
            tokens_issued,
            requests,
            answers,
            errors,
            cache_requests,
            cache_counts: Mutex::default(),
            cache_stale_lookups,
            cache_resyncs,
            pool_connections,
            pool_idle,
            pool_max,
            pool_waiting,
            db_up,
            signing_key_age,
        })
    }

    /// The hit and miss counters of the cache `name` (e.g. `"clients"`, `"api_keys"`),
    /// registered at 0 so that they are exported before the first lookup. Call it once, when
    /// the cache is built, and keep the handle.
    pub fn cache(&self, name: &'static str) -> CacheMetrics {
        let series = |result: &str| {
            self.cache_requests
                .get_metric_with_label_values(&[name, result])
        };
        let counts = CacheMetrics::default();
        if let (Ok(hits), Ok(misses)) = (series("hit"), series("miss"))
            && let Ok(mut caches) = self.cache_counts.lock()
        {
            caches.push((counts.clone(), hits, misses));
        }
        counts
    }

    /// One access token issued.
    #[inline]
    pub fn token_issued(&self, grant: GrantType) {
        let index = match grant {
            GrantType::ClientCredentials => 0,
            GrantType::TokenExchange => 1,
        };
        self.tokens_issued[index].1.inc();
    }

    /// One answered request. `route` is the matched route pattern (or [`UNMATCHED_ROUTE`]),
    /// never the raw path; `method` one of a fixed set (see `http::observe`); `error` the
    /// error code of an error answer.
    #[expect(
        clippy::ptr_arg,
        reason = "a borrowed route is a static string, found by its address (RecentAnswers)"
    )]
    pub fn request(
        &self,
        route: &Cow<'static, str>,
        method: &'static str,
        status: StatusCode,
        seconds: f64,
        error: Option<&str>,
    ) {
        let count = |series: &Answers| {
            series.duration.observe(seconds);
            series.answered.inc();
        };
        match route {
            // Counted in place: a clone of the series would add to (and take from) their
            // reference counts, lines every worker writes.
            Cow::Borrowed(route) => RECENT_ANSWERS.with(|recent| {
                if let Some(series) = recent.borrow_mut().series(self, route, method, status) {
                    count(series);
                }
            }),
            Cow::Owned(route) => {
                if let Some(series) = self.answer_series(route, method, status) {
                    count(&series);
                }
            }
        }
        if let Some(error) = error
            && let Ok(counter) = self.errors.get_metric_with_label_values(&[route, error])
        {
            counter.inc();
        }
    }

    /// The counts an answer adds to, looked up by their label values (made on first use).
    fn answer_series(
        &self,
        route: &str,
        method: &'static str,
        status: StatusCode,
    ) -> Option<Arc<Answers>> {
        let mut answers = self.answers.0.lock().ok()?;
        let key = (route.to_owned(), method, status.as_u16());
        Some(answers.entry(key).or_default().clone())
    }

    /// Sets the state gauges, then renders every series in the Prometheus text format.
    pub fn render(
        &self,
        pool: PoolGauges,
        signing_key_age: Option<i64>,
        view: ViewCounts,
    ) -> String {
        // Counters that only this scrape moves: brought up to the view's own counts.
        let bring_up = |counter: &IntCounter, count: u64| {
            counter.inc_by(count.saturating_sub(counter.get()));
        };
        bring_up(&self.cache_stale_lookups, view.stale_lookups);
        bring_up(&self.cache_resyncs, view.resyncs);
        for (counter, counts) in &self.tokens_issued {
            bring_up(counter, counts.get());
        }
        if let Ok(answers) = self.answers.0.lock() {
            for ((route, method, status), counts) in answers.iter() {
                let status = status.to_string();
                if let Ok(counter) = self.requests.get_metric_with_label_values(&[
                    route.as_str(),
                    method,
                    status.as_str(),
                ]) {
                    bring_up(&counter, counts.answered.get());
                }
            }
        }
        if let Ok(caches) = self.cache_counts.lock() {
            for (counts, hits, misses) in caches.iter() {
                bring_up(hits, counts.hits());
                bring_up(misses, counts.misses());
            }
        }
        self.pool_connections.set(i64::from(pool.connections));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));
        self.pool_waiting
            .set(i64::try_from(pool.waiting).unwrap_or(i64::MAX));
        self.db_up.set(i64::from(pool.up));
        self.signing_key_age
            .set(signing_key_age.unwrap_or(0).max(0));
        let mut out = Vec::with_capacity(8 * 1024);
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %err, "rendering the metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `metric`, registered in `registry` (which keeps a handle to the same series).
fn registered<M>(registry: &Registry, metric: M) -> prometheus::Result<M>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// The counts of one kind of answer (route, method, status), per thread: answering
/// writes no line another worker writes. `tollgate_http_requests_total` is brought up to
/// them when rendered, and [`DurationHistograms`] reads them.
struct Answers {
    answered: ShardedCounter,
    duration: ShardedHistogram,
}

impl Default for Answers {
    fn default() -> Self {
        Self {
            answered: ShardedCounter::default(),
            duration: ShardedHistogram::new(LATENCY_BUCKETS),
        }
    }
}

/// An answer's route, method and status.
type AnswerLabels = (String, &'static str, u16);

/// Every kind of answer counted so far.
#[derive(Default)]
struct AnswerTable(Mutex<HashMap<AnswerLabels, Arc<Answers>>>);

/// `tollgate_http_request_duration_seconds`, by route and method, read from the answers'
/// per-thread histograms (summed over status codes).
struct DurationHistograms {
    desc: Desc,
    answers: Arc<AnswerTable>,
}

impl Collector for DurationHistograms {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let mut by_route: BTreeMap<(String, &'static str), HistogramCounts> = BTreeMap::new();
        if let Ok(answers) = self.answers.0.lock() {
            for ((route, method, _), counts) in answers.iter() {
                by_route
                    .entry((route.clone(), method))
                    .or_default()
                    .add(&counts.duration.counts());
            }
        }
        let metrics = by_route
            .into_iter()
            .map(|((route, method), counts)| {
                let mut cumulative = 0u64;
                let buckets = LATENCY_BUCKETS
                    .iter()
                    .zip(counts.counts)
                    .map(|(bound, count)| {
                        cumulative = cumulative.wrapping_add(count);
                        let mut bucket = proto::Bucket::default();
                        bucket.set_upper_bound(*bound);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect();
                let mut histogram = proto::Histogram::default();
                histogram.set_sample_count(counts.total());
                histogram.set_sample_sum(counts.sum);
                histogram.set_bucket(buckets);
                // Label pairs sorted by name, as the exposition expects.
                let mut metric = proto::Metric::from_label(vec![
                    label_pair("method", method),
                    label_pair("route", &route),
                ]);
                metric.set_histogram(histogram);
                metric
            })
            .collect();
        let mut family = proto::MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(proto::MetricType::HISTOGRAM);
        family.set_metric(metrics);
        vec![family]
    }
}

fn label_pair(name: &str, value: &str) -> proto::LabelPair {
    let mut pair = proto::LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

/// What an [`Answers`] is for. Route and method are static strings, told apart by
/// address: a static string's address is never another string's.
#[derive(Clone, Copy, PartialEq, Eq)]
struct AnswerKey {
    registry: u64,
    route: (usize, usize),
    method: (usize, usize),
    status: u16,
}

/// How many answer kinds a worker thread keeps resolved: more than the routes one
/// workload hits; past it, the oldest slot is reused.
const RECENT_ANSWER_SLOTS: usize = 16;

/// The answer series a worker thread used last, found by comparing a few words: hashing
/// label values and the registry's read lock are for the first answer of each kind.
#[derive(Default)]
struct RecentAnswers {
    slots: Vec<(AnswerKey, Arc<Answers>)>,
    next: usize,
}

impl RecentAnswers {
    fn series(
        &mut self,
        metrics: &Metrics,
        route: &'static str,
        method: &'static str,
        status: StatusCode,
    ) -> Option<&Answers> {
        let key = AnswerKey {
            registry: metrics.id,
            route: (route.as_ptr() as usize, route.len()),
            method: (method.as_ptr() as usize, method.len()),
            status: status.as_u16(),
        };
        if let Some(at) = self.slots.iter().position(|(known, _)| *known == key) {
            return Some(&self.slots[at].1);
        }
        let series = metrics.answer_series(route, method, status)?;
        let at = if self.slots.len() < RECENT_ANSWER_SLOTS {
            self.slots.push((key, series));
            self.slots.len() - 1
        } else {
            let at = self.next;
            self.slots[at] = (key, series);
            self.next = (at + 1) % RECENT_ANSWER_SLOTS;
            at
        };
        Some(&self.slots[at].1)
    }
}

thread_local! {
    static RECENT_ANSWERS: RefCell<RecentAnswers> = RefCell::new(RecentAnswers::default());
}

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn every_series_is_registered_and_counts() {
        let metrics = Metrics::new();
        let clients = metrics.cache("clients");
        let before = metrics.render(PoolGauges::default(), None, ViewCounts::default());
        assert_eq!(
            value(
                &before,
                "tollgate_cache_requests_total{cache=\"clients\",result=\"hit\"}"
            ),
            Some(0.0),
            "{before}"
        );
        assert_eq!(
            value(
                &before,
                "tollgate_tokens_issued_total{grant_type=\"client_credentials\"}"
            ),
            Some(0.0)
        );
        clients.hit();
        clients.hit();
        clients.miss();
        metrics.token_issued(GrantType::TokenExchange);
        metrics.request(
            &Cow::Borrowed("/oauth/token"),
            "POST",
            StatusCode::BAD_REQUEST,
            0.002,
            Some("invalid_grant"),
        );
        let after = metrics.render(
            PoolGauges {
                connections: 3,
                idle: 1,
                max: 4,
                waiting: 2,
                up: true,
            },
            Some(120),
            ViewCounts {
                stale_lookups: 7,
                resyncs: 2,
            },
        );
        for (series, expected) in [
            (
                "tollgate_cache_requests_total{cache=\"clients\",result=\"hit\"}",
                2.0,
            ),
            (
                "tollgate_cache_requests_total{cache=\"clients\",result=\"miss\"}",
                1.0,
            ),
            (
                "tollgate_tokens_issued_total{grant_type=\"urn:ietf:params:oauth:grant-type:token-exchange\"}",
                1.0,
            ),
            (
                "tollgate_http_requests_total{method=\"POST\",route=\"/oauth/token\",status=\"400\"}",
                1.0,
            ),
            (
                "tollgate_http_errors_total{error=\"invalid_grant\",route=\"/oauth/token\"}",
                1.0,
            ),
            (
                "tollgate_http_request_duration_seconds_bucket{method=\"POST\",route=\"/oauth/token\",le=\"0.0025\"}",
                1.0,
            ),
            (
                "tollgate_http_request_duration_seconds_bucket{method=\"POST\",route=\"/oauth/token\",le=\"0.001\"}",
                0.0,
            ),
            ("tollgate_db_pool_connections", 3.0),
            ("tollgate_db_pool_idle_connections", 1.0),
            ("tollgate_db_pool_max_connections", 4.0),
            ("tollgate_db_pool_waiting", 2.0),
            ("tollgate_db_up", 1.0),
            ("tollgate_signing_key_age_seconds", 120.0),
            ("tollgate_cache_stale_lookups_total", 7.0),
            ("tollgate_cache_resyncs_total", 2.0),
        ] {
            assert_eq!(value(&after, series), Some(expected), "{series}\n{after}");
        }
        assert!(after.contains("# TYPE tollgate_http_request_duration_seconds histogram"));
    }

    #[test]
    fn answers_count_into_their_own_series_past_the_few_a_thread_keeps() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let route = Cow::Borrowed("/a");
        // More kinds of answer than a thread keeps resolved, each twice.
        let statuses: Vec<StatusCode> = (200..=220)
            .map(|code| StatusCode::from_u16(code).unwrap())
            .collect();
        for _ in 0..2 {
            for &status in &statuses {
                a.request(&route, "GET", status, 0.001, None);
            }
        }
        b.request(&route, "GET", StatusCode::OK, 0.001, None);
        a.request(
            &Cow::Owned("/b/{id}".to_owned()),
            "POST",
            StatusCode::CREATED,
            0.001,
            None,
        );
        let (a, b) = (
            a.render(PoolGauges::default(), None, ViewCounts::default()),
            b.render(PoolGauges::default(), None, ViewCounts::default()),
        );
        for status in &statuses {
            let series = format!(
                "tollgate_http_requests_total{{method=\"GET\",route=\"/a\",status=\"{}\"}}",
                status.as_str()
            );
            assert_eq!(value(&a, &series), Some(2.0), "{series}\n{a}");
        }
        let count = "tollgate_http_request_duration_seconds_count{method=\"GET\",route=\"/a\"}";
        assert_eq!(value(&a, count), Some(42.0));
        assert_eq!(value(&b, count), Some(1.0));
        assert_eq!(
            value(
                &b,
                "tollgate_http_requests_total{method=\"GET\",route=\"/a\",status=\"200\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &a,
                "tollgate_http_requests_total{method=\"POST\",route=\"/b/{id}\",status=\"201\"}"
            ),
            Some(1.0)
        );
    }

    #[test]
    fn two_instances_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.token_issued(GrantType::ClientCredentials);
        let series = "tollgate_tokens_issued_total{grant_type=\"client_credentials\"}";
        assert_eq!(
            value(
                &a.render(PoolGauges::default(), None, ViewCounts::default()),
                series
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &b.render(PoolGauges::default(), None, ViewCounts::default()),
                series
            ),
            Some(0.0)
        );
        let detached = CacheMetrics::detached();
        detached.hit();
        detached.miss();
        assert_eq!((detached.hits(), detached.misses()), (1, 1));
    }
}
