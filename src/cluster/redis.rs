//! The Redis bus: events on one pub/sub channel, and one command connection
//! for publishing, presence and session owners (and one more for
//! publishing alone when `redis_min_replicas` makes publications wait for
//! replicas). Each is made again, with a growing pause, whenever it fails,
//! to the master [`RedisServer`] names then: a node follows failovers.
//!
//! On a Redis Cluster, each event goes instead to the sharded channel of
//! its tag ([`Event::tag`]), in the slot of its destination's history keys,
//! with `SPUBLISH`; a batch is sent as one pipeline per master
//! ([`super::redis_batch`]). A node hears
//! only the tags its sessions hold ([`super::redis_shards`]). Its own
//! events are delivered here by their echo on their channel when it hears
//! it, at once when it does not.
//!
//! Keys, under `namespace` (`sockjs-gateway` by default):
//! - `NS:events`: the channel every node publishes to and reads (one
//!   server); `NS:ev:{TAG}`: a tag's channel (a Redis Cluster);
//! - `NS:replies:ID` (`NS:replies:{ID}` on a cluster): the channel where
//!   the other nodes tell node `ID` what its counted events reached
//!   ([`super::tally`]);
//! - `NS:history:{...}`: history streams, and `NS:history:boot`, which
//!   names them ([`super::redis_history`]);
//! - `NS:nodes`: the set of node ids; `NS:node:ID`: that node's
//!   [`Presence`] as JSON, and `NS:node:ID:counts`: its [`Counts`] as a
//!   hash written as changes only; both expire after three
//!   `presence_interval`s;
//! - `NS:session:SERVICE:SID`: the node holding an HTTP session
//!   ([`super::owners`]).

use super::history::{Mark, Position};
use super::presence::{self, Counts};
use super::redis_batch::{self, Batch, Sender, SlotMap};
use super::redis_conn::{self, Conn, Pipes};
use super::redis_server::{self, Master, RedisServer};
use super::redis_shards::{self, Follows, Hears};
use super::tally::{self, Tallies};
use super::State;
use super::{
    event, redis_history, Answers, Asks, Bus, Delivery, Event, Failed, Inbox, Keep, Once, Presence,
    Published,
};
use crate::config::cluster::ClusterConfig;
use crate::metrics::ClusterMetrics;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Pauses between reconnection attempts: doubling from the first to the
/// last, so a restarted Redis is found again within the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(2);
/// Events sent to Redis in one pipeline at most.
const BATCH: usize = 256;

/// What an event asks, and who waits for what Redis answered.
struct Asked {
    keep: Option<Keep>,
    once: Option<Once>,
    count: bool,
    reply: oneshot::Sender<Result<Sent, Failed>>,
}

impl Asked {
    /// Whether only Redis can publish it: kept (but for a fallback), or
    /// claiming an idempotency key. It is then never delivered here but
    /// by its echo, nor here without Redis.
    fn through_redis_only(&self) -> bool {
        self.once.is_some() || self.keep.as_ref().is_some_and(|k| !k.fallback)
    }

    /// Which command publishes it: the APPEND script for a kept one (it
    /// claims an idempotency key too), PUBLISH_ONCE for a key alone.
    fn sending(&self) -> Sending {
        match (&self.keep, &self.once) {
            (Some(_), _) => Sending::Kept,
            (None, Some(_)) => Sending::Once,
            (None, None) => Sending::Plain,
        }
    }
}

/// An event whose answer is read: who waits for it, how it was sent, its
/// tally, and, held for the replicas, its stream's meta key and its text.
type Answered = (
    oneshot::Sender<Result<Sent, Failed>>,
    Sending,
    Option<(u64, oneshot::Receiver<()>)>,
    Option<Held>,
);

/// A kept publication held for the replicas: its stream's meta key, its
/// channel and its text.
struct Held {
    meta: String,
    channel: String,
    text: String,
}

/// What became of an event whose answer is read: its position (kept
/// ones), the nodes it reached, and whether it was a repeat.
type Outcome = Result<(Option<Position>, usize, bool), Failed>;

/// What Redis answered for an event that asked something.
struct Sent {
    position: Option<Position>,
    /// An earlier publication claimed its idempotency key: not published.
    duplicate: bool,
    /// With `count`: its number, and the tally that resolves once every
    /// other node that got it replied.
    tally: Option<(u64, oneshot::Receiver<()>)>,
}

/// How an event went into the pipeline, to read its answer by.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// `PUBLISH`: the nodes that got it.
    Plain,
    /// [`redis_history::APPEND`].
    Kept,
    /// [`redis_history::PUBLISH_ONCE`].
    Once,
}

/// What the publisher task takes from its queue, in order.
enum Job {
    /// An event, and what it asks beyond delivery (a publication history
    /// keeps is appended and published by one script).
    Event(Event, Option<Box<Asked>>),
    /// Answered once the events queued before it have been sent (or not).
    Flushed(oneshot::Sender<()>),
}

pub struct RedisBus {
    pub node: Arc<str>,
    /// Set at [`RedisBus::start`], once the listener is bound.
    advertise: std::sync::OnceLock<String>,
    config: ClusterConfig,
    server: RedisServer,
    /// Whether Redis is a Redis Cluster: sharded channels, one per tag.
    sharded: bool,
    /// The one channel of every event (but on a Redis Cluster).
    channel: String,
    /// Where the other nodes reply to this node's counted events.
    replies: String,
    tallies: Arc<Tallies>,
    /// On a Redis Cluster, the tags this node hears.
    follows: Follows,
    /// The command connection while Redis is up.
    conn: RwLock<Option<Conn>>,
    /// With `redis_min_replicas`, the connection publications take: their
    /// `WAIT` holds up nothing else.
    publishing: RwLock<Option<Conn>>,
    /// The master the command connection reached last.
    master: RwLock<Option<Master>>,
    /// On a Redis Cluster, the masters of the slots, by which a batch's
    /// pipelines are grouped.
    slot_map: RwLock<Option<Arc<SlotMap>>>,
    /// Whether the command connection is up: publications reach Redis.
    up: AtomicBool,
    /// Whether the subscription to the events is up: this node hears
    /// them (set under the `unechoed` lock).
    listening: AtomicBool,
    /// Told when the command connection fails: subscribe anew too.
    listen_again: tokio::sync::Notify,
    /// Told when the subscription ends: look at the command connection
    /// now rather than at the next presence write (Redis may be gone).
    look_now: tokio::sync::Notify,
    /// Told when the subscription is made while the command connection is
    /// down: the master is back (or another one is), connect now.
    connect_now: tokio::sync::Notify,
    /// Told whenever the command connection is made.
    connected: tokio::sync::Notify,
    queue: mpsc::Sender<Job>,
    queue_rx: Mutex<Option<mpsc::Receiver<Job>>>,
    /// This node's events sent to Redis and not yet echoed back, by
    /// channel, oldest first, by number: delivered here when their echo
    /// comes, or, when it never will, as [`Unechoed`] says.
    unechoed: Mutex<Echoes>,
    peers: RwLock<Arc<Vec<Presence>>>,
    /// The counts this node's hash holds; `None` until it is written whole
    /// on a new connection (Redis may have lost or kept stale ones).
    written: Mutex<Option<Counts>>,
    /// This Redis's history as last heard: its name and its clock.
    heard: RwLock<Option<Heard>>,
    counts: ClusterMetrics,
}

