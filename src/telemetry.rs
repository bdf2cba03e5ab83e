//! Logging: tracing to stderr, so stdout stays clean for CLI output (`--json`), as text
//! or as one JSON object per line (`log.format`); and, in [`metrics`], the Prometheus
//! metrics.
//!
//! Every line logged while a request is handled is in a `request` span (see
//! `http::observe` and [`request`]) whose fields, `request_id` and `client`, are written with
//! it, in both formats. The span is at ERROR level so that it is kept whatever the filter
//! lets through, and made only when the request logs a line.
//!
//! The filter (`log.level`, `TOLLGATE_LOG`) is checked at start-up by [`check_filter`]:
//! `tracing`'s own parser takes an unknown word such as `verbose` for a target name, which
//! hides every line, so such values are refused instead.
//!
//! ERROR is kept for faults of the server. actix-http also reports connection-level trouble
//! caused by clients (malformed or oversized request heads, resets, slow or abandoned
//! requests) at ERROR; those events, and only those (see `CLIENT_CAUSED`), are re-emitted
//! at DEBUG under the `tollgate::connection` target, so junk traffic cannot flood the log or
//! page anyone, yet stays visible with `TOLLGATE_LOG=tollgate::connection=debug`. Its other
//! ERROR events (a failing response body, internal errors) stay ERROR.

pub mod metrics;
pub mod request;
pub mod sharded;

/// Ids for requests that come without one: a random prefix drawn once per instance and a
/// counter, so that the hot path makes no system call and no base58 division for it. Unique
/// across instances by the prefix; not secret (they are sent back in `X-Request-Id`).
///
/// Each thread takes the counter's values a block at a time, so that two workers do not
/// add to one shared atomic (a cache line moving between cores) on every request; ids are
/// therefore unique but not in order across threads.
pub struct RequestIds {
    prefix: String,
    /// This instance among the process's (tests run several), for the threads' blocks.
    instance: u64,
    next: AtomicU64,
}

/// Counter values a thread takes at once.
const REQUEST_ID_BLOCK: u64 = 256;

static NEXT_REQUEST_IDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The block this thread draws from: (instance, next value, end of the block).
    static REQUEST_ID_BLOCK_IN_USE: Cell<(u64, u64, u64)> = const { Cell::new((u64::MAX, 0, 0)) };
}

impl Default for RequestIds {
    fn default() -> Self {
        let mut prefix = crate::crypto::secrets::random_id();
        prefix.truncate(10);
        Self::starting_at(prefix, 0)
    }
}

impl RequestIds {
    fn starting_at(prefix: String, next: u64) -> Self {
        Self {
            prefix,
            instance: NEXT_REQUEST_IDS.fetch_add(1, Ordering::Relaxed),
            next: AtomicU64::new(next),
        }
    }

    /// The next counter value from this thread's block, taking a new block when it is
    /// used up or belongs to another instance.
    fn next_value(&self) -> u64 {
        REQUEST_ID_BLOCK_IN_USE.with(|block| {
            let (instance, mut next, mut end) = block.get();
            if instance != self.instance || next == end {
                next = self.next.fetch_add(REQUEST_ID_BLOCK, Ordering::Relaxed);
                end = next.wrapping_add(REQUEST_ID_BLOCK);
            }
            block.set((self.instance, next.wrapping_add(1), end));
            next
        })
    }

    /// The prefix, then the counter in at least 12 lowercase hex digits (written by hand:
    /// `format!` pads through the formatter, one character at a time).
    pub fn next(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut n = self.next_value();
        let mut hex = [b'0'; 16];
        let mut start = hex.len();
        while n > 0 {
            start -= 1;
            hex[start] = DIGITS[(n & 0xf) as usize];
            n >>= 4;
        }
        let start = start.min(hex.len() - 12);
        let mut id = String::with_capacity(self.prefix.len() + hex.len() - start);
        id.push_str(&self.prefix);
        id.extend(hex[start..].iter().map(|&digit| char::from(digit)));
        id
    }
}

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, LevelFilter};
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;
use tracing_subscriber::util::SubscriberInitExt;

pub use crate::config::LogFormat;

/// actix-http's HTTP/1 ERROR events: some are client noise, some real server faults.
fn is_h1_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target().starts_with("actix_http::h1")
}

/// What a client causes: malformed or oversized heads, resets and broken pipes, slow or
/// abandoned requests. Not: a failing response body ("Response payload stream error",
/// "body error"), "Internal server error", upgrade or service errors, which stay ERROR.
const CLIENT_CAUSED: &[&str] = &[
    "stream error: request parse error",
    "stream error: I/O error",
    "stream error: request did not complete within the specified timeout",
    "stream error: connection shutdown timeout",
    "stream error: handler dropped payload before reading EOF",
    "MAX_BUFFER_SIZE unprocessed data reached",
    "write zero; closing",
];

