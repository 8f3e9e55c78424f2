//! The API's endpoints and how their requests are read.

use super::error::ApiError;
use crate::cluster::presence::{self, Counted};
use crate::cluster::{Bus, Failed, State};
use crate::service::stomp::{Reach, Refused, StompService};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `stomp` services the API reaches, by name, and the other nodes.
pub struct Brokers {
    pub list: Vec<(String, Arc<StompService>)>,
    pub bus: Arc<dyn Bus>,
}

/// The largest request body, from `[api] max_body_bytes`.
pub struct MaxBody(pub usize);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/publish").route(web::post().to(publish)))
        .service(resource("/api/users/{user}/send").route(web::post().to(send_to_user)))
        .service(resource("/api/users/{user}/disconnect").route(web::post().to(disconnect_user)))
        .service(resource("/api/users/{user}").route(web::get().to(user)))
        .service(resource("/api/destinations").route(web::get().to(destinations)))
        .service(resource("/api/history").route(web::get().to(history)))
        .service(resource("/api/cluster").route(web::get().to(cluster)));
}

/// A resource whose other methods get 405 with a JSON body.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|req: actix_web::HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on {}", req.method(), req.path()),
        ))
    }))
}

/// `POST /api/publish`: `{"destination", "body", "headers"?, "service"?}`
/// to every subscriber; answers `{"delivered": N}`, with `"offset"` and
/// `"epoch"` where history keeps the destination.
async fn publish(
    brokers: web::Data<Brokers>,
    max: web::Data<MaxBody>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let req = Publication::read(payload, max.0).await?;
    brokers
        .deliver(
            &req,
            |b| {
                let once = req.idempotency_key.as_deref();
                b.publish(&req.destination, &req.headers, &req.body, req.count, once)
            },
            |service| presence::field(service, Counted::Destination, &req.destination),
        )
        .await
}

/// `POST /api/users/{user}/send`: to every session of `user` subscribed to
/// `destination` (`/user/queue/...`); answers as `POST /api/publish`.
async fn send_to_user(
    brokers: web::Data<Brokers>,
    max: web::Data<MaxBody>,
    user: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let req = Publication::read(payload, max.0).await?;
    // How the other nodes list this user's queue: /user/NAME/queue/...
    let shown = format!(
        "/user/{user}{}",
        req.destination.strip_prefix("/user").unwrap_or("")
    );
    brokers
        .deliver(
            &req,
            |b| {
                let how = (req.count, req.idempotency_key.as_deref());
                b.send_to_user(&user, &req.destination, &req.headers, &req.body, how)
            },
            |service| presence::field(service, Counted::Destination, &shown),
        )
        .await
}

#[derive(serde::Deserialize)]
struct ServiceQuery {
    service: Option<String>,
}

/// `POST /api/users/{user}/disconnect`: ends every session of `user` (on
/// logout, say), on every node; answers `{"disconnected": N}`.
async fn disconnect_user(
    brokers: web::Data<Brokers>,
    user: web::Path<String>,
    query: web::Query<ServiceQuery>,
) -> Result<HttpResponse, ApiError> {
    let service = query.service.as_deref();
    let body = brokers
        .reached(service, "disconnected", |b| Ok(b.disconnect_user(&user)))
        .await?;
    brokers.bus.flushed().await;
    Ok(brokers.answer(body))
}

/// `GET /api/users/{user}`: how many sessions `user` has signed in, on
/// every node: `{"user", "sessions"}`.
async fn user(
    brokers: web::Data<Brokers>,
    user: web::Path<String>,
    query: web::Query<ServiceQuery>,
) -> Result<HttpResponse, ApiError> {
    let service = query.service.as_deref();
    let mut body = brokers
        .reached(service, "sessions", |b| Ok(b.user_sessions(&user)))
        .await?;
    body["user"] = json!(user.as_str());
    Ok(brokers.answer(body))
}

/// `GET /api/cluster`: this node's link to the others and the live nodes:
/// `{"state": "alone" | "up" | "degraded", "other_nodes": [...]}`.
async fn cluster(brokers: web::Data<Brokers>) -> HttpResponse {
    let nodes: Vec<Value> = brokers
        .bus
        .peers()
        .iter()
        .map(|p| {
            let sessions: usize = p.services.values().map(|s| s.sessions).sum();
            json!({ "node": p.node, "advertise": p.advertise, "sessions": sessions })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "state": brokers.bus.state().name(),
        "other_nodes": nodes,
    }))
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    destination: String,
    #[serde(default)]
    since: u64,
    limit: Option<usize>,
    service: Option<String>,
}

/// Publications `GET /api/history` lists when the request names no limit.
const HISTORY_LIMIT: usize = 100;

