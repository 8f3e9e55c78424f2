//! What a node hears on a Redis Cluster: the sharded channels
//! (`SSUBSCRIBE`) of the tags its sessions hold ([`super::Event::tag`]:
//! each destination subscribed to here, each user with a session here,
//! each service), and its own replies channel. A publication then reaches
//! only the shard of its destination and the nodes that hold it.
//!
//! The server ends a sharded subscription when its slot moves to another
//! shard (a `sunsubscribe` nobody asked for), and a failover or a broken
//! link ends every subscription on that connection (the crate's
//! `Disconnection`); the crate does not reliably make them again. So the
//! listener keeps the set of channels it wants, makes each again at once
//! where it ended, and tells the bus which ones it lost (their echoes will
//! not come) and which ones it hears again (what was published meanwhile
//! is read from history).

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The tags this node's sessions hold, counted, and what tells the
/// listener that one changed.
pub struct Follows {
    held: Mutex<HashMap<String, usize>>,
    changed: mpsc::UnboundedSender<String>,
    changes: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    /// The tags heard now: a subscription waiting for one resolves once
    /// it is in.
    heard: watch::Sender<HashSet<String>>,
}

impl Default for Follows {
    fn default() -> Self {
        let (changed, changes) = mpsc::unbounded_channel();
        Follows {
            held: Mutex::default(),
            changed,
            changes: Mutex::new(Some(changes)),
            heard: watch::Sender::new(HashSet::new()),
        }
    }
}

