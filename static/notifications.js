// Notifications demo: @stomp/stompjs over sockjs-client. `window.notify` is
// also what the browser tests drive (tests/browser/stomp.test.mjs).
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  let tabId = sessionStorage.getItem('sockjs-gateway:tab');
  if (!tabId) {
    tabId = Math.random().toString(36).slice(2, 10);
    sessionStorage.setItem('sockjs-gateway:tab', tabId);
  }
  $('transport').value = params.get('transport') || '';

  // One STOMP connection at a time. Every frame received is kept by
  // destination, and errors, closes and recoveries are kept in order, for
  // the tests.
  const notify = {
    client: null,
    sock: null,
    user: null,
    received: {},
    errors: [],
    closes: [],
    recoveries: [],
    // Tokens sent to /gateway/token, as { expiresIn, at } (the notice's
    // seconds left, and when the new token was accepted).
    refreshes: [],
    // Destinations subscribed to: subscribed again, recovering, after each
    // reconnect.
    subscriptions: new Set(),

    // Signs in as `user` through the demo's token endpoint; the page's
    // `?token_ttl=S` asks for tokens that last S seconds.
    async token(user) {
      const ttl = params.get('token_ttl');
      const r = await fetch('/demo/token?user=' + encodeURIComponent(user) + (ttl ? '&ttl=' + ttl : ''));
      if (!r.ok) throw new Error((await r.json()).error);
      return (await r.json()).token;
    },

    // Connects; resolves with the transport used once CONNECTED arrives,
    // rejects with the ERROR's message or the close code otherwise. With
    // `reconnect`, a lost connection is made again (and its subscriptions,
    // recovering what was missed) until `disconnect`.
    //
    // With `renew` (a function that resolves with a fresh token), the
    // session's token is renewed when the gateway says it expires soon (a
    // MESSAGE on /user/queue/gateway with `x-token-expires-in`), and each
    // reconnect signs in with the newest one.
    connect({ url = location.origin + '/stomp', transport = '', token = null, headers = {}, reconnect = false, renew = null } = {}) {
      this.disconnect();
      this.user = token ? JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub : null;
      const connectHeaders = { ...headers };
      if (token) connectHeaders.Authorization = 'Bearer ' + token;
      this.renew = renew;
      let connected = false;
      return new Promise((resolve, reject) => {
        const client = new StompJs.Client({
          webSocketFactory: () => {
            this.sock = new SockJS(url, null, transport ? { transports: [transport] } : {});
            return this.sock;
          },
          connectHeaders,
          reconnectDelay: reconnect ? 500 : 0,
          // A reconnect after the token expired needs a fresh one.
          beforeConnect: async () => {
            if (connected && renew) connectHeaders.Authorization = 'Bearer ' + (await renew());
          },
          onConnect: () => {
            if (connected) {
              for (const d of this.subscriptions) this.subscribeNow(d);
              status('connected again over ' + this.sock.transport, true);
            }
            connected = true;
            if (renew) this.watchToken(client, connectHeaders);
            resolve(this.sock.transport);
          },
          onStompError: (frame) => {
            this.errors.push({ message: frame.headers.message, body: frame.body });
            reject(new Error(frame.headers.message));
          },
          onWebSocketClose: (e) => {
            this.closes.push({ code: e.code, reason: e.reason });
            reject(new Error('closed ' + e.code));
            status('closed (' + e.code + ')', false);
          },
        });
        this.client = client;
        client.activate();
      });
    },

    // Renews the session's token when the gateway's notice comes.
    watchToken(client, connectHeaders) {
      client.subscribe('/user/queue/gateway', async (m) => {
        const expiresIn = Number(m.headers['x-token-expires-in']);
        if (!expiresIn && expiresIn !== 0) return;
        try {
          const token = await this.renew();
          connectHeaders.Authorization = 'Bearer ' + token;
          await new Promise((resolve) => {
            const receipt = 't' + Math.random().toString(36).slice(2);
            client.watchForReceipt(receipt, () => resolve());
            client.publish({ destination: '/gateway/token', headers: { Authorization: 'Bearer ' + token, receipt } });
          });
          this.refreshes.push({ expiresIn, at: Date.now() });
        } catch (err) {
          status('could not renew the token: ' + err.message, false);
        }
      });
    },

    // Resolves once the server confirms the subscription (a receipt). Where
    // the destination keeps history, the last position this page got of it
    // (localStorage, per user) asks for what was missed since.
    subscribe(destination) {
      this.subscriptions.add(destination);
      return this.subscribeNow(destination);
    },

    subscribeNow(destination) {
      this.received[destination] = this.received[destination] || [];
      const before = this.received[destination].length;
      const pos = this.position(destination);
      // Until its receipt, a recovering subscription gets its recovery, in
      // order, from wherever it starts.
      const state = { recovering: !!pos };
      return new Promise((resolve) => {
        const receipt = 's' + Math.random().toString(36).slice(2);
        const headers = { receipt };
        if (pos) {
          headers['x-recover-offset'] = String(pos.offset);
          headers['x-recover-epoch'] = pos.epoch;
        }
        this.client.watchForReceipt(receipt, (frame) => {
          state.recovering = false;
          const h = frame.headers;
          this.keep(destination, h['x-stream-offset'], h['x-stream-epoch']);
          if (h['x-recovered'] !== undefined) {
            // Recovered publications come before the receipt.
            const r = { destination, recovered: h['x-recovered'] === 'true', count: this.received[destination].length - before };
            this.recoveries.push(r);
            showRecovery(r);
          }
          resolve();
        });
        const sub = this.client.subscribe(destination, (m) => {
          const offset = m.headers['x-stream-offset'];
          const epoch = m.headers['x-stream-epoch'];
          if (m.headers['x-recovered'] === 'false') {
            // The gateway could not vouch for what came before: it says so.
            this.keep(destination, offset, epoch);
            const r = { destination, recovered: false, count: 0 };
            this.recoveries.push(r);
            showRecovery(r);
            return;
          }
          if (offset !== undefined) {
            const kept = this.position(destination);
            if (kept && kept.epoch === epoch && Number(offset) <= kept.offset) return;
            // A position that skips one: subscribe again, to recover what
            // is missing or learn that it cannot be.
            const skips = kept && (kept.epoch === epoch ? Number(offset) > kept.offset + 1 : Number(offset) !== 1);
            if (skips && !state.recovering) {
              sub.unsubscribe();
              this.subscribeNow(destination);
              return;
            }
          }
          this.received[destination].push({ body: m.body, headers: m.headers });
          this.keep(destination, offset, epoch);
          show(destination, m.body);
        }, headers);
      });
    },

    // The last position kept of `destination`, if any.
    position(destination) {
      try {
        return JSON.parse(localStorage.getItem(this.positionKey(destination)));
      } catch (e) {
        return null;
      }
    },

    // Keeps a position: a later offset, or any of another epoch; a mark
    // (an epoch that starts with @) never replaces a stream's position.
    keep(destination, offset, epoch) {
      if (offset === undefined || epoch === undefined) return;
      const old = this.position(destination);
      if (old && !old.epoch.startsWith('@') && epoch.startsWith('@')) return;
      if (!old || old.epoch !== epoch || Number(offset) > old.offset) {
        localStorage.setItem(this.positionKey(destination), JSON.stringify({ offset: Number(offset), epoch }));
      }
    },

    // Per user and per tab: each tab shows every notification, so one
    // tab's position is not another's. The tab's id lives in
    // sessionStorage, which a reload keeps.
    positionKey(destination) {
      return 'sockjs-gateway:' + (this.user || '') + ':' + tabId + ':' + destination;
    },

    // Closes the connection as a lost network would (Chromium's offline
    // mode leaves an open WebSocket alone); with `reconnect`, it is made
    // again once the network lets it.
    drop() {
      this.sock.close(4000, 'dropped');
    },

    // A SEND; with a receipt, resolves once the server confirms it.
    send(destination, body, headers = {}) {
      return new Promise((resolve) => {
        const receipt = 'r' + Math.random().toString(36).slice(2);
        this.client.watchForReceipt(receipt, () => resolve());
        this.client.publish({ destination, body, headers: { ...headers, receipt } });
      });
    },

    // Resolves with the `n` messages of `destination` once they are in.
    async waitFor(destination, n, ms = 10000) {
      const until = Date.now() + ms;
      while ((this.received[destination] || []).length < n) {
        if (Date.now() > until) throw new Error(`only ${(this.received[destination] || []).length} of ${n} on ${destination}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return this.received[destination].slice(0, n);
    },

    // Resolves with the next close once it happened.
    async waitForClose(ms = 10000) {
      const until = Date.now() + ms;
      while (this.closes.length === 0) {
        if (Date.now() > until) throw new Error('no close');
        await new Promise((r) => setTimeout(r, 20));
      }
      return this.closes[0];
    },

    // Writes raw text to the connection, under STOMP (a broken frame).
    raw(text) {
      this.sock.send(text);
    },

    disconnect() {
      if (this.client) this.client.deactivate();
      this.client = null;
      this.received = {};
      this.errors = [];
      this.closes = [];
      this.recoveries = [];
      this.refreshes = [];
      this.subscriptions = new Set();
    },
  };
  window.notify = notify;

  function status(text, open) {
    $('status').textContent = text;
    $('status').className = open ? 'status-open' : 'status-closed';
    $('send').disabled = !open;
  }

  function show(destination, body) {
    const target = destination.startsWith('/user/') ? $('mine') : $('feed');
    // The placeholder goes with the first notification; recovery lines stay.
    if ($('mine-empty') && target === $('mine')) $('mine-empty').remove();
    const line = document.createElement('div');
    line.textContent = new Date().toLocaleTimeString() + '  ' + destination + '  ' + body;
    target.prepend(line);
  }

  function showRecovery(r) {
    let text = null;
    if (r.recovered && r.count > 0) text = r.count + ' missed notification' + (r.count === 1 ? '' : 's') + ' recovered';
    if (!r.recovered) text = 'some notifications could not be recovered: reload to see the latest';
    if (!text) return;
    const line = document.createElement('div');
    line.className = 'hint';
    line.textContent = new Date().toLocaleTimeString() + '  ' + r.destination + ': ' + text;
    (r.destination.startsWith('/user/') ? $('mine') : $('feed')).prepend(line);
  }

  // The API's address and the demo key the gateway made at start (the
  // embedded demo config only); elsewhere the page says how to set a key.
  fetch('/demo/api').then((r) => (r.ok ? r.json() : null)).then((api) => {
    if (api) {
      $('curl-key').textContent = api.key;
      $('curl-url').textContent = api.url;
      $('curl-hint').textContent = 'Send one from a backend, through the HTTP API, with the demo key the gateway made at start (it printed it too):';
    } else {
      // The compose demo's key is in the shell that started it.
      $('curl-hint').textContent = 'Send one from a backend, through the HTTP API, with the key the gateway was given ' +
        '(the compose demo: SOCKJS_GATEWAY_API_KEY in the shell that started it; elsewhere SOCKJS_GATEWAY__API__KEY):';
    }
  }).catch(() => {});

  $('signin').addEventListener('submit', async (e) => {
    e.preventDefault();
    const user = $('user').value.trim();
    try {
      status('connecting…', false);
      const token = user ? await notify.token(user) : null;
      const renew = user ? () => notify.token(user) : null;
      const used = await notify.connect({ transport: $('transport').value, token, reconnect: true, renew });
      await notify.subscribe('/topic/feed');
      await notify.subscribe('/topic/news');
      if (user) await notify.subscribe('/user/queue/notifications');
      $('curl-user').textContent = user || 'alice';
      const empty = $('mine-empty');
      if (empty) empty.textContent = user ? 'Signed in as ' + user + ': your notifications appear here.' : 'Sign in with a name to get yours.';
      status('connected over ' + used + (user ? ' as ' + user : ' (anonymous)'), true);
    } catch (err) {
      status(err.message, false);
    }
  });

  $('post').addEventListener('submit', (e) => {
    e.preventDefault();
    if (!$('text').value) return;
    notify.send('/topic/feed', $('text').value);
    $('text').value = '';
  });
})();
