//! A STOMP client over a SockJS WebSocket, and the config and tokens the
//! STOMP tests share.

use super::*;

pub const SECRET: &str = "test-secret-for-stomp-0123456789ab";

/// The HTTP API's key in tests.
pub const KEY: &str = "api-key-for-tests-0123";

/// A request to the API with the key.
pub async fn api(gw: &Gateway, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {KEY}");
    let r = request(
        method,
        &gw.api_url(path),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await;
    let json = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {:?}", r.body));
    (r.status, json)
}

pub fn config(extra: &str) -> String {
    format!(
        "[auth]\nanonymous = true\njwt_secret = \"{SECRET}\"\njwt_audience = \"gw\"\n\
         [services.stomp]\nprefix = \"/stomp\"\nkind = \"stomp\"\n\
         subscribe = [\"/topic/**\", \"/user/queue/**\"]\n\
         send = [\"/topic/chat/**\", \"/user/*/queue/**\"]\n{extra}\n"
    )
}

/// A JWT for `sub` signed with `secret`, valid for `ttl` seconds.
pub fn token(secret: &str, sub: &str, ttl: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({"sub": sub, "aud": "gw", "exp": now + ttl});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The first frame `gw` answers a CONNECT sending `authorization` with.
pub async fn connect_answer(
    gw: &Gateway,
    authorization: &str,
) -> (String, Vec<(String, String)>, String) {
    let mut c = Client::open(gw).await;
    c.frame(
        "CONNECT",
        &[("accept-version", "1.2"), ("Authorization", authorization)],
        "",
    )
    .await;
    c.next().await
}

/// A STOMP client over a SockJS WebSocket.
pub struct Client {
    pub ws: Ws,
    /// Messages of an `a` frame not read yet.
    pending: std::collections::VecDeque<String>,
}

impl Client {
    pub async fn open(gw: &Gateway) -> Client {
        Client::open_with(gw, &[]).await
    }

    /// Opens with these headers on the WebSocket handshake (a Cookie, say).
    pub async fn open_with(gw: &Gateway, headers: &[(&str, &str)]) -> Client {
        let url = gw.ws_url(&format!("{}/websocket", session("/stomp")));
        let mut ws = Ws::connect_with(&url, headers).await.unwrap();
        assert_eq!(ws.recv().await, "o");
        Client {
            ws,
            pending: Default::default(),
        }
    }

    /// Sends SockJS messages, each holding the given text.
    pub async fn send(&mut self, texts: &[&str]) {
        self.ws.send(&serde_json::to_string(texts).unwrap()).await;
    }

    pub async fn frame(&mut self, command: &str, headers: &[(&str, &str)], body: &str) {
        let mut text = format!("{command}\n");
        for (k, v) in headers {
            text.push_str(&format!("{k}:{v}\n"));
        }
        text.push('\n');
        text.push_str(body);
        text.push('\0');
        self.send(&[&text]).await;
    }

    /// The next STOMP frame the server sent: (command, headers, body).
    pub async fn next(&mut self) -> (String, Vec<(String, String)>, String) {
        loop {
            let Some(text) = self.pending.pop_front() else {
                let m = self.ws.recv().await;
                if m != "h" {
                    let texts: Vec<String> =
                        serde_json::from_str(m.strip_prefix('a').expect("an a frame")).unwrap();
                    self.pending.extend(texts);
                }
                continue;
            };
            let (head, body) = text.split_once("\n\n").expect("a head");
            let mut lines = head.split('\n');
            let command = lines.next().unwrap().to_owned();
            let headers = lines
                .map(|l| {
                    // The only escape these tests meet (1.2, `:` in a value).
                    let (k, v) = l.split_once(':').unwrap();
                    (k.to_owned(), v.replace("\\c", ":"))
                })
                .collect();
            let body = body.strip_suffix('\0').expect("ends with NUL").to_owned();
            return (command, headers, body);
        }
    }

    /// Subscribes with subscription id `id`, and waits for the receipt.
    pub async fn subscribe(&mut self, id: &str, destination: &str) {
        self.frame(
            "SUBSCRIBE",
            &[("id", id), ("destination", destination), ("receipt", id)],
            "",
        )
        .await;
        self.expect_receipt(id).await;
    }

    /// The next frame is the RECEIPT for `id`.
    pub async fn expect_receipt(&mut self, id: &str) {
        let (cmd, h, body) = self.next().await;
        assert_eq!(
            (cmd.as_str(), header(&h, "receipt-id")),
            ("RECEIPT", Some(id)),
            "{h:?} {body}"
        );
    }

    pub async fn connect(gw: &Gateway) -> Client {
        Client::connect_with(gw, &[]).await
    }

    pub async fn connect_with(gw: &Gateway, extra: &[(&str, &str)]) -> Client {
        let mut c = Client::open(gw).await;
        let mut headers = vec![
            ("accept-version", "1.2,1.1,1.0"),
            ("heart-beat", "10000,10000"),
        ];
        headers.extend_from_slice(extra);
        c.frame("CONNECT", &headers, "").await;
        let (cmd, headers, _) = c.next().await;
        assert_eq!(cmd, "CONNECTED");
        assert_eq!(header(&headers, "version"), Some("1.2"));
        c
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Waits until `check` holds for `gw`'s `GET path` on the API, within 10 s.
pub async fn until_api(gw: &Gateway, path: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = api(gw, "GET", path, "").await;
        if check(&body) {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "{path} never matched: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until each cluster node is connected and sees the others.
pub async fn until_joined(nodes: &[&Gateway]) {
    for gw in nodes {
        until_api(gw, "/api/cluster", |b| {
            b["state"] == "up" && b["other_nodes"].as_array().map(Vec::len) == Some(nodes.len() - 1)
        })
        .await;
    }
}
