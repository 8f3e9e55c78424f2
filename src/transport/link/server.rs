//! The owner's side: a link is a WebSocket at [`LINK_PATH`] that only a
//! node (one showing `cluster.secret`) may open. Each request on it runs
//! through the services' own routes, as a request from a client would, but
//! with no HTTP parsing and no socket of its own; the answer goes back as
//! frames. A request whose forwarding client leaves is told so (`Cancel`),
//! as a hang-up of its connection would ([`crate::transport::hangup`]).

use super::outgoing::Outgoing;
use super::wire::{self, Frame, Header};
use super::{CHUNK, HEAD, SILENT_FOR, WINDOW};
use crate::cluster::owners::Owners;
use crate::service::hub::ServiceHub;
use crate::transport::client_addr::NODE_SECRET;
use crate::transport::{hangup, headers, routes};
use actix_service::IntoServiceFactory;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{AppConfig, Service, ServiceFactory};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::Notify;

/// The services' routes, as one worker's service: a request in, its
/// response out.
type Dispatch = Rc<dyn Fn(actix_http::Request) -> LocalBoxFuture<'static, HttpResponse>>;

/// What the link route needs, one per worker (it holds that worker's
/// dispatch, built at the first link).
pub struct Accept {
    hubs: Vec<Arc<ServiceHub>>,
    nodes: Arc<Owners>,
    closing: Arc<Closing>,
    /// The largest message a link takes ([`super::requests_max`]).
    max_frame: usize,
    dispatch: RefCell<Option<Dispatch>>,
}

impl Accept {
    pub fn new(
        hubs: Vec<Arc<ServiceHub>>,
        nodes: Arc<Owners>,
        closing: Arc<Closing>,
        max_header_bytes: usize,
    ) -> Accept {
        let body = hubs
            .iter()
            .map(|h| h.config.max_message_bytes)
            .max()
            .unwrap_or(0);
        Accept {
            hubs,
            nodes,
            closing,
            max_frame: super::requests_max(body, max_header_bytes),
            dispatch: RefCell::default(),
        }
    }

    async fn dispatch(&self) -> Option<Dispatch> {
        if let Some(d) = self.dispatch.borrow().clone() {
            return Some(d);
        }
        let hubs = self.hubs.clone();
        let app = App::new().configure(move |cfg| {
            for hub in hubs {
                routes::mount(cfg, hub, None);
            }
        });
        let svc = match app.into_factory().new_service(AppConfig::default()).await {
            Ok(s) => Rc::new(s),
            Err(()) => {
                log::error!("cluster: cannot build the services for links");
                return None;
            }
        };
        let dispatch: Dispatch = Rc::new(move |req| {
            let call = svc.call(req);
            Box::pin(async move {
                match call.await {
                    Ok(resp) => resp.map_into_boxed_body().into_parts().1,
                    Err(e) => e.error_response(),
                }
            })
        });
        *self.dispatch.borrow_mut() = Some(dispatch.clone());
        Some(dispatch)
    }

    /// Adds the link's route to an app.
    pub fn route(self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self))
            .route(super::LINK_PATH, web::get().to(accept));
    }
}

async fn accept(req: HttpRequest, body: web::Payload, this: web::Data<Accept>) -> HttpResponse {
    // To anyone but a node, there is nothing here.
    let proven = req
        .headers()
        .get(NODE_SECRET)
        .is_some_and(|s| this.nodes.proves_node(s.as_bytes()));
    if !proven {
        return headers::not_found();
    }
    let Some(dispatch) = this.dispatch().await else {
        return HttpResponse::ServiceUnavailable().finish();
    };
    let (resp, session, stream) = match actix_ws::handle(&req, body) {
        Ok(parts) => parts,
        Err(e) => return e.error_response(),
    };
    let stream = stream.max_frame_size(this.max_frame);
    let peer = req.peer_addr();
    let closing = this.closing.clone();
    actix_web::rt::spawn(serve(dispatch, session, stream, peer, closing));
    resp
}

/// This node's links, told when it shuts down: each closes once the
/// answers under way on it are done, so its peers stop using it and the
/// server's graceful stop does not wait `shutdown.grace` for it.
#[derive(Default)]
pub struct Closing {
    begun: std::sync::atomic::AtomicBool,
    told: Notify,
}

impl Closing {
    pub fn begin(&self) {
        self.begun.store(true, std::sync::atomic::Ordering::Release);
        self.told.notify_waiters();
    }

