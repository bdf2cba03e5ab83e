//! The one middleware around every route. In order, before the request is routed:
//! [`observe`](super::observe) notes it (watchdog, request id, log identity),
//! [`surface`](super::surface) serves HEAD as GET, [`limits`](super::limits) puts its body
//! under the body deadline, and a request that may change what the in-memory view holds is
//! marked to catch up ([`super::to_catch_up`]). After the handler, in reverse: the body
//! deadline settles the answer, the view catches up, `surface` shapes the answer, and
//! `observe` records it. The log identity is current throughout.
//!
//! One hand-written layer rather than a `from_fn` layer for each: every such layer boxes
//! two futures per request and calls through them, a measurable share of a token request
//! besides its signature.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::Error;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};

use super::limits::BodyDeadline;
use super::observe::Observation;
use crate::telemetry::request::Scoped;

/// See the module documentation; `App::wrap(AroundRoutes)`.
pub struct AroundRoutes;

impl<S, B> Transform<S, ServiceRequest> for AroundRoutes
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = AroundRoutesService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AroundRoutesService {
            service: Rc::new(service),
        }))
    }
}

pub struct AroundRoutesService<S> {
    service: Rc<S>,
}

type Answer = Result<ServiceResponse<BoxBody>, Error>;

impl<S, B> Service<ServiceRequest> for AroundRoutesService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Answer>>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let observation = Observation::begin(&req);
        super::surface::prepare(&mut req);
        let body = BodyDeadline::arm(&mut req);
        let catch_up = super::to_catch_up(&req);
        let handled = self.service.call(req);
        let answered = async move {
            let result = match handled.await {
                Ok(res) => Ok(body.settle(res.map_into_boxed_body())),
                Err(err) => Err(err),
            };
            if let (Ok(_), Some(state)) = (&result, catch_up) {
                state.cache.catch_up().await;
            }
            super::surface::finish(result)
        };
        match observation.scope() {
            Some(scope) => Box::pin(async move {
                let result = Scoped::new(scope, answered).await;
                observation.finish(result)
            }),
            None => Box::pin(async move { observation.finish(answered.await) }),
        }
    }
}
