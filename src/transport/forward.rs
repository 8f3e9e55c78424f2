//! A request for an HTTP session that another node holds
//! ([`crate::cluster::owners`]) goes to that node as it came, and the answer
//! comes back as the owner writes it: a poll when it is answered, a stream
//! frame by frame. It goes over this worker's link to the owner
//! ([`crate::transport::link`]); to a node that takes no link (an older
//! version, during a rolling upgrade) it goes as an HTTP request. The owner
//! learns the client's address, scheme and host as this node resolved them,
//! in `X-Forwarded-*` headers that it believes because the request proves
//! `cluster.secret` ([`NODE_SECRET`]); whatever forwarding headers the
//! client wrote itself are not passed on.
//!
//! A request that a node forwarded carries [`FORWARDED_BY`] and is never
//! forwarded again: the owner answers it as a single node would.

use crate::cluster::owners::Owners;
use crate::protocol::{CloseCode, Wrapping};
use crate::service::hub::ServiceHub;
use crate::transport::callback::callback_param;
use crate::transport::client_addr::{Trust, FORWARDED_BY, FORWARDING_HEADERS, NODE_SECRET};
use crate::transport::hangup;
use crate::transport::link::client::{self as link, Event};
use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Hop-by-hop headers (RFC 9110 7.6.1), which a proxy does not pass on;
/// `content-length` is set anew for the body as sent.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Why a request could not be forwarded.
#[derive(Debug)]
pub enum Failed {
    /// The owner did not answer: it is gone.
    Unreachable,
}

/// One HTTP client for every forward: its pool keeps connections to the
/// other nodes open.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            // Forwarded as they are: the client follows redirects itself.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("an HTTP client with the ring TLS provider")
    })
}

/// Tokens of forwarded requests' hang-up watches: from the middle of the
/// range, so never a local receiver's id (those count up from 1).
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(u64::MAX / 2);

/// Where an owner's answer comes from.
enum Answer {
    Link(link::Call),
    Http(reqwest::Response),
}

impl Answer {
    /// The next piece of the body; `Ok(None)` at its end, `Err` if the
    /// owner is gone mid-answer.
    async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        match self {
            Answer::Link(call) => match call.next().await {
                Event::Chunk(data) => {
                    call.passed_on(data.len());
                    Ok(Some(data))
                }
                Event::End => Ok(None),
                Event::Head { .. } | Event::Broken | Event::NoLink => Err("the link broke".into()),
            },
            Answer::Http(resp) => resp.chunk().await.map_err(|e| e.to_string()),
        }
    }
}

/// An owner's answer on its way to the client.
struct Relay {
    answer: Answer,
    hung_up: tokio::sync::oneshot::Receiver<()>,
    _guard: Option<hangup::HangupGuard>,
    /// For a poll or stream: the close frame, wrapped for its transport.
    ending: Option<Bytes>,
}

/// How the receiver this request asks for wraps frames; `None` for sends.
fn receiver_wrapping(req: &HttpRequest) -> Option<Wrapping> {
    match req.path().rsplit('/').next()? {
        "xhr" | "xhr_streaming" => Some(Wrapping::Xhr),
        "eventsource" => Some(Wrapping::EventSource),
        "htmlfile" => Some(Wrapping::HtmlFile),
        "jsonp" => callback_param(req).ok().map(Wrapping::Jsonp),
        _ => None,
    }
}