/// This node's events waiting for their echo, by channel; and, on a Redis
/// Cluster, the channels whose subscription is up (the others echo
/// nothing to this node).
#[derive(Default)]
struct Echoes {
    queues: HashMap<String, VecDeque<(u64, Event, Unechoed)>>,
    heard: HashSet<String>,
}

/// What a node last heard of the history store: `NS:history:boot`, and
/// Redis's clock (`TIME`), read at `when`.
struct Heard {
    boot: Arc<str>,
    millis: u64,
    when: Instant,
}

/// How far before the moment a node reckons Redis's clock is at its marks
/// are set: a mark too early only makes a recovery send a publication made
/// just before the subscription, one too late would lose one. The reckoning
/// itself never runs ahead (Redis read its clock before the node heard it);
/// this covers clocks that drift or are stepped between two readings.
const MARK_MARGIN: Duration = Duration::from_secs(1);

/// What becomes here of an event sent to Redis whose echo never comes
/// (the subscription ended before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unechoed {
    /// Delivered then: a publication without history.
    Deliver,
    /// Not delivered: history gives it back when the subscription is back
    /// (or only Redis may publish it).
    FromHistory,
    /// Delivered when it was sent (nobody was listening): never again,
    /// its echo included.
    Delivered,
}

/// What `answer` gives within `wait`, or why not, as text.
pub(super) async fn within<T>(
    wait: Duration,
    answer: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(wait, answer).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("Redis did not answer within {wait:?}")),
    }
}

/// The channel where node `node` hears what its counted events reached.
fn replies_channel(namespace: &str, node: &str, sharded: bool) -> String {
    if sharded {
        format!("{namespace}:replies:{{{node}}}")
    } else {
        format!("{namespace}:replies:{node}")
    }
}

/// The keys a node's counts are spread over on a Redis Cluster.
const COUNT_BUCKETS: usize = 16;

/// Fields set by one HSET at most.
const FIELDS_PER_COMMAND: usize = 1000;
/// Fields one HSCAN step asks for.
const SCAN_COUNT: usize = 1000;

impl RedisBus {
    /// A bus for `node`; nothing runs until [`RedisBus::start`].
    pub fn new(config: &ClusterConfig, node: &str) -> Result<Arc<RedisBus>, String> {
        let server = RedisServer::new(config)?;
        let sharded = config.is_redis_cluster();
        let (queue, rx) = mpsc::channel(config.max_pending_publishes);
        Ok(Arc::new(RedisBus {
            node: node.into(),
            advertise: Default::default(),
            sharded,
            channel: format!("{}:events", config.namespace),
            replies: replies_channel(&config.namespace, node, sharded),
            tallies: Arc::default(),
            follows: Follows::default(),
            config: config.clone(),
            server,
            conn: RwLock::new(None),
            publishing: RwLock::new(None),
            master: RwLock::new(None),
            up: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            listen_again: tokio::sync::Notify::new(),
            look_now: tokio::sync::Notify::new(),
            slot_map: RwLock::new(None),
            connect_now: tokio::sync::Notify::new(),
            connected: tokio::sync::Notify::new(),
            queue,
            queue_rx: Mutex::new(Some(rx)),
            unechoed: Mutex::default(),
            peers: RwLock::default(),
            written: Mutex::default(),
            heard: RwLock::default(),
            counts: crate::metrics::get().cluster.clone(),
        }))
    }

    /// Connects and keeps connecting, delivering the other nodes' events to
    /// `inbox`; the others reach this node at `advertise`. Runs on the
    /// current actix arbiter.
    pub fn start(self: &Arc<Self>, inbox: Arc<dyn Inbox>, advertise: String) {
        let _ = self.advertise.set(advertise);
        let rx = self
            .queue_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = rx {
            actix_web::rt::spawn(self.clone().publisher(rx, inbox.clone()));
            actix_web::rt::spawn(self.clone().listen(inbox.clone()));
            actix_web::rt::spawn(self.clone().link(inbox));
        }
    }

