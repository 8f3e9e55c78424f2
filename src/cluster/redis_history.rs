//! History in Redis, for a cluster: one stream per destination, read by any
//! node.
//!
//! Keys, under the cluster's namespace, for stream `S` (a service's name
//! and a destination): `NS:history:{S}`, a Redis stream whose entry ids
//! are the offsets and the moments they were kept (`N-MS`, Redis's own
//! clock in milliseconds), trimmed to `size` entries; `NS:history:{S}:meta`,
//! a hash of the epoch (`e`), the last offset given (`t`), when the stream
//! was made (`c`) and its last entry's moment (`a`). Both expire `ttl`
//! seconds after the last publication. The braces keep the pair in one
//! slot. `NS:history:boot` names this Redis's history: set by the first
//! node that finds none (Redis restarted empty, or flushed), so that a mark
//! of what is gone recovers nothing.
//!
//! `APPEND` gives the next offset, appends the entry and publishes the
//! event with its position on the events channel in one script, so that a
//! node that sees offset N+1 live finds N in the stream. A stream whose
//! meta hash is gone (expired, evicted, Redis restarted empty) starts over
//! in a new epoch: the epoch the node proposes with each call. `READ`
//! never writes: a destination that was only subscribed to costs Redis
//! nothing.

use super::history::{Entry, History, Mark, Position, Read, Retention, Since};
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

/// How long a read waits before it asks a Redis Cluster's shard that is
/// failing over again.
const FAILOVER_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// KEYS: stream, meta, the idempotency key (any key when there is none).
/// ARGV: a new epoch, size, ttl, the entry, the events channel, the event
/// as JSON (an object, written after the position), the idempotency
/// window in seconds (0: no key), '1' when publications wait for replicas,
/// the master's replication id (empty on a Redis Cluster: the node's id,
/// which its shard's failover changes), the command that publishes
/// (`PUBLISH`, or `SPUBLISH` on a cluster). Returns {offset, epoch, nodes that got the
/// event, 1 if an earlier publication claimed the key (then nothing is
/// published, and the position is the earlier one's), 1 if that position
/// is of the stream's present epoch}.
///
/// A stream last written on another master (its `g`, the replication id,
/// is not this one's) goes on in a new epoch that takes over from the old
/// one at the last offset this master holds (`l`, the links, the last
/// four): a publication the old master acknowledged and this one never got
/// leaves its offset to another publication only in another epoch.
///
/// When publications wait for replicas, nothing is published here, nor
/// confirmed (`r`, the last offset reads show): the node publishes it with
/// [`CONFIRM`] once the replicas have it ([`super::redis::RedisBus`]),
/// and a repeat writes its key again, so that the `WAIT` after it covers
/// the first publication too. An entry's moment never goes back, even if
/// Redis's clock does.
pub(super) static APPEND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if ARGV[7] ~= '0' then
  local first = redis.call('GET', KEYS[3])
  if first then
    if ARGV[8] == '1' then
      redis.call('SET', KEYS[3], first, 'KEEPTTL')
    end
    local colon = string.find(first, ':', 1, true)
    local epoch = string.sub(first, colon + 1)
    local present = 0
    if redis.call('HGET', KEYS[2], 'e') == epoch then
      present = 1
    end
    return {tonumber(string.sub(first, 1, colon - 1)), epoch, 0, 1, present}
  end
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local master = ARGV[9]
if master == '' then
  master = redis.call('CLUSTER', 'MYID')
end
local meta = redis.call('HMGET', KEYS[2], 'e', 't', 'a', 'g', 'l')
local epoch = meta[1]
local top, at
if not epoch then
  redis.call('DEL', KEYS[1])
  epoch, top, at = ARGV[1], 1, now
  redis.call('HSET', KEYS[2], 'e', epoch, 'c', now, 't', top, 'a', at, 'g', master, 'r', 0)
else
  top = tonumber(meta[2] or '0') + 1
  at = math.max(now, tonumber(meta[3] or '0'))
  if meta[4] and meta[4] ~= master then
    local links = {}
    for link in string.gmatch(meta[5] or '', '[^,]+') do
      table.insert(links, link)
    end
    table.insert(links, epoch .. ':' .. string.format('%d', top - 1))
    while #links > 4 do
      table.remove(links, 1)
    end
    epoch = ARGV[1]
    -- What this master holds counts as confirmed from now on.
    redis.call('HSET', KEYS[2], 'e', epoch, 'l', table.concat(links, ','), 'r', top - 1)
  end
  redis.call('HSET', KEYS[2], 't', top, 'a', at, 'g', master)