/// Sends `req` (with `body`) to the node at `owner` and streams its answer
/// back; fails only if the owner does not answer with a response head in
/// time.
pub async fn forward(
    req: &HttpRequest,
    hub: &ServiceHub,
    owners: &Owners,
    owner: &str,
    body: Bytes,
) -> Result<HttpResponse, Failed> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    // The client as this node resolved it, which the owner believes since
    // the request proves the cluster's secret.
    let client = Trust::of(hub).client(req);
    let ip = client.addr.map(|a| a.to_string());
    let mut headers: Vec<(&[u8], &[u8])> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .filter(|(name, _)| {
            let ours =
                FORWARDING_HEADERS.contains(name) || *name == FORWARDED_BY || *name == NODE_SECRET;
            !HOP_BY_HOP.contains(name) && !ours
        })
        .map(|(n, v)| (n.as_bytes(), v))
        .collect();
    if let Some(ip) = &ip {
        headers.push((b"x-forwarded-for", ip.as_bytes()));
    }
    headers.push((b"x-forwarded-proto", client.proto.as_bytes()));
    if let Some(host) = &client.host {
        headers.push((b"x-forwarded-host", host.as_bytes()));
    }
    headers.push((NODE_SECRET.as_bytes(), owners.secret().as_bytes()));
    headers.push((FORWARDED_BY.as_bytes(), owners.node().as_bytes()));
    let method = req.method().as_str().as_bytes();
    let call = link::call(
        owner,
        owners,
        method,
        path.as_bytes(),
        headers.iter().copied(),
        &body,
    );
    let linked = match call {
        Ok(mut call) => {
            let head = async {
                match call.next().await {
                    Event::Head { status, headers } => Ok((status, headers)),
                    Event::NoLink => Err(true),
                    _ => Err(false),
                }
            };
            match tokio::time::timeout(owners.request_timeout(), head).await {
                Ok(Ok((status, headers))) => Some((status, headers, Answer::Link(call))),
                // The link was refused before anything went: HTTP, then.
                Ok(Err(true)) => None,
                Ok(Err(false)) | Err(_) => return Err(Failed::Unreachable),
            }
        }
        Err(_) => None,
    };
    let (status, answer_headers, answer) = match linked {
        Some(linked) => linked,
        None => {
            let url = format!("{owner}{path}");
            let answer = over_http(owners, method, &url, &headers, body).await?;
            let status = answer.status().as_u16();
            let headers = answer
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        Bytes::copy_from_slice(n.as_str().as_bytes()),
                        Bytes::copy_from_slice(v.as_bytes()),
                    )
                })
                .collect();
            (status, headers, Answer::Http(answer))
        }
    };
    crate::metrics::get().cluster.forwarded_requests.inc();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = HttpResponse::build(status);
    for (name, value) in &answer_headers {
        let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name),
            header::HeaderValue::from_maybe_shared(value.clone()),
        ) else {
            continue;
        };
        if !HOP_BY_HOP.contains(&name.as_str()) {
            resp.append_header((name, value));
        }
    }
    if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
        return Ok(resp.finish());
    }
    // A client that leaves is noticed here (actix alone would notice only
    // at its next write); dropping the answer then tells the owner, which
    // sees its receiver go, as if the client were its.
    let (gone, hung_up) = tokio::sync::oneshot::channel::<()>();
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    let guard = hangup::watch(req, token, move || {
        let _ = gone.send(());
    });
    let relay = Relay {
        answer,
        hung_up,
        _guard: guard,
        ending: receiver_wrapping(req)
            .map(|w| Bytes::from(w.wrap(&CloseCode::node_gone().frame()))),
    };
    let chunks = futures_util::stream::unfold(Some(relay), |relay| async move {
        let mut relay = relay?;
        tokio::select! {
            chunk = relay.answer.chunk() => match chunk {
                Ok(Some(chunk)) => Some((Ok::<Bytes, Broken>(chunk), Some(relay))),
                Ok(None) => None,
                // The owner died mid-answer: a poll or stream ends with the
                // close frame its client understands, not a cut connection
                // (which some receivers, htmlfile's, never notice).
                Err(e) => match relay.ending.take() {
                    Some(close) => {
                        log::debug!("cluster: the owner's answer broke off: {e}");
                        Some((Ok(close), None))
                    }
                    None => Some((Err(Broken(e)), None)),
                },
            },
            _ = &mut relay.hung_up => None,
        }
    });
    let mut resp = resp.streaming(chunks);
    // HTTP/1.0 has no chunked encoding: the body runs until the close.
    if req.version() < actix_web::http::Version::HTTP_11 {
        resp.head_mut().no_chunking(true);
        resp.head_mut()
            .set_connection_type(actix_http::ConnectionType::Close);
    }
    Ok(resp)
}

/// An answer that broke off where no close frame can end it (a send's).
#[derive(Debug)]
struct Broken(String);

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Broken {}

/// The request as HTTP, to an owner that takes no link.
async fn over_http(
    owners: &Owners,
    method: &[u8],
    url: &str,
    headers: &[(&[u8], &[u8])],
    body: Bytes,
) -> Result<reqwest::Response, Failed> {
    // actix and reqwest use different versions of the `http` crate.
    let method = reqwest::Method::from_bytes(method).map_err(|_| Failed::Unreachable)?;
    let mut out = client().request(method, url);
    for (name, value) in headers {
        out = out.header(*name, *value);
    }
    match tokio::time::timeout(owners.request_timeout(), out.body(body).send()).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => {
            log::debug!("cluster: forwarding to {url} failed: {e}");
            Err(Failed::Unreachable)
        }
        Err(_) => Err(Failed::Unreachable),
    }
}
