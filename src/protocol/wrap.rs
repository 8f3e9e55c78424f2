//! How each transport wraps a frame on the wire, and the preludes that
//! streaming transports send before the first frame.

use super::escape::{json_string, push_eventsource_data, push_json_string, Context};

/// A transport's framing of SockJS frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wrapping {
    /// xhr-polling and xhr-streaming: the frame and `\n`.
    Xhr,
    /// `data: <frame>\r\n\r\n`, percent-escaped for the client's decodeURI.
    EventSource,
    /// `<script>\np("<frame>");\n</script>\r\n` inside the htmlfile page.
    HtmlFile,
    /// `/**/callback("<frame>");\r\n`.
    Jsonp(String),
    /// One WebSocket text message per frame, unwrapped.
    WebSocket,
}

/// Bytes of `h` xhr-streaming sends first, so that old browsers start
/// delivering `onreadystatechange` progress.
pub const XHR_STREAMING_PRELUDE_LEN: usize = 2048;

/// Smallest size of the htmlfile page before the first frame.
pub const HTMLFILE_MIN_PRELUDE: usize = 1024;

impl Wrapping {
    /// Wraps one frame's text for the wire.
    pub fn wrap(&self, frame: &str) -> String {
        match self {
            Wrapping::Xhr => {
                let mut s = String::with_capacity(frame.len() + 1);
                s.push_str(frame);
                s.push('\n');
                s
            }
            Wrapping::EventSource => {
                let mut s = String::with_capacity(frame.len() + 10);
                s.push_str("data: ");
                push_eventsource_data(&mut s, frame);
                s.push_str("\r\n\r\n");
                s
            }
            Wrapping::HtmlFile => {
                let mut s = String::with_capacity(frame.len() + 40);
                s.push_str("<script>\np(");
                push_json_string(&mut s, frame, Context::Html);
                s.push_str(");\n</script>\r\n");
                s
            }
            Wrapping::Jsonp(cb) => {
                let mut s = String::with_capacity(frame.len() + cb.len() + 12);
                s.push_str("/**/");
                s.push_str(cb);
                s.push('(');
                push_json_string(&mut s, frame, Context::Script);
                s.push_str(");\r\n");
                s
            }
            Wrapping::WebSocket => frame.to_owned(),
        }
    }
}

/// The xhr-streaming prelude: 2 KiB of `h` and a newline.
pub fn xhr_streaming_prelude() -> String {
    let mut s = "h".repeat(XHR_STREAMING_PRELUDE_LEN);
    s.push('\n');
    s
}

/// The eventsource prelude (an empty line, for an old Opera bug).
pub const EVENTSOURCE_PRELUDE: &str = "\r\n";

/// The htmlfile page that precedes the first frame. `callback` must already be
/// validated with [`super::ids::is_valid_callback`].
pub fn htmlfile_prelude(callback: &str) -> String {
    let mut page = format!(
        "<!doctype html>\n<html><head>\n  \
<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n\
</head><body><h2>Don't panic!</h2>\n  <script>\n    \
document.domain = document.domain;\n    \
var c = parent.{callback};\n    c.start();\n    \
function p(d) {{c.message(d);}};\n    \
window.onload = function() {{c.stop();}};\n  </script>"
    );
    // Browsers only start rendering an incremental page after about 1 KiB.
    let pad = (HTMLFILE_MIN_PRELUDE + 1).saturating_sub(page.len());
    page.push_str(&" ".repeat(pad));
    page.push_str("\r\n\r\n");
    page
}

/// The iframe page that iframe-based transports load; it runs
/// sockjs-client from `sockjs_url` in the server's origin.
pub fn iframe_page(sockjs_url: &str) -> String {
    // The URL comes from configuration, but escape it anyway so a stray quote
    // cannot break out of the attribute.
    let url = json_string(sockjs_url, Context::Html);
    let url = &url[1..url.len() - 1];
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n  \
<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  \
<script src=\"{}\"></script>\n  <script>\n    \
document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n  \
</script>\n</head>\n<body>\n  <h2>Don't panic!</h2>\n  \
<p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n\
</body>\n</html>",
        url.replace('"', "&quot;")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xhr_and_websocket() {
        assert_eq!(Wrapping::Xhr.wrap("o"), "o\n");
        assert_eq!(Wrapping::WebSocket.wrap("a[\"x\"]"), "a[\"x\"]");
    }

    #[test]
    fn eventsource() {
        assert_eq!(Wrapping::EventSource.wrap("o"), "data: o\r\n\r\n");
        assert_eq!(
            Wrapping::EventSource.wrap("a[\"50%\"]"),
            "data: a[\"50%25\"]\r\n\r\n"
        );
    }

    #[test]
    fn htmlfile_escapes_quotes_and_script_end() {
        assert_eq!(
            Wrapping::HtmlFile.wrap(r#"a["x"]"#),
            "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
        );
        let w = Wrapping::HtmlFile.wrap(r#"a["</script><script>alert(1)</script>"]"#);
        assert!(!w[8..w.len() - 12].contains('<'), "{w}");
    }

    #[test]
    fn jsonp() {
        assert_eq!(Wrapping::Jsonp("cb".into()).wrap("o"), "/**/cb(\"o\");\r\n");
        assert_eq!(
            Wrapping::Jsonp("x".into()).wrap(r#"c[3000,"Go away!"]"#),
            "/**/x(\"c[3000,\\\"Go away!\\\"]\");\r\n"
        );
    }

    #[test]
    fn preludes() {
        let p = xhr_streaming_prelude();
        assert_eq!(p.len(), 2049);
        assert!(p.starts_with("hhhh") && p.ends_with("h\n"));
        let page = htmlfile_prelude("callback");
        assert!(page.len() > HTMLFILE_MIN_PRELUDE);
        assert!(page.contains("var c = parent.callback;"));
        assert!(page.trim_end().ends_with("</script>"));
    }

    #[test]
    fn iframe_page_embeds_the_url() {
        let page = iframe_page("/sockjs.min.js");
        assert!(page.contains("<script src=\"/sockjs.min.js\"></script>"));
        assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>"));
        let page = iframe_page("/x\"><script>");
        assert!(!page.contains("\"><script>"));
    }
}
