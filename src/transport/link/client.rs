//! The forwarding node's side: one link per worker thread to each owner,
//! opened at the first request for one of its sessions and kept. Requests
//! and answers of every session share it; what is ready goes out in one
//! write.

use super::outgoing::Outgoing;
use super::wire::{self, Frame};
use super::{LINK_PATH, PING_EVERY, SILENT_FOR, WINDOW};
use crate::cluster::owners::Owners;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// What arrives for one forwarded request.
#[derive(Debug)]
pub enum Event {
    Head {
        status: u16,
        headers: Vec<wire::Header>,
    },
    Chunk(Bytes),
    End,
    /// The link broke: the owner is gone or unreachable.
    Broken,
    /// The owner takes no link: nothing was sent, forward over HTTP.
    NoLink,
}

/// Why a request could not go over a link.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The owner does not take links (a node of an older version): forward
    /// over HTTP instead, for a while.
    NoLink,
    /// The request cannot be encoded (a part is over 64 KiB).
    TooLarge,
}

/// How a node proves itself when opening a link.
struct Credentials {
    node: String,
    secret: String,
    connect_timeout: Duration,
}

struct Link {
    out: Outgoing,
    pending: RefCell<HashMap<u64, mpsc::UnboundedSender<Event>>>,
    next_id: Cell<u64>,
}

thread_local! {
    static LINKS: RefCell<HashMap<String, Rc<Link>>> = RefCell::default();
    /// Owners that answered a link's handshake with a plain HTTP status,
    /// until when they are forwarded to over HTTP.
    static NO_LINK: RefCell<HashMap<String, Instant>> = RefCell::default();
}

/// How long an owner that refused a link is not asked again.
const NO_LINK_FOR: Duration = Duration::from_secs(60);

/// One forwarded request in flight: its events, in order.
pub struct Call {
    link: Rc<Link>,
    id: u64,
    events: mpsc::UnboundedReceiver<Event>,
    done: bool,
    /// Body bytes passed on and not yet credited back to the owner.
    uncredited: usize,
}

impl Call {
    /// The next event; `Broken` once the link is gone.
    pub async fn next(&mut self) -> Event {
        let e = self.events.recv().await.unwrap_or(Event::Broken);
        if matches!(e, Event::End | Event::Broken | Event::NoLink) {
            self.done = true;
        }
        e
    }

    /// Says that `n` body bytes went on to the client; the owner hears of
    /// it once half its window is used.
    pub fn passed_on(&mut self, n: usize) {
        self.uncredited += n;
        if self.uncredited >= WINDOW / 2 && !self.done {
            let bytes = self.uncredited.min(u32::MAX as usize) as u32;
            self.uncredited -= bytes as usize;
            self.link.out.push(|b| b.credit(self.id, bytes));
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.link.pending.borrow_mut().remove(&self.id).is_some() && !self.done {
            self.link.out.push(|b| b.cancel(self.id));
        }
    }
}

/// Sends a request to the node at `owner` (its advertised `http(s)://`
/// URL) over this thread's link to it, opening the link if there is none.
pub fn call<'a>(
    owner: &str,
    nodes: &Owners,
    method: &[u8],
    path: &[u8],
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    body: &[u8],
) -> Result<Call, Refused> {
    let refused = NO_LINK.with(|n| {
        let mut n = n.borrow_mut();
        match n.get(owner) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                n.remove(owner);
                false
            }
            None => false,
        }
    });
    if refused {
        return Err(Refused::NoLink);
    }
    let link = LINKS.with(|l| {
        let mut links = l.borrow_mut();
        // Looked up first: the owner's URL is copied only to open a link.
        if let Some(link) = links.get(owner) {
            return link.clone();
        }
        let link = open(owner, nodes);
        links.insert(owner.to_owned(), link.clone());
        link
    });
    let id = link.next_id.get();
    link.next_id.set(id + 1);
    let mut written = None;
    link.out
        .push(|b| written = b.request(id, method, path, headers, body));
    written.ok_or(Refused::TooLarge)?;
    let (tx, events) = mpsc::unbounded_channel();
    link.pending.borrow_mut().insert(id, tx);
    Ok(Call {
        link,
        id,
        events,
        done: false,
        uncredited: 0,
    })
}