    fn begun(&self) -> bool {
        self.begun.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// One forwarded request's state on the owner.
#[derive(Default)]
struct InFlight {
    /// Body bytes the forwarding node will still take.
    credit: Cell<i64>,
    cancelled: Cell<bool>,
    changed: Notify,
    hangup: hangup::Waiting,
}

impl InFlight {
    fn cancel(&self) {
        self.cancelled.set(true);
        self.changed.notify_one();
    }
}

async fn serve(
    dispatch: Dispatch,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    peer: Option<SocketAddr>,
    closing: Arc<Closing>,
) {
    let out = Rc::new(Outgoing::default());
    let writing = out.clone();
    let mut writer = session.clone();
    actix_web::rt::spawn(async move {
        while let Some(frames) = writing.next().await {
            if writer.binary(frames).await.is_err() {
                writing.close();
            }
        }
    });
    let calls: Rc<RefCell<HashMap<u64, Rc<InFlight>>>> = Rc::default();
    'link: loop {
        if closing.begun() && calls.borrow().is_empty() {
            break;
        }
        let received = tokio::select! {
            r = tokio::time::timeout(SILENT_FOR, stream.recv()) => r,
            _ = closing.told.notified(), if !closing.begun() => continue,
            // While closing, look again now and then for the last answer.
            _ = tokio::time::sleep(std::time::Duration::from_millis(50)), if closing.begun() => continue,
        };
        let msg = match received {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(_) => {
                log::warn!("cluster: a link from {peer:?} went silent; closing it");
                break;
            }
        };
        let bytes = match msg {
            Ok(actix_ws::Message::Binary(b)) => b,
            Ok(actix_ws::Message::Ping(p)) => {
                let _ = session.pong(&p).await;
                continue;
            }
            Ok(actix_ws::Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => {
                log::debug!("cluster: a link broke: {e}");
                break;
            }
        };
        for frame in wire::frames(bytes) {
            match frame {
                Ok(Frame::Request {
                    id,
                    method,
                    path,
                    headers,
                    body,
                }) => {
                    let Some(req) = request(&method, &path, &headers, body, peer) else {
                        out.push(|b| {
                            b.head(
                                id,
                                StatusCode::BAD_REQUEST.as_u16(),
                                std::iter::empty(),
                                HEAD,
                            );
                            b.end(id);
                        });
                        continue;
                    };
                    let state = Rc::new(InFlight {
                        credit: Cell::new(WINDOW as i64),
                        ..InFlight::default()
                    });
                    req.extensions_mut().insert(state.hangup.clone());
                    calls.borrow_mut().insert(id, state.clone());
                    let (dispatch, out, calls) = (dispatch.clone(), out.clone(), calls.clone());
                    actix_web::rt::spawn(async move {
                        answer(&dispatch, &out, &state, id, req).await;
                        calls.borrow_mut().remove(&id);
                    });
                }
                Ok(Frame::Cancel { id }) => {
                    if let Some(state) = calls.borrow_mut().remove(&id) {
                        state.cancel();
                    }
                }
                Ok(Frame::Credit { id, bytes }) => {
                    if let Some(state) = calls.borrow().get(&id) {
                        state.credit.set(state.credit.get() + i64::from(bytes));
                        state.changed.notify_one();
                    }
                }
                _ => {
                    log::warn!("cluster: a malformed frame on a link; closing it");
                    break 'link;
                }
            }
        }
    }
    // The forwarding node is gone: so are its clients.
    out.close();
    for (_, state) in calls.borrow_mut().drain() {
        state.cancel();
    }
    let _ = session.close(None).await;
}

/// The request a `Request` frame carries; `None` if it is not valid HTTP.
fn request(
    method: &[u8],
    path: &[u8],
    headers: &[Header],
    body: Bytes,
    peer: Option<SocketAddr>,
) -> Option<actix_http::Request> {
    let mut req = actix_http::Request::with_payload(actix_http::Payload::from(body));
    let head = req.head_mut();
    head.method = Method::from_bytes(method).ok()?;
    head.uri = Uri::try_from(path).ok()?;
    head.peer_addr = peer;
    for (name, value) in headers {
        head.headers.append(
            HeaderName::from_bytes(name).ok()?,
            HeaderValue::from_maybe_shared(value.clone()).ok()?,
        );
    }
    Some(req)
}

/// Runs one request and sends its answer back, as far as the forwarding
/// node takes it.
async fn answer(
    dispatch: &Dispatch,
    out: &Outgoing,
    state: &InFlight,
    id: u64,
    req: actix_http::Request,
) {
    let resp = tokio::select! {
        resp = dispatch(req) => resp,
        _ = cancelled(state) => return,
    };
    let headers: Vec<(&[u8], &[u8])> = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
        .collect();
    out.push(|b| b.head(id, resp.status().as_u16(), headers.iter().copied(), HEAD));
    drop(headers);
    let mut body: BoxBody = resp.into_body();
    loop {
        let chunk = tokio::select! {
            c = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_next(cx)) => c,
            _ = cancelled(state) => {
                state.hangup.hang_up();
                return;
            }
        };
        let data = match chunk {
            Some(Ok(data)) => data,
            Some(Err(e)) => {
                log::debug!("cluster: a forwarded answer's body failed: {e}");
                break;
            }
            None => break,
        };
        // A slow client's stream waits here, and its session holds what
        // it has not taken, as for a client of this node.
        while state.credit.get() <= 0 && !state.cancelled.get() {
            state.changed.notified().await;
        }
        if state.cancelled.get() {
            state.hangup.hang_up();
            return;
        }
        state.credit.set(state.credit.get() - data.len() as i64);
        out.push(|b| b.chunk(id, &data, CHUNK));
    }
    out.push(|b| b.end(id));
}

async fn cancelled(state: &InFlight) {
    while !state.cancelled.get() {
        state.changed.notified().await;
    }
}