/// `GET /api/history?destination=D&since=N&limit=L`: what history keeps
/// of `D` after offset `N`, at most `L` (100 by default, `max_recovered`
/// at most): `{"epoch", "top", "publications": [{"offset", "body",
/// "headers"}]}`. A user's queue is named `/user/NAME/queue/...`.
async fn history(
    brokers: web::Data<Brokers>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut refused = None;
    let mut found = None;
    for (name, b) in brokers.pick(query.service.as_deref())? {
        let limit = query.limit.unwrap_or(HISTORY_LIMIT).min(b.max_recovered());
        match b.history(&query.destination, query.since, limit) {
            Ok(read) if found.is_none() => found = Some(read),
            Ok(_) => {
                return Err(ApiError::bad_field(
                    "service",
                    format!(
                        "more than one service keeps {}: name one",
                        query.destination
                    ),
                ))
            }
            Err(r) => {
                log::debug!("api: service {name} keeps no history of it: {}", r.why);
                refused.get_or_insert(r);
            }
        }
    }
    let Some(read) = found else {
        let r = refused.expect("at least one service was picked");
        return Err(ApiError::bad_field(r.field, r.why));
    };
    let read = read.await.map_err(unavailable)?;
    let publications: Vec<Value> = read
        .entries
        .iter()
        .map(|e| {
            let headers: Map<String, Value> = e
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            // Entries from before a take-over (a Redis failover) keep the
            // epoch they were given.
            let epoch = read.epoch_of(e.offset);
            json!({ "offset": e.offset, "epoch": &*epoch, "body": e.body, "headers": headers })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "epoch": &*read.position.epoch,
        "top": read.position.offset,
        "publications": publications,
    })))
}

fn position(p: &crate::cluster::history::Position) -> Value {
    json!({ "offset": p.offset, "epoch": &*p.epoch })
}

/// 503 for history that cannot be read now.
fn unavailable(why: String) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("history is unavailable: {why}"),
    )
}

/// A publication that did not go out: `503 {"published": false}` when
/// nothing was or will be delivered, `504 {"published": "unknown"}` when
/// Redis may have taken it (a retry with the same `idempotency_key` then
/// publishes it once).
fn not_published(failed: Failed) -> ApiError {
    let (status, published) = match failed.maybe_published {
        false => (StatusCode::SERVICE_UNAVAILABLE, json!(false)),
        true => (StatusCode::GATEWAY_TIMEOUT, json!("unknown")),
    };
    ApiError {
        published: Some(published),
        ..ApiError::new(status, format!("not published: {}", failed.why))
    }
}

#[derive(serde::Deserialize)]
struct DestinationsQuery {
    #[serde(default)]
    prefix: String,
    service: Option<String>,
}

/// `GET /api/destinations?prefix=/topic/`: subscriber counts,
/// `{"destinations": [{"destination", "subscribers"}]}`.
async fn destinations(
    brokers: web::Data<Brokers>,
    query: web::Query<DestinationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (name, b) in brokers.pick(query.service.as_deref())? {
        for (d, n) in b.destinations(&query.prefix) {
            *counts.entry(d).or_default() += n;
        }
        let prefix = presence::field(name, Counted::Destination, &query.prefix);
        for (field, n) in brokers.bus.listed_elsewhere(prefix).await {
            if let Some(d) = presence::name_in(&field, name, Counted::Destination) {
                *counts.entry(d.to_owned()).or_default() += n;
            }
        }
    }
    let list: Vec<Value> = counts
        .into_iter()
        .map(|(d, n)| json!({ "destination": d, "subscribers": n }))
        .collect();
    Ok(brokers.answer(json!({ "destinations": list })))
}

impl Brokers {
    /// `{"delivered": N}`: the subscribers `one` publishes to, through each
    /// service the request names, here and as the other nodes report; with
    /// the publication's `offset` and `epoch` where history keeps it
    /// (`positions` by service when several do). Answers once the
    /// publication is on its way to every node: one published after the
    /// answer, through any node, arrives after it everywhere.
    /// With `"count": false` the other nodes are not asked: their share is
    /// their last presence counts of `field`, which may lag.
    async fn deliver(
        &self,
        req: &Publication,
        one: impl Fn(&StompService) -> Result<Reach, Refused>,
        field: impl Fn(&str) -> String,
    ) -> Result<HttpResponse, ApiError> {
        let one = |b: &StompService| one(b).map_err(|r| ApiError::bad_field(r.field, r.why));
        let mut body = self
            .reached(req.service.as_deref(), "delivered", one)
            .await?;
        if !req.count && body.get("duplicate").is_none() {
            let fields = self.pick(req.service.as_deref())?;
            let fields = fields.iter().map(|(name, _)| field(name)).collect();
            let elsewhere = self.bus.counted_elsewhere(fields).await;
            body["delivered"] = json!(body["delivered"].as_u64().unwrap_or(0) + elsewhere as u64);
        }
        self.bus.flushed().await;
        Ok(self.answer(body))
    }