fn message_of(event: &Event<'_>) -> String {
    let mut fields = Fields(String::new());
    event.record(&mut fields);
    fields.0
}

fn is_connection_noise(event: &Event<'_>) -> bool {
    is_h1_error(event.metadata()) && {
        let message = message_of(event);
        CLIENT_CAUSED
            .iter()
            .any(|prefix| message.starts_with(prefix))
    }
}

/// Per-layer filter: `noise` selects the client-caused actix-http errors, `!noise` the rest.
struct Noise {
    noise: bool,
}

impl<S> Filter<S> for Noise {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        !self.noise || is_h1_error(meta)
    }

    // Decided once per call site, not per event: only actix-http's ERROR events need a
    // look at their message. Without this, every disabled `trace!` of every dependency
    // would ask the filters again each time it runs.
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_h1_error(meta) {
            Interest::sometimes()
        } else if self.noise {
            Interest::never()
        } else {
            Interest::always()
        }
    }

    // With the filter's own hint (`And` keeps the stricter), the global maximum level lets
    // disabled events be skipped by a level comparison.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(if self.noise {
            LevelFilter::ERROR
        } else {
            LevelFilter::TRACE
        })
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        is_connection_noise(event) == self.noise
    }
}

/// Re-emits connection noise at DEBUG.
struct Demote;

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for Demote {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let message = message_of(event);
        tracing::debug!(target: "tollgate::connection", origin = event.metadata().target(), "{message}");
    }
}

const LEVELS: &str = "off, error, warn, info, debug, trace";

/// Checks a filter (`log.level`, `TOLLGATE_LOG`) strictly: comma-separated directives, each
/// a level (`debug`) or `target=level` (`tollgate=debug`, `actix_web=warn`; a span part as
/// in `target[span{field}]=level` is allowed). A bare word that is not a level is refused:
/// `tracing` would take it for a target and show nothing else.
pub fn check_filter(filter: &str) -> Result<EnvFilter, String> {
    let refuse = |why: String| {
        Err(format!(
            "{filter:?} is not a log filter: {why}; use a level ({LEVELS}) or directives like \"info,tollgate=debug\""
        ))
    };
    if filter.trim().is_empty() {
        return refuse("it is empty".into());
    }
    for directive in filter.split(',').map(str::trim) {
        if directive.is_empty() {
            return refuse("it has an empty directive".into());
        }
        // The level is after the last `=` outside a span part (`[span{field=value}]`).
        let mut depth = 0i32;
        let mut split = None;
        for (at, c) in directive.char_indices() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                '=' if depth == 0 => split = Some(at),
                _ => {}
            }
        }
        let (selector, level) = match split {
            Some(at) => (&directive[..at], &directive[at + 1..]),
            None if directive.starts_with('[') => (directive, "trace"),
            None => ("", directive),
        };
        if level.trim().parse::<LevelFilter>().is_err() {
            return refuse(if split.is_some() {
                format!("{level:?} is not a level")
            } else {
                format!("{level:?} is neither a level nor target=level")
            });
        }
        let target = selector.split('[').next().unwrap_or_default().trim();
        let is_path = target.split("::").all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if !target.is_empty() && !is_path {
            return refuse(format!("{target:?} is not a target (a module path)"));
        }
    }
    // `tracing` does not trim directives: "info, tollgate=debug" is meant as written.
    let directives: Vec<&str> = filter.split(',').map(str::trim).collect();
    EnvFilter::builder()
        .with_regex(false)
        .parse(directives.join(","))
        .or_else(|err| refuse(err.to_string()))
}

/// The subscriber: `filter` for what is shown, in `format`, on `writer`.
fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false);
    let shown = filter.and(Noise { noise: false });
    let output: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => lines.with_ansi(ansi).with_filter(shown).boxed(),
        // Machines filter on the target (`tollgate::access`); people reading text need not.
        LogFormat::Json => lines
            .json()
            .with_target(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_filter(shown)
            .boxed(),
    };
    request::RequestSpans::new(
        tracing_subscriber::registry()
            .with(output)
            .with(Demote.with_filter(Noise { noise: true })),
    )
}

/// Installs the global subscriber once, as text; later calls (tests) are ignored. For
/// fixed filters (the CLI's `warn`); the server uses [`init_with`].
pub fn init(filter: &str) {
    let _ = init_with(filter, LogFormat::Text);
}

