//! The transport-blind backend API, driven through real transports against
//! a gateway started in-process with a recording backend.
mod common;
use common::*;
use sockjs_gateway::{
    CloseReason, Config, Gateway, Handler, Service, SessionCtx, SessionHandle, SessionInfo,
};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug)]
enum Event {
    Open(SessionInfo),
    Message(u64, String),
    Close(u64, CloseReason),
}

struct Recorder {
    events: Mutex<mpsc::Sender<Event>>,
}

struct RecorderSession {
    events: mpsc::Sender<Event>,
    id: u64,
}

impl Service for Recorder {
    fn new_session(&self, info: &SessionInfo) -> Box<dyn Handler> {
        Box::new(RecorderSession {
            events: self.events.lock().unwrap().clone(),
            id: info.id,
        })
    }
}

impl Handler for RecorderSession {
    fn on_open(&mut self, ctx: &mut SessionCtx<'_>) {
        self.events.send(Event::Open(ctx.info().clone())).unwrap();
    }
    fn on_message(&mut self, ctx: &mut SessionCtx<'_>, message: String) {
        self.events
            .send(Event::Message(self.id, message.clone()))
            .unwrap();
        match message.as_str() {
            "close-me" => ctx.close(4001, "asked to"),
            m if m.starts_with("all:") => ctx.service().broadcast(&m[4..]),
            m => ctx.send(m),
        }
    }
    fn on_close(&mut self, info: &SessionInfo, reason: &CloseReason) {
        self.events
            .send(Event::Close(info.id, reason.clone()))
            .unwrap();
    }
}

struct Harness {
    addr: String,
    events: mpsc::Receiver<Event>,
    server: actix_web::dev::ServerHandle,
}

