//! History in Redis, for a cluster: one stream per destination, read by any
//! node.
//!
//! Keys, under the cluster's namespace, for stream `S` (a service's name
//! and a destination): `NS:history:{S}`, a Redis stream whose entry ids
//! are the offsets (`N-0`), trimmed to `size` entries; `NS:history:{S}:meta`,
//! a hash of the epoch (`e`) and the last offset given (`t`). Both expire
//! `ttl` seconds after the last publication. The braces keep the pair in
//! one slot.
//!
//! `APPEND` gives the next offset, appends the entry and publishes the
//! event with its position on the events channel in one script, so that a
//! node that sees offset N+1 live finds N in the stream. A stream whose
//! meta hash is gone (expired, evicted, Redis restarted empty) starts over
//! in a new epoch: the epoch the node proposes with each call.

use super::history::{Entry, History, Position, Read, Retention};
use super::redis::{within, RedisBus};
use futures_util::future::{BoxFuture, Shared};
use futures_util::FutureExt;
use redis::Value;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use tokio::sync::Semaphore;

/// Reads of one node in flight to Redis at most. A reconnect storm asks
/// for thousands at once; past what Redis answers within
/// `request_timeout`, they would time out, and delay the node's presence
/// writes on the same connection until Redis counted as lost.
const READS_IN_FLIGHT: usize = 32;

/// KEYS: stream, meta. ARGV: a new epoch, size, ttl, the entry, the
/// events channel, the event as JSON (an object, written after the
/// position). Returns {offset, epoch, nodes that got the event}.
pub(super) static APPEND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  redis.call('DEL', KEYS[1])
  epoch = ARGV[1]
  redis.call('HSET', KEYS[2], 'e', epoch)
end
local top = redis.call('HINCRBY', KEYS[2], 't', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], top .. '-0', 'p', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local receivers = redis.call('PUBLISH', ARGV[5],
  '{"offset":' .. top .. ',"epoch":"' .. epoch .. '",' .. string.sub(ARGV[6], 2))
return {top, epoch, receivers}
"#,
    )
});

/// KEYS: stream, meta. ARGV: a new epoch, ttl, the offset read after, the
/// first id to read (`after+1`-0), the most entries. Returns {top, epoch,
/// entries}; makes an empty stream (meta only) when there is none.
static READ: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', ARGV[1], 't', 0)
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  return {0, ARGV[1], {}}
end
local top = tonumber(redis.call('HGET', KEYS[2], 't') or '0')
local limit = tonumber(ARGV[5])
if limit == 0 or tonumber(ARGV[3]) >= top then
  return {top, epoch, {}}
end
return {top, epoch, redis.call('XRANGE', KEYS[1], ARGV[4], '+', 'COUNT', limit)}
"#,
    )
});

/// The keys of stream `stream`: the stream itself and its meta hash.
pub(super) fn keys(namespace: &str, stream: &str) -> (String, String) {
    let key = format!("{namespace}:history:{{{stream}}}");
    let meta = format!("{key}:meta");
    (key, meta)
}

/// An entry's value in the stream: its headers and body.
pub(super) fn entry_value(headers: &[(String, String)], body: &str) -> String {
    serde_json::to_string(&(headers, body)).expect("entries serialize")
}

/// What [`APPEND`] answered: the position, and how many nodes got it.
pub(super) fn appended(v: &Value) -> Result<(Position, usize), String> {
    let receivers = match v {
        Value::Array(items) if items.len() == 3 => {
            redis::from_redis_value_ref(&items[2]).map_err(|e| e.to_string())?
        }
        _ => return Err(format!("an unexpected answer: {v:?}")),
    };
    Ok((position(v)?, receivers))
}

/// The position a script answered first.
fn position(v: &Value) -> Result<Position, String> {
    match v {
        Value::Array(items) if items.len() >= 2 => Ok(Position {
            offset: redis::from_redis_value_ref(&items[0]).map_err(|e| e.to_string())?,
            epoch: redis::from_redis_value_ref::<String>(&items[1])
                .map_err(|e| e.to_string())?
                .into(),
        }),
        Value::ServerError(e) => Err(e.to_string()),
        other => Err(format!("an unexpected answer: {other:?}")),
    }
}

fn entry(v: &Value) -> Result<Entry, String> {
    let (id, fields): (String, Vec<(String, String)>) =
        redis::from_redis_value_ref(v).map_err(|e| e.to_string())?;
    let offset = id
        .strip_suffix("-0")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("an entry id that is not an offset: {id}"))?;
    let value = fields
        .iter()
        .find(|(k, _)| k == "p")
        .map(|(_, v)| v)
        .ok_or("an entry without its publication")?;
    let (headers, body): (Vec<(String, String)>, String) =
        serde_json::from_str(value).map_err(|e| e.to_string())?;
    Ok(Entry {
        offset,
        headers,
        body,
    })
}

