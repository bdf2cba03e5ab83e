//! Logging: tracing to stderr, so stdout stays clean for CLI output (`--json`).
//!
//! ERROR is kept for faults of the server. actix-http reports connection-level trouble
//! caused by clients (malformed request heads, oversized or truncated framing, resets) at
//! ERROR; those events are re-emitted at DEBUG under the `tollgate::connection` target, so
//! junk traffic cannot flood the log or page anyone, yet stays visible with
//! `TOLLGATE_LOG=tollgate::connection=debug`.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// actix-http's HTTP/1 connection errors: client noise, not server faults.
fn is_connection_noise(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target().starts_with("actix_http::h1")
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
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        tracing::debug!(target: "tollgate::connection", origin = event.metadata().target(), "{}", fields.0);
    }
}

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter.and(filter_fn(|meta| !is_connection_noise(meta))));
    let _already_set = tracing_subscriber::registry()
        .with(output)
        .with(Demote.with_filter(filter_fn(is_connection_noise)))
        .try_init();
}
