// Transport lab: connect to an echo service with one chosen transport and
// watch what really happens. `window.lab` is also what the browser tests drive.
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  $('url').value = params.get('server') || location.origin + '/echo';
  $('transport').value = params.get('transport') || '';

  function log(cls, text) {
    const line = document.createElement('div');
    line.className = cls;
    line.textContent = new Date().toISOString().slice(11, 23) + ' ' + text;
    $('log').append(line);
    while ($('log').childNodes.length > 500) $('log').firstChild.remove();
    $('log').scrollTop = $('log').scrollHeight;
  }

  // Show raw SockJS frames (o, h, a[...], c[...]) as the client receives them.
  const received = SockJS.prototype._transportMessage;
  SockJS.prototype._transportMessage = function (frame) {
    log('in', describe(frame));
    return received.call(this, frame);
  };

  // xhr-streaming answers start with 2048 'h' bytes and a newline, so that
  // browsers start handing the stream to the page. sockjs-client passes
  // that line on like a frame; it is not one.
  function describe(frame) {
    if (frame.length > 1 && /^h+$/.test(frame)) {
      return '⇐ (xhr-streaming prelude: ' + frame.length + " bytes of 'h', not a frame)";
    }
    return '⇐ ' + (frame.length > 300 ? frame.slice(0, 300) + '… (' + frame.length + ' chars)' : frame);
  }

  let sock = null;
  let rtts = [];
  const pending = new Map();
  let seq = 0;
  const closed = [];
  const messages = [];

  function setConnected(on) {
    $('connect').disabled = on;
    $('disconnect').disabled = !on;
    $('send').disabled = !on;
    $('ping').disabled = !on;
  }

  function connect(url, transport) {
    return new Promise((resolve, reject) => {
      const options = transport ? { transports: [transport] } : {};
      log('sys', 'connecting to ' + url + (transport ? ' with ' + transport : ''));
      // The figures are per connection: a new transport starts from zero.
      rtts = [];
      $('rtt').textContent = '–';
      $('avg').textContent = '–';
      $('count').textContent = '0';
      sock = new SockJS(url, null, options);
      sock.onopen = () => {
        $('used').textContent = sock.transport;
        log('sys', 'open via ' + sock.transport);
        setConnected(true);
        resolve(sock.transport);
      };
      sock.onmessage = (e) => {
        messages.push(e.data);
        const done = pending.get(e.data);
        if (done) {
          pending.delete(e.data);
          done();
        }
        $('count').textContent = String(Number($('count').textContent) + 1);
      };
      sock.onclose = (e) => {
        log(e.code === 1000 ? 'sys' : 'err', 'closed ' + e.code + ' ' + e.reason);
        closed.push({ code: e.code, reason: e.reason, wasClean: e.wasClean });
        setConnected(false);
        // Echoes still awaited will not come: they end now, quietly.
        for (const [, p] of pending) p.closed();
        pending.clear();
        reject(new Error('closed before open: ' + e.code + ' ' + e.reason));
      };
    });
  }

  // Sends `text` and resolves with the round trip in ms when it comes back.
  function echo(text) {
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const timer = setTimeout(() => {
        pending.delete(text);
        reject(new Error('no echo within 10 s'));
      }, 10000);
      const done = () => {
        clearTimeout(timer);
        const rtt = performance.now() - started;
        rtts.push(rtt);
        $('rtt').textContent = rtt.toFixed(1);
        $('avg').textContent = (rtts.reduce((a, b) => a + b, 0) / rtts.length).toFixed(1);
        resolve(rtt);
      };
      done.closed = () => {
        clearTimeout(timer);
        reject(Object.assign(new Error('closed before the echo came back'), { closed: true }));
      };
      pending.set(text, done);
      log('out', '⇒ ' + (text.length > 300 ? text.slice(0, 300) + '… (' + text.length + ' chars)' : text));
      sock.send(text);
    });
  }

  function close(code, reason) {
    return new Promise((resolve) => {
      const before = closed.length;
      const wait = () => (closed.length > before ? resolve(closed[closed.length - 1]) : setTimeout(wait, 20));
      sock.close(code, reason);
      wait();
    });
  }

  // Connects and resolves with the close the server then sends.
  async function connectAndAwaitClose(url, transport) {
    const before = closed.length;
    const used = await connect(url, transport).catch((e) => 'failed: ' + e.message);
    await new Promise((resolve) => {
      const wait = () => (closed.length > before ? resolve() : setTimeout(wait, 20));
      wait();
    });
    return { transport: used, ...closed[closed.length - 1] };
  }

  // Resolves with the first message (since the page loaded) that starts
  // with `prefix`: what a backend pushed on its own.
  function waitFor(prefix, ms = 10000) {
    return new Promise((resolve, reject) => {
      const until = performance.now() + ms;
      const look = () => {
        const m = messages.find((x) => x.startsWith(prefix));
        if (m !== undefined) resolve(m);
        else if (performance.now() > until) reject(new Error('no message starting with ' + prefix));
        else setTimeout(look, 20);
      };
      look();
    });
  }

  // Sends `text` and resolves with the close the server answers with.
  function sendAndAwaitClose(text) {
    return new Promise((resolve) => {
      const before = closed.length;
      sock.send(text);
      const wait = () => (closed.length > before ? resolve(closed[closed.length - 1]) : setTimeout(wait, 20));
      wait();
    });
  }

  $('connect').addEventListener('click', () => connect($('url').value, $('transport').value).catch(() => {}));
  $('disconnect').addEventListener('click', () => close(1000, 'bye'));
  $('form').addEventListener('submit', (e) => {
    e.preventDefault();
    if ($('text').value) echo($('text').value + ' #' + ++seq).catch(logFailure);
    $('text').value = '';
  });
  $('ping').addEventListener('click', async () => {
    for (let i = 0; i < 10 && sock && sock.readyState === SockJS.OPEN; i++) await echo('ping #' + ++seq).catch(logFailure);
  });

  // A close says so itself: only a lost echo on an open connection is an error.
  function logFailure(err) {
    if (!err.closed) log('err', err.message);
  }

  window.lab = {
    connect, echo, close, connectAndAwaitClose, waitFor, sendAndAwaitClose,
    send: (text) => sock.send(text), transport: () => sock && sock.transport,
  };
  if (params.get('auto')) $('connect').click();
})();