impl Follows {
    /// One more holder of `tag` (`held`), or one less.
    pub fn follow(&self, tag: &str, held: bool) {
        let mut map = self.lock();
        let changed = if held {
            let n = map.entry(tag.to_owned()).or_insert(0);
            *n += 1;
            *n == 1
        } else {
            match map.get_mut(tag) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    map.remove(tag);
                    true
                }
                None => false,
            }
        };
        if changed {
            let _ = self.changed.send(tag.to_owned());
        }
    }

    /// Whether `tag`'s subscription is in.
    pub fn hears(&self, tag: &str) -> bool {
        self.heard.borrow().contains(tag)
    }

    pub fn holds(&self, tag: &str) -> bool {
        self.lock().contains_key(tag)
    }

    fn all(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Resolves once `tag` is heard (at once if it is), or after `wait`.
    pub fn heard_within(&self, tag: &str, wait: Duration) -> BoxFuture<'static, ()> {
        let mut rx = self.heard.subscribe();
        let tag = tag.to_owned();
        Box::pin(async move {
            let _ = tokio::time::timeout(wait, rx.wait_for(|heard| heard.contains(&tag))).await;
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the listener does with what it hears: the bus.
pub trait Hears: Send + Sync {
    /// A message on `channel`.
    fn message(&self, channel: &str, payload: &[u8]);
    /// `channel` is subscribed to (again): its messages come from now on.
    fn heard(&self, channel: &str, tag: Option<&str>);
    /// These subscriptions ended: what was published on them since is
    /// not heard.
    fn lost(&self, channels: &[String]);
    /// The channel of `tag`'s events.
    fn channel(&self, tag: &str) -> String;
}

/// Pauses before a subscription that failed is tried again.
const RETRY: Duration = Duration::from_millis(200);

/// Keeps the subscriptions of `follows` (and `replies`) up on `conn`,
/// whose pushes come on `pushes`, until the connection ends or `stop`
/// says so; returns why it ended.
pub async fn listen(
    mut conn: ClusterConnection,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    follows: &Follows,
    hears: &dyn Hears,
    replies: &str,
    wait: Duration,
    stop: &tokio::sync::Notify,
) -> String {
    let Some(mut changes) = follows
        .changes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
        return "another listener runs".into();
    };
    let why = Listener {
        conn: &mut conn,
        follows,
        hears,
        replies,
        wait,
        subscribed: HashMap::new(),
        asked_off: HashMap::new(),
        pending: FuturesUnordered::new(),
        waiting: HashSet::new(),
        retry: Vec::new(),
        leaving: HashSet::new(),
    }
    .run(&mut pushes, &mut changes, stop)
    .await;
    *follows.changes.lock().unwrap_or_else(|e| e.into_inner()) = Some(changes);
    follows.heard.send_modify(|h| h.clear());
    why
}

/// A subscription asked for (`true`) or let go: the tag (`None`: the
/// replies channel) and how it went.
type Asked = (Option<String>, bool, redis::RedisResult<()>);

struct Listener<'a> {
    conn: &'a mut ClusterConnection,
    follows: &'a Follows,
    hears: &'a dyn Hears,
    replies: &'a str,
    wait: Duration,
    /// Channels subscribed to, and their tags.
    subscribed: HashMap<String, Option<String>>,
    /// Channels this listener unsubscribed from, whose `sunsubscribe`
    /// pushes are not losses.
    asked_off: HashMap<String, usize>,
    pending: FuturesUnordered<BoxFuture<'static, Asked>>,
    /// Tags (and `None`, the replies) with a subscription pending.
    waiting: HashSet<Option<String>>,
    /// Tags whose subscription failed, tried again after [`RETRY`].
    retry: Vec<Option<String>>,
    /// Channels being let go: one wanted again meanwhile is subscribed to
    /// once that is done, or the two could cross on the way and leave it
    /// off while this listener counts it on.
    leaving: HashSet<String>,
}

impl Listener<'_> {
    async fn run(
        mut self,
        pushes: &mut mpsc::UnboundedReceiver<PushInfo>,
        changes: &mut mpsc::UnboundedReceiver<String>,
        stop: &tokio::sync::Notify,
    ) -> String {
        self.subscribe(None);
        for tag in self.follows.all() {
            self.subscribe(Some(tag));
        }
        let mut retry = tokio::time::interval(RETRY);
        loop {
            // A subscription's answer before the messages that follow it.
            tokio::select! {
                biased;
                _ = stop.notified() => return "the command connection failed".into(),
                Some((tag, on, result)) = self.pending.next() => match on {
                    true => self.answered(tag, result),
                    false => self.left(tag),
                },
                push = pushes.recv() => match push {
                    Some(push) => {
                        if let Some(why) = self.pushed(push) {
                            return why;
                        }
                    }
                    None => return "the connection ended".into(),
                },
                Some(tag) = changes.recv() => self.changed(tag),
                _ = retry.tick(), if !self.retry.is_empty() => {
                    for tag in std::mem::take(&mut self.retry) {
                        self.subscribe(tag);
                    }
                }
            }
        }
    }

    fn channel_of(&self, tag: &Option<String>) -> String {
        match tag {
            Some(tag) => self.hears.channel(tag),
            None => self.replies.to_owned(),
        }
    }

    fn subscribe(&mut self, tag: Option<String>) {
        let channel = self.channel_of(&tag);
        if self.leaving.contains(&channel) || !self.waiting.insert(tag.clone()) {
            return;
        }
        let mut conn = self.conn.clone();
        let wait = self.wait;
        self.pending.push(Box::pin(async move {
            let made = match tokio::time::timeout(wait, conn.ssubscribe(&channel)).await {
                Ok(made) => made,
                Err(_) => Err((redis::ErrorKind::Io, "no answer in time").into()),
            };
            (tag, true, made)
        }));
    }

    fn unsubscribe(&mut self, channel: String, tag: Option<String>) {
        *self.asked_off.entry(channel.clone()).or_default() += 1;
        self.leaving.insert(channel.clone());
        let mut conn = self.conn.clone();
        let wait = self.wait;
        self.pending.push(Box::pin(async move {
            let _ = tokio::time::timeout(wait, conn.sunsubscribe(&channel)).await;
            (tag, false, Ok(()))
        }));
    }

    /// A tag let go: subscribed to again if it is wanted again.
    fn left(&mut self, tag: Option<String>) {
        let channel = self.channel_of(&tag);
        self.leaving.remove(&channel);
        if tag.as_ref().is_some_and(|t| self.follows.holds(t)) {
            self.subscribe(tag);
        }
    }

    fn answered(&mut self, tag: Option<String>, result: redis::RedisResult<()>) {
        self.waiting.remove(&tag);
        let wanted = tag.as_ref().is_none_or(|t| self.follows.holds(t));
        let channel = self.channel_of(&tag);
        match result {
            Ok(()) if wanted => {
                if self
                    .subscribed
                    .insert(channel.clone(), tag.clone())
                    .is_none()
                {
                    self.hears.heard(&channel, tag.as_deref());
                    if let Some(tag) = &tag {
                        self.follows.heard.send_modify(|h| {
                            h.insert(tag.clone());
                        });
                    }
                }
            }
            // Let go while it was being made.
            Ok(()) => self.unsubscribe(channel, tag),
            Err(e) => {
                log::debug!("cluster: subscribing to {channel} failed: {e}");
                if wanted {
                    self.retry.push(tag);
                }
            }
        }
    }

    /// A tag's holding changed: subscribe, or let go.
    fn changed(&mut self, tag: String) {
        let channel = self.hears.channel(&tag);
        let some = Some(tag.clone());
        if self.follows.holds(&tag) {
            if !self.subscribed.contains_key(&channel) {
                self.subscribe(some);
            }
        } else if self.subscribed.remove(&channel).is_some() {
            self.follows.heard.send_modify(|h| {
                h.remove(&tag);
            });
            self.hears.lost(std::slice::from_ref(&channel));
            self.unsubscribe(channel, some);
        }
    }

    /// A push; `Some(why)` when the connection is gone for good.
    fn pushed(&mut self, push: PushInfo) -> Option<String> {
        match push.kind {
            PushKind::SMessage => match push.data.as_slice() {
                [channel, Value::BulkString(payload), ..] => {
                    let channel: String = redis::from_redis_value_ref(channel).ok()?;
                    self.hears.message(&channel, payload);
                }
                other => log::warn!("cluster: a sharded message of an unknown form: {other:?}"),
            },
            PushKind::SUnsubscribe => {
                let channel: String = redis::from_redis_value_ref(push.data.first()?).ok()?;
                match self.asked_off.get_mut(&channel) {
                    Some(n) if *n > 1 => *n -= 1,
                    Some(_) => {
                        self.asked_off.remove(&channel);
                    }
                    // The server's: the slot moved to another shard.
                    None => {
                        if let Some(tag) = self.subscribed.remove(&channel) {
                            log::info!(
                                "cluster: Redis ended the subscription to {channel} (its slot moved); subscribing again"
                            );
                            self.drop_heard(&tag);
                            self.hears.lost(std::slice::from_ref(&channel));
                            self.subscribe(tag);
                        }
                    }
                }
            }
            PushKind::Disconnection => {
                // Which node's link broke is not said: every subscription
                // is made again (on the same node, a no-op).
                let lost: Vec<(String, Option<String>)> = self.subscribed.drain().collect();
                log::warn!(
                    "cluster: a link to a Redis Cluster node broke; subscribing to {} channels again",
                    lost.len()
                );
                let channels: Vec<String> = lost.iter().map(|(c, _)| c.clone()).collect();
                self.follows.heard.send_modify(|h| h.clear());
                self.hears.lost(&channels);
                for (_, tag) in lost {
                    self.subscribe(tag);
                }
            }
            _ => {}
        }
        None
    }

    fn drop_heard(&self, tag: &Option<String>) {
        if let Some(tag) = tag {
            self.follows.heard.send_modify(|h| {
                h.remove(tag);
            });
        }
    }
}
