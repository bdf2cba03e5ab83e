//! Logging: tracing to stderr, so stdout stays clean for CLI output (`--json`).
//!
//! ERROR is kept for faults of the server. actix-http also reports connection-level trouble
//! caused by clients (malformed or oversized request heads, resets, slow or abandoned
//! requests) at ERROR; those events, and only those (see `CLIENT_CAUSED`), are re-emitted
//! at DEBUG under the `tollgate::connection` target, so junk traffic cannot flood the log or
//! page anyone, yet stays visible with `TOLLGATE_LOG=tollgate::connection=debug`. Its other
//! ERROR events (a failing response body, internal errors) stay ERROR.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

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

/// The subscriber: `filter` for what is shown, on `writer`.
fn subscriber<W>(filter: &str, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let output = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false)
        .with_filter(filter.and(Noise { noise: false }));
    tracing_subscriber::registry()
        .with(output)
        .with(Demote.with_filter(Noise { noise: true }))
}

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(filter: &str) {
    let _already_set = subscriber(filter, std::io::stderr).try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

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
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing::subscriber::with_default(subscriber(filter, move || writer.clone()), emit);
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
}
