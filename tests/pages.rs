//! Greeting, /info, iframe page, URL validation, 404/405, CORS preflights.
mod common;
use common::*;

const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";

fn config() -> String {
    echo_config("allowed_origins = [\"http://allowed.example\"]")
        + "[services.nows]\nprefix = \"/nows\"\nwebsocket = false\njsessionid = true\n"
}

#[actix_rt::test]
async fn greeting_with_and_without_slash() {
    let gw = Gateway::start(&config());
    for path in ["/echo", "/echo/"] {
        let r = get(&gw.url(path)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
        assert_eq!(r.body, "Welcome to SockJS!\n");
        assert!(r.header("set-cookie").is_none());
    }
    let r = post(&gw.url("/echo"), "").await;
    assert_eq!(r.status, 405);
}

#[actix_rt::test]
async fn unknown_urls_are_404() {
    let gw = Gateway::start(&config());
    for suffix in [
        "/a",
        "/a.html",
        "//",
        "///",
        "/a/a",
        "/a/a/",
        "/a/",
        "/iframe.htm",
        "/iframe",
        "/IFRAME.HTML",
        "/iframe.xml",
        "/iframe-/.html",
    ] {
        assert_eq!(
            get(&gw.url(&format!("/echo{suffix}"))).await.status,
            404,
            "{suffix}"
        );
    }
    assert_eq!(get(&gw.url("/nothing-here")).await.status, 404);
}

#[actix_rt::test]
async fn info_describes_the_service() {
    let gw = Gateway::start(&config());
    let r = request(
        "GET",
        &gw.url("/echo/info"),
        &[("Origin", "http://allowed.example")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(r.header("cache-control"), Some(NO_CACHE));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://allowed.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r.header("set-cookie").is_none());
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["websocket"], true);
    assert_eq!(v["cookie_needed"], false);
    assert_eq!(v["origins"], serde_json::json!(["*:*"]));
    let e1 = v["entropy"].as_u64().unwrap();
    let v2: serde_json::Value =
        serde_json::from_str(&get(&gw.url("/echo/info")).await.body).unwrap();
    assert_ne!(e1, v2["entropy"].as_u64().unwrap(), "entropy must change");

    let v: serde_json::Value =
        serde_json::from_str(&get(&gw.url("/nows/info")).await.body).unwrap();
    assert_eq!(v["websocket"], false);
    assert_eq!(v["cookie_needed"], true);
    assert!(get(&gw.url("/nows/info"))
        .await
        .header("set-cookie")
        .is_none());
}

#[actix_rt::test]
async fn info_without_origin_allows_any_without_credentials() {
    let gw = Gateway::start(&config());
    let r = get(&gw.url("/echo/info")).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-credentials").is_none());
}

#[actix_rt::test]
async fn preflights_are_cacheable_and_echo_request_headers() {
    let gw = Gateway::start(&config());
    for (path, methods) in [
        ("/echo/info", "OPTIONS, GET"),
        ("/echo/a/b/xhr", "OPTIONS, POST"),
        ("/echo/a/b/xhr_send", "OPTIONS, POST"),
        ("/echo/a/b/xhr_streaming", "OPTIONS, POST"),
    ] {
        let r = request(
            "OPTIONS",
            &gw.url(path),
            &[
                ("Origin", "http://allowed.example"),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "a, b, c"),
            ],
            "",
        )
        .await;
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(r.body, "");
        assert_eq!(r.header("access-control-allow-methods"), Some(methods));
        assert_eq!(r.header("access-control-allow-headers"), Some("a, b, c"));
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("http://allowed.example")
        );
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("access-control-max-age"), Some("31536000"));
        assert!(r.header("cache-control").unwrap().contains("public"));
        assert!(r
            .header("cache-control")
            .unwrap()
            .contains("max-age=31536000"));
        assert!(r.header("expires").is_some());
    }
    let r = request(
        "OPTIONS",
        &gw.url("/echo/a/b/xhr"),
        &[
            ("Origin", "http://allowed.example"),
            ("Access-Control-Request-Headers", ""),
        ],
        "",
    )
    .await;
    assert!(r.header("access-control-allow-headers").is_none());
}