end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], string.format('%d-%d', top, at), 'p', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if ARGV[7] ~= '0' then
  redis.call('SET', KEYS[3], string.format('%d', top) .. ':' .. epoch, 'EX', ARGV[7])
end
if ARGV[8] == '1' then
  return {top, epoch, 0, 0, 1}
end
redis.call('HSET', KEYS[2], 'r', top)
local receivers = redis.call(ARGV[10], ARGV[5],
  '{"offset":' .. string.format('%d', top) .. ',"epoch":"' .. epoch .. '",' .. string.sub(ARGV[6], 2))
return {top, epoch, receivers, 0, 1}
"#,
    )
});

/// A kept publication the replicas now hold: confirmed (reads show it
/// from now on) and published. KEYS: meta. ARGV: its offset, the events
/// channel, the event with its position, the command that publishes.
/// Returns the nodes that got it.
pub(super) static CONFIRM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local r = redis.call('HGET', KEYS[1], 'r')
if r and tonumber(r) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'r', ARGV[1])
end
return redis.call(ARGV[4], ARGV[2], ARGV[3])
"#,
    )
});

/// The event a kept publication is published as: `event` (a JSON object)
/// with its position first, as [`APPEND`] writes it.
pub(super) fn published_event(position: &Position, event: &str) -> String {
    format!(
        "{{\"offset\":{},\"epoch\":\"{}\",{}",
        position.offset,
        position.epoch,
        &event[1..]
    )
}

/// A publication of a destination without history that claims an
/// idempotency key. KEYS: the key. ARGV: the events channel, the event,
/// the window in seconds, the command that publishes. Returns {nodes that
/// got it, 1 if an earlier
/// publication claimed the key (then nothing is published)}.
pub(super) static PUBLISH_ONCE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  return {redis.call(ARGV[4], ARGV[1], ARGV[2]), 0}
end
return {0, 1}
"#,
    )
});

/// KEYS: stream, meta, boot (on a Redis Cluster, its slot's: [`boot_key`]).
/// ARGV: `o` (after an offset) or `m` (from a mark's moment on), the offset
/// or moment, the most entries, the epoch the offset is of (`''`: the
/// present one), and on a Redis Cluster the history's name the node heard
/// (`''` elsewhere), which a slot's boot key missing is made of. Returns
/// {top, epoch, entries, now,
/// boot, created, before, links}: epoch `''` and created -1 when there is
/// no stream; before (from a mark) the offset of the newest entry kept
/// before it, 0 when none was made before it, -1 when history cannot tell;
/// links as [`APPEND`] keeps them. After an offset of an earlier epoch
/// past where a later one took over, the entries start there. The top is
/// the last offset confirmed (`r`): one kept but still waiting for its
/// replicas is neither read nor counted, so that nobody sees what a
/// failover may take back.
static READ: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local boot = redis.call('GET', KEYS[3])
if not boot and ARGV[5] ~= '' then
  -- A Redis Cluster's slot whose shard lost it (or never had it): what
  -- it holds is from now on.
  boot = ARGV[5] .. ':' .. string.format('%d', now)
  redis.call('SET', KEYS[3], boot)
end
boot = boot or ''
local meta = redis.call('HMGET', KEYS[2], 'e', 't', 'c', 'l', 'r')
if not meta[1] then
  return {0, '', {}, now, boot, -1, -1, ''}
end
local held = tonumber(meta[2] or '0')
local top = held
if meta[5] then
  top = math.min(top, tonumber(meta[5]))
end
-- A client that saw an offset this master holds saw it confirmed (on this
-- master, or on one before it whose confirmation did not come over).
if ARGV[1] == 'o' and (ARGV[4] == '' or ARGV[4] == meta[1]) then
  local after = tonumber(ARGV[2])
  if after > top and after <= held then
    top = after
  end
end
local last = string.format('%d', top) .. '-18446744073709551615'
local created = tonumber(meta[3] or '0')
local links = meta[4] or ''
local limit = tonumber(ARGV[3])
if ARGV[1] == 'o' then
  local after = tonumber(ARGV[2])
  if ARGV[4] ~= '' and ARGV[4] ~= meta[1] then
    for epoch, last in string.gmatch(links, '([^:,]+):(%d+)') do
      if epoch == ARGV[4] and tonumber(last) < after then
        after = tonumber(last)
      end
    end
  end
  if limit == 0 or after >= top then
    return {top, meta[1], {}, now, boot, created, -1, links}
  end
  local from = string.format('%d', after + 1) .. '-0'
  return {top, meta[1], redis.call('XRANGE', KEYS[1], from, last, 'COUNT', limit), now, boot, created, -1, links}
