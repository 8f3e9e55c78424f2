//! Attaching an HTTP response (poll or stream) to a session as its receiver.

use crate::cluster::owners::Owner;
use crate::limits::per_address::Slot;
use crate::protocol::{CloseCode, Frame};
use crate::service::api::{CloseReason, SessionInfo};
use crate::service::hub::ServiceHub;
use crate::session::actor::{Attach, Detach, SessionActor};
use crate::session::receiver::{self, Outgoing, ReceiverKind, ReceiverRx};
use crate::transport::client_addr::Trust;
use crate::transport::forward;
use crate::transport::hangup::{self, HangupGuard};
use crate::transport::headers;
use actix::{Actor, Addr};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::Stream;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A response body fed by a session: an optional prelude, then frames.
pub struct ReceiverBody {
    prelude: Option<Bytes>,
    rx: ReceiverRx,
    _hangup: Option<HangupGuard>,
}

impl Stream for ReceiverBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(p) = self.prelude.take() {
            return Poll::Ready(Some(Ok(p)));
        }
        loop {
            return match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Outgoing::Data(d))) => Poll::Ready(Some(Ok(d.into_bytes()))),
                // Only WebSockets get close and heartbeat items.
                Poll::Ready(Some(Outgoing::Close(_) | Outgoing::Heartbeat)) => continue,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

/// Makes a new session on `hub`, started on the current arbiter; `slot`:
/// its place among its address's sessions ([`ServiceHub::admit`]).
pub fn start_session(
    hub: &Arc<ServiceHub>,
    req: &HttpRequest,
    sid: Option<&str>,
    key: u64,
    slot: Option<Slot>,
) -> Addr<SessionActor> {
    start_session_with(hub, req, sid, key, slot, |_| {})
}

/// Starts a session after `setup` has run on its context (a WebSocket
/// spawns its socket there, to run inside the session's own task).
pub fn start_session_with(
    hub: &Arc<ServiceHub>,
    req: &HttpRequest,
    sid: Option<&str>,
    key: u64,
    slot: Option<Slot>,
    setup: impl FnOnce(&mut actix::Context<SessionActor>),
) -> Addr<SessionActor> {
    let info = session_info(req, hub, key);
    let session = SessionActor::new(key, sid, hub.clone(), info, slot);
    SessionActor::create(|ctx| {
        setup(ctx);
        session
    })
}

/// Finds or makes session `sid` and attaches a receiver of `kind` to it.
/// The body ends when the session lets the receiver go. In a cluster, a
/// session another node holds is answered by that node (the `Err` answer),
/// and one whose node is gone gets a close frame at once.
pub async fn attach(
    req: &HttpRequest,
    hub: &Arc<ServiceHub>,
    sid: &str,
    kind: impl Fn() -> ReceiverKind,
    prelude: Option<String>,
) -> Result<ReceiverBody, HttpResponse> {
    let mut slot = None;
    let mut admitted = false;
    // Whether this node recorded itself as the session's owner.
    let mut claimed = None;
    if let Some(owners) = &hub.cluster.owners {
        if hub.registry.get(sid).is_none() && !Trust::of(hub).from_node(req) {
            // With limits per address, a session new to the cluster is
            // admitted before anything is written for it: a refused one
            // leaves no record. Without, one round trip looks and claims.
            let limited = hub.address_limits.is_some();
            let mut owner = owners.locate(&hub.name, sid, !limited).await;
            if limited && owner == Owner::Here {
                match hub.admit(|| Trust::of(hub).limit_addr(req)) {
                    Ok(s) => slot = s,
                    Err(_) => return Ok(closed(kind(), prelude, &CloseCode::too_many_sessions())),
                }
                admitted = true;
                owner = owners.locate(&hub.name, sid, true).await;
                if owner != Owner::Here {
                    // Another node's after all: the place goes back.
                    slot = None;
                }
            }
            if owner == Owner::Here {
                claimed = Some(owners);
            }
            let gone = match owner {
                Owner::Here | Owner::Unknown => false,
                Owner::Gone => true,
                Owner::Elsewhere(url) => {
                    match forward::forward(req, hub, owners, &url, Bytes::new()).await {
                        Ok(resp) => return Err(resp),
                        Err(forward::Failed::Unreachable) => {
                            owners.forget(&hub.name, sid);
                            true
                        }
                    }
                }
            };
            if gone {
                return Ok(closed(kind(), prelude, &CloseCode::node_gone()));
            }
        }
    }
    // A new session is counted against its address's limits first; one
    // refused hears why in the transport's own close frame.
    if !admitted && hub.address_limits.is_some() && hub.registry.get(sid).is_none() {
        match hub.admit(|| Trust::of(hub).limit_addr(req)) {
            Ok(s) => slot = s,
            Err(_) => return Ok(closed(kind(), prelude, &CloseCode::too_many_sessions())),
        }
    }
    // A session that expires between lookup and attach has a closed mailbox;
    // the retry then finds the id free and makes a fresh session.
    for _ in 0..2 {
        let made = hub.registry.get_or_create(sid, |key| {
            start_session(hub, req, Some(sid), key, slot.take())
        });
        let Ok((addr, _)) = made else {
            // Never made (the node is full): no record of it stays.
            if let Some(owners) = claimed {
                owners.release(&hub.name, sid);
            }
            return Err(headers::service_unavailable());
        };
        let (receiver, rx) = receiver::channel(kind());
        let receiver_id = rx.id;
        if addr.send(Attach(receiver)).await.is_err() {
            continue;
        }
        let watched = addr.clone();
        let guard = hangup::watch(req, receiver_id, move || {
            watched.do_send(Detach {
                receiver_id,
                reason: CloseReason::Interrupted,
            });
        });
        return Ok(ReceiverBody {
            prelude: prelude.map(Bytes::from),
            rx,
            _hangup: guard,
        });
    }
    Err(headers::service_unavailable())
}