/// Installs the global subscriber once (later calls are ignored), refusing a bad filter.
pub fn init_with(filter: &str, format: LogFormat) -> Result<(), String> {
    let filter = check_filter(filter)?;
    let ansi = std::io::stderr().is_terminal();
    let _already_set = subscriber(filter, format, ansi, std::io::stderr).try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn request_ids_are_the_prefix_and_at_least_twelve_hex_digits() {
        for n in [0, 1, 0xabc, (1 << 48) - 1, 1 << 48, u64::MAX] {
            let ids = RequestIds::starting_at("Pfx".to_owned(), n);
            assert_eq!(ids.next(), format!("Pfx{n:012x}"));
            assert_eq!(ids.next(), format!("Pfx{:012x}", n.wrapping_add(1)));
        }
    }

    #[test]
    fn request_ids_are_unique_across_threads_and_instances() {
        let ids = Arc::new(RequestIds::default());
        let other = RequestIds::default();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || (0..1000).map(|_| ids.next()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for thread in threads {
            for id in thread.join().unwrap() {
                assert!(seen.insert(id));
            }
        }
        // Interleaved on one thread: each instance keeps to its own counter.
        for _ in 0..300 {
            assert!(seen.insert(ids.next()));
            assert!(seen.insert(other.next()));
        }
        assert_eq!(seen.len(), 4600);
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct Collect(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Collect {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            self.0.lock().unwrap().push(message_of(event));
        }
    }

    fn logged(filter: &str, emit: impl FnOnce()) -> String {
        logged_as(filter, LogFormat::Text, emit)
    }

    fn logged_as(filter: &str, format: LogFormat, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let filter = check_filter(filter).unwrap();
        tracing::subscriber::with_default(
            subscriber(filter, format, false, move || writer.clone()),
            emit,
        );
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn client_caused_connection_errors_are_demoted_and_server_faults_kept() {
        let emit = || {
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error: invalid Header provided");
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: I/O error: Connection reset by peer (os error 104)");
            tracing::error!(target: "actix_http::h1::decoder", "MAX_BUFFER_SIZE unprocessed data reached, closing");
            tracing::error!(target: "actix_http::h1::dispatcher", "Response payload stream error: boom");
            tracing::error!(target: "actix_http::h1::dispatcher", "Internal server error: unexpected eof");
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: body error: boom");
        };
        let shown = logged("info", emit);
        assert!(!shown.contains("parse error"), "{shown}");
        assert!(!shown.contains("reset by peer"), "{shown}");
        assert!(!shown.contains("MAX_BUFFER_SIZE"), "{shown}");
        assert!(
            shown.contains("ERROR") && shown.contains("Response payload stream error: boom"),
            "{shown}"
        );
        assert!(
            shown.contains("Internal server error: unexpected eof"),
            "{shown}"
        );
        assert!(shown.contains("stream error: body error: boom"), "{shown}");
        // Exactly the client-caused ones go to `Demote` (re-emitted at DEBUG under
        // `tollgate::connection`; a scoped test subscriber drops nested events, so the
        // selection is checked here).
        let demoted = Arc::new(Mutex::new(Vec::new()));
        let collector = Collect(demoted.clone()).with_filter(Noise { noise: true });
        tracing::subscriber::with_default(tracing_subscriber::registry().with(collector), emit);
        let demoted = demoted.lock().unwrap().clone();
        assert_eq!(demoted.len(), 3, "{demoted:?}");
        assert!(demoted[0].contains("invalid Header provided"));
        assert!(demoted[1].contains("reset by peer"));
        assert!(demoted[2].contains("MAX_BUFFER_SIZE"));
    }

    #[test]
    fn filters_that_would_hide_everything_are_refused() {
        for good in [
            "info",
            "INFO",
            "trace",
            "off",
            "warn,tollgate=debug",
            "info, tollgate::connection=debug",
            "tollgate=trace",
            "actix_web=warn,info",
            "info,tollgate[request{request_id}]=trace",
        ] {
            assert!(check_filter(good).is_ok(), "{good}");
        }
        for bad in [
            "verbose",
            "",
            " ",
            "tollgate",
            "info,loud",
            "tollgate=loud",
            "info,,debug",
            "my target=debug",
        ] {
            let err = check_filter(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains("trace"), "the message lists the levels: {err}");
        }
    }

    #[test]
    fn json_lines_carry_the_span_fields() {
        let shown = logged_as("info", LogFormat::Json, || {
            let span = tracing::error_span!("request", request_id = "r-1", client = "192.0.2.1");
            let _entered = span.enter();
            tracing::info!(status = 200, "answered");
        });
        let line: serde_json::Value = serde_json::from_str(shown.trim()).unwrap();
        assert_eq!(line["fields"]["message"], "answered");
        assert_eq!(line["fields"]["status"], 200);
        assert_eq!(line["spans"][0]["request_id"], "r-1");
        assert_eq!(line["spans"][0]["client"], "192.0.2.1");
        let text = logged("info", || {
            let span = tracing::error_span!("request", request_id = "r-2");
            let _entered = span.enter();
            tracing::info!("answered");
        });
        assert!(
            text.contains("request{request_id=\"r-2\"}: answered"),
            "{text}"
        );
        assert!(
            !text.contains('\u{1b}'),
            "no colour codes when not on a terminal: {text}"
        );
    }
}