impl Harness {
    fn start(extra: &str) -> Harness {
        let toml =
            format!("listen = \"127.0.0.1:0\"\n[services.rec]\nprefix = \"/rec\"\n{extra}\n");
        let (tx, events) = mpsc::channel();
        let backend = Arc::new(Recorder {
            events: Mutex::new(tx),
        });
        let running = Gateway::new(Config::from_toml(&toml).unwrap())
            .backend("rec", backend)
            .start()
            .unwrap();
        let server = running.server.handle();
        actix_rt::spawn(running.server);
        Harness {
            addr: running.addrs[0].to_string(),
            events,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn event(&self) -> Event {
        for _ in 0..500 {
            if let Ok(e) = self.events.try_recv() {
                return e;
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no event within 5 s");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The stop command is sent on the call; waiting for it is not needed.
        drop(self.server.stop(false));
    }
}

#[actix_rt::test]
async fn open_shows_safe_request_facts_only() {
    let h = Harness::start("");
    let s = h.url(&session("/rec"));
    let headers = [
        ("User-Agent", "test-agent"),
        ("X-Forwarded-For", "198.51.100.1, 203.0.113.7, 127.0.0.2"),
        ("Cookie", "secret=1"),
        ("Authorization", "Bearer x"),
    ];
    assert_eq!(
        request("POST", &format!("{s}/xhr"), &headers, "")
            .await
            .body,
        "o\n"
    );
    let Event::Open(info) = h.event().await else {
        panic!("expected open")
    };
    assert_eq!(&*info.prefix, "/rec");
    assert_eq!(
        info.remote_addr,
        Some("203.0.113.7".parse().unwrap()),
        "X-Forwarded-For from a loopback proxy"
    );
    assert_eq!(info.header("user-agent"), Some("test-agent"));
    assert!(info.header("cookie").is_none() && info.header("authorization").is_none());
}

#[actix_rt::test]
async fn messages_arrive_once_in_order_across_mixed_transports() {
    // A small response_limit makes streams roll over while messages flow.
    let h = Harness::start("response_limit = 200");
    let s = h.url(&session("/rec"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let Event::Open(info) = h.event().await else {
        panic!()
    };
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let expected: Vec<String> = (0..60)
        .map(|i| format!("m{i:02}-{}", "p".repeat(80)))
        .collect();
    let mut echoed: Vec<String> = Vec::new();
    for (i, chunk) in expected.chunks(3).enumerate() {
        // Sends alternate between xhr_send and jsonp_send...
        for m in chunk {
            if echoed.len() % 2 == 0 {
                assert_eq!(
                    post(&format!("{s}/xhr_send"), &format!("[\"{m}\"]"))
                        .await
                        .status,
                    204
                );
            } else {
                let body = format!("d=%5B%22{m}%22%5D");
                assert_eq!(
                    request("POST", &format!("{s}/jsonp_send"), &form, &body)
                        .await
                        .body,
                    "ok"
                );
            }
        }
        // ...and each batch of echoes is taken by a different receiver kind.
        let want = echoed.len() + chunk.len();
        while echoed.len() < want {
            let frame = match i % 4 {
                0 => post(&format!("{s}/xhr"), "").await.body,
                1 => get(&format!("{s}/jsonp?c=cb")).await.body,
                // A queued batch passes the 200-byte limit: the stream
                // delivers it and ends by itself.
                2 => {
                    let mut st = Stream::open("POST", &format!("{s}/xhr_streaming")).await;
                    st.read_exact(2049).await;
                    let f = st.read_until("\n").await;
                    st.expect_end().await;
                    f
                }
                _ => {
                    let mut es = Stream::open("GET", &format!("{s}/eventsource")).await;
                    es.read_exact(2).await;
                    let f = es.read_until("\r\n\r\n").await;
                    es.expect_end().await;
                    f
                }
            };
            let start = frame
                .find("a[")
                .unwrap_or_else(|| panic!("no message frame in {frame:?}"));
            let json = &frame[start + 1..];
            let json = json.replace("\\\"", "\"");
            let end = json.rfind(']').unwrap();
            echoed.extend(serde_json::from_str::<Vec<String>>(&json[..=end]).unwrap());
        }
    }
    let mut got = Vec::new();
    while got.len() < echoed.len() {
        match h.event().await {
            Event::Message(id, m) => {
                assert_eq!(id, info.id);
                got.push(m);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, expected, "what the backend received");
    assert_eq!(echoed, expected, "what the client received back");
}

#[actix_rt::test]
async fn close_reasons_reach_the_backend() {
    let h = Harness::start("disconnect_delay = 0.2");
    // Abandoned polling session: timed out.
    let s = h.url(&session("/rec"));
    post(&format!("{s}/xhr"), "").await;
    let Event::Open(a) = h.event().await else {
        panic!()
    };
    match h.event().await {
        Event::Close(id, CloseReason::TimedOut) => assert_eq!(id, a.id),
        other => panic!("{other:?}"),
    }
    // Client closes its WebSocket.
    let mut ws = Ws::connect(&format!("ws://{}{}/websocket", h.addr, session("/rec"))).await;
    assert_eq!(ws.recv().await, "o");
    let Event::Open(b) = h.event().await else {
        panic!()
    };
    ws.close().await;
    match h.event().await {
        Event::Close(id, CloseReason::ClientClosed) => assert_eq!(id, b.id),
        other => panic!("{other:?}"),
    }
    // The backend closes.
    let mut ws = Ws::connect(&format!("ws://{}{}/websocket", h.addr, session("/rec"))).await;
    assert_eq!(ws.recv().await, "o");
    let Event::Open(c) = h.event().await else {
        panic!()
    };
    ws.send(r#"["close-me"]"#).await;
    assert!(matches!(h.event().await, Event::Message(_, m) if m == "close-me"));
    match h.event().await {
        Event::Close(id, CloseReason::Server(code)) => {
            assert_eq!(id, c.id);
            assert_eq!((code.code, code.reason.as_str()), (4001, "asked to"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ws.recv().await, r#"c[4001,"asked to"]"#);
    // A dropped pending poll: interrupted.
    let s = session("/rec");
    post(&h.url(&format!("{s}/xhr")), "").await;
    let Event::Open(d) = h.event().await else {
        panic!()
    };
    let mut raw = Raw::connect(&h.addr).await;
    raw.send("POST", &format!("{s}/xhr"), "1.1", &[], "").await;
    raw.head().await;
    drop(raw);
    match h.event().await {
        Event::Close(id, CloseReason::Interrupted) => assert_eq!(id, d.id),
        other => panic!("{other:?}"),
    }
}

#[actix_rt::test]
async fn broadcast_reaches_every_transport() {
    let h = Harness::start("");
    let mut ws = Ws::connect(&format!("ws://{}{}/websocket", h.addr, session("/rec"))).await;
    assert_eq!(ws.recv().await, "o");
    let st_url = h.url(&format!("{}/xhr_streaming", session("/rec")));
    let mut st = Stream::open("POST", &st_url).await;
    st.read_exact(2049).await;
    assert_eq!(st.read_until("\n").await, "o\n");
    let es_url = h.url(&format!("{}/eventsource", session("/rec")));
    let mut es = Stream::open("GET", &es_url).await;
    es.read_until("data: o\r\n\r\n").await;
    let poll = h.url(&session("/rec"));
    assert_eq!(post(&format!("{poll}/xhr"), "").await.body, "o\n");

    ws.send(r#"["all:hello everyone"]"#).await;
    assert_eq!(ws.recv().await, r#"a["hello everyone"]"#);
    assert_eq!(st.read_until("\n").await, "a[\"hello everyone\"]\n");
    assert_eq!(
        es.read_until("\r\n\r\n").await,
        "data: a[\"hello everyone\"]\r\n\r\n"
    );
    assert_eq!(
        post(&format!("{poll}/xhr"), "").await.body,
        "a[\"hello everyone\"]\n"
    );
}

#[actix_rt::test]
async fn a_handle_sends_from_another_thread() {
    // Handles are Send + Clone: the backend hands them out through a channel.
    static SLOT: Mutex<Option<mpsc::Sender<SessionHandle>>> = Mutex::new(None);
    struct Global;
    struct GlobalSession;
    impl Service for Global {
        fn new_session(&self, _: &SessionInfo) -> Box<dyn Handler> {
            Box::new(GlobalSession)
        }
    }
    impl Handler for GlobalSession {
        fn on_open(&mut self, ctx: &mut SessionCtx<'_>) {
            SLOT.lock()
                .unwrap()
                .as_ref()
                .unwrap()
                .send(ctx.handle())
                .unwrap();
        }
        fn on_message(&mut self, _: &mut SessionCtx<'_>, _: String) {}
    }
    let (tx, rx) = mpsc::channel();
    *SLOT.lock().unwrap() = Some(tx);
    let cfg =
        Config::from_toml("listen = \"127.0.0.1:0\"\n[services.g]\nprefix = \"/g\"\n").unwrap();
    let running = Gateway::new(cfg)
        .backend("g", Arc::new(Global))
        .start()
        .unwrap();
    let addr = running.addrs[0];
    let server = running.server.handle();
    actix_rt::spawn(running.server);

    let mut ws = Ws::connect(&format!("ws://{addr}/g/1/abc/websocket")).await;
    assert_eq!(ws.recv().await, "o");
    let handle = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    std::thread::spawn(move || {
        assert!(handle.is_alive());
        handle.send("from another thread");
        handle.close(4002, "done");
    })
    .join()
    .unwrap();
    assert_eq!(ws.recv().await, r#"a["from another thread"]"#);
    assert_eq!(ws.recv().await, r#"c[4002,"done"]"#);
    server.stop(false).await;
}

#[actix_rt::test]
async fn a_backend_for_an_unknown_service_name_is_an_error() {
    let toml = "listen = \"127.0.0.1:0\"\n[services.rec]\nprefix = \"/rec\"\n";
    let (tx, _events) = mpsc::channel();
    let backend = Arc::new(Recorder {
        events: Mutex::new(tx),
    });
    let err = Gateway::new(Config::from_toml(toml).unwrap())
        .backend("recc", backend)
        .start()
        .err()
        .expect("a misspelled backend name must not start");
    let msg = err.to_string();
    assert!(msg.contains("\"recc\"") && msg.contains("rec"), "{msg}");
}