end
-- From a mark: the newest entries, back to the first one made before it.
local mark = tonumber(ARGV[2])
local newest = redis.call('XREVRANGE', KEYS[1], last, '-', 'COUNT', limit + 1)
local after, before = {}, -1
local function split(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
for _, e in ipairs(newest) do
  local offset, at = split(e[1])
  if at < mark then
    before = offset
    break
  end
  table.insert(after, 1, e)
end
if before < 0 and #newest <= limit then
  -- Every one kept is from the mark on: none before it only if none was
  -- dropped.
  if (#newest == 0 and top == 0) or (#newest > 0 and split(newest[#newest][1]) == 1) then
    before = 0
  end
end
return {top, meta[1], after, now, boot, created, before, links}
"#,
    )
});

/// The keys of stream `stream`: the stream itself and its meta hash.
pub(super) fn keys(namespace: &str, stream: &str) -> (String, String) {
    let key = format!("{namespace}:history:{{{stream}}}");
    let meta = format!("{key}:meta");
    (key, meta)
}

/// The key that names this Redis's history ([`Mark::boot`]).
pub(super) fn boot_key(namespace: &str) -> String {
    format!("{namespace}:history:boot")
}

/// On a Redis Cluster, the key in `stream`'s slot that says since when
/// that slot's shard holds its streams: `BOOT:MS`, the history's name and
/// the moment (0: since the history began). A shard that loses what it
/// held (restarted empty) loses it too: the next read makes it again with
/// the moment of that read, and a mark from before it recovers nothing
/// there. Every slot's is made when a node names the history
/// ([`super::redis::RedisBus`]).
pub(super) fn slot_boot_key(namespace: &str, slot: u16) -> String {
    format!(
        "{namespace}:history:boot:{{{}}}",
        super::redis_conn::tag_of_slot(slot)
    )
}

/// Sets every key named after ARGV[1] (the slot boot keys of the slots one
/// master serves) to ARGV[1] where it has no value. Run with `EVAL` on
/// that master, once: keys of many slots, which a script may touch (on
/// its own node) but not declare.
pub(super) const NAME_SLOTS: &str = "#!lua flags=allow-cross-slot-keys
for i = 2, #ARGV do
  redis.call('SET', ARGV[i], ARGV[1], 'NX')
end
return #ARGV - 1
";

/// A slot's boot key's value: the history's name and since when the slot
/// holds it.
fn slot_boot(value: &str) -> (&str, u64) {
    match value.rsplit_once(':') {
        Some((boot, since)) => (boot, since.parse().unwrap_or(u64::MAX)),
        None => (value, u64::MAX),
    }
}

/// An entry's value in the stream: its headers and body.
pub(super) fn entry_value(headers: &[(String, String)], body: &str) -> String {
    serde_json::to_string(&(headers, body)).expect("entries serialize")
}

/// What [`APPEND`] answered.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Appended {
    pub position: Position,
    /// Nodes that got the event (0 when it waits for replicas).
    pub receivers: usize,
    /// An earlier publication claimed its idempotency key: the position is
    /// that one's.
    pub duplicate: bool,
    /// The position is of the stream's present epoch.
    pub present: bool,
}

pub(super) fn appended(v: &Value) -> Result<Appended, String> {
    let number = |v: &Value| redis::from_redis_value_ref::<usize>(v).map_err(|e| e.to_string());
    let (receivers, duplicate, present) = match v {
        Value::Array(items) if items.len() == 5 => {
            (number(&items[2])?, number(&items[3])?, number(&items[4])?)
        }
        Value::ServerError(e) => return Err(e.to_string()),
        _ => return Err(format!("an unexpected answer: {v:?}")),
    };
    Ok(Appended {
        position: position(v)?,
        receivers,
        duplicate: duplicate == 1,
        present: present == 1,
    })
}

/// What [`PUBLISH_ONCE`] answered: how many nodes got it, and whether an
/// earlier publication claimed its key.
pub(super) fn published_once(v: &Value) -> Result<(usize, bool), String> {
    match v {
        Value::ServerError(e) => Err(e.to_string()),
        v => {
            let (receivers, duplicate): (usize, u8) =
                redis::from_redis_value_ref(v).map_err(|e| e.to_string())?;
            Ok((receivers, duplicate == 1))
        }
    }
}

