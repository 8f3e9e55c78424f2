//! xhr-streaming, eventsource, htmlfile: preludes, framing, the
//! response_limit rollover, and HTTP/1.0 versus HTTP/1.1 framing.
mod common;
use common::*;

const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";

fn config() -> String {
    echo_config("response_limit = 4096\nallowed_origins = [\"*\"]")
        + "[services.close]\nprefix = \"/close\"\nkind = \"close\"\n"
}

#[actix_rt::test]
async fn xhr_streaming_prelude_frames_and_headers() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    let mut st = Stream::open_with(
        "POST",
        &format!("{s}/xhr_streaming"),
        &[("Origin", "http://test")],
    )
    .await;
    assert_eq!(st.status, 200);
    assert_eq!(
        st.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    assert_eq!(st.header("cache-control"), Some(NO_CACHE));
    assert_eq!(
        st.header("access-control-allow-origin"),
        Some("http://test")
    );
    assert_eq!(st.header("x-accel-buffering"), Some("no"));
    assert_eq!(st.read_exact(2049).await, format!("{}\n", "h".repeat(2048)));
    assert_eq!(st.read_until("\n").await, "o\n");
    assert_eq!(post(&format!("{s}/xhr_send"), r#"["x"]"#).await.status, 204);
    assert_eq!(st.read_until("\n").await, "a[\"x\"]\n");
}

#[actix_rt::test]
async fn xhr_streaming_rollover_loses_and_repeats_nothing() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    let mut st = Stream::open("POST", &format!("{s}/xhr_streaming")).await;
    st.read_exact(2049).await;
    assert_eq!(st.read_until("\n").await, "o\n");
    // Send 300 messages of ~100 bytes in batches, reading as they come and
    // reconnecting each time a response reaches the 4096-byte limit; some
    // batches land while no stream is attached and must wait in the queue.
    let all: Vec<String> = (0..300)
        .map(|i| format!("{i:04}-{}", "y".repeat(90)))
        .collect();
    let mut got: Vec<String> = Vec::new();
    let mut rollovers = 0;
    let mut since_open = 2; // "o\n"
    let mut sent = 0;
    for batch in all.chunks(7) {
        assert_eq!(
            post(
                &format!("{s}/xhr_send"),
                &serde_json::to_string(batch).unwrap()
            )
            .await
            .status,
            204
        );
        sent += batch.len();
        while got.len() < sent {
            if since_open >= 4096 {
                st.expect_end().await;
                rollovers += 1;
                st = Stream::open("POST", &format!("{s}/xhr_streaming")).await;
                st.read_exact(2049).await;
                since_open = 0;
            }
            let frame = st.read_until("\n").await;
            since_open += frame.len();
            let msgs: Vec<String> = serde_json::from_str(&frame.trim_end()[1..]).expect(&frame);
            got.extend(msgs);
        }
    }
    assert_eq!(got, all);
    assert!(rollovers >= 5, "only {rollovers} rollovers");
}

#[actix_rt::test]
async fn eventsource_frames_and_escaping() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    let mut st = Stream::open("GET", &format!("{s}/eventsource")).await;
    assert_eq!(st.status, 200);
    assert_eq!(st.header("content-type"), Some("text/event-stream"));
    assert_eq!(st.header("cache-control"), Some(NO_CACHE));
    assert_eq!(st.read_exact(2).await, "\r\n");
    assert_eq!(st.read_until("\r\n\r\n").await, "data: o\r\n\r\n");
    post(
        &format!("{s}/xhr_send"),
        r#"["  \u0000\n\r ", "100% sure"]"#,
    )
    .await;
    // JSON escapes the controls; `%` is percent-escaped for the client's decodeURI.
    assert_eq!(
        st.read_until("\r\n\r\n").await,
        "data: a[\"  \\u0000\\n\\r \",\"100%25 sure\"]\r\n\r\n"
    );
}

#[actix_rt::test]
async fn eventsource_ends_at_the_response_limit() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    let mut st = Stream::open("GET", &format!("{s}/eventsource")).await;
    st.read_exact(2).await;
    st.read_until("\r\n\r\n").await;
    let msg = "x".repeat(4096);
    post(&format!("{s}/xhr_send"), &format!("[\"{msg}\"]")).await;
    assert_eq!(
        st.read_until("\r\n\r\n").await,
        format!("data: a[\"{msg}\"]\r\n\r\n")
    );
    st.expect_end().await;
}

