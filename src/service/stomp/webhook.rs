//! Calls from a `stomp` service to its backend over HTTP: the connect
//! webhook, which names the user of a CONNECT, the app webhook, which
//! gets SENDs to `/app/...`, and the subscribe webhook, which allows or
//! refuses a SUBSCRIBE. JSON both ways, through reqwest (pooled, and
//! Send, so a call can be polled from a session's task).

use super::destination::is_plain;
use super::topics::check_header;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A call on its way: the reply's JSON (`Null` for an empty body), or
/// why it failed.
pub type Call = Pin<Box<dyn Future<Output = Result<Value, Failure>> + Send>>;

/// How a call failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The backend answered 401 or 403: it refuses. Its `message`, if any.
    Refused(Option<String>),
    /// The backend answered another status: the status, and the
    /// `message` of its JSON body, if any, for the client.
    Status(u16, Option<String>),
    /// Any other failure (unreachable, timed out, a reply that is not
    /// JSON), as a short text for the ERROR frame and the log.
    Failed(String),
}

/// The most read of a failed call's body, for its `message`.
const MAX_FAILURE_BODY: usize = 4096;

/// The `message` of a JSON body, if it has one.
fn message_of(body: Option<Value>) -> Option<String> {
    body?.get("message")?.as_str().map(str::to_owned)
}

/// The HTTP client of one service's webhooks.
pub struct Webhooks {
    client: reqwest::Client,
    /// The largest reply read; a longer one is a failure.
    max_reply_bytes: usize,
}

impl Webhooks {
    /// `max_reply_bytes`: the service's `max_queued_bytes`, as a reply's
    /// messages must fit in the session's queue anyway.
    pub fn new(timeout: Duration, max_reply_bytes: usize) -> Webhooks {
        // The one TLS provider this build has (the proxy uses it too).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would carry the user's message to wherever the
            // webhook points it, and a proxy from the environment would see
            // every call: the configured URL is the only destination.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("an HTTP client with the ring TLS provider");
        Webhooks {
            client,
            max_reply_bytes,
        }
    }

    /// POSTs `body` as JSON to `url`.
    pub fn call(&self, url: &str, body: Value) -> Call {
        let request = self.client.post(url).json(&body);
        let max = self.max_reply_bytes;
        Box::pin(async move {
            let mut response = request.send().await.map_err(|e| {
                Failure::Failed(if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "unreachable".to_owned()
                } else {
                    "request failed".to_owned()
                })
            })?;
            let status = response.status().as_u16();
            let success = (200..=299).contains(&status);
            let max = if success { max } else { MAX_FAILURE_BODY };
            let mut bytes = Vec::new();
            loop {
                let chunk = response.chunk().await.map_err(|e| {
                    Failure::Failed(
                        if e.is_timeout() {
                            "timed out"
                        } else {
                            "reply cut short"
                        }
                        .into(),
                    )
                })?;
                let Some(chunk) = chunk else { break };
                if bytes.len() + chunk.len() > max {
                    if !success {
                        // Too long to be a message for the client.
                        bytes.clear();
                        break;
                    }
                    return Err(Failure::Failed(format!(
                        "the reply is larger than {max} bytes (max_queued_bytes)"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            let value = if bytes.iter().all(u8::is_ascii_whitespace) {
                Ok(Value::Null)
            } else {
                serde_json::from_slice(&bytes)
            };
            match (status, value) {
                (200..=299, Ok(v)) => Ok(v),
                (200..=299, Err(_)) => Err(Failure::Failed("the reply is not JSON".into())),
                // A refusal's body is optional, and its message too.
                (401 | 403, v) => Err(Failure::Refused(message_of(v.ok()))),
                (_, v) => Err(Failure::Status(status, message_of(v.ok()))),
            }
        })
    }
}

/// The connect webhook's request: the CONNECT headers (credentials
/// included: this is where they go), the Cookie of the request that opened
/// the session, and the client's address.
pub fn connect_request(
    session: u64,
    headers: &[(String, String)],
    cookie: Option<&str>,
    remote_addr: Option<std::net::IpAddr>,
) -> Value {
    json!({
        "session": session.to_string(),
        "headers": header_map(headers),
        "cookie": cookie,
        "remote_addr": remote_addr.map(|a| a.to_string()),
    })
}

/// The user a connect webhook's reply names: `{"user": "alice"}`; `None`
/// for no user (`{"user": null}` or `{}`).
pub fn connect_user(reply: &Value) -> Result<Option<String>, String> {
    match reply.get("user") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(u)) if u.is_empty() => Ok(None),
        Some(Value::String(u)) => {
            super::users::check_name(u)?;
            Ok(Some(u.clone()))
        }
        Some(_) => Err("\"user\" is not a string".into()),
    }
}

/// The app webhook's request for one SEND: a subscribe request's fields
/// and the body.
pub fn app_request(
    session: u64,
    user: Option<&str>,
    destination: &str,
    headers: &[(String, String)],
    body: &str,
) -> Value {
    let mut request = subscribe_request(session, user, destination, headers);
    request["body"] = Value::String(body.to_owned());
    request
}

/// The subscribe webhook's request for one SUBSCRIBE: the frame's headers
/// (its `id`, and any the client added for the backend).
pub fn subscribe_request(
    session: u64,
    user: Option<&str>,
    destination: &str,
    headers: &[(String, String)],
) -> Value {
    json!({
        "session": session.to_string(),
        "user": user,
        "destination": destination,
        "headers": header_map(headers),
    })
}

/// One message an app webhook's reply sends back to the session.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub destination: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The messages of an app webhook's reply:
/// `{"messages": [{"destination", "body", "headers"?}]}`; an empty reply
/// has none.
pub fn app_replies(reply: &Value) -> Result<Vec<Reply>, String> {
    let list = match reply.get("messages") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("\"messages\" is not a list".into()),
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let text = |name: &str| m.get(name).and_then(Value::as_str);
            let destination = text("destination").filter(|d| is_plain(d)).ok_or(format!(
                "messages[{i}].destination is missing or not a path"
            ))?;
            let body = match m.get("body") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            let mut headers = Vec::new();
            if let Some(h) = m.get("headers").and_then(Value::as_object) {
                for (k, v) in h {
                    let v = v
                        .as_str()
                        .ok_or(format!("messages[{i}].headers.{k} is not a string"))?;
                    check_header(k, v)
                        .map_err(|why| format!("messages[{i}].headers.{k}: {why}"))?;
                    headers.push((k.clone(), v.to_owned()));
                }
            }
            Ok(Reply {
                destination: destination.to_owned(),
                headers,
                body,
            })
        })
        .collect()
}

