// Socket.IO 4.8 with connection state recovery (in-memory adapter), the
// peer of bench/recovery-vs-socketio.sh: `GET /emit?from=F&n=N` emits
// messages F..F+N-1 to every client, as the gateway's API publishes to a
// topic.
//   node server.js 127.0.0.1:PORT
const { createServer } = require('node:http');
const { Server } = require('socket.io');

const [host, port] = process.argv[2].split(':');
const http = createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname !== '/emit') {
    res.statusCode = 404;
    return res.end();
  }
  const from = Number(url.searchParams.get('from') || 1);
  const n = Number(url.searchParams.get('n'));
  for (let i = from; i < from + n; i++) io.emit('m', i);
  res.end('ok');
});
const io = new Server(http, {
  transports: ['websocket'],
  connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true },
});
http.listen(Number(port), host);
