// sockjs-node peer for the benchmark: /echo (echo) and /broadcast (every
// message to every open connection), like the gateway's built-ins.
//   node server.js 127.0.0.1:8091   (HEARTBEAT=seconds to change the 25 s default)
const http = require('http');
const sockjs = require('sockjs');

const [host, port] = (process.argv[2] || '127.0.0.1:8091').split(':');
const options = {
  log: () => {},
  heartbeat_delay: Number(process.env.HEARTBEAT || 25) * 1000,
  disconnect_delay: 5000,
  response_limit: 128 * 1024,
};

const echo = sockjs.createServer(options);
echo.on('connection', (conn) => conn.on('data', (m) => conn.write(m)));

const open = new Set();
const broadcast = sockjs.createServer(options);
broadcast.on('connection', (conn) => {
  open.add(conn);
  conn.on('data', (m) => { for (const c of open) c.write(m); });
  conn.on('close', () => open.delete(conn));
});

const server = http.createServer();
server.on('connection', (s) => s.setNoDelay(true));
echo.installHandlers(server, { prefix: '/echo' });
broadcast.installHandlers(server, { prefix: '/broadcast' });
server.listen(Number(port), host, 4096, () => console.log(`sockjs-node listening on http://${host}:${port}`));