#[actix_rt::test]
async fn htmlfile_page_callback_and_script_safety() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    let mut st = Stream::open("GET", &format!("{s}/htmlfile?c=%63allback")).await;
    assert_eq!(st.header("content-type"), Some("text/html; charset=UTF-8"));
    assert_eq!(st.header("cache-control"), Some(NO_CACHE));
    let page = st.read_until("\r\n\r\n").await;
    assert!(page.len() > 1024);
    assert!(page.contains("var c = parent.callback;"));
    assert_eq!(
        st.read_until("</script>\r\n").await,
        "<script>\np(\"o\");\n</script>\r\n"
    );
    post(&format!("{s}/xhr_send"), r#"["x"]"#).await;
    assert_eq!(
        st.read_until("</script>\r\n").await,
        "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
    );
    // A message that closes the script element must not run as markup.
    post(
        &format!("{s}/xhr_send"),
        r#"["</script><script>alert(1)</script>"]"#,
    )
    .await;
    let frame = st.read_until("</script>\r\n").await;
    let inner = &frame["<script>\n".len()..frame.len() - "\n</script>\r\n".len()];
    assert!(!inner.contains('<'), "unescaped < in {frame}");
    assert!(inner.contains("\\u003c/script>"));
}

#[actix_rt::test]
async fn close_on_a_stream_sends_the_frame_and_ends_it() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/close"));
    let mut r1 = Stream::open("POST", &format!("{s}/xhr_streaming")).await;
    r1.read_exact(2049).await;
    assert_eq!(r1.read_until("\n").await, "o\n");
    assert_eq!(r1.read_until("\n").await, "c[3000,\"Go away!\"]\n");
    r1.expect_end().await;
    let mut r2 = Stream::open("POST", &format!("{s}/xhr_streaming")).await;
    r2.read_exact(2049).await;
    assert_eq!(r2.read_until("\n").await, "c[3000,\"Go away!\"]\n");
    r2.expect_end().await;
}

#[actix_rt::test]
async fn second_stream_gets_2010_and_ends() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    let mut r1 = Stream::open("POST", &format!("{s}/xhr_streaming")).await;
    r1.read_exact(2049).await;
    assert_eq!(r1.read_until("\n").await, "o\n");
    let mut r2 = Stream::open("POST", &format!("{s}/xhr_streaming")).await;
    r2.read_exact(2049).await;
    assert_eq!(
        r2.read_until("\n").await,
        "c[2010,\"Another connection still open\"]\n"
    );
    r2.expect_end().await;
}

#[actix_rt::test]
async fn http10_streaming_has_no_chunking_and_closes() {
    let gw = Gateway::start(&config());
    let mut c = Raw::connect(&gw.addr).await;
    c.send(
        "POST",
        &format!("{}/xhr_streaming", session("/close")),
        "1.0",
        &[("Connection", "Keep-Alive")],
        "",
    )
    .await;
    let head = c.head().await;
    assert_eq!(head.status, 200);
    assert!(head.header("transfer-encoding").is_none());
    assert!(head.header("content-length").is_none());
    assert_eq!(c.read_exact(2049).await.as_bytes()[0], b'h');
    assert_eq!(c.read_exact(2).await, "o\n");
    assert_eq!(c.read_exact(19).await, "c[3000,\"Go away!\"]\n");
    assert!(c.closed_by_server().await);
}

#[actix_rt::test]
async fn http11_streaming_is_chunked() {
    let gw = Gateway::start(&config());
    let mut c = Raw::connect(&gw.addr).await;
    c.send(
        "POST",
        &format!("{}/xhr_streaming", session("/close")),
        "1.1",
        &[],
        "",
    )
    .await;
    let head = c.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    assert!(head.header("content-length").is_none());
}

#[actix_rt::test]
async fn http10_greeting_uses_content_length() {
    let gw = Gateway::start(&config());
    let mut c = Raw::connect(&gw.addr).await;
    c.send("GET", "/echo", "1.0", &[], "").await;
    let head = c.head().await;
    assert_eq!(head.status, 200);
    assert!(head.header("transfer-encoding").is_none());
    assert_eq!(head.header("content-length"), Some("19"));
    assert_eq!(c.read_exact(19).await, "Welcome to SockJS!\n");
}