    /// The command connection, while Redis is up.
    pub fn connection(&self) -> Option<Conn> {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The command connection, waiting up to `wait` for it to be made
    /// (the subscription may be back first: a relink's reads wait here).
    pub async fn connection_within(&self, wait: Duration) -> Option<Conn> {
        let made = self.connected.notified();
        if let Some(conn) = self.connection() {
            return Some(conn);
        }
        let _ = tokio::time::timeout(wait, made).await;
        self.connection()
    }

    /// Where publications go, while Redis is up: the command connection,
    /// or the one of their own.
    fn publishing_connection(&self) -> Option<Conn> {
        let own = self.publishing.read().unwrap_or_else(|e| e.into_inner());
        own.clone().or_else(|| self.connection())
    }

    /// Fails at start when the Redis server's TLS certificate is not
    /// trusted ([`RedisServer::check_tls`]).
    pub fn check_tls(&self) -> Result<(), String> {
        self.server.check_tls()
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// `NS:rest`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.config.namespace)
    }

    /// The key of node `node`'s presence.
    fn node_key(&self, node: &str) -> String {
        self.key(&format!("node:{node}"))
    }

    /// The keys of node `node`'s counts (hashes): one on one server; on a
    /// Redis Cluster, [`COUNT_BUCKETS`] spread over the slots, so that the
    /// counts asked of a busy node are not all on one key.
    fn counts_keys(&self, node: &str) -> Vec<String> {
        let key = self.key(&format!("node:{node}:counts"));
        if self.sharded {
            (0..COUNT_BUCKETS).map(|b| format!("{key}:{b}")).collect()
        } else {
            vec![key]
        }
    }

    /// Which of a node's counts keys holds `field`.
    fn bucket_of(&self, field: &str) -> usize {
        if self.sharded {
            (crc16::State::<crc16::XMODEM>::calculate(field.as_bytes()) as usize) % COUNT_BUCKETS
        } else {
            0
        }
    }

    /// The key of the record of session `sid` of `service`: its node.
    pub fn session_key(&self, service: &str, sid: &str) -> String {
        self.key(&format!("session:{service}:{sid}"))
    }

    /// The history's moment now, as this node reckons Redis's clock, less
    /// [`MARK_MARGIN`]; a mark of no store (it never recovers anything)
    /// before this node first heard Redis.
    pub fn mark(&self) -> Mark {
        match &*self.heard.read().unwrap_or_else(|e| e.into_inner()) {
            Some(h) => Mark {
                boot: h.boot.clone(),
                at: (h.millis + h.when.elapsed().as_millis() as u64)
                    .saturating_sub(MARK_MARGIN.as_millis() as u64),
            },
            None => Mark {
                boot: "".into(),
                at: 0,
            },
        }
    }

    /// Asks Redis the history's name (made first if Redis has none) and
    /// its clock, for [`Self::hear`]. On a Redis Cluster, a node that
    /// names the history also writes every slot's boot key, before any
    /// mark of that name is given
    /// ([`redis_history::slot_boot_key`]).
    async fn ask_clock(&self, conn: &mut Conn) -> redis::RedisResult<(Option<String>, (u64, u64))> {
        let boot = redis_history::boot_key(&self.config.namespace);
        let name = crate::protocol::ids::random_hex::<6>();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&boot)
            .arg(&name)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&boot)
            .cmd("TIME");
        let (named, time): (Option<String>, (u64, u64)) = pipe.query_async(conn).await?;
        if self.sharded && named.as_deref() == Some(name.as_str()) {
            self.name_slots(conn, &name).await?;
        }
        Ok((named, time))
    }

    /// Writes every slot's boot key of the history just named `name`:
    /// every slot holds it from its beginning. One script per master,
    /// for the slots it serves (`CLUSTER SLOTS`).
    async fn name_slots(&self, conn: &mut Conn, name: &str) -> redis::RedisResult<()> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        let Conn::Cluster(cluster) = conn else {
            return Ok(());
        };
        let map = SlotMap::read(cluster).await?;
        let value = format!("{name}:0");
        for slots in map.slots_by_master() {
            let keys: Vec<String> = slots
                .iter()
                .map(|&slot| redis_history::slot_boot_key(&self.config.namespace, slot))
                .collect();
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(redis_history::NAME_SLOTS)
                .arg(0)
                .arg(&value)
                .arg(&keys);
            let to = Route::new(slots[0], SlotAddr::Master);
            let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(to));
            let named = cluster.route_command(cmd, to).await?;
            redis::from_redis_value_ref::<usize>(&named)?;
        }
        Ok(())
    }

    /// Whether Redis is a Redis Cluster.
    pub fn sharded(&self) -> bool {
        self.sharded
    }

    /// Keeps what [`Self::ask_clock`] was answered; whether the history's
    /// name changed since it was last heard (Redis lost what it held).
    fn hear(&self, boot: Option<String>, (secs, micros): (u64, u64)) -> bool {
        let heard = Heard {
            boot: boot.unwrap_or_default().into(),
            millis: secs * 1000 + micros / 1000,
            when: Instant::now(),
        };
        let mut last = self.heard.write().unwrap_or_else(|e| e.into_inner());
        let changed = last.as_ref().is_some_and(|l| l.boot != heard.boot);
        *last = Some(heard);
        changed
    }

    /// A live node's presence: from the last read, or from Redis for a node
    /// that joined since.
    pub async fn find_peer(&self, node: &str) -> Option<Presence> {
        if let Some(p) = self.peers().iter().find(|p| p.node == node) {
            return Some(p.clone());
        }
        let mut conn = self.connection()?;
        let json: Option<String> = tokio::time::timeout(
            self.config.request_timeout(),
            redis::cmd("GET")
                .arg(self.node_key(node))
                .query_async(&mut conn),
        )
        .await
        .ok()?
        .ok()?;
        serde_json::from_str(&json?).ok()
    }

    /// Leaves the cluster at shutdown: the others stop forwarding here at
    /// once instead of after the presence expires.
    pub async fn leave(&self) {
        let Some(mut conn) = self.connection() else {
            return;
        };
        let mut pipes = Pipes::new(self.sharded);
        let node_key = self.node_key(&self.node);
        pipes.add(&node_key, redis::cmd("DEL").arg(&node_key).clone(), false);
        for key in self.counts_keys(&self.node) {
            pipes.add(&key, redis::cmd("DEL").arg(&key).clone(), false);
        }
        let nodes = self.key("nodes");
        pipes.add(
            &nodes,
            redis::cmd("SREM").arg(&nodes).arg(&*self.node).clone(),
            false,
        );
        let _ = tokio::time::timeout(self.config.request_timeout(), pipes.query(&mut conn)).await;
    }

    /// Keeps the command connection (publishing, presence, session
    /// owners) up, connecting again whenever it fails.
    async fn link(self: Arc<Self>, inbox: Arc<dyn Inbox>) {
        let mut pause = RETRY_FIRST;
        let mut failing = false;
        loop {
            match tokio::time::timeout(self.config.request_timeout(), self.connect()).await {
                Ok(Ok((mut conn, publishing, master))) => {
                    log::info!(
                        "cluster: node {} connected to the Redis master at {}",
                        self.node,
                        master.addr
                    );
                    self.met(master);
                    // Before the others can look them up: a restarted Redis
                    // has lost the records of this node's sessions.
                    let reclaim = self.reclaim(&mut conn, &*inbox);
                    let why =
                        match tokio::time::timeout(self.config.request_timeout(), reclaim).await {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => Some(e.to_string()),
                            Err(_) => Some("no answer in time".to_owned()),
                        };
                    if let Some(why) = why {
                        log::warn!("cluster: could not record this node's sessions again: {why}");
                    }
                    // Before any client is given a mark of this Redis.
                    let clock = self.ask_clock(&mut conn);
                    match within(self.config.request_timeout(), clock).await {
                        Ok((boot, time)) => {
                            self.hear(boot, time);
                        }
                        Err(why) => log::warn!("cluster: could not read Redis's clock: {why}"),
                    }
                    failing = false;
                    pause = RETRY_FIRST;
                    *self.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                    *self.publishing.write().unwrap_or_else(|e| e.into_inner()) = publishing;
                    self.up.store(true, Ordering::Release);
                    self.counts.redis_connected.set(1);
                    self.connected.notify_waiters();
                    let why = self.keep_presence(conn, &*inbox).await;
                    self.up.store(false, Ordering::Release);
                    self.counts.redis_connected.set(0);
                    *self.conn.write().unwrap_or_else(|e| e.into_inner()) = None;
                    *self.publishing.write().unwrap_or_else(|e| e.into_inner()) = None;
                    *self.peers.write().unwrap_or_else(|e| e.into_inner()) = Arc::default();
                    *self.written.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    // A failed connection says little of the other one (a
                    // hung or restarted Redis, a cut network): listen anew,
                    // and read back what may have been missed.
                    self.listen_again.notify_one();
                    log::warn!(
                        "cluster: lost Redis ({why}); publications reach this node's clients only until it is back"
                    );
                }
                Ok(Err(e)) if !failing => {
                    log::warn!(
                        "cluster: cannot reach the Redis master ({}): {e}; retrying",
                        self.config.redis_shown()
                    );
                    failing = true;
                }
                Err(_) if !failing => {
                    log::warn!(
                        "cluster: the Redis master ({}) did not answer within {:?}; retrying",
                        self.config.redis_shown(),
                        self.config.request_timeout()
                    );
                    failing = true;
                }
                _ => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.connect_now.notified() => {}
            }
            pause = (pause * 2).min(RETRY_LAST);
        }
    }

    /// Keeps the subscription to the events (and this node's replies) up,
    /// subscribing again whenever it ends. Apart from the command
    /// connection: publishing does not wait on it. Each time it is back,
    /// before its first event, what was published meanwhile is read back
    /// from history.
    async fn listen(self: Arc<Self>, inbox: Arc<dyn Inbox>) {
        if self.sharded {
            return self.listen_sharded(inbox).await;
        }
        let mut pause = RETRY_FIRST;
        loop {
            match tokio::time::timeout(self.config.request_timeout(), self.subscribe()).await {
                Ok(Ok(pubsub)) => {
                    pause = RETRY_FIRST;
                    // Under the lock the publisher sends under: each event
                    // sent is delivered here by its echo, or was delivered
                    // when it was sent.
                    {
                        let _sending = self.unechoed();
                        self.listening.store(true, Ordering::Release);
                    }
                    if !self.up.load(Ordering::Acquire) {
                        self.connect_now.notify_one();
                    }
                    inbox.relinked();
                    let why = self.read_events(pubsub, &*inbox).await;
                    self.look_now.notify_one();
                    {
                        let _sending = self.unechoed();
                        self.listening.store(false, Ordering::Release);
                    }
                    // Their echoes went with the subscription.
                    self.deliver_unechoed(&self.channel, u64::MAX, None, &*inbox);
                    log::warn!(
                        "cluster: the subscription to the other nodes' events ended ({why}); subscribing again"
                    );
                }
                Ok(Err(e)) => log::debug!("cluster: cannot subscribe to events: {e}"),
                Err(_) => log::debug!("cluster: subscribing to events took too long"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_LAST);
        }
    }

    /// On a Redis Cluster: keeps the sharded subscriptions of the tags this
    /// node holds up ([`redis_shards`]), on a connection of their own,
    /// made again whenever it ends.
    async fn listen_sharded(self: Arc<Self>, inbox: Arc<dyn Inbox>) {
        let mut pause = RETRY_FIRST;
        loop {
            let (pushes, rx) = mpsc::unbounded_channel();
            let wait = self.config.request_timeout();
            let made = match self.server.cluster_client(Some(pushes), wait) {
                Ok(client) => tokio::time::timeout(wait, client.get_async_connection())
                    .await
                    .map_err(|_| "no answer in time".to_owned())
                    .and_then(|c| c.map_err(|e| e.to_string())),
                Err(why) => Err(why),
            };
            match made {
                Ok(conn) => {
                    pause = RETRY_FIRST;
                    let hearing = Hearing {
                        bus: &self,
                        inbox: &*inbox,
                    };
                    let why = redis_shards::listen(
                        conn,
                        rx,
                        &self.follows,
                        &hearing,
                        &self.replies,
                        wait,
                        &self.listen_again,
                    )
                    .await;
                    self.look_now.notify_one();
                    let lost: Vec<String> = {
                        let mut echoes = self.unechoed();
                        self.listening.store(false, Ordering::Release);
                        echoes.heard.drain().collect()
                    };
                    hearing.lost(&lost);
                    log::warn!(
                        "cluster: the subscriptions to the other nodes' events ended ({why}); subscribing again"
                    );
                }
                Err(why) => log::debug!("cluster: cannot subscribe to events: {why}"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_LAST);
        }
    }

    /// The channel of events of `tag` on a Redis Cluster.
    fn tag_channel(&self, tag: &str) -> String {
        format!("{}:ev:{{{tag}}}", self.config.namespace)
    }

    /// The channel `event` goes out on.
    fn channel_of(&self, event: &Event) -> String {
        if self.sharded {
            self.tag_channel(&event.tag())
        } else {
            self.channel.clone()
        }
    }

    /// Whether this node hears its own events on `channel` now: delivered
    /// here by their echo.
    fn hears(&self, echoes: &Echoes, channel: &str) -> bool {
        self.listening.load(Ordering::Acquire) && (!self.sharded || echoes.heard.contains(channel))
    }

    /// What publishes on a channel: `SPUBLISH` on a Redis Cluster.
    fn publish_command(&self) -> &'static str {
        if self.sharded {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// Connects to the master: the command connection, the publishing one
    /// (with `redis_min_replicas`), and who the master is.
    async fn connect(&self) -> Result<(Conn, Option<Conn>, Master), String> {
        if self.sharded {
            return self.connect_cluster().await;
        }
        let client = self.server.client().await.map_err(|e| e.to_string())?;
        // The crate's own default (0.5 s) would override request_timeout.
        let options = |wait| {
            redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.config.request_timeout()))
                .set_response_timeout(Some(wait))
        };
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&options(self.config.request_timeout()))
            .await
            .map_err(|e| e.to_string())?;
        let master = redis_server::identify(&client, &mut conn).await?;
        let publishing = if self.config.redis_min_replicas > 0 {
            let publish = options(self.config.publish_timeout());
            let c = client.get_multiplexed_async_connection_with_config(&publish);
            Some(Conn::One(c.await.map_err(|e| e.to_string())?))
        } else {
            None
        };
        Ok((Conn::One(conn), publishing, master))
    }

    /// Connects to a Redis Cluster: the command connection (which reaches
    /// every master), the publishing one, and the scripts loaded on every
    /// node, so that a batch calls them by hash alone. Its masters are
    /// many: a shard's failover shows in its scripts' answers (a new node
    /// id, [`redis_history::APPEND`]), not here.
    async fn connect_cluster(&self) -> Result<(Conn, Option<Conn>, Master), String> {
        let text = |e: redis::RedisError| e.to_string();
        let client = self
            .server
            .cluster_client(None, self.config.request_timeout())?;
        let mut conn = Conn::Cluster(client.get_async_connection().await.map_err(text)?);
        redis_batch::load_scripts(&mut conn).await.map_err(text)?;
        // Without it, a batch goes as a pipeline per slot until the next
        // one that does not run reads it.
        match SlotMap::read(&mut conn).await {
            Ok(map) => {
                *self.slot_map.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(map))
            }
            Err(e) => log::warn!("cluster: could not read the map of the slots: {e}"),
        }
        let publishing = if self.config.redis_min_replicas > 0 {
            let client = self
                .server
                .cluster_client(None, self.config.publish_timeout())?;
            Some(Conn::Cluster(
                client.get_async_connection().await.map_err(text)?,
            ))
        } else {
            None
        };
        let master = Master {
            addr: self.config.redis_shown(),
            replid: String::new(),
        };
        Ok((conn, publishing, master))
    }

    /// Keeps the master just reached; counts a failover when it is not the
    /// one reached before (another server, or the same one restarted: its
    /// replication id changed).
    fn met(&self, master: Master) {
        let mut last = self.master.write().unwrap_or_else(|e| e.into_inner());
        if let Some(before) = &*last {
            if before.replid != master.replid {
                self.counts.redis_failovers.inc();
                log::warn!(
                    "cluster: the Redis master is now {} (it was {}): a failover, or a restart",
                    master.addr,
                    before.addr
                );
            }
        }
        *last = Some(master);
    }

    async fn subscribe(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let client = self.server.client().await?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        pubsub.subscribe(&self.replies).await?;
        Ok(pubsub)
    }

    /// Records this node as the owner of each HTTP session it holds (where
    /// no other node is recorded).
    async fn reclaim(&self, conn: &mut Conn, inbox: &dyn Inbox) -> redis::RedisResult<()> {
        for chunk in inbox.held_sessions().chunks(1000) {
            let mut pipes = Pipes::new(self.sharded);
            for (service, sid) in chunk {
                let key = self.session_key(service, sid);
                let mut set = redis::cmd("SET");
                set.arg(&key)
                    .arg(&*self.node)
                    .arg("NX")
                    .arg("EX")
                    .arg(self.config.session_record_ttl);
                pipes.add(&key, set, false);
            }
            pipes.query(conn).await?;
        }
        Ok(())
    }

    /// Reads events until the subscription ends, or the command
    /// connection failed; returns why.
    async fn read_events(&self, mut pubsub: redis::aio::PubSub, inbox: &dyn Inbox) -> String {
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    None => return "it ended".into(),
                    Some(msg) if msg.get_channel_name() == self.replies => {
                        match tally::parse_reply(msg.get_payload_bytes()) {
                            Some((seq, count)) => self.tallies.reply(seq, count),
                            None => log::warn!("cluster: a reply that is not ours on {}", self.replies),
                        }
                    }
                    Some(msg) => self.receive(&self.channel, msg.get_payload_bytes(), inbox),
                },
                _ = self.listen_again.notified() => return "the command connection failed".into(),
            }
        }
    }

    /// Writes presence until the command connection fails; returns why. A
    /// Redis Cluster's connection reaches each master on its own, and
    /// lives through one failing: it is kept, and presence written again
    /// once that shard is back.
    async fn keep_presence(&self, mut conn: Conn, inbox: &dyn Inbox) -> String {
        let mut tick = tokio::time::interval(self.config.presence_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.look_now.notified() => {}
            }
            let write = self.exchange_presence(&mut conn, inbox);
            let why = match tokio::time::timeout(self.config.request_timeout(), write).await {
                Ok(Ok(())) => {
                    if failing {
                        log::info!("cluster: this node's presence is written again");
                        failing = false;
                    }
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", self.config.request_timeout()),
            };
            if !self.sharded {
                return why;
            }
            if !failing {
                log::warn!(
                    "cluster: could not write this node's presence ({why}); a shard of the Redis Cluster may be failing over"
                );
                failing = true;
            }
        }
    }

    fn receive(&self, channel: &str, payload: &[u8], inbox: &dyn Inbox) {
        match event::decode(payload) {
            Ok(got) if *got.node == *self.node => {
                // Redis counted this node among those that got it: its
                // reply is in (what it reached here the service counts).
                if got.count {
                    self.tallies.reply(got.seq, 0);
                }
                self.deliver_unechoed(channel, got.seq, Some(got.event), inbox)
            }
            Ok(got) => {
                self.counts.publishes_received.inc();
                let reached = inbox.deliver(got.event);
                if got.count {
                    self.reply(&got.node, got.seq, reached);
                }
            }
            Err(e) => log::warn!("cluster: an event that is not ours on {channel}: {e}"),
        }
    }

    /// Tells node `node` how many sessions its event `seq` reached here.
    fn reply(&self, node: &str, seq: u64, reached: usize) {
        let Some(mut conn) = self.connection() else {
            return;
        };
        let channel = replies_channel(&self.config.namespace, node, self.sharded);
        let wait = self.config.request_timeout();
        let publish = self.publish_command();
        actix_web::rt::spawn(async move {
            let mut cmd = redis::cmd(publish);
            cmd.arg(channel).arg(tally::reply_text(seq, reached));
            let _ = tokio::time::timeout(wait, cmd.query_async::<()>(&mut conn)).await;
        });
    }

    /// Writes this node's presence and what changed in its counts, and
    /// reads every other live node's presence.
    async fn exchange_presence(
        &self,
        conn: &mut Conn,
        inbox: &dyn Inbox,
    ) -> redis::RedisResult<()> {
        // First: a Redis that lost what this node wrote (restarted empty)
        // gets the sessions' records again before this node's presence,
        // which the others go by.
        let (boot, time) = self.ask_clock(conn).await?;
        if self.hear(boot, time) {
            return Err((
                redis::ErrorKind::Io,
                "Redis lost what it held (restarted empty?)",
            )
                .into());
        }
        let mut me = inbox.presence();
        me.node = self.node.to_string();
        me.advertise = self.advertise.get().cloned();
        let json = serde_json::to_string(&me).expect("presence serializes");
        let ttl_ms = (self.config.presence_interval * 3000.0).ceil() as u64;
        let counts = inbox.counts();
        let buckets = self.counts_keys(&self.node);
        let mut pipes = Pipes::new(self.sharded);
        {
            let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            let (set, gone) = match &*written {
                Some(before) => presence::diff(before, &counts),
                None => {
                    for key in &buckets {
                        pipes.add(key, redis::cmd("DEL").arg(key).clone(), false);
                    }
                    presence::diff(&Counts::new(), &counts)
                }
            };
            let mut set_by: Vec<Vec<(&String, &usize)>> = vec![Vec::new(); buckets.len()];
            for (field, n) in &set {
                set_by[self.bucket_of(field)].push((field, n));
            }
            let mut gone_by: Vec<Vec<&String>> = vec![Vec::new(); buckets.len()];
            for field in &gone {
                gone_by[self.bucket_of(field)].push(field);
            }
            for (key, (set, gone)) in buckets.iter().zip(set_by.iter().zip(&gone_by)) {
                for chunk in set.chunks(FIELDS_PER_COMMAND) {
                    let mut cmd = redis::cmd("HSET");
                    cmd.arg(key);
                    for (field, n) in chunk {
                        cmd.arg(field).arg(n);
                    }
                    pipes.add(key, cmd, false);
                }
                for chunk in gone.chunks(FIELDS_PER_COMMAND) {
                    pipes.add(key, redis::cmd("HDEL").arg(key).arg(chunk).clone(), false);
                }
                let expire = redis::cmd("PEXPIRE").arg(key).arg(ttl_ms).clone();
                pipes.add(key, expire, false);
            }
        }
        let nodes_key = self.key("nodes");
        let node_key = self.node_key(&self.node);
        let set = redis::cmd("SET")
            .arg(&node_key)
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .clone();
        pipes
            .add(&node_key, set, false)
            .add(
                &nodes_key,
                redis::cmd("SADD").arg(&nodes_key).arg(&*self.node).clone(),
                false,
            )
            .add(
                &nodes_key,
                redis::cmd("SMEMBERS").arg(&nodes_key).clone(),
                true,
            );
        let answers = pipes.query(conn).await?;
        let members: Vec<String> = match answers.first() {
            Some(v) => redis::from_redis_value_ref(v)?,
            None => Vec::new(),
        };
        let others: Vec<String> = members.into_iter().filter(|m| *m != *self.node).collect();
        let mut peers = Vec::with_capacity(others.len());
        if !others.is_empty() {
            let keys: Vec<String> = others.iter().map(|n| self.node_key(n)).collect();
            let values: Vec<Option<String>> =
                redis::cmd("MGET").arg(&keys).query_async(conn).await?;
            let mut gone = Vec::new();
            for (node, value) in others.iter().zip(values) {
                match value.and_then(|v| serde_json::from_str::<Presence>(&v).ok()) {
                    Some(p) => peers.push(p),
                    None => gone.push(node.clone()),
                }
            }
            if !gone.is_empty() {
                redis::cmd("SREM")
                    .arg(&nodes_key)
                    .arg(&gone)
                    .query_async::<()>(conn)
                    .await?;
            }
        }
        *self.peers.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(peers);
        *self.written.lock().unwrap_or_else(|e| e.into_inner()) = Some(counts);
        Ok(())
    }

    /// Sends what is published here to Redis, in order, in pipelines.
    async fn publisher(self: Arc<Self>, mut rx: mpsc::Receiver<Job>, inbox: Arc<dyn Inbox>) {
        let mut jobs = Vec::with_capacity(BATCH);
        let mut seq = 0;
        while rx.recv_many(&mut jobs, BATCH).await > 0 {
            let mut events = Vec::with_capacity(jobs.len());
            let mut waiting = Vec::new();
            for job in jobs.drain(..) {
                match job {
                    Job::Event(e, asked) => events.push((e, asked)),
                    Job::Flushed(tx) => waiting.push(tx),
                }
            }
            if !events.is_empty() {
                self.send(events, &mut seq, &*inbox).await;
            }
            for tx in waiting {
                let _ = tx.send(());
            }
        }
    }

    /// Sends `events` to every node, to be delivered here when Redis echoes
    /// them; delivers them here at once while Redis is unreachable (but
    /// those only Redis may publish: see [`Asked::through_redis_only`]).
    /// `seq` is the number of the last event sent. On a Redis Cluster the
    /// batch goes as one pipeline per master, all at once
    /// ([`super::redis_batch`]): a destination's publications keep their
    /// order (one slot, one master, one connection).
    async fn send(
        &self,
        events: Vec<(Event, Option<Box<Asked>>)>,
        seq: &mut u64,
        inbox: &dyn Inbox,
    ) {
        let n = events.len() as u64;
        let mut batch = Batch::default();
        // Those whose answers are read, in the batch's order, and where
        // each answer is: its command.
        let mut answered = Vec::new();
        let mut answer_at = Vec::new();
        // Every event's command, to count those sent.
        let mut commands = Vec::with_capacity(events.len());
        // Delivered here as they are sent: nobody listens for their echo.
        let mut here = Vec::new();
        let mut conn = {
            let mut echoes = self.unechoed();
            let Some(conn) = self.publishing_connection() else {
                drop(echoes);
                // Not kept for later: a late copy after the outage would
                // reach the other nodes out of order with newer ones.
                self.counts.publishes_dropped.inc_by(n);
                for (e, asked) in events {
                    let Some(asked) = asked else {
                        inbox.deliver(e);
                        continue;
                    };
                    if asked.through_redis_only() {
                        let _ = asked.reply.send(Err(Failed::not("Redis is unreachable")));
                        continue;
                    }
                    inbox.deliver(e);
                    let sent = Sent {
                        position: None,
                        duplicate: false,
                        tally: None,
                    };
                    let _ = asked.reply.send(Ok(sent));
                }
                return;
            };
            // Read after the connection: the link records a new master
            // before it hands out its connection, so this is the
            // connection's master or a newer one, never an older one.
            let replid = self
                .master
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map_or_else(String::new, |m| m.replid.clone());
            let sending =
                |a: &Option<Box<Asked>>| a.as_ref().map_or(Sending::Plain, |a| a.sending());
            // One server: the scripts are loaded by each batch that calls
            // them (a cluster's nodes have them from the start).
            if !self.sharded {
                if events.iter().any(|(_, a)| sending(a) == Sending::Kept) {
                    batch.add(0, redis::Cmd::load_script(&redis_history::APPEND), false);
                }
                if events.iter().any(|(_, a)| sending(a) == Sending::Once) {
                    batch.add(
                        0,
                        redis::Cmd::load_script(&redis_history::PUBLISH_ONCE),
                        false,
                    );
                }
            }
            let publish = self.publish_command();
            for (e, asked) in events {
                *seq += 1;
                let count = asked.as_ref().is_some_and(|a| a.count);
                let text = event::encode(&self.node, *seq, count, &e);
                let channel = self.channel_of(&e);
                let slot = if self.sharded {
                    redis_conn::slot(&channel)
                } else {
                    0
                };
                // A script's publication is delivered only by its echo.
                let echo_only = sending(&asked) != Sending::Plain;
                let hears = self.hears(&echoes, &channel);
                let unechoed_mode = match (echo_only, hears) {
                    (true, true) => Some(Unechoed::FromHistory),
                    (false, true) => Some(Unechoed::Deliver),
                    // Nobody here hears its echo (and, on a cluster, no
                    // session here holds its tag, or it is just being
                    // subscribed to, when history fills the gap).
                    (true, false) => None,
                    (false, false) => {
                        here.push(e.clone());
                        (!self.sharded).then_some(Unechoed::Delivered)
                    }
                };
                let mut read = |at: usize, reply, sending, held| {
                    answer_at.push(at);
                    answered.push((reply, sending, self.open_tally(count, *seq), held));
                };
                match asked.map(|a| *a) {
                    None => {
                        let mut cmd = redis::cmd(publish);
                        cmd.arg(&channel).arg(text);
                        commands.push(batch.add(slot, cmd, false));
                    }
                    Some(Asked {
                        keep: None,
                        once: None,
                        reply,
                        ..
                    }) => {
                        let mut cmd = redis::cmd(publish);
                        cmd.arg(&channel).arg(text);
                        let at = batch.add(slot, cmd, false);
                        commands.push(at);
                        read(at, reply, Sending::Plain, None);
                    }
                    Some(Asked {
                        keep: Some(k),
                        once,
                        reply,
                        ..
                    }) => {
                        let Event::Publish { headers, body, .. } = &e else {
                            unreachable!("only publications are kept")
                        };
                        let (key, meta) = redis_history::keys(&self.config.namespace, &k.stream);
                        let mut call = redis_history::APPEND.prepare_invoke();
                        call.key(key).key(&meta);
                        match &once {
                            Some(o) => call.key(self.once_key(o)),
                            None => call.key(&meta),
                        };
                        // Held for replicas: confirmed and published once
                        // they have it.
                        let held = (self.config.redis_min_replicas > 0).then(|| Held {
                            meta: meta.clone(),
                            channel: channel.clone(),
                            text: text.clone(),
                        });
                        call.arg(crate::protocol::ids::random_hex::<6>())
                            .arg(k.retention.size)
                            .arg(k.retention.ttl.as_secs().max(1))
                            .arg(redis_history::entry_value(headers, body))
                            .arg(&channel)
                            .arg(text)
                            .arg(once.map_or(0, |o| o.window.as_secs().max(1)))
                            .arg(u8::from(held.is_some()))
                            .arg(&replid)
                            .arg(publish);
                        let cmd = redis::Cmd::invoke_script(&call);
                        let at = batch.add(slot, cmd, held.is_some());
                        commands.push(at);
                        read(at, reply, Sending::Kept, held);
                    }
                    Some(Asked {
                        keep: None,
                        once: Some(o),
                        reply,
                        ..
                    }) => {
                        let mut call = redis_history::PUBLISH_ONCE.prepare_invoke();
                        call.key(self.once_key(&o))
                            .arg(&channel)
                            .arg(text)
                            .arg(o.window.as_secs().max(1))
                            .arg(publish);
                        let at = batch.add(slot, redis::Cmd::invoke_script(&call), false);
                        commands.push(at);
                        read(at, reply, Sending::Once, None);
                    }
                }
                if let Some(mode) = unechoed_mode {
                    echoes
                        .queues
                        .entry(channel)
                        .or_default()
                        .push_back((*seq, e, mode));
                }
            }
            conn
        };
        for e in here {
            inbox.deliver(e);
        }
        let done = self.sender().send(&mut conn, &batch).await;
        let sent = commands.iter().filter(|&&i| done[i].answer.is_ok()).count() as u64;
        self.counts.publishes_sent.inc_by(sent);
        self.counts.publishes_dropped.inc_by(n - sent);
        // Kept ones are acknowledged once that many replicas have them
        // (and every write before them on this connection).
        let replicas = self.config.redis_min_replicas;
        let unreplicated = |i: usize| -> Option<Failed> {
            match done[i].replicas {
                Some(n) if n >= replicas => None,
                confirmed => Some(Failed {
                    why: format!(
                        "{} of the {replicas} replicas asked for (redis_min_replicas) confirmed it within {} ms",
                        confirmed.unwrap_or(0),
                        self.config.redis_replica_timeout_ms
                    ),
                    maybe_published: true,
                }),
            }
        };
        // What Redis answered each; and the held ones to confirm and
        // publish now that the replicas have them (new ones, and repeats
        // of one in the stream's present epoch, whose first try may have
        // been kept but never published), by index.
        let mut results: Vec<Outcome> = Vec::with_capacity(answered.len());
        let mut to_publish = Vec::new();
        for ((_, sending, _, held), &at) in answered.iter().zip(&answer_at) {
            let v = match &done[at].answer {
                Ok(v) => v,
                Err(failed) => {
                    results.push(Err(failed.clone()));
                    continue;
                }
            };
            let short = held.as_ref().and_then(|_| unreplicated(at));
            let sent = match sending {
                Sending::Kept => redis_history::appended(v).map(|a| {
                    if held.is_some() && short.is_none() && (!a.duplicate || a.present) {
                        to_publish.push((results.len(), a.position.clone()));
                    }
                    (Some(a.position), a.receivers, a.duplicate)
                }),
                Sending::Once => redis_history::published_once(v)
                    .map(|(receivers, duplicate)| (None, receivers, duplicate)),
                Sending::Plain => redis::from_redis_value_ref::<usize>(v)
                    .map(|receivers| (None, receivers, false))
                    .map_err(|e| e.to_string()),
            }
            .map_err(Failed::not)
            .and_then(|sent| match short {
                Some(failed) => {
                    self.counts.publishes_unreplicated.inc();
                    Err(failed)
                }
                None => Ok(sent),
            });
            results.push(sent);
        }
        if !to_publish.is_empty() {
            self.publish_held(&mut conn, &answered, to_publish, &mut results)
                .await;
        }
        for ((reply, _, tally, _), sent) in answered.into_iter().zip(results) {
            match (&tally, &sent) {
                (Some((seq, _)), Ok((_, receivers, _))) => {
                    // This node among them when its subscription was in
                    // as Redis published it (whatever this node thought
                    // then: one let go may be on its way): its echo
                    // replies.
                    self.tallies.expect(*seq, *receivers);
                }
                (Some((seq, _)), Err(_)) => {
                    self.tallies.close(*seq);
                }
                _ => {}
            }
            let _ = reply.send(sent.map(|(position, _, duplicate)| Sent {
                position,
                duplicate,
                tally,
            }));
        }
    }

    /// How batches go to Redis.
    fn sender(&self) -> Sender<'_> {
        Sender {
            sharded: self.sharded,
            map: &self.slot_map,
            within: self.config.publish_timeout(),
            wait: (
                self.config.redis_min_replicas,
                self.config.redis_replica_timeout_ms,
            ),
            namespace: &self.config.namespace,
            demoted: &self.look_now,
        }
    }

    /// Confirms and publishes the kept publications held for the replicas
    /// (`to_publish`: their indexes in `answered` and positions), now that
    /// the replicas have them. Their counts of nodes reached go into
    /// `results`; when they could not be published, they answer that they
    /// may have been (a repeat publishes them).
    async fn publish_held(
        &self,
        conn: &mut Conn,
        answered: &[Answered],
        to_publish: Vec<(usize, Position)>,
        results: &mut [Outcome],
    ) {
        let mut batch = Batch::default();
        if !self.sharded {
            batch.add(0, redis::Cmd::load_script(&redis_history::CONFIRM), false);
        }
        let mut which: Vec<(usize, usize)> = Vec::with_capacity(to_publish.len());
        for (i, position) in to_publish {
            let Some(held) = &answered[i].3 else {
                continue;
            };
            let slot = if self.sharded {
                redis_conn::slot(&held.meta)
            } else {
                0
            };
            let mut call = redis_history::CONFIRM.prepare_invoke();
            call.key(&held.meta)
                .arg(position.offset)
                .arg(&held.channel)
                .arg(redis_history::published_event(&position, &held.text))
                .arg(self.publish_command());
            which.push((i, batch.add(slot, redis::Cmd::invoke_script(&call), false)));
        }
        let done = self.sender().send(conn, &batch).await;
        for (i, at) in which {
            let published = match &done[at].answer {
                Ok(v) => redis::from_redis_value_ref::<usize>(v).map_err(|e| e.to_string()),
                Err(failed) => Err(failed.why.clone()),
            };
            match published {
                Ok(n) => {
                    if let Ok((_, receivers, _)) = &mut results[i] {
                        *receivers = n;
                    }
                }
                Err(why) => {
                    results[i] = Err(Failed {
                        why: format!("kept on the replicas, but not published yet: {why}"),
                        maybe_published: true,
                    });
                }
            }
        }
    }

    /// Where `once`'s key is claimed.
    fn once_key(&self, once: &Once) -> String {
        redis_history::once_key(&self.config.namespace, &once.stream, &once.key)
    }

    /// The tally of event `seq`, when it is counted.
    fn open_tally(&self, count: bool, seq: u64) -> Option<(u64, oneshot::Receiver<()>)> {
        count.then(|| {
            (
                seq,
                self.tallies.open(seq, self.config.request_timeout() * 4),
            )
        })
    }

    /// Delivers here this node's unechoed events on `channel` numbered up
    /// to `seq`: the one Redis just echoed (as echoed: a kept one carries
    /// its position only there), and older ones whose echo will never come
    /// (Redis echoes one connection's publications to a channel in order),
    /// but for kept ones, which the services read back from history.
    fn deliver_unechoed(&self, channel: &str, seq: u64, echo: Option<Event>, inbox: &dyn Inbox) {
        let due: Vec<(u64, Event, Unechoed)> = {
            let mut echoes = self.unechoed();
            let Some(queue) = echoes.queues.get_mut(channel) else {
                return;
            };
            let n = queue.iter().take_while(|(s, _, _)| *s <= seq).count();
            let due = queue.drain(..n).collect();
            if queue.is_empty() {
                echoes.queues.remove(channel);
            }
            due
        };
        let mut echo = echo;
        for (s, e, mode) in due {
            match (s == seq, mode) {
                (_, Unechoed::Delivered) => {}
                (true, _) => {
                    inbox.deliver(echo.take().unwrap_or(e));
                }
                (false, Unechoed::Deliver) => {
                    inbox.deliver(e);
                }
                (false, Unechoed::FromHistory) => {}
            }
        }
    }

    fn unechoed(&self) -> std::sync::MutexGuard<'_, Echoes> {
        self.unechoed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the sharded listener hears, given to the bus and this node's
