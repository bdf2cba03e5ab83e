//! Request body deadline: actix-web bounds the time to receive a request's head
//! (`client_request_timeout`) but not its body, so a client sending `Content-Length: 100`
//! and then 11 bytes would hold its connection for as long as it likes. This middleware
//! wraps every request payload in a stream that fails once
//! `server.request_body_timeout_ms` has passed since the head arrived, whichever extractor
//! reads it (`web::Bytes`, `web::Json`, `web::Payload`), and answers such a request with a
//! JSON 408 and `Connection: close`.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};

use super::error::HttpError;
use crate::app::AppState;

/// A payload that ends with an error at its deadline.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timed_out: Rc<Cell<bool>>,
    finished: bool,
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
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.finished = true;
                    self.timed_out.set(true);
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body was not received in time",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
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
    let timed_out = Rc::new(Cell::new(false));
    if let Some(limit) = limit {
        let payload = req.take_payload();
        if matches!(payload, Payload::None) {
            req.set_payload(payload);
        } else {
            let stream: Pin<Box<dyn futures_core::Stream<Item = _>>> = Box::pin(Deadline {
                inner: payload,
                sleep: Box::pin(tokio::time::sleep(limit)),
                timed_out: timed_out.clone(),
                finished: false,
            });
            req.set_payload(Payload::from(stream));
        }
    }
    let response = next.call(req).await?;
    if timed_out.get() {
        let request = response.request().clone();
        return Ok(ServiceResponse::new(request, body_timeout_response(limit)));
    }
    Ok(response.map_into_boxed_body())
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
