//! The live sessions of one service.
//!
//! Sharded maps (dashmap), so looking up one session never waits on a lock
//! that every request takes.

use super::actor::SessionActor;
use actix::Addr;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Why a new session could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryFull;

#[derive(Default)]
pub struct Registry {
    /// HTTP sessions by their SockJS session id. WebSocket sessions are not
    /// here: the protocol lets two WebSockets share one id.
    by_sid: DashMap<Box<str>, (u64, Addr<SessionActor>)>,
    /// Every live session by its internal key, for broadcast and counting.
    all: DashMap<u64, Addr<SessionActor>>,
    next_key: AtomicU64,
    max_sessions: usize,
    /// How many sessions an HTTP session counts as against `max_sessions`.
    http_weight: usize,
    /// Entries of `by_sid`, counted apart: `DashMap::len` locks every
    /// shard, and a session is made while its id's shard is locked.
    http_sessions: AtomicUsize,
}

impl Registry {
    /// At most `max_sessions`, an HTTP session counting as `http_weight`
    /// (the connections it holds, when the cap is a connection budget).
    pub fn new(max_sessions: usize, http_weight: usize) -> Self {
        Registry {
            max_sessions,
            http_weight: http_weight.max(1),
            next_key: AtomicU64::new(1),
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether a new WebSocket session would be refused.
    pub fn is_full(&self) -> bool {
        !self.has_room(1)
    }

    /// Whether a session that counts as `weight` fits.
    fn has_room(&self, weight: usize) -> bool {
        let http = self.http_sessions.load(Ordering::Relaxed);
        let load = self.all.len() + (self.http_weight - 1) * http;
        load + weight <= self.max_sessions
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Finds the session with this SockJS id.
    pub fn get(&self, sid: &str) -> Option<Addr<SessionActor>> {
        self.by_sid.get(sid).map(|e| e.1.clone())
    }

    /// Finds the session with this id or makes one with `start(key)`.
    /// Returns the address and whether it was just made.
    pub fn get_or_create(
        &self,
        sid: &str,
        start: impl FnOnce(u64) -> Addr<SessionActor>,
    ) -> Result<(Addr<SessionActor>, bool), RegistryFull> {
        if let Some(addr) = self.get(sid) {
            return Ok((addr, false));
        }
        match self.by_sid.entry(sid.into()) {
            Entry::Occupied(e) => Ok((e.get().1.clone(), false)),
            Entry::Vacant(e) => {
                let (key, addr) = self.start(self.http_weight, start)?;
                self.all.insert(key, addr.clone());
                e.insert((key, addr.clone()));
                self.http_sessions.fetch_add(1, Ordering::Relaxed);
                Ok((addr, true))
            }
        }
    }

    /// Makes a session that has no SockJS id (a WebSocket session). Its
    /// address stays here only: each copy of an actix address allocates.
    pub fn create_anonymous(
        &self,
        start: impl FnOnce(u64) -> Addr<SessionActor>,
    ) -> Result<(), RegistryFull> {
        let (key, addr) = self.start(1, start)?;
        self.all.insert(key, addr);
        Ok(())
    }

    /// A key and a started session, not yet listed.
    fn start(
        &self,
        weight: usize,
        start: impl FnOnce(u64) -> Addr<SessionActor>,
    ) -> Result<(u64, Addr<SessionActor>), RegistryFull> {
        if !self.has_room(weight) {
            return Err(RegistryFull);
        }
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        Ok((key, start(key)))
    }

    /// Forgets a session; only the entry that `key` owns is removed, so a newer
    /// session that reused the SockJS id is left alone. Whether `sid` was
    /// this session's until now.
    pub fn remove(&self, sid: Option<&str>, key: u64) -> bool {
        let had_sid =
            sid.is_some_and(|sid| self.by_sid.remove_if(sid, |_, (k, _)| *k == key).is_some());
        if had_sid {
            self.http_sessions.fetch_sub(1, Ordering::Relaxed);
        }
        self.all.remove(&key);
        had_sid
    }

    /// The ids of the live HTTP sessions.
    pub fn sids(&self) -> Vec<Box<str>> {
        self.by_sid.iter().map(|e| e.key().clone()).collect()
    }

    /// Calls `f` for every live session.
    pub fn for_each(&self, mut f: impl FnMut(&Addr<SessionActor>)) {
        for entry in self.all.iter() {
            f(entry.value());
        }
    }
}
