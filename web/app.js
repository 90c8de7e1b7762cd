// oms live order page: plain JavaScript over the Connect protocol (JSON), on
// the port that serves gRPC. Lists recent orders, follows WatchOrders live,
// resumes with since_seq after the stream drops (a server restart included)
// so no event is missed, and creates, confirms, ships and cancels orders.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const PREFIX = 'ORDER_STATUS_';
  const MAX_ROWS = 200;
  const RECENT_MS = 24 * 3600 * 1000;
  const NEXT = { // the buttons each status offers: [label, new status or 'cancel', style]
    PENDING: [['Confirm', 'CONFIRMED', ''], ['Cancel', 'cancel', 'danger']],
    CONFIRMED: [['Ship', 'SHIPPED', ''], ['Cancel', 'cancel', 'danger']],
    SHIPPED: [['Deliver', 'DELIVERED', 'secondary']],
  };

  let token = sessionStorage.getItem('oms.token') || '';
  const orders = new Map(); // id -> Order in its JSON form
  let lastSeq = 0n;         // the last event seen; the stream resumes after it
  let watchCtrl = null;
  let tokenSet = null;      // resolves when a new token is entered

  class RpcError extends Error {
    constructor(code, message) {
      super(message || code);
      this.code = code;
    }
  }

  // --- the Connect protocol --------------------------------------------------

  function headers(contentType) {
    const h = { 'content-type': contentType, 'connect-protocol-version': '1' };
    if (token) h.authorization = 'Bearer ' + token;
    return h;
  }

  const HTTP_CODES = { 400: 'invalid_argument', 401: 'unauthenticated', 403: 'permission_denied',
                       404: 'unimplemented', 408: 'deadline_exceeded', 409: 'aborted',
                       429: 'unavailable', 502: 'unavailable', 503: 'unavailable',
                       504: 'unavailable' };

  async function errorOf(resp) {
    let body = null;
    try { body = await resp.json(); } catch (e) { /* not the protocol's JSON */ }
    const code = (body && body.code) || HTTP_CODES[resp.status] || 'unknown';
    return new RpcError(code, (body && body.message) || resp.statusText || code);
  }

  async function unary(path, req) {
    let resp;
    try {
      resp = await fetch('/' + path, { method: 'POST', headers: headers('application/json'),
                                       body: JSON.stringify(req) });
    } catch (e) {
      throw new RpcError('unavailable', 'the server cannot be reached');
    }
    if (!resp.ok) throw await errorOf(resp);
    return resp.json();
  }

  function envelope(obj) {
    const body = new TextEncoder().encode(JSON.stringify(obj));
    const out = new Uint8Array(5 + body.length);
    new DataView(out.buffer).setUint32(1, body.length);
    out.set(body, 5);
    return out;
  }

  function concat(a, b) {
    if (!a.length) return b;
    const out = new Uint8Array(a.length + b.length);
    out.set(a, 0);
    out.set(b, a.length);
    return out;
  }

  // A server-streaming call: onOpen() once the server accepted it, onMessage(m)
  // per message. Resolves at the end of the stream; rejects with an RpcError
  // when it ends with an error or the connection breaks.
  async function serverStream(path, req, { onOpen, onMessage, signal }) {
    let resp;
    try {
      resp = await fetch('/' + path, { method: 'POST', headers: headers('application/connect+json'),
                                       body: envelope(req), signal });
    } catch (e) {
      throw new RpcError(signal && signal.aborted ? 'canceled' : 'unavailable',
                         'the server cannot be reached');
    }
    if (!resp.ok) throw await errorOf(resp);
    if (onOpen) onOpen();
    const reader = resp.body.getReader();
    const text = new TextDecoder();
    let buf = new Uint8Array(0);
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw new RpcError(signal && signal.aborted ? 'canceled' : 'unavailable', 'the stream broke');
      }
      if (chunk.done) throw new RpcError('unavailable', 'the stream ended without its end message');
      buf = concat(buf, chunk.value);
      while (buf.length >= 5) {
        const flags = buf[0];
        const len = new DataView(buf.buffer, buf.byteOffset, 5).getUint32(1);
        if (buf.length < 5 + len) break;
        if (flags & 1) throw new RpcError('internal', 'a compressed message was not asked for');
        const msg = JSON.parse(text.decode(buf.subarray(5, 5 + len)));
        buf = buf.slice(5 + len);
        if (flags & 2) {
          if (msg.error) throw new RpcError(msg.error.code || 'unknown', msg.error.message);
          return;
        }
        onMessage(msg);
      }
    }
  }

  // --- presentation ------------------------------------------------------------

  function statusName(s) {
    return (s || PREFIX + 'UNSPECIFIED').replace(PREFIX, '');
  }

  function money(cents) {
    let c = BigInt(cents || '0');
    const sign = c < 0n ? '-' : '';
    if (c < 0n) c = -c;
    return sign + (c / 100n).toString() + '.' + (c % 100n).toString().padStart(2, '0');
  }

  function when(ms) {
    const d = new Date(Number(ms || 0));
    return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
  }

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'data') Object.assign(e.dataset, v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c); // text goes in as text, never as markup
    return e;
  }

  function say(text, kind) {
    const m = $('message');
    m.textContent = text;
    m.className = 'message' + (kind === 'info' ? ' info' : '');
    m.hidden = !text;
  }

  function setState(kind, text) {
    const s = $('stream-state');
    s.className = 'state state-' + kind;
    s.textContent = text;
  }

  function rowOf(o) {
    const st = statusName(o.status);
    const lines = (o.lines || []).map((l) => `${l.quantity || 0} × ${l.sku}`).join(', ');
    const actions = el('div', { class: 'actions' });
    for (const [label, to, style] of NEXT[st] || []) {
      actions.append(el('button', { type: 'button', class: style,
                                    'aria-label': `${label} order ${o.id}`,
                                    onclick: (ev) => act(ev.currentTarget, o.id, to) }, label));
    }
    return el('tr', { id: 'order-' + o.id },
              el('td', { data: { label: 'Order' } }, o.id),
              el('td', { data: { label: 'Customer' } }, o.customerId || ''),
              el('td', { data: { label: 'Lines' } }, lines),
              el('td', { class: 'num', data: { label: 'Total' } }, money(o.totalCents)),
              el('td', { data: { label: 'Status' } },
                 el('span', { class: 'status status-' + st }, st)),
              el('td', { class: 'num', data: { label: 'Updated' } }, when(o.updatedAt)),
              el('td', { data: { label: '' } }, actions));
  }

  function render(changedId) {
    const body = $('orders').tBodies[0];
    const list = [...orders.values()].sort((a, b) => Number(BigInt(b.createdAt || '0') -
                                                           BigInt(a.createdAt || '0')) ||
                                                    b.id.localeCompare(a.id));
    for (const o of list.slice(MAX_ROWS)) orders.delete(o.id);
    const focused = document.activeElement && document.activeElement.closest('tr');
    const focusId = focused && focused.id;
    body.replaceChildren(...list.slice(0, MAX_ROWS).map(rowOf));
    if (changedId) {
      const tr = $('order-' + changedId);
      if (tr) tr.classList.add('flash');
    }
    if (focusId && $(focusId)) { // keep the keyboard where it was
      const b = $(focusId).querySelector('button');
      if (b) b.focus();
    }
    $('empty').hidden = orders.size > 0;
    $('orders-count').textContent = orders.size ? `(${orders.size})` : '';
  }

  function upsert(o) {
    const cur = orders.get(o.id);
    if (cur && BigInt(cur.version || '0') > BigInt(o.version || '0')) return; // older news
    orders.set(o.id, o);
    render(o.id);
  }

  // --- the live stream -------------------------------------------------------------

  async function onEvent(ev) {
    const seq = BigInt(ev.seq || '0');
    if (seq > lastSeq) lastSeq = seq;
    $('last-seq').textContent = '#' + lastSeq.toString();
    document.body.dataset.lastSeq = lastSeq.toString(); // for scripts and tests
    const cur = orders.get(ev.orderId);
    if (cur && BigInt(cur.version || '0') >= BigInt(ev.version || '0')) return;
    if (cur && cur.lines) { // a status change: the event says all that changed
      upsert({ ...cur, status: ev.status, version: ev.version, updatedAt: ev.at });
      return;
    }
    try { // a new order: its lines and total come from GetOrder
      upsert(await unary('oms.v1.OrderService/GetOrder', { id: ev.orderId }));
    } catch (e) {
      say(`order ${ev.orderId}: ${e.message}`);
    }
  }

  async function loadOrders(signal) {
    const from = String(Date.now() - RECENT_MS);
    const seen = [];
    await serverStream('oms.v1.OrderService/ListOrders', { createdFrom: from }, {
      onMessage: (o) => seen.push(o), signal });
    for (const o of seen) {
      const cur = orders.get(o.id);
      if (!cur || BigInt(cur.version || '0') <= BigInt(o.version || '0')) orders.set(o.id, o);
    }
    render();
  }

  function delay(ms) {
    return new Promise((r) => setTimeout(r, ms));
  }

  // Follows WatchOrders for good. The first subscription asks for events from
  // now on and then lists the recent orders (so nothing falls between the
  // two); after a drop it resumes at lastSeq + 1, which replays what was
  // missed from the server's store.
  async function watchForever() {
    let backoff = 500;
    for (;;) {
      watchCtrl = new AbortController();
      const ctrl = watchCtrl;
      const resume = lastSeq > 0n;
      setState('connecting', resume ? `resuming after #${lastSeq}…` : 'connecting…');
      try {
        let listed = resume ? Promise.resolve() : null;
        await serverStream('oms.v1.OrderService/WatchOrders',
                           { sinceSeq: resume ? (lastSeq + 1n).toString() : '0' }, {
          onOpen: () => {
            setState('live', 'live');
            backoff = 500;
            if (!listed) listed = loadOrders(ctrl.signal).catch((e) => say('listing orders: ' + e.message));
          },
          onMessage: onEvent,
          signal: ctrl.signal,
        });
        setState('down', 'stream ended; reconnecting');
      } catch (e) {
        if (e.code === 'canceled') continue; // a new token: subscribe again at once
        if (e.code === 'unauthenticated' || e.code === 'permission_denied') {
          setState('down', 'not authorized');
          say(`${e.message}: enter a token above`);
          await new Promise((r) => { tokenSet = r; });
          continue;
        }
        setState('down', `stream down (${e.code}); reconnecting`);
      }
      await delay(backoff);
      backoff = Math.min(backoff * 2, 8000);
    }
  }

  // --- actions -------------------------------------------------------------------

  async function act(button, id, to) {
    const o = orders.get(id);
    if (!o) return;
    button.disabled = true;
    try {
      const req = { id, expectedVersion: o.version || '0' };
      const next = to === 'cancel'
        ? await unary('oms.v1.OrderService/CancelOrder', { ...req, reason: 'cancelled on the web page' })
        : await unary('oms.v1.OrderService/UpdateOrderStatus', { ...req, status: PREFIX + to });
      upsert(next);
      say('');
    } catch (e) {
      say(`order ${id}: ${e.message}`);
      if (e.code === 'aborted' || e.code === 'failed_precondition') {
        try { upsert(await unary('oms.v1.OrderService/GetOrder', { id })); } catch (e2) { /* shown */ }
      }
    } finally {
      button.disabled = false;
    }
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return 'web-' + crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return 'web-' + [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  }

  let pendingKey = null; // kept until the server answered, so a retry is the same order

  async function createOrder(ev) {
    ev.preventDefault();
    const f = ev.currentTarget;
    const qty = f.qty.value.trim();
    if (!/^[1-9][0-9]{0,6}$/.test(qty)) {
      say('Quantity: a whole number from 1 to 1000000');
      f.qty.focus();
      return;
    }
    pendingKey = pendingKey || newKey();
    $('create-btn').disabled = true;
    try {
      const o = await unary('oms.v1.OrderService/CreateOrder', {
        customerId: f.customer.value, lines: [{ sku: f.sku.value, quantity: qty }],
        idempotencyKey: pendingKey });
      pendingKey = null;
      upsert(o);
      say(`Order ${o.id} created: ${money(o.totalCents)}`, 'info');
    } catch (e) {
      if (e.code !== 'unavailable' && e.code !== 'deadline_exceeded') pendingKey = null;
      say(`Create order: ${e.message}`);
    } finally {
      $('create-btn').disabled = false;
    }
  }

  function fill(select, items) {
    select.replaceChildren(...items.map(([value, label]) => el('option', { value }, label)));
  }

  async function loadChoices() {
    const customers = [], products = [];
    try {
      await serverStream('oms.v1.CustomerService/ListCustomers', { pageSize: 100 },
                         { onMessage: (c) => customers.push(c) });
      await serverStream('oms.v1.InventoryService/ListProducts', { pageSize: 100 },
                         { onMessage: (p) => products.push(p) });
    } catch (e) {
      say('Loading customers and products: ' + e.message);
    }
    fill($('customer'), customers.map((c) => [c.id, `${c.name} (${c.id})` +
      (c.status === 'CUSTOMER_STATUS_SUSPENDED' ? ' – suspended' : '')]));
    fill($('sku'), products.map((p) => [p.sku, `${p.name} · ${money(p.unitPriceCents)} · ` +
      `${p.available || 0} available`]));
  }

  function useToken(ev) {
    ev.preventDefault();
    token = $('token').value.trim();
    sessionStorage.setItem('oms.token', token);
    say('');
    loadChoices();
    if (tokenSet) {
      const r = tokenSet;
      tokenSet = null;
      r();
    } else if (watchCtrl) {
      watchCtrl.abort(); // subscribe again with the new token
    }
  }

  $('token').value = token;
  $('auth-form').addEventListener('submit', useToken);
  $('create-form').addEventListener('submit', createOrder);
  render();
  loadChoices();
  watchForever();
})();