fn read_answer(v: &Value) -> Result<Read, String> {
    let Value::Array(items) = v else {
        return Err(format!("an unexpected answer: {v:?}"));
    };
    if items.len() != 3 {
        return Err(format!("an unexpected answer: {v:?}"));
    }
    let position = position(v)?;
    let entries = match &items[2] {
        Value::Array(list) => list.iter().map(entry).collect::<Result<_, _>>()?,
        other => return Err(format!("an unexpected answer: {other:?}")),
    };
    Ok(Read { position, entries })
}

type Reading = Shared<BoxFuture<'static, Result<Read, String>>>;
/// Reads waiting for their turn, by stream, offset and limit.
type Waiting = Mutex<HashMap<(String, u64, usize), Reading>>;

/// Streams in the cluster's Redis, read through the bus's connection, at
/// most `READS_IN_FLIGHT` at a time. Identical reads waiting their turn
/// are made once: the clients of a topic that reconnect together recover
/// it with one read. Only reads not yet sent are joined, so a read's
/// answer is never older than the moment a joiner asked.
pub struct RedisHistory {
    bus: Arc<RedisBus>,
    permits: Arc<Semaphore>,
    waiting: Arc<Waiting>,
}

impl RedisHistory {
    pub fn new(bus: Arc<RedisBus>) -> RedisHistory {
        RedisHistory {
            bus,
            permits: Arc::new(Semaphore::new(READS_IN_FLIGHT)),
            waiting: Arc::default(),
        }
    }
}

impl History for RedisHistory {
    fn read(
        &self,
        stream: &str,
        retention: Retention,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'static, Result<Read, String>> {
        let id = (stream.to_owned(), after, limit);
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reading) = waiting.get(&id) {
            return reading.clone().boxed();
        }
        let bus = self.bus.clone();
        let permits = self.permits.clone();
        let joinable = self.waiting.clone();
        let (key, meta) = keys(&bus.config().namespace, stream);
        let ttl = retention.ttl.as_secs().max(1);
        let turn = id.clone();
        let reading = async move {
            let _permit = permits.acquire_owned().await;
            // Sent from now on: later readers make their own read.
            joinable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&turn);
            let Some(mut conn) = bus.connection() else {
                return Err("Redis is unreachable".to_owned());
            };
            let mut call = READ.prepare_invoke();
            call.key(key)
                .key(meta)
                .arg(crate::protocol::ids::random_hex::<6>())
                .arg(ttl)
                .arg(after)
                .arg(format!("{}-0", after.saturating_add(1)))
                .arg(limit);
            let wait = bus.config().request_timeout();
            read_answer(&within(wait, call.invoke_async::<Value>(&mut conn)).await?)
        }
        .boxed()
        .shared();
        waiting.insert(id, reading.clone());
        reading.boxed()
    }

    fn append_here(
        &self,
        _: &str,
        _: Retention,
        _: &[(String, String)],
        _: &str,
    ) -> Option<Position> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_read_answer_becomes_the_position_and_entries() {
        let answer = Value::Array(vec![
            Value::Int(7),
            bulk("ab12"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("6-0"),
                    Value::Array(vec![bulk("p"), bulk(&entry_value(&[], "six"))]),
                ]),
                Value::Array(vec![
                    bulk("7-0"),
                    Value::Array(vec![
                        bulk("p"),
                        bulk(&entry_value(&[("k".into(), "v".into())], "seven")),
                    ]),
                ]),
            ]),
        ]);
        let read = read_answer(&answer).unwrap();
        assert_eq!(read.position.offset, 7);
        assert_eq!(&*read.position.epoch, "ab12");
        assert_eq!(read.entries.len(), 2);
        assert_eq!(read.entries[1].offset, 7);
        assert_eq!(read.entries[1].headers, [("k".into(), "v".into())]);
        assert_eq!(read.entries[1].body, "seven");
        assert!(read.is_everything_after(5, "ab12"));
    }

    #[test]
    fn answers_that_are_not_reads_are_errors() {
        assert!(read_answer(&Value::Nil).is_err());
        let bad_id = Value::Array(vec![
            Value::Int(1),
            bulk("e"),
            Value::Array(vec![Value::Array(vec![
                bulk("x"),
                Value::Array(vec![bulk("p"), bulk("[[],\"\"]")]),
            ])]),
        ]);
        assert!(read_answer(&bad_id).is_err());
    }

    #[test]
    fn a_stream_and_its_meta_share_a_slot() {
        let (key, meta) = keys("ns", "stomp:/topic/a");
        assert_eq!(key, "ns:history:{stomp:/topic/a}");
        assert_eq!(meta, "ns:history:{stomp:/topic/a}:meta");
    }
}
