//! Connection watchdog and per-address connection cap.
//!
//! actix-http bounds the time to receive the *first* request head of a connection
//! (`client_request_timeout`) and the idle time before the next one (`keep_alive`), but the
//! keep-alive timer is cleared by the first byte of the next request and nothing replaces
//! it: `GET / HTTP/1.1 …` then `G` and silence held a connection forever. So every accepted
//! socket gets a watchdog: whenever no request is being handled (from accept, or from the
//! moment a response has been written), the next request's head must be complete within
//! `server.request_head_timeout_ms`, or the socket is shut down. While a request is being
//! handled its body is bounded by `server.request_body_timeout_ms` (see `limits`) and its
//! database work by the database timeouts; as a backstop (a stuck handler, a client that
//! does not read a large answer) the watchdog shuts the socket down when a request has
//! taken `server.request_timeout_ms` from its head to the end of its answer.
//!
//! The cap: at most `server.max_connections_per_address` open connections per client
//! address (IPv6 per /64), so one client cannot take every slot of `server.max_connections`.
//! Connections from `server.trusted_proxies` are not capped. A connection past the cap is
//! closed at once, without an answer.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::Shutdown;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::rt::net::TcpStream;
use actix_web::web;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::app::rate_limit::address_key;
use crate::config::TrustedProxies;

/// What the watchdog of one connection knows, shared with the requests on it.
struct WatchState {
    /// Requests between their head and the end of their response.
    active: Cell<usize>,
    /// When the connection last became idle (accepted, or a response was written).
    idle_since: Cell<Instant>,
    /// When the oldest request being handled started.
    busy_since: Cell<Instant>,
    closed: Cell<bool>,
    /// The deadline the watchdog sleeps until. A request's start or end that keeps the
    /// connection's deadline at or after it does not wake the watchdog (it re-reads the
    /// state when it wakes): the common case costs no wake-up and no timer change.
    sleeping_until: Cell<Instant>,
    head_timeout: Duration,
    request_timeout: Duration,
    wake: Notify,
}

impl WatchState {
    /// Wakes the watchdog if the connection's deadline is now earlier than the one it
    /// sleeps until.
    fn deadline_moved(&self, deadline: Instant) {
        if deadline < self.sleeping_until.get() {
            self.wake.notify_one();
        }
    }
}

/// Kept in the connection's data (`HttpRequest::conn_data`); dropped with the connection.
pub struct ConnectionWatch {
    state: Rc<WatchState>,
    _slot: Option<AddressSlot>,
}

impl Drop for ConnectionWatch {
    fn drop(&mut self) {
        self.state.closed.set(true);
        self.state.wake.notify_one();
    }
}

/// Marks the end of a request on drop.
pub struct RequestMark(Rc<WatchState>);

impl RequestMark {
    fn start(state: &Rc<WatchState>) -> Self {
        if state.active.get() == 0 {
            let now = Instant::now();
            state.busy_since.set(now);
            state.deadline_moved(now + state.request_timeout);
        }
        state.active.set(state.active.get() + 1);
        Self(state.clone())
    }
}

impl Drop for RequestMark {
    fn drop(&mut self) {
        let state = &self.0;
        let now = Instant::now();
        state.active.set(state.active.get().saturating_sub(1));
        state.idle_since.set(now);
        if state.active.get() == 0 {
            state.deadline_moved(now + state.head_timeout);
        }
    }
}

/// Open connections per address key, shared by all workers.
#[derive(Clone, Default)]
pub struct AddressCounts(Arc<Mutex<HashMap<String, usize>>>);

struct AddressSlot {
    counts: AddressCounts,
    key: String,
}

