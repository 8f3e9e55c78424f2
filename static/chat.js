// Chat over the /chat broadcast service: every message goes to every open
// session, whatever transport each tab ended up on.
(function () {
  const $ = (id) => document.getElementById(id);
  const name = $('name');
  name.value = localStorage.getItem('chat-name') || 'guest-' + Math.floor(Math.random() * 1000);
  name.addEventListener('change', () => localStorage.setItem('chat-name', name.value));

  let sock;
  function connect() {
    sock = new SockJS(location.origin + '/chat');
    sock.onopen = () => {
      $('status').textContent = 'connected via ' + sock.transport;
      $('status').className = 'status-open';
      $('send').disabled = false;
    };
    sock.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch (_) { m = { name: '?', text: e.data }; }
      const line = document.createElement('div');
      const who = document.createElement('b');
      who.textContent = m.name + ': ';
      line.append(who, document.createTextNode(m.text));
      $('messages').append(line);
      $('messages').scrollTop = $('messages').scrollHeight;
    };
    sock.onclose = (e) => {
      $('status').textContent = 'closed (' + e.code + ' ' + e.reason + '), reconnecting…';
      $('status').className = 'status-closed';
      $('send').disabled = true;
      setTimeout(connect, 2000);
    };
  }
  $('form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('text').value.trim();
    if (!text || sock.readyState !== SockJS.OPEN) return;
    sock.send(JSON.stringify({ name: name.value, text }));
    $('text').value = '';
  });
  connect();
})();
