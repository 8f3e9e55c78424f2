// The load tool for Socket.IO's side of bench/recovery-vs-socketio.sh:
// CLIENTS clients connect and get one message (Socket.IO recovers only a
// client that holds an offset, which comes with a message); each drops its
// connection (the transport closes, as a lost network: recovery applies);
// MESSAGES go out; every
// client reconnects at once and must get all of them, recovered. Prints a
// RESULT JSON line as the gateway's recovery-storm does.
//   node client.js http://127.0.0.1:PORT SERVER_PID CLIENTS MESSAGES
const fs = require('node:fs');
const { io } = require('socket.io-client');

const [url, pid, clients, messages] = [process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5])];
const cpu = () => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop().trim().split(/\s+/);
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
};
const once = (s, ev) => new Promise((r) => s.once(ev, r));

(async () => {
  const sockets = [];
  for (let i = 0; i < clients; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(clients, i + 100); j++) {
      const s = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
      s.got = [];
      s.on('m', (m) => s.got.push(m));
      sockets.push(s);
      batch.push(once(s, 'connect'));
    }
    await Promise.all(batch);
  }
  const warm = await fetch(`${url}/emit?from=0&n=1`);
  if (!warm.ok) throw new Error(`emit: ${warm.status}`);
  for (const s of sockets) while (s.got.length < 1) await new Promise((r) => setTimeout(r, 5));
  for (const s of sockets) s.got = [];
  await Promise.all(sockets.map((s) => { const d = once(s, 'disconnect'); s.io.engine.close(); return d; }));
  const r = await fetch(`${url}/emit?from=1&n=${messages}`);
  if (!r.ok) throw new Error(`emit: ${r.status}`);
  const cpu0 = cpu();
  const t0 = performance.now();
  const deadline = t0 + 60000;
  const times = await Promise.all(sockets.map(async (s) => {
    s.connect();
    await once(s, 'connect');
    while (s.got.length < messages && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    return { t: (performance.now() - t0) / 1000, ok: s.recovered && s.got.length === messages && s.got.every((m, i) => m === i + 1) };
  }));
  const first = times.findIndex((x) => !x.ok);
  if (first >= 0) console.error(`client ${first}: recovered ${sockets[first].recovered}, got ${sockets[first].got.length}`);
  const all = (performance.now() - t0) / 1000;
  const cpu1 = cpu();
  const lost = times.filter((x) => !x.ok).length * messages;
  const recovered = clients * messages - lost;
  const sorted = times.map((x) => x.t).sort((a, b) => a - b);
  const pct = (p) => sorted[Math.round((sorted.length - 1) * p)];
  console.log('RESULT ' + JSON.stringify({
    clients, messages_per_destination: messages, recovered, lost, errors: 0,
    p50_s: pct(0.5), p99_s: pct(0.99), all_s: all,
    server_cpu_us_per_recovered: recovered ? 1e6 * (cpu1 - cpu0) / recovered : 0,
  }));
  for (const s of sockets) s.disconnect();
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
