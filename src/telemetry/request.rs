//! The request a line is logged for, made cheap for requests that log nothing.
//!
//! Every line logged while a request is handled carries its `request_id` and `client`, as
//! the fields of a `request` span (see [`crate::telemetry`]). Making, entering and closing a
//! span on every request costs more than a request of the token endpoint does besides its
//! signature, and most requests log nothing (with the access log off). So the request's
//! [`RequestScope`] is only made current on the thread that runs it (by [`Scoped`], and
//! [`RequestScope::run`] on the database threads), and its span is made on the first line
//! logged: [`RequestSpans`], around the subscriber, enters it for that line and every later
//! one. The lines come out exactly as if the span had been there from the start.
//!
//! Two differences from a span entered for the whole request: a filter directive on the
//! span (`tollgate[request{request_id=…}]=debug`) only sees it once it exists, and a
//! line logged inside another span is not nested under it.

use std::cell::RefCell;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Span, Subscriber};
use tracing_subscriber::filter::LevelFilter;

thread_local! {
    static CURRENT: RefCell<Option<Arc<RequestScope>>> = const { RefCell::new(None) };
}

/// One request's identity in the log.
pub struct RequestScope {
    request_id: String,
    client: Option<IpAddr>,
    span: OnceLock<Span>,
}

impl RequestScope {
    pub fn new(request_id: String, client: Option<IpAddr>) -> Arc<Self> {
        Arc::new(Self {
            request_id,
            client,
            span: OnceLock::new(),
        })
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The request's span, made on first use. At ERROR level, so that it is kept whatever
    /// the filter lets through.
    pub fn span(&self) -> &Span {
        self.span.get_or_init(|| match self.client {
            Some(ip) => {
                tracing::error_span!("request", request_id = %self.request_id, client = %ip)
            }
            None => tracing::error_span!("request", request_id = %self.request_id),
        })
    }

    /// The scope of the request this thread is working for, if any.
    pub fn current() -> Option<Arc<Self>> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// Runs `f` as part of `scope`'s request (on a thread the request handed work to).
    pub fn run<R>(scope: Option<Arc<Self>>, f: impl FnOnce() -> R) -> R {
        let _restore = Restore(CURRENT.with(|current| current.replace(scope)));
        f()
    }
}

/// Puts the previous scope back, even if the work in between panicked.
struct Restore(Option<Arc<RequestScope>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT.try_with(|current| current.replace(previous));
    }
}

pin_project_lite::pin_project! {
    /// A request's future, with its scope current while it is polled.
    pub struct Scoped<F> {
        scope: Arc<RequestScope>,
        #[pin]
        inner: F,
    }
}

impl<F> Scoped<F> {
    pub fn new(scope: Arc<RequestScope>, inner: F) -> Self {
        Self { scope, inner }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        RequestScope::run(Some(this.scope.clone()), || this.inner.poll(cx))
    }
}

/// The subscriber, with the current request's span entered for each line logged outside
/// any span (see the module documentation).
pub struct RequestSpans<S> {
    inner: S,
}

impl<S> RequestSpans<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: Subscriber> RequestSpans<S> {
    /// The current request's span, if a line logged now belongs in it.
    fn request_span(&self, create: bool) -> Option<Id> {
        if self.inner.current_span().id().is_some() {
            return None;
        }
        let scope = RequestScope::current()?;
        let span = if create {
            Some(scope.span())
        } else {
            scope.span.get()
        };
        // Made through the global dispatcher (this subscriber); under a scoped test
        // dispatcher that is a no-op span, and the line goes out without it.
        span.and_then(Span::id)
    }
}

impl<S: Subscriber> Subscriber for RequestSpans<S> {
    // The span is made here, before the line is filtered, not in `event`: making a span
    // runs the per-layer filters, which keep what they decided for the line in between.
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if metadata.is_event() {
            self.request_span(true);
        }
        self.inner.enabled(metadata)
    }

    fn event_enabled(&self, event: &Event<'_>) -> bool {
        if event.is_contextual() {
            self.request_span(true);
        }
        self.inner.event_enabled(event)
    }

    fn event(&self, event: &Event<'_>) {
        match self.request_span(false) {
            Some(id) if event.is_contextual() => {
                self.inner.enter(&id);
                self.inner.event(event);
                self.inner.exit(&id);
            }
            _ => self.inner.event(event),
        }
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.max_level_hint()
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner.record(span, values);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows);
    }

    fn enter(&self, span: &Id) {
        self.inner.enter(span);
    }

    fn exit(&self, span: &Id) {
        self.inner.exit(span);
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.inner.try_close(id)
    }

    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn current_span(&self) -> tracing_core::span::Current {
        self.inner.current_span()
    }
}