#[actix_rt::test]
async fn iframe_page_is_cached_with_an_etag() {
    let gw = Gateway::start(&config());
    let mut etag = None;
    for name in [
        "iframe.html",
        "iframe-a.html",
        "iframe-.html",
        "iframe-0.1.2.html",
        "iframe-0.1.2abc-dirty.2144.html",
        "iframe-a.html?t=1234",
    ] {
        let r = get(&gw.url(&format!("/echo/{name}"))).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
        assert!(r
            .header("cache-control")
            .unwrap()
            .contains("max-age=31536000"));
        assert!(r.header("expires").is_some());
        assert!(r.header("last-modified").is_none());
        assert!(r.header("set-cookie").is_none());
        assert!(
            r.body
                .contains("<script src=\"/echo/sockjs.min.js\"></script>"),
            "{}",
            r.body
        );
        assert!(r.body.contains("SockJS.bootstrap_iframe();"));
        let tag = r.header("etag").unwrap().to_owned();
        assert_eq!(
            etag.get_or_insert(tag.clone()),
            &tag,
            "one ETag for every variant"
        );
    }
    let r = request(
        "GET",
        &gw.url("/echo/iframe.html"),
        &[("If-None-Match", etag.as_deref().unwrap())],
        "",
    )
    .await;
    assert_eq!(r.status, 304);
    assert!(r.header("content-type").is_none());
    assert_eq!(r.body, "");
}

#[actix_rt::test]
async fn session_urls_validate_ids_and_methods() {
    let gw = Gateway::start(&config());
    for bad in ["//", "/a./a", "/a/a.", "/./.", "/", "///"] {
        assert_eq!(
            get(&gw.url(&format!("/echo{bad}/xhr"))).await.status,
            404,
            "{bad}"
        );
        assert_eq!(
            post(&gw.url(&format!("/echo{bad}/xhr")), "").await.status,
            404,
            "{bad}"
        );
    }
    let long = "a".repeat(200);
    assert_eq!(
        post(&gw.url(&format!("/echo/000/{long}/xhr")), "")
            .await
            .status,
        404
    );
    assert_eq!(post(&gw.url("/echo/000/abc/nope"), "").await.status, 404);
    // Any other value is a fine id, and the server id is ignored.
    for ok in ["/a/a1", "/_/_1", "/1/2", "/abcdefgh_i-j%20/abcdefg_i-j%20"] {
        let r = post(&gw.url(&format!("/echo{ok}{}/xhr", rand_id())), "").await;
        assert_eq!((r.status, r.body.as_str()), (200, "o\n"), "{ok}");
    }
    for (method, path, allow) in [
        ("GET", "/echo/a/b/xhr", "OPTIONS, POST"),
        ("GET", "/echo/a/b/xhr_send", "OPTIONS, POST"),
        ("POST", "/echo/a/b/eventsource", "GET"),
        ("POST", "/echo/a/b/websocket", "GET"),
        ("PUT", "/echo/a/b/jsonp", "GET"),
    ] {
        let r = request(method, &gw.url(path), &[], "").await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow));
        assert!(r.header("content-type").is_none());
        assert_eq!(r.body, "");
    }
}

#[actix_rt::test]
async fn disabled_transports_are_404() {
    let toml = "[services.min]\nprefix = \"/min\"\nwebsocket = false\nxhr_streaming = false\neventsource = false\nhtmlfile = false\njsonp_polling = false\n";
    let gw = Gateway::start(toml);
    assert_eq!(get(&gw.url("/min/a/b/websocket")).await.status, 404);
    assert_eq!(get(&gw.url("/min/websocket")).await.status, 404);
    assert_eq!(
        post(&gw.url("/min/a/b/xhr_streaming"), "").await.status,
        404
    );
    assert_eq!(get(&gw.url("/min/a/b/eventsource")).await.status, 404);
    assert_eq!(get(&gw.url("/min/a/b/htmlfile?c=x")).await.status, 404);
    assert_eq!(get(&gw.url("/min/a/b/jsonp?c=x")).await.status, 404);
    assert_eq!(post(&gw.url("/min/a/b/xhr"), "").await.body, "o\n");
}

#[actix_rt::test]
async fn bad_config_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[services.echo]\nprefix = \"/echo\"\nheartbeat_delay = \"soon\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sockjs-gateway"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("services.echo.heartbeat_delay"), "{err}");
}