/// The key an idempotency key is claimed under: beside its destination's
/// stream (one slot).
pub(super) fn once_key(namespace: &str, stream: &str, key: &str) -> String {
    format!("{namespace}:once:{{{stream}}}:{key}")
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
    let (offset, at) = id
        .split_once('-')
        .and_then(|(n, at)| Some((n.parse().ok()?, at.parse().ok()?)))
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
        at,
        headers,
        body,
    })
}

/// What [`READ`] answered; `sharded`: a Redis Cluster's (its boot is a
/// slot's, [`slot_boot_key`]).
fn read_answer(v: &Value, sharded: bool) -> Result<Read, String> {
    let Value::Array(items) = v else {
        return Err(format!("an unexpected answer: {v:?}"));
    };
    if items.len() != 8 {
        return Err(format!("an unexpected answer: {v:?}"));
    }
    let number = |v: &Value| redis::from_redis_value_ref::<i64>(v).map_err(|e| e.to_string());
    let now = number(&items[3])?.max(0) as u64;
    let boot = redis::from_redis_value_ref::<String>(&items[4]).map_err(|e| e.to_string())?;
    // A slot's shard that lost its streams since a mark: as if they had
    // been dropped then.
    let (boot, evicted): (Arc<str>, u64) = if sharded {
        let (boot, since) = slot_boot(&boot);
        (boot.into(), since)
    } else {
        (boot.into(), 0)
    };
    let created = u64::try_from(number(&items[5])?).ok();
    let before = u64::try_from(number(&items[6])?).ok();
    let position = match created {
        Some(_) => position(v)?,
        None => Mark {
            boot: boot.clone(),
            at: now,
        }
        .position(),
    };
    let entries = match &items[2] {
        Value::Array(list) => list.iter().map(entry).collect::<Result<_, _>>()?,
        other => return Err(format!("an unexpected answer: {other:?}")),
    };
    let links = redis::from_redis_value_ref::<String>(&items[7]).map_err(|e| e.to_string())?;
    Ok(Read {
        position,
        entries,
        created,
        boot,
        now,
        evicted,
        before,
        links: parse_links(&links)?,
    })
}

/// `EPOCH:LAST,...`, as [`APPEND`] keeps them.
fn parse_links(text: &str) -> Result<Vec<(Arc<str>, u64)>, String> {
    text.split(',')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (epoch, last) = l
                .rsplit_once(':')
                .ok_or_else(|| format!("a link that is not EPOCH:OFFSET: {l}"))?;
            let last = last
                .parse()
                .map_err(|_| format!("a link that is not EPOCH:OFFSET: {l}"))?;
            Ok((epoch.into(), last))
        })
        .collect()
}