fn open(owner: &str, nodes: &Owners) -> Rc<Link> {
    let link = Rc::new(Link {
        out: Outgoing::default(),
        pending: RefCell::default(),
        next_id: Cell::new(1),
    });
    let owner = owner.to_owned();
    let credentials = Credentials {
        node: nodes.node().to_owned(),
        secret: nodes.secret().to_owned(),
        connect_timeout: nodes.request_timeout(),
    };
    let running = link.clone();
    actix_web::rt::spawn(async move {
        let why = run(&owner, &credentials, &running).await;
        running.out.close();
        log::debug!("cluster: link to {owner} ended: {why}");
        LINKS.with(|l| {
            let mut l = l.borrow_mut();
            if l.get(&owner).is_some_and(|o| Rc::ptr_eq(o, &running)) {
                l.remove(&owner);
            }
        });
        let event = if why == End::NoLink {
            log::info!("cluster: {owner} takes no link; forwarding to it over HTTP");
            NO_LINK.with(|n| n.borrow_mut().insert(owner, Instant::now() + NO_LINK_FOR));
            Event::NoLink
        } else {
            Event::Broken
        };
        // Whoever still waits hears it: the owner is gone, or takes HTTP.
        for (_, tx) in running.pending.borrow_mut().drain() {
            let _ = tx.send(match event {
                Event::NoLink => Event::NoLink,
                _ => Event::Broken,
            });
        }
    });
    link
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    NoLink,
    Failed(String),
    Closed,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::NoLink => f.write_str("refused"),
            End::Failed(e) => f.write_str(e),
            End::Closed => f.write_str("closed"),
        }
    }
}

async fn run(owner: &str, credentials: &Credentials, link: &Link) -> End {
    let url = match owner.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}{LINK_PATH}"),
        Some((_, rest)) => format!("ws://{rest}{LINK_PATH}"),
        None => return End::Failed(format!("not a URL: {owner}")),
    };
    let mut request = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => return End::Failed(e.to_string()),
    };
    for (name, value) in [
        (
            crate::transport::client_addr::NODE_SECRET,
            &credentials.secret,
        ),
        (
            crate::transport::client_addr::FORWARDED_BY,
            &credentials.node,
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            request
                .headers_mut()
                .insert(HeaderName::from_static(name), v);
        }
    }
    // What an owner sends: batches and frames within ANSWERS_MAX.
    let config = WebSocketConfig::default()
        .max_message_size(Some(super::ANSWERS_MAX))
        .max_frame_size(Some(super::ANSWERS_MAX));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let ws = match tokio::time::timeout(credentials.connect_timeout, connect).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            log::debug!("cluster: {owner} answered a link with {}", resp.status());
            return End::NoLink;
        }
        Ok(Err(e)) => return End::Failed(e.to_string()),
        Err(_) => return End::Failed("connect timed out".into()),
    };
    let _counted = Counted::new();
    let (mut sink, mut stream) = ws.split();
    let heard = Cell::new(Instant::now());
    let write = async {
        // Pings, so that an owner whose host vanished (no FIN) is noticed
        // by its silence, and the owner notices ours.
        let mut tick = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                frames = link.out.next() => match frames {
                    Some(frames) => sink.send(Message::Binary(frames)).await?,
                    None => break,
                },
                _ = tick.tick() => {
                    if heard.get().elapsed() > SILENT_FOR {
                        return Err(tokio_tungstenite::tungstenite::Error::Io(
                            std::io::ErrorKind::TimedOut.into(),
                        ));
                    }
                    sink.send(Message::Ping(Bytes::new())).await?;
                }
            }
        }
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    };
    let read = async {
        while let Some(msg) = stream.next().await {
            heard.set(Instant::now());
            let bytes = match msg {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Close(_)) => return End::Closed,
                Ok(_) => continue,
                Err(e) => return End::Failed(e.to_string()),
            };
            for frame in wire::frames(bytes) {
                let (id, event) = match frame {
                    Ok(Frame::Head {
                        id,
                        status,
                        headers,
                    }) => (id, Event::Head { status, headers }),
                    Ok(Frame::Chunk { id, data }) => (id, Event::Chunk(data)),
                    Ok(Frame::End { id }) => (id, Event::End),
                    _ => return End::Failed("a malformed frame".into()),
                };
                let mut pending = link.pending.borrow_mut();
                if matches!(event, Event::End) {
                    if let Some(tx) = pending.remove(&id) {
                        let _ = tx.send(event);
                    }
                } else if let Some(tx) = pending.get(&id) {
                    let _ = tx.send(event);
                }
            }
        }
        End::Closed
    };
    tokio::select! {
        end = read => end,
        r = write => match r {
            Ok(()) => End::Closed,
            Err(e) => End::Failed(e.to_string()),
        },
    }
}

/// An open link, in `sockjs_gateway_cluster_links` while it lives.
struct Counted;

impl Counted {
    fn new() -> Counted {
        crate::metrics::get().cluster.links.inc();
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        crate::metrics::get().cluster.links.dec();
    }
}
