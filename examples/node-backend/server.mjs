// A small WebSocket backend in Node.js, to put behind the gateway's
// `kind = "proxy"` service: it never knows which SockJS transport a
// browser uses, it just sees one WebSocket per session.
//   node examples/node-backend/server.mjs [HOST:PORT]   (default 127.0.0.1:9000)
// Paths:
//   /socket          echo; "push" gets a message a moment later;
//                    "close-4001" closes with 4001; the first message
//                    says what the backend learned in the handshake.
//   /private         the same, but refuses (HTTP 401) without a
//                    `demo_user=` cookie: a backend that requires login.
//   POST /stomp      the app webhook of a `kind = "stomp"` service: a SEND
//                    to /app/echo is answered on /user/queue/replies,
//                    /app/hello on /user/queue/notifications.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const [host, port] = (process.argv[2] || '127.0.0.1:9000').split(':');
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/stomp') return appWebhook(req, res);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('node backend: connect with WebSocket to /socket or /private\n');
});

// The gateway POSTs {user, session, destination, headers, body} for each
// SEND to /app/...; the reply's messages go back to that session.
function appWebhook(req, res) {
  let text = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { text += chunk; });
  req.on('end', () => {
    let send;
    try {
      send = JSON.parse(text);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const reply = (destination, body) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ messages: [{ destination, body }] }));
    };
    if (send.destination === '/app/echo') {
      reply('/user/queue/replies', `echo: ${send.body}`);
    } else if (send.destination === '/app/hello') {
      reply('/user/queue/notifications', `hello ${send.user || 'stranger'}, from the Node backend at ${new Date().toISOString()}`);
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `no handler for ${send.destination}` }));
    }
  });
}
const wss = new WebSocketServer({ noServer: true });

server.on('upgrade', (req, socket, head) => {
  const path = new URL(req.url, 'http://x').pathname;
  const user = /(?:^|;\s*)demo_user=([^;]+)/.exec(req.headers.cookie || '')?.[1];
  if (path !== '/socket' && path !== '/private') {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  if (path === '/private' && !user) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => session(ws, req, user));
});

function session(ws, req, user) {
  ws.send(JSON.stringify({
    hello: user || 'anonymous',
    client: req.headers['x-forwarded-for'] || null,
    proto: req.headers['x-forwarded-proto'] || null,
    host: req.headers['x-forwarded-host'] || null,
    origin: req.headers.origin || null,
  }));
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? data : data.toString();
    if (text === 'close-4001') {
      ws.close(4001, 'Closed by the backend');
    } else if (text === 'push') {
      setTimeout(() => ws.readyState === ws.OPEN && ws.send(`pushed at ${new Date().toISOString()}`), 100);
    } else {
      ws.send(text);
    }
  });
}

server.listen(Number(port), host, () => {
  // Scripts wait for this line.
  console.log(`node backend listening on ws://${host}:${server.address().port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    for (const ws of wss.clients) ws.close(1001, 'Backend shutting down');
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