/// A body that says only `close` (after the prelude), for a session that
/// cannot be reached.
fn closed(kind: ReceiverKind, prelude: Option<String>, close: &CloseCode) -> ReceiverBody {
    let (mut receiver, rx) = receiver::channel(kind);
    receiver.deliver(Frame::Close(close.code, &close.reason));
    ReceiverBody {
        prelude: prelude.map(Bytes::from),
        rx,
        _hangup: None,
    }
}

/// Request headers passed to backends: none that carry credentials.
const SAFE_HEADERS: &[&str] = &[
    "referer",
    "x-client-ip",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-cluster-client-ip",
    "x-real-ip",
    "via",
    "x-ssl",
    "dnt",
    "host",
    "origin",
    "user-agent",
    "accept-language",
];

/// `http` or `https`, one shared copy each rather than one per session.
fn shared_proto(proto: &'static str) -> Arc<str> {
    static HTTP: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "http".into());
    static HTTPS: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "https".into());
    match proto {
        "http" => HTTP.clone(),
        "https" => HTTPS.clone(),
        other => other.into(),
    }
}

/// What a backend may know about the request that opened a session.
pub fn session_info(req: &HttpRequest, hub: &ServiceHub, key: u64) -> SessionInfo {
    let header = |name: &str| Some(req.headers().get(name)?.to_str().ok()?.to_owned());
    // Exactly as long as needed (nothing when none is there): every
    // session keeps them.
    let mut headers: Vec<_> = SAFE_HEADERS
        .iter()
        .filter_map(|&name| Some((name, header(name)?)))
        .collect();
    headers.shrink_to_fit();
    let mut forwarded: Vec<_> = hub
        .forward_headers
        .iter()
        .filter_map(|name| Some((name.clone(), header(name)?)))
        .collect();
    forwarded.shrink_to_fit();
    let client = Trust::of(hub).client(req);
    SessionInfo {
        id: key,
        prefix: hub.prefix.clone(),
        remote_addr: client.addr.and_then(|a| a.ip()),
        proto: shared_proto(client.proto),
        host: client.host,
        headers,
        forwarded,
    }
}

/// Turns a response head and a receiver body into the answer. HTTP/1.0 has
/// no chunked encoding: the body then runs until the connection closes.
pub fn respond(
    req: &HttpRequest,
    mut head: actix_web::HttpResponseBuilder,
    body: ReceiverBody,
) -> HttpResponse {
    let mut resp = head.streaming(body);
    if req.version() < actix_web::http::Version::HTTP_11 {
        resp.head_mut().no_chunking(true);
        resp.head_mut()
            .set_connection_type(actix_http::ConnectionType::Close);
    }
    resp
}

/// The head of a poll or stream answer: content type, no caching, CORS,
/// cookie, and `X-Accel-Buffering: no` so nginx passes frames on at once
/// even where its config buffers.
pub fn response_head(
    req: &HttpRequest,
    hub: &ServiceHub,
    origin: &headers::Origin,
    content_type: &str,
) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::Ok();
    b.content_type(content_type)
        .insert_header(("X-Accel-Buffering", "no"));
    headers::no_cache(&mut b);
    origin.apply(&mut b);
    headers::jsessionid(req, &hub.config, &mut b);
    b
}