/// The client script and the static pages answer GET and HEAD, at the root
/// and under every prefix, where the iframe page loads it from by default.
#[actix_rt::test]
async fn client_script_and_static_files_answer_get_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.js");
    std::fs::write(&script, "/* sockjs-client stand-in */").unwrap();
    let pages = dir.path().join("pages");
    std::fs::create_dir(&pages).unwrap();
    std::fs::write(pages.join("index.html"), "<p>home</p>").unwrap();
    std::fs::write(pages.join("lab.html"), "<p>lab</p>").unwrap();
    let gw = Gateway::start(&format!(
        "static_dir = {:?}\nsockjs_client_path = {:?}\n{}[services.deep]\nprefix = \"/a/deep\"\n",
        pages.to_str().unwrap(),
        script.to_str().unwrap(),
        config()
    ));
    for (path, body) in [
        (
            "/sockjs-client/sockjs.min.js",
            "/* sockjs-client stand-in */",
        ),
        ("/echo/sockjs.min.js", "/* sockjs-client stand-in */"),
        ("/nows/sockjs.min.js", "/* sockjs-client stand-in */"),
        ("/a/deep/sockjs.min.js", "/* sockjs-client stand-in */"),
        ("/lab.html", "<p>lab</p>"),
        ("/", "<p>home</p>"),
    ] {
        let r = get(&gw.url(path)).await;
        assert_eq!((r.status, r.body.as_str()), (200, body), "GET {path}");
        let len = r.header("content-length").map(str::to_owned);
        let etag = r.header("etag").map(str::to_owned);
        let h = request("HEAD", &gw.url(path), &[], "").await;
        assert_eq!((h.status, h.body.as_str()), (200, ""), "HEAD {path}");
        assert_eq!(
            h.header("content-length").map(str::to_owned),
            len,
            "HEAD {path}"
        );
        assert_eq!(h.header("etag").map(str::to_owned), etag, "HEAD {path}");
        assert_eq!(post(&gw.url(path), "").await.status, 405, "POST {path}");
    }
    // The iframe page's default is the copy under its own prefix.
    let page = get(&gw.url("/a/deep/iframe.html")).await.body;
    assert!(
        page.contains("<script src=\"/a/deep/sockjs.min.js\"></script>"),
        "{page}"
    );
    assert_eq!(get(&gw.url("/nope.html")).await.status, 404);
}

/// The protocol suite's `IframePage` tests: the page loads sockjs-client
/// from an absolute path or URL, never one relative to the page. Checked on
/// every service of the suite's own config, where the default applies.
#[actix_rt::test]
async fn iframe_page_loads_the_client_from_an_absolute_url() {
    let toml = include_str!("../config/protocol-test.toml");
    let parsed = sockjs_gateway::Config::from_toml(toml).unwrap();
    let gw = Gateway::start(toml);
    assert!(!parsed.services.is_empty());
    for svc in parsed.services.values() {
        for page in ["iframe.html", "iframe-1.6.1.html", "iframe.html?t=1"] {
            let body = get(&gw.url(&format!("{}/{page}", svc.prefix))).await.body;
            let src = body
                .split("<script src=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no script in {page}: {body}"));
            assert!(
                src.starts_with('/') || src.starts_with("http"),
                "{}/{page} loads {src:?}",
                svc.prefix
            );
            assert_eq!(src, format!("{}/sockjs.min.js", svc.prefix));
        }
    }
    // A configured URL is used as it is; a relative one is refused at start.
    let cdn = "https://cdn.example/sockjs-client@1.6.1/sockjs.min.js";
    let gw = Gateway::start(&format!(
        "[services.e]\nprefix = \"/e\"\nsockjs_url = {cdn:?}\n"
    ));
    let body = get(&gw.url("/e/iframe.html")).await.body;
    assert!(body.contains(&format!("<script src=\"{cdn}\">")), "{body}");
    let e = sockjs_gateway::Config::from_toml(
        "[services.e]\nprefix = \"/e\"\nsockjs_url = \"sockjs.min.js\"\n",
    )
    .unwrap_err();
    assert!(e.contains("services.e.sockjs_url"), "{e}");
}