/// services.
struct Hearing<'a> {
    bus: &'a RedisBus,
    inbox: &'a dyn Inbox,
}

impl Hears for Hearing<'_> {
    fn message(&self, channel: &str, payload: &[u8]) {
        if channel == self.bus.replies {
            match tally::parse_reply(payload) {
                Some((seq, count)) => self.bus.tallies.reply(seq, count),
                None => log::warn!("cluster: a reply that is not ours on {channel}"),
            }
        } else {
            self.bus.receive(channel, payload, self.inbox);
        }
    }

    fn heard(&self, channel: &str, tag: Option<&str>) {
        {
            let mut echoes = self.bus.unechoed();
            match tag {
                Some(_) => {
                    echoes.heard.insert(channel.to_owned());
                }
                // The replies channel: the node is linked.
                None => self.bus.listening.store(true, Ordering::Release),
            }
        }
        match tag {
            Some(tag) => self.inbox.heard(tag),
            None => {
                if !self.bus.up.load(Ordering::Acquire) {
                    self.bus.connect_now.notify_one();
                }
            }
        }
    }

    fn channel(&self, tag: &str) -> String {
        self.bus.tag_channel(tag)
    }

    fn lost(&self, channels: &[String]) {
        {
            let mut echoes = self.bus.unechoed();
            for channel in channels {
                echoes.heard.remove(channel);
                if *channel == self.bus.replies {
                    self.bus.listening.store(false, Ordering::Release);
                }
            }
        }
        // Their echoes went with the subscriptions.
        for channel in channels {
            self.bus
                .deliver_unechoed(channel, u64::MAX, None, self.inbox);
        }
    }
}

