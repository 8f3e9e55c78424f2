//! STOMP over one WebSocket, plain or in SockJS frames: what the STOMP
//! load tools (`stomp-fanout`, `recovery-storm`) speak.

use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One connection's STOMP frames.
pub struct Conn {
    pub ws: Ws,
    /// SockJS framing (`o`, `a[...]`, `h`), else one STOMP text per message.
    sockjs: bool,
    /// STOMP frames received and not read yet.
    frames: VecDeque<String>,
}

impl Conn {
    /// Opens `url`, sends `connect` (a CONNECT frame) and waits for
    /// CONNECTED.
    pub async fn open(url: &str, sockjs: bool, connect: &str) -> Result<Conn, String> {
        let config = WebSocketConfig::default().write_buffer_size(0);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| format!("connect {url}: {e}"))?;
        let mut c = Conn {
            ws,
            sockjs,
            frames: VecDeque::new(),
        };
        c.send(connect).await?;
        c.expect("CONNECTED").await?;
        Ok(c)
    }

    pub async fn send(&mut self, frame: &str) -> Result<(), String> {
        let text = if self.sockjs {
            serde_json::to_string(&[frame]).expect("a string")
        } else {
            frame.to_owned()
        };
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| e.to_string())
    }

    /// The next STOMP frame.
    pub async fn next(&mut self) -> Result<String, String> {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Ok(f);
            }
            let text = match tokio::time::timeout(Duration::from_secs(60), self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
                other => return Err(format!("connection ended: {other:?}")),
            };
            let text = text.as_str();
            if !self.sockjs {
                split_frames(text, &mut self.frames);
                continue;
            }
            match text.as_bytes().first() {
                Some(b'o' | b'h') => {}
                Some(b'a') => {
                    let msgs: Vec<String> = serde_json::from_str(&text[1..])
                        .map_err(|e| format!("bad SockJS frame: {e}"))?;
                    for m in msgs {
                        split_frames(&m, &mut self.frames);
                    }
                }
                _ => return Err(format!("unexpected SockJS frame {text:?}")),
            }
        }
    }

    /// The next frame, which must be a `command`.
    pub async fn expect(&mut self, command: &str) -> Result<String, String> {
        let f = self.next().await?;
        if f.split('\n').next() != Some(command) {
            return Err(format!(
                "expected {command}, got {:?}",
                &f[..f.len().min(200)]
            ));
        }
        Ok(f)
    }
}

/// Splits NUL-ended frames (and bare-LF heart-beats) out of one message.
fn split_frames(text: &str, out: &mut VecDeque<String>) {
    for f in text.split('\0') {
        let f = f.trim_start_matches(['\n', '\r']);
        if !f.is_empty() {
            out.push_back(f.to_owned());
        }
    }
}
