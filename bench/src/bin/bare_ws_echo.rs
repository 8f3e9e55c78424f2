//! The ceiling for the benchmark: a plain actix-ws echo at `/ws`, no SockJS
//! layer. `bare-ws-echo 127.0.0.1:8092`
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::Message;
use futures_util::StreamExt;

async fn ws(req: HttpRequest, body: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    let (resp, mut session, mut stream) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let ok = match msg {
                Message::Text(t) => session.text(t).await.is_ok(),
                Message::Ping(p) => session.pong(&p).await.is_ok(),
                Message::Close(r) => {
                    let _ = session.close(r).await;
                    return;
                }
                _ => true,
            };
            if !ok {
                return;
            }
        }
    });
    Ok(resp)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8092".into());
    let server = HttpServer::new(|| App::new().route("/ws", web::get().to(ws)))
        .on_connect(|conn, _| {
            if let Some(s) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = s.set_nodelay(true);
            }
        })
        .backlog(4096)
        .bind(&addr)?;
    println!("bare-ws-echo listening on http://{}", server.addrs()[0]);
    server.run().await
}
