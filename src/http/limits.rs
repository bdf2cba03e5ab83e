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
use actix_web::middleware::Next;
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
    /// When the body must be in. The timer is armed only once the body is waited for: a
    /// body that arrived with the head (the common case) never touches the timer wheel.
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
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

/// `from_fn` middleware: see the module doc.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.request_body_timeout);
    let outcome = Rc::new(Outcome::default());
    if let Some(limit) = limit {
        let payload = req.take_payload();
        if matches!(payload, Payload::None) {
            req.set_payload(payload);
        } else {
            let stream: Pin<Box<dyn futures_core::Stream<Item = _>>> = Box::pin(Deadline {
                inner: payload,
                deadline: tokio::time::Instant::now() + limit,
                sleep: None,
                outcome: outcome.clone(),
                finished: false,
            });
            req.set_payload(Payload::from(stream));
        }
    }
    let response = next.call(req).await?;
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
        return Ok(ServiceResponse::new(request, answer));
    }
    match unread {
        // The handler answered without reading the whole body.
        Some(unread) => {
            let mut response = response.map_body(|_, body| HoldingBody {
                body: body.boxed(),
                _unread: unread,
            });
            response
                .response_mut()
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
            Ok(response.map_into_boxed_body())
        }
        None => Ok(response.map_into_boxed_body()),
    }
}

fn body_timeout_response(limit: Option<Duration>) -> actix_web::HttpResponse {
    let ms = limit.map_or(0, |l| l.as_millis());
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