impl AddressCounts {
    fn take(&self, key: String, cap: usize) -> Option<AddressSlot> {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The watchdog's settings (from `[server]`).
#[derive(Clone)]
pub struct WatchSettings {
    pub head_timeout: Duration,
    /// From a request's head to the end of its answer.
    pub request_timeout: Duration,
    /// 0: no per-address cap.
    pub max_per_address: usize,
    pub trusted_proxies: TrustedProxies,
    pub counts: AddressCounts,
}

/// A second handle on the accepted socket, for the watchdog to shut it down later: the
/// dispatcher then reads end-of-file and closes the connection.
fn socket_handle(stream: &TcpStream) -> Option<socket2::Socket> {
    socket2::SockRef::from(stream).try_clone().ok()
}

/// Shuts the accepted socket down now.
fn shut_down(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).shutdown(Shutdown::Both);
}

/// `HttpServer::on_connect`: starts the watchdog of a new connection, or closes it at once
/// if its address is at the cap.
pub fn on_connect(settings: &WatchSettings, connection: &dyn std::any::Any, data: &mut Extensions) {
    let Some(stream) = connection.downcast_ref::<TcpStream>() else {
        return;
    };
    let slot = match stream.peer_addr() {
        Ok(peer)
            if settings.max_per_address > 0 && !settings.trusted_proxies.contains(peer.ip()) =>
        {
            match settings
                .counts
                .take(address_key(peer.ip()), settings.max_per_address)
            {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(
                        target: "tollgate::connection",
                        peer = %peer.ip(),
                        "connection refused: too many open connections from this address"
                    );
                    shut_down(stream);
                    return;
                }
            }
        }
        _ => None,
    };
    let Some(socket) = socket_handle(stream) else {
        // Out of file descriptors: an unwatched connection could be held forever.
        tracing::warn!("connection refused: its socket cannot be duplicated for its watchdog");
        shut_down(stream);
        return;
    };
    let now = Instant::now();
    let state = Rc::new(WatchState {
        active: Cell::new(0),
        idle_since: Cell::new(now),
        busy_since: Cell::new(now),
        closed: Cell::new(false),
        sleeping_until: Cell::new(now),
        head_timeout: settings.head_timeout,
        request_timeout: settings.request_timeout,
        wake: Notify::new(),
    });
    data.insert(ConnectionWatch {
        state: state.clone(),
        _slot: slot,
    });
    actix_web::rt::spawn(watch(state, socket));
}

async fn watch(state: Rc<WatchState>, socket: socket2::Socket) {
    loop {
        if state.closed.get() {
            return;
        }
        let (deadline, why) = if state.active.get() > 0 {
            (
                state.busy_since.get() + state.request_timeout,
                "a request was not answered within the request timeout",
            )
        } else {
            (
                state.idle_since.get() + state.head_timeout,
                "no complete request head within the head timeout",
            )
        };
        if Instant::now() >= deadline {
            tracing::debug!(target: "tollgate::connection", "closing a connection: {why}");
            let _ = socket.shutdown(Shutdown::Both);
            return;
        }
        state.sleeping_until.set(deadline);
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = state.wake.notified() => {}
        }
    }
}

/// A response body that marks the end of its request once written (or dropped).
struct MarkedBody {
    body: BoxBody,
    _mark: Option<RequestMark>,
}

impl MessageBody for MarkedBody {
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

/// Tells the connection's watchdog that a request has started (its head is in); the
/// returned marker, passed to [`end_with_response`], tells it when the response has been
/// written. Called first thing by `observe::Observation::begin`, around every route.
pub fn start_request(req: &ServiceRequest) -> Option<RequestMark> {
    req.conn_data::<ConnectionWatch>()
        .map(|watch| RequestMark::start(&watch.state))
}

/// The response, marking the end of its request once written (or dropped).
pub fn end_with_response(
    mark: Option<RequestMark>,
    response: ServiceResponse<BoxBody>,
) -> ServiceResponse<BoxBody> {
    match mark {
        None => response,
        Some(mark) => response
            .map_body(|_, body| MarkedBody {
                body,
                _mark: Some(mark),
            })
            .map_into_boxed_body(),
    }
}