fn header_map(headers: &[(String, String)]) -> Value {
    let mut map = serde_json::Map::new();
    for (k, v) in headers {
        // The first of a repeated header counts, as in STOMP.
        map.entry(k.clone())
            .or_insert_with(|| Value::String(v.clone()));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_replies_name_a_user_or_none() {
        assert_eq!(
            connect_user(&json!({"user": "alice"})),
            Ok(Some("alice".into()))
        );
        assert_eq!(connect_user(&json!({"user": null})), Ok(None));
        assert_eq!(connect_user(&json!({})), Ok(None));
        assert_eq!(connect_user(&Value::Null), Ok(None));
        assert!(connect_user(&json!({"user": 5})).is_err());
        assert!(connect_user(&json!({"user": "a\nb"})).is_err());
        assert!(connect_user(&json!({"user": "a/b"})).is_err());
    }

    #[test]
    fn app_replies_are_read_and_checked() {
        let r = app_replies(&json!({"messages": [
            {"destination": "/user/queue/r", "body": "hi", "headers": {"x": "1"}},
            {"destination": "/user/queue/r", "body": {"n": 1}}
        ]}))
        .unwrap();
        assert_eq!(r[0].headers, [("x".to_owned(), "1".to_owned())]);
        assert_eq!(r[1].body, r#"{"n":1}"#);
        assert!(app_replies(&Value::Null).unwrap().is_empty());
        for bad in [
            json!({"messages": 1}),
            json!({"messages": [{"body": "x"}]}),
            json!({"messages": [{"destination": "/a:b"}]}),
            json!({"messages": [{"destination": "/a", "headers": {"x": "a\nb"}}]}),
            // The gateway writes these itself; a second one could win.
            json!({"messages": [{"destination": "/a", "headers": {"content-length": "1"}}]}),
        ] {
            assert!(app_replies(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_carry_the_first_of_repeated_headers() {
        let h = vec![
            ("a".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
        ];
        let r = app_request(7, Some("u"), "/app/x", &h, "b");
        assert_eq!(
            r,
            json!({"session": "7", "user": "u", "destination": "/app/x", "headers": {"a": "1"}, "body": "b"})
        );
    }
}
