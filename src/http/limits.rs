//! Request body deadline: actix-web bounds the time to receive a request's head
//! (`client_request_timeout`) but not its body, so a client sending `Content-Length: 100`
//! and then 11 bytes would hold its connection for as long as it likes. This middleware
//! wraps every request payload in a stream that fails once
//! `server.request_body_timeout_ms` has passed since the head arrived, whichever extractor
//! reads it (`web::Bytes`, `web::Json`, `web::Payload`), and answers such a request with a
//! JSON 408 and `Connection: close`.
//!
//! The deadline is for the whole body, not for progress: the default 10 s for the default
//! 8 KiB `server.max_body_bytes` asks for at least ~820 bytes/s; raise
//! `server.request_body_timeout_ms` with `max_body_bytes` for slow links.
//!
//! A body the handler does not read to its end (a 404, 405 or 413, a failed bearer check,
//! any GET handler) is kept alive, unread, until the response is written, and the
//! connection is closed after it: dropped, actix would go on draining a chunked body for
//! as long as the client trickles it, with no timer.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, ResponseError, web};

use super::error::HttpError;
use crate::app::AppState;

/// A payload that ends with an error at its deadline. Then, or when it is dropped before
/// its end, the unread rest is handed to the middleware (`held`), which keeps it alive
/// until the response is written: actix closes a connection whose request payload is
/// still unread, but would keep draining a chunked one that was dropped, for as long as
/// the client trickles it.
struct Deadline {
    inner: Payload,
    /// When the body must be in. The timer is armed only once the body is really waited
    /// for: a body that arrived with the head (the common case) never touches the timer
    /// wheel (see [`Deadline::poll_next`]).
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The first `Pending` was answered by waking the task instead of arming the timer.
    yielded: bool,
    outcome: Rc<Outcome>,
    finished: bool,
}

/// What the payload tells the middleware once the handler is done with it.
#[derive(Default)]
struct Outcome {
    timed_out: Cell<bool>,
    /// The unread rest of the body, kept alive until the response is written.
    held: RefCell<Option<Payload>>,
}

/// A response body that keeps the unread request payload alive while it is written.
struct HoldingBody {
    body: BoxBody,
    _unread: Payload,
}

impl MessageBody for HoldingBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

impl futures_core::Stream for Deadline {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(item) => Poll::Ready(item),
            // actix calls the handler as soon as the head is decoded, before it feeds the
            // body that came in the same read: the first wait is nearly always for a body
            // that is already in the buffer. That wait gets a wake-up instead of a timer
            // (allocating it and putting it in and out of the wheel costs more than the
            // rest of the body's handling); a second one arms the timer. The deadline
            // counts from the head either way.
            Poll::Pending if !self.yielded => {
                self.yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Pending => {
                let deadline = self.deadline;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.finished = true;
                        self.outcome.timed_out.set(true);
                        let unread = std::mem::replace(&mut self.inner, Payload::None);
                        *self.outcome.held.borrow_mut() = Some(unread);
                        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the request body was not received in time",
                        )))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if !self.finished {
            let unread = std::mem::replace(&mut self.inner, Payload::None);
            *self.outcome.held.borrow_mut() = Some(unread);
        }
    }
}

/// A request's body under its deadline (see the module documentation): armed before the
/// handler runs, settled with its answer.
pub struct BodyDeadline {
    /// Absent for a request without a body, or an app without state.
    armed: Option<(Duration, Rc<Outcome>)>,
}

impl BodyDeadline {
    /// Puts the request's payload, if it has one, under the body deadline.
    pub fn arm(req: &mut ServiceRequest) -> Self {
        let Some(limit) = req
            .app_data::<web::Data<AppState>>()
            .map(|state| state.settings.request_body_timeout)
        else {
            return Self { armed: None };
        };
        let payload = req.take_payload();
        if matches!(payload, Payload::None) {
            req.set_payload(payload);
            return Self { armed: None };
        }
        let outcome = Rc::new(Outcome::default());
        let stream: Pin<Box<dyn futures_core::Stream<Item = _>>> = Box::pin(Deadline {
            inner: payload,
            deadline: tokio::time::Instant::now() + limit,
            sleep: None,
            yielded: false,
            outcome: outcome.clone(),
            finished: false,
        });
        req.set_payload(Payload::from(stream));
        Self {
            armed: Some((limit, outcome)),
        }
    }

