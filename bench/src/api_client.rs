//! The gateway's HTTP API as the load tools call it: POSTs of JSON on one
//! keep-alive HTTP/1.1 connection, with the key.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;

pub struct Api {
    send: SendRequest<Full<Bytes>>,
    host: String,
    key: String,
}

impl Api {
    /// Connects to `base` (`http://HOST:PORT`).
    pub async fn connect(base: &str, key: &str) -> Result<Api, String> {
        let host = base
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let tcp = tokio::net::TcpStream::connect(&host)
            .await
            .map_err(|e| format!("connect {host}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Api {
            send,
            host,
            key: key.to_owned(),
        })
    }

    /// POSTs `json` to `path`; anything but 200 is an error.
    pub async fn post(&mut self, path: &str, json: String) -> Result<(), String> {
        let req = hyper::Request::post(path)
            .header("host", self.host.as_str())
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| e.to_string())?;
        self.send.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .send
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("{path}: {status} {:?}", body.to_bytes()));
        }
        Ok(())
    }
}