    /// `{counted: N}`: what `one` reaches through each service named (or
    /// all), here and as the other nodes report it, with `"partial": true`
    /// when some node that got it did not report within
    /// `cluster.request_timeout`; and the positions where history keeps
    /// it.
    async fn reached(
        &self,
        service: Option<&str>,
        counted: &str,
        one: impl Fn(&StompService) -> Result<Reach, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut reached = 0;
        let mut partial = false;
        let mut duplicate = false;
        let mut kept = Map::new();
        let mut waiting = Vec::new();
        for (name, b) in self.pick(service)? {
            let p = one(b)?;
            duplicate |= p.duplicate;
            if let Some(p) = p.position {
                kept.insert(name.to_owned(), position(&p));
            }
            match p.answers {
                Some(answers) => waiting.push((name, p.here, answers)),
                None => reached += p.here,
            }
        }
        for (name, here, answers) in waiting {
            let answers = answers.await;
            if let Some(published) = answers.published {
                let published = published.map_err(not_published)?;
                if let Some(p) = published.position {
                    kept.insert(name.to_owned(), position(&p));
                }
                if published.duplicate {
                    // Nothing went out: nobody was reached.
                    duplicate = true;
                    continue;
                }
            }
            reached += here;
            if let Some(e) = answers.elsewhere {
                reached += e.count;
                partial |= !e.complete;
            }
        }
        let mut body = json!({});
        body[counted] = json!(reached);
        if partial {
            body["partial"] = json!(true);
        }
        if duplicate {
            body["duplicate"] = json!(true);
        }
        if kept.len() == 1 {
            let (_, p) = kept.into_iter().next().expect("one");
            body["offset"] = p["offset"].clone();
            body["epoch"] = p["epoch"].clone();
        } else if !kept.is_empty() {
            body["positions"] = Value::Object(kept);
        }
        Ok(body)
    }

    /// 200 with `body`, and the cluster's state when there is one: a
    /// degraded cluster counted (and reached) this node only.
    fn answer(&self, mut body: Value) -> HttpResponse {
        let state = self.bus.state();
        if state != State::Alone {
            body["cluster"] = json!(state.name());
        }
        HttpResponse::Ok().json(body)
    }

    /// The service named `name`, or all of them.
    fn pick(&self, name: Option<&str>) -> Result<Vec<(&str, &StompService)>, ApiError> {
        if self.list.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no service of kind \"stomp\" is configured",
            ));
        }
        match name {
            None => Ok(self
                .list
                .iter()
                .map(|(n, b)| (n.as_str(), b.as_ref()))
                .collect()),
            Some(name) => match self.list.iter().find(|(n, _)| n == name) {
                Some((n, b)) => Ok(vec![(n.as_str(), b.as_ref())]),
                None => Err(ApiError {
                    status: StatusCode::NOT_FOUND,
                    message: format!("service: no stomp service is named {name:?}"),
                    field: Some("service".into()),
                    published: None,
                }),
            },
        }
    }
}

/// The longest `idempotency_key`, in bytes.
const MAX_IDEMPOTENCY_KEY: usize = 128;

/// What a publishing request carries.
struct Publication {
    destination: String,
    body: String,
    headers: Vec<(String, String)>,
    service: Option<String>,
    /// Whether the other nodes count their deliveries (the default).
    count: bool,
    /// A retry with the same key publishes nothing
    /// (`idempotency_window`).
    idempotency_key: Option<String>,
}

impl Publication {
    async fn read(payload: web::Payload, max: usize) -> Result<Publication, ApiError> {
        let bytes = read_body(payload, max).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
        let Value::Object(mut fields) = value else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object",
            ));
        };
        let destination = match fields.remove("destination") {
            Some(Value::String(d)) => d,
            Some(_) => return Err(ApiError::bad_field("destination", "must be a string")),
            None => return Err(ApiError::bad_field("destination", "is required")),
        };
        let mut headers = match fields.remove("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(h)) => string_map(h)?,
            Some(_) => return Err(ApiError::bad_field("headers", "must be an object")),
        };
        // A string is sent as it is; any other JSON value as JSON text.
        let body = match fields.remove("body") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            Some(v) => {
                if !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                v.to_string()
            }
        };
        let service = match fields.remove("service") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(ApiError::bad_field("service", "must be a string")),
        };
        let count = match fields.remove("count") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(ApiError::bad_field("count", "must be true or false")),
        };
        let idempotency_key = match fields.remove("idempotency_key") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) if (1..=MAX_IDEMPOTENCY_KEY).contains(&k.len()) => Some(k),
            Some(_) => {
                return Err(ApiError::bad_field(
                    "idempotency_key",
                    format!("must be a string of 1 to {MAX_IDEMPOTENCY_KEY} bytes"),
                ))
            }
        };
        if let Some(other) = fields.keys().next() {
            return Err(ApiError::bad_field(
                other.clone(),
                "unknown field (known: destination, body, headers, service, count, idempotency_key)",
            ));
        }
        Ok(Publication {
            destination,
            body,
            headers,
            service,
            count,
            idempotency_key,
        })
    }
}

fn string_map(h: Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    h.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(ApiError::bad_field(
                format!("headers.{k}"),
                "must be a string",
            )),
        })
        .collect()
}

/// The request body, refused with 413 past `max` bytes (before reading
/// it, when `Content-Length` says so).
async fn read_body(mut payload: web::Payload, max: usize) -> Result<web::BytesMut, ApiError> {
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {max} bytes (api.max_body_bytes)"),
        )
    };
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            if matches!(e, actix_web::error::PayloadError::Overflow) {
                too_big()
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))
            }
        })?;
        if body.len() + chunk.len() > max {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