impl Bus for RedisBus {
    fn publish(&self, event: Event) -> Delivery {
        // Queued even while Redis is down: the publisher then delivers it
        // here, after what was queued before.
        if self.queue.try_send(Job::Event(event, None)).is_ok() {
            Delivery::Bus
        } else {
            self.counts.publishes_dropped.inc();
            Delivery::Here
        }
    }

    fn publish_asking(
        &self,
        event: Event,
        asks: Asks,
    ) -> Result<BoxFuture<'static, Answers>, Event> {
        let (reply, rx) = oneshot::channel();
        let kept = asks.keep.is_some();
        let told = kept || asks.once.is_some();
        let asked = Asked {
            keep: asks.keep,
            once: asks.once,
            count: asks.count,
            reply,
        };
        if let Err(e) = self
            .queue
            .try_send(Job::Event(event, Some(Box::new(asked))))
        {
            self.counts.publishes_dropped.inc();
            return match e.into_inner() {
                Job::Event(event, _) => Err(event),
                Job::Flushed(_) => unreachable!("a publication was queued"),
            };
        }
        let tallies = self.tallies.clone();
        let wait = self.config.request_timeout();
        Ok(Box::pin(async move {
            let sent = rx
                .await
                .unwrap_or_else(|_| Err(Failed::not("the publisher stopped")));
            let published = told.then(|| match &sent {
                // Delivered here only (a fallback): not kept.
                Ok(s) if kept && s.position.is_none() => Err(Failed::not("Redis is unreachable")),
                Ok(s) => Ok(Published {
                    position: s.position.clone(),
                    duplicate: s.duplicate,
                }),
                Err(failed) => Err(failed.clone()),
            });
            let elsewhere = match sent {
                Ok(Sent {
                    tally: Some((seq, done)),
                    ..
                }) => {
                    let _ = tokio::time::timeout(wait, done).await;
                    Some(tallies.close(seq))
                }
                _ => None,
            };
            Answers {
                published,
                elsewhere,
            }
        }))
    }

    fn flushed(&self) -> BoxFuture<'static, ()> {
        let (tx, rx) = oneshot::channel();
        if self.queue.try_send(Job::Flushed(tx)).is_err() {
            return Box::pin(std::future::ready(()));
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }

    /// Up while this node both reaches Redis and hears the others; its
    /// publications reach Redis as long as the first holds.
    fn state(&self) -> State {
        if self.up.load(Ordering::Acquire) && self.listening.load(Ordering::Acquire) {
            State::Up
        } else {
            State::Degraded
        }
    }

    fn peers(&self) -> Arc<Vec<Presence>> {
        self.peers.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn follow(&self, tag: &str, held: bool) {
        if self.sharded {
            self.follows.follow(tag, held);
        }
    }

    fn hearing(&self, tag: &str) -> Option<BoxFuture<'static, ()>> {
        // Without a link nothing is heard: no reason to wait.
        if !self.sharded || !self.listening.load(Ordering::Acquire) || self.follows.hears(tag) {
            return None;
        }
        Some(
            self.follows
                .heard_within(tag, self.config.request_timeout()),
        )
    }

    fn counted_elsewhere(&self, fields: Vec<String>) -> BoxFuture<'static, usize> {
        let peers = self.peers();
        let (Some(mut conn), false) = (self.connection(), peers.is_empty() || fields.is_empty())
        else {
            return Box::pin(std::future::ready(0));
        };
        // Each peer's counts keys that hold these fields, and the fields.
        let mut pipes = Pipes::new(self.sharded);
        for peer in peers.iter() {
            let keys = self.counts_keys(&peer.node);
            let mut by_key: Vec<Vec<&String>> = vec![Vec::new(); keys.len()];
            for field in &fields {
                by_key[self.bucket_of(field)].push(field);
            }
            for (key, fields) in keys.iter().zip(by_key) {
                if !fields.is_empty() {
                    pipes.add(key, redis::cmd("HMGET").arg(key).arg(fields).clone(), true);
                }
            }
        }
        let wait = self.config.request_timeout();
        Box::pin(async move {
            match tokio::time::timeout(wait, pipes.query(&mut conn)).await {
                Ok(Ok(answers)) => answers
                    .iter()
                    .filter_map(|v| redis::from_redis_value_ref::<Vec<Option<usize>>>(v).ok())
                    .flatten()
                    .flatten()
                    .sum(),
                _ => 0,
            }
        })
    }

    fn listed_elsewhere(&self, prefix: String) -> BoxFuture<'static, Vec<(String, usize)>> {
        let keys: Vec<String> = self
            .peers()
            .iter()
            .flat_map(|p| self.counts_keys(&p.node))
            .collect();
        let (Some(mut conn), false) = (self.connection(), keys.is_empty()) else {
            return Box::pin(std::future::ready(Vec::new()));
        };
        let wait = self.config.request_timeout();
        let pattern = format!("{}*", presence::glob_escape(&prefix));
        Box::pin(async move {
            let mut found = Vec::new();
            let scan = async {
                for key in &keys {
                    let mut cursor = 0u64;
                    loop {
                        let (next, page): (u64, Vec<(String, usize)>) = redis::cmd("HSCAN")
                            .arg(key)
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(SCAN_COUNT)
                            .query_async(&mut conn)
                            .await?;
                        found.extend(page);
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
                Ok::<(), redis::RedisError>(())
            };
            match tokio::time::timeout(wait, scan).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::debug!("cluster: listing the other nodes' counts failed: {e}"),
                Err(_) => log::debug!("cluster: listing the other nodes' counts took too long"),
            }
            found
        })
    }
}