    /// The handler's answer; a JSON 408 instead if the body did not arrive in time. A
    /// body left unread is held until the answer is written, and the connection closed.
    pub fn settle(self, response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
        let Some((limit, outcome)) = self.armed else {
            return response;
        };
        let unread = outcome.held.borrow_mut().take();
        if outcome.timed_out.get() {
            let request = response.request().clone();
            let answer = body_timeout_response(limit);
            let answer = match unread {
                Some(unread) => answer
                    .map_body(|_, body| HoldingBody {
                        body,
                        _unread: unread,
                    })
                    .map_into_boxed_body(),
                None => answer,
            };
            return ServiceResponse::new(request, answer);
        }
        match unread {
            // The handler answered without reading the whole body.
            Some(unread) => {
                let mut response = response.map_body(|_, body| HoldingBody {
                    body,
                    _unread: unread,
                });
                response
                    .response_mut()
                    .head_mut()
                    .set_connection_type(actix_web::http::ConnectionType::Close);
                response.map_into_boxed_body()
            }
            None => response,
        }
    }
}

fn body_timeout_response(limit: Duration) -> actix_web::HttpResponse {
    let ms = limit.as_millis();
    let mut response = HttpError::api(
        StatusCode::REQUEST_TIMEOUT,
        "invalid_request",
        format!("the request body was not received within {ms} ms"),
    )
    .error_response();
    // The rest of the body may still arrive; the connection cannot be reused.
    response
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    response
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::*;

    type Item = Option<Result<web::Bytes, PayloadError>>;

    /// A client's body as the handler sees it: these answers in turn, then a client that
    /// sends nothing more.
    struct Scripted(VecDeque<Poll<Item>>);

    impl futures_core::Stream for Scripted {
        type Item = Result<web::Bytes, PayloadError>;

        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Item> {
            self.0.pop_front().unwrap_or(Poll::Pending)
        }
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn deadline(script: impl IntoIterator<Item = Poll<Item>>) -> Pin<Box<Deadline>> {
        let stream: Pin<Box<dyn futures_core::Stream<Item = _>>> =
            Box::pin(Scripted(script.into_iter().collect()));
        Box::pin(Deadline {
            inner: Payload::from(stream),
            deadline: tokio::time::Instant::now() + Duration::from_secs(10),
            sleep: None,
            yielded: false,
            outcome: Rc::default(),
            finished: false,
        })
    }

    fn poll(body: &mut Pin<Box<Deadline>>, waker: &Arc<CountingWaker>) -> Poll<Item> {
        let waker = Waker::from(waker.clone());
        futures_core::Stream::poll_next(body.as_mut(), &mut Context::from_waker(&waker))
    }

    #[tokio::test]
    async fn a_body_fed_right_after_the_handler_starts_never_arms_the_timer() {
        let waker = Arc::new(CountingWaker::default());
        let chunk = web::Bytes::from_static(b"grant_type=client_credentials");
        let mut body = deadline([
            Poll::Pending,
            Poll::Ready(Some(Ok(chunk.clone()))),
            Poll::Ready(None),
        ]);
        // The first wait wakes the task at once instead of arming the timer.
        assert!(poll(&mut body, &waker).is_pending());
        assert_eq!(waker.0.load(Ordering::Relaxed), 1);
        assert!(body.sleep.is_none());
        assert!(matches!(poll(&mut body, &waker), Poll::Ready(Some(Ok(got))) if got == chunk));
        assert!(matches!(poll(&mut body, &waker), Poll::Ready(None)));
        assert!(body.sleep.is_none());
        assert!(!body.outcome.timed_out.get());
    }

    #[tokio::test]
    async fn a_body_still_missing_at_the_second_wait_is_under_the_timer() {
        let waker = Arc::new(CountingWaker::default());
        let mut body = deadline([Poll::Pending]);
        assert!(poll(&mut body, &waker).is_pending());
        assert!(body.sleep.is_none());
        // The client sends nothing more: the timer is armed, and the task is left to it.
        assert!(poll(&mut body, &waker).is_pending());
        assert!(body.sleep.is_some());
        assert_eq!(waker.0.load(Ordering::Relaxed), 1);
        // After a chunk, a later wait goes to the timer at once.
        let mut body = deadline([Poll::Pending, Poll::Ready(Some(Ok(web::Bytes::new())))]);
        assert!(poll(&mut body, &waker).is_pending());
        assert!(poll(&mut body, &waker).is_ready());
        assert!(poll(&mut body, &waker).is_pending());
        assert!(body.sleep.is_some());
    }
}