type Reading = Shared<BoxFuture<'static, Result<Read, String>>>;
/// Reads waiting for their turn, by stream, start (and its epoch) and
/// limit.
type Waiting = Mutex<HashMap<(String, Since, String, usize), Reading>>;

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
        _: Retention,
        since: Since,
        of: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'static, Result<Read, String>> {
        let of = match since {
            Since::Offset(_) => of.unwrap_or_default().to_owned(),
            Since::Mark(_) => String::new(),
        };
        let id = (stream.to_owned(), since, of.clone(), limit);
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reading) = waiting.get(&id) {
            return reading.clone().boxed();
        }
        let bus = self.bus.clone();
        let permits = self.permits.clone();
        let joinable = self.waiting.clone();
        let namespace = &bus.config().namespace;
        let (key, meta) = keys(namespace, stream);
        let sharded = bus.sharded();
        let (boot, named) = if sharded {
            let slot = super::redis_conn::slot(&key);
            (slot_boot_key(namespace, slot), bus.mark().boot)
        } else {
            (boot_key(namespace), "".into())
        };
        let turn = id.clone();
        let reading = async move {
            let _permit = permits.acquire_owned().await;
            // Sent from now on: later readers make their own read.
            joinable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&turn);
            let wait = bus.config().request_timeout();
            let Some(mut conn) = bus.connection_within(wait).await else {
                return Err("Redis is unreachable".to_owned());
            };
            let (mode, from) = match since {
                Since::Offset(after) => ("o", after),
                Since::Mark(at) => ("m", at),
            };
            let mut call = READ.prepare_invoke();
            call.key(key)
                .key(meta)
                .key(boot)
                .arg(mode)
                .arg(from)
                .arg(limit)
                .arg(of)
                .arg(&*named);
            // A Redis Cluster's shard failing over answers again once a
            // replica took over: a read waits for it rather than tell a
            // loss.
            let until = std::time::Instant::now() + bus.config().failover_timeout();
            loop {
                match within(wait, call.invoke_async::<Value>(&mut conn)).await {
                    Ok(answer) => return read_answer(&answer, sharded),
                    Err(why) if !sharded || std::time::Instant::now() + FAILOVER_PAUSE > until => {
                        return Err(why)
                    }
                    Err(_) => tokio::time::sleep(FAILOVER_PAUSE).await,
                }
            }
        }
        .boxed()
        .shared();
        waiting.insert(id, reading.clone());
        reading.boxed()
    }

    fn mark(&self) -> Position {
        self.bus.mark().position()
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

    fn kept(id: &str, headers: &[(String, String)], body: &str) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(vec![bulk("p"), bulk(&entry_value(headers, body))]),
        ])
    }

    #[test]
    fn a_read_answer_becomes_the_position_and_entries() {
        let answer = Value::Array(vec![
            Value::Int(7),
            bulk("ab12"),
            Value::Array(vec![
                kept("6-1700000000000", &[], "six"),
                kept("7-1700000000500", &[("k".into(), "v".into())], "seven"),
            ]),
            Value::Int(1700000001000),
            bulk("b00t"),
            Value::Int(1699999999000),
            Value::Int(5),
            bulk("aa01:2,ff00:6"),
        ]);
        let read = read_answer(&answer, false).unwrap();
        // Offsets up to 2 were of epoch aa01, 3 to 6 of ff00, later ones
        // of ab12: a client of ff00 at 6 lost nothing, one at 7 did.
        assert_eq!(
            [1, 2, 3, 6, 7].map(|o| read.epoch_of(o).to_string()),
            ["aa01", "aa01", "ff00", "ff00", "ab12"]
        );
        assert!(read.continues(6, "ff00") && !read.continues(7, "ff00"));
        assert!(read.continues(7, "ab12") && !read.continues(1, "zz"));
        assert!(read.is_everything_after(5, "ff00"));
        assert_eq!(read.position.offset, 7);
        assert_eq!(&*read.position.epoch, "ab12");
        assert_eq!(read.entries.len(), 2);
        assert_eq!(
            (read.entries[1].offset, read.entries[1].at),
            (7, 1700000000500)
        );
        assert_eq!(read.entries[1].headers, [("k".into(), "v".into())]);
        assert_eq!(read.entries[1].body, "seven");
        assert!(read.is_everything_after(5, "ab12"));
        assert_eq!(
            (read.created, read.before, &*read.boot, read.now),
            (Some(1699999999000), Some(5), "b00t", 1700000001000)
        );
    }

    #[test]
    fn no_stream_reads_as_a_mark_of_the_moment() {
        let answer = Value::Array(vec![
            Value::Int(0),
            bulk(""),
            Value::Array(vec![]),
            Value::Int(1700000001000),
            bulk("b00t"),
            Value::Int(-1),
            Value::Int(-1),
            bulk(""),
        ]);
        let read = read_answer(&answer, false).unwrap();
        assert_eq!(read.created, None);
        assert_eq!(read.before, None);
        assert_eq!(&*read.position.epoch, "@b00t.1700000001000");
        assert!(read.position.is_mark());
    }

    #[test]
    fn answers_that_are_not_reads_are_errors() {
        assert!(read_answer(&Value::Nil, false).is_err());
        let bad_id = Value::Array(vec![
            Value::Int(1),
            bulk("e"),
            Value::Array(vec![kept("x", &[], "")]),
            Value::Int(1),
            bulk("b"),
            Value::Int(1),
            Value::Int(-1),
            bulk(""),
        ]);
        assert!(read_answer(&bad_id, false).is_err());
        let mut bad_link = match bad_id {
            Value::Array(items) => items,
            _ => unreachable!(),
        };
        bad_link[2] = Value::Array(vec![]);
        bad_link[7] = bulk("e1-without-an-offset");
        assert!(read_answer(&Value::Array(bad_link), false).is_err());
    }

    #[test]
    fn a_stream_and_its_meta_share_a_slot() {
        let (key, meta) = keys("ns", "stomp:/topic/a");
        assert_eq!(key, "ns:history:{stomp:/topic/a}");
        assert_eq!(meta, "ns:history:{stomp:/topic/a}:meta");
    }
}
