// @pushd/client, bundled from client/js/src by esbuild. Generated: do not edit;
// regenerate with `npm run build:web` in client/js (`make web`).

// src/cursor.ts
var Cursor = class {
  base;
  done = /* @__PURE__ */ new Set();
  /** Pushes awaiting their receipt, and the connection (generation) that delivered each. */
  pending = /* @__PURE__ */ new Map();
  /** Receipts the app gave that the server could not take yet (see ackLater). */
  unsent = /* @__PURE__ */ new Set();
  constructor(since) {
    if (since !== void 0) this.base = BigInt(since);
  }
  /** The seq to resume from (`since`), or undefined when nothing is known yet. */
  get since() {
    return this.base?.toString();
  }
  /** Whether a push with this seq was processed already: drop it. */
  seen(seq) {
    return this.base !== void 0 && seq <= this.base || this.done.has(seq);
  }
  /** Records that the push with seq was processed (delivered on connection gen); needsAck holds the cursor until its receipt. */
  take(seq, needsAck, gen = 0) {
    if (needsAck) this.pending.set(seq, gen);
    else this.done.add(seq);
    this.compact();
  }
  /** Whether the push with seq awaits its receipt. */
  awaits(seq) {
    return this.pending.has(seq);
  }
  /** The connection that delivered the push awaiting a receipt. */
  deliveredOn(seq) {
    return this.pending.get(seq);
  }
  /** The receipt of a pending push was sent: the cursor may pass it. */
  ackSent(seq) {
    if (!this.pending.delete(seq)) return;
    this.unsent.delete(seq);
    this.done.add(seq);
    this.compact();
  }
  /**
   * The app gave a receipt the server cannot take now: a node takes receipts only for pushes it
   * delivered on the current session, so it is sent when the resume replays the push.
   */
  ackLater(seq) {
    if (this.pending.has(seq)) this.unsent.add(seq);
  }
  /** Whether the app acknowledged this push already, waiting for a replay to send it. */
  acked(seq) {
    return this.unsent.has(seq);
  }
  /** Starts over at seq: the server's position, when history did not reach back to `since`. */
  reset(seq) {
    this.base = seq;
    this.done.clear();
    this.pending.clear();
    this.unsent.clear();
  }
  /** @internal For tests: seqs processed above the resume point, and those awaiting a receipt. */
  state() {
    const list = (s) => [...s].sort((a, b) => a < b ? -1 : 1).map(String);
    return { since: this.since, done: list(this.done), pending: list(new Set(this.pending.keys())) };
  }
  /** Moves base up over processed seqs that are below every pending one. */
  compact() {
    let lowPending;
    for (const p of this.pending.keys()) if (lowPending === void 0 || p < lowPending) lowPending = p;
    for (; ; ) {
      let low;
      for (const d of this.done) if (low === void 0 || d < low) low = d;
      if (low === void 0 || lowPending !== void 0 && low > lowPending) return;
      this.done.delete(low);
      if (this.base === void 0 || low > this.base) this.base = low;
    }
  }
};
function parseSeq(seq) {
  return typeof seq === "string" && /^\d{1,20}$/.test(seq) ? BigInt(seq) : void 0;
}

// src/emitter.ts
var Emitter = class {
  listeners = /* @__PURE__ */ new Map();
  /** Adds a listener; returns a function that removes it. */
  on(type, fn) {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, set = /* @__PURE__ */ new Set());
    set.add(fn);
    return () => this.off(type, fn);
  }
  /** Removes a listener added with {@link Emitter.on}. */
  off(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }
  /** Adds a listener that runs once; returns a function that removes it. */
  once(type, fn) {
    const off = this.on(type, (e) => {
      off();
      return fn(e);
    });
    return off;
  }
  /** @internal Whether anyone listens to type. */
  listens(type) {
    return (this.listeners.get(type)?.size ?? 0) > 0;
  }
  /**
   * @internal Calls every listener of type with event, in the order they were added, and returns
   * what they returned; `ok` is false when one of them threw.
   */
  emit(type, event) {
    const results = [];
    let ok = true;
    const set = this.listeners.get(type);
    if (!set) return { results, ok };
    for (const fn of [...set]) {
      try {
        results.push(fn(event));
      } catch (err) {
        ok = false;
        this.listenerError(err, String(type));
      }
    }
    return { results, ok };
  }
  /** @internal Called with what a listener threw. */
  listenerError(err, type) {
    console.error(`pushd: a ${type} listener threw`, err);
  }
};

// src/environment.ts
function defaultWindow() {
  const w = globalThis.window;
  return w && typeof w.addEventListener === "function" ? w : void 0;
}
function isOffline(w) {
  return w?.navigator?.onLine === false;
}
function watchEnvironment(w, on) {
  if (!w) return () => {
  };
  const online = () => on.online();
  const offline = () => on.offline();
  const visibility = () => {
    if (w.document?.visibilityState === "visible") on.visible();
  };
  w.addEventListener("online", online);
  w.addEventListener("offline", offline);
  w.document?.addEventListener("visibilitychange", visibility);
  return () => {
    w.removeEventListener("online", online);
    w.removeEventListener("offline", offline);
    w.document?.removeEventListener("visibilitychange", visibility);
  };
}

// src/errors.ts
var PushdError = class extends Error {
  /** The error code. */
  code;
  /** The doc the error is about, when it is about one. */
  doc;
  /** For errors caused by a close: its close code. */
  closeCode;
  constructor(code, message, options = {}) {
    super(message, options.cause === void 0 ? void 0 : { cause: options.cause });
    this.name = "PushdError";
    this.code = code;
    this.doc = options.doc;
    this.closeCode = options.closeCode;
  }
};

// src/heartbeat.ts
var Heartbeat = class {
  constructor(ping, dead) {
    this.ping = ping;
    this.dead = dead;
  }
  ping;
  dead;
  /** See {@link HeartbeatMode}; set before `start`. */
  mode = "ping";
  interval = 0;
  grace = 0;
  timeout = 0;
  last = 0;
  pingTimer;
  watchTimer;
  /** Starts (or retimes) the heartbeat with the interval and timeout of the latest hello or pong. */
  start(interval, timeout) {
    this.set(interval, timeout);
    this.last = Date.now();
    clearTimeout(this.pingTimer);
    if (this.interval > 0) this.pingTimer = setTimeout(() => this.tick(), this.interval);
  }
  /** Takes a pong's interval and timeout; the next ping waits the new interval. */
  update(interval, timeout) {
    if (this.mode !== "stream") this.set(interval, timeout);
  }
  /** A frame (or, on HTTP, any traffic) arrived: the server is alive. */
  received() {
    this.last = Date.now();
    if (this.watchTimer === void 0) return;
    clearTimeout(this.watchTimer);
    this.watchTimer = void 0;
  }
  /** Pings now and expects a frame within the grace (page visible again, network changed). */
  check() {
    if (this.watchTimer !== void 0 || !this.interval) return;
    this.ping();
    this.expect(this.grace, `heartbeat_timeout: no frame from the server within ${this.grace}ms of a ping`);
  }
  /** Declares the server dead unless a frame arrives within ms. */
  expect(ms, why) {
    clearTimeout(this.watchTimer);
    this.watchTimer = setTimeout(() => {
      this.stop();
      this.dead(why);
    }, ms);
  }
  /** Clears every timer. */
  stop() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.watchTimer);
    this.pingTimer = this.watchTimer = void 0;
  }
  set(interval, timeout) {
    if (!(interval > 0) || !Number.isFinite(interval)) return;
    this.interval = interval;
    this.timeout = timeout > interval ? timeout : 2 * interval;
    this.grace = this.timeout - interval;
  }
  tick() {
    this.pingTimer = setTimeout(() => this.tick(), this.interval);
    const silent = Date.now() - this.last;
    if (this.mode === "ping" || this.mode === "probe" && silent >= this.interval) this.check();
    else if (this.mode === "stream" && silent > this.timeout) {
      this.stop();
      this.dead(`heartbeat_timeout: nothing from the server for ${silent}ms (ping_timeout ${this.timeout}ms)`);
    }
  }
};

// src/sse.ts
var EventStreamParser = class {
  constructor(event) {
    this.event = event;
  }
  event;
  /** The ID of the last event dispatched: what a reconnect sends as Last-Event-ID. */
  id = "";
  /** The latest `retry:` (ms), when the server sent one. */
  retry;
  rest = "";
  data;
  nextId;
  /** Parses the next chunk of the stream, dispatching the events it completes. */
  push(chunk) {
    const s = this.rest + chunk;
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const ch = s.charCodeAt(i);
      if (ch !== 10 && ch !== 13) continue;
      if (ch === 13 && i + 1 === s.length) break;
      this.line(s.slice(start, i));
      if (ch === 13 && s.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.rest = s.slice(start);
  }
  line(line) {
    if (line === "") {
      if (this.nextId !== void 0) this.id = this.nextId;
      const data = this.data;
      this.data = this.nextId = void 0;
      if (data !== void 0) this.event(data);
      return;
    }
    const colon = line.indexOf(":");
    if (colon === 0) return;
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "data") this.data = this.data === void 0 ? value : `${this.data}
${value}`;
    else if (field === "id" && !value.includes("\0")) this.nextId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
};

// src/http.ts
function httpBase(url) {
  const u = new URL(url, globalThis.location?.href);
  u.protocol = u.protocol === "wss:" ? "https:" : u.protocol === "ws:" ? "http:" : u.protocol;
  u.pathname = u.pathname.replace(/\/?(ws\/?)?$/, "/http");
  u.search = u.hash = "";
  return u.href;
}
var refusals = {
  token_missing: 4003,
  token_invalid: 4003,
  invalid_user: 4003,
  token_expired: 4001,
  forbidden_origin: 4004,
  too_many_sessions: 4009,
  rate_limited: 4029,
  draining: 1012,
  over_capacity: 1013,
  not_leased: 1013,
  duplicate_node_id: 1013,
  starting: 1013
};
function httpTransport(kind, env) {
  return (url, on) => new HttpConn(kind, env, httpBase(url), on);
}
var enc = encodeURIComponent;
var text = (err) => err instanceof Error ? err.message : String(err);
function parse(s) {
  try {
    return JSON.parse(s);
  } catch {
    return void 0;
  }
}
function refusal(res, body, what) {
  if (typeof body?.error !== "string") return { error: "http_error", message: `HTTP ${res.status} from ${what}` };
  let message = String(body.message ?? "");
  const n = body.avoid_node;
  if (Number.isInteger(n) && n >= 0) message = `node ${n}; ${message.replace(/^node [0-9]+; /, "")}`;
  return { error: body.error, message };
}
var HttpConn = class {
  constructor(kind, env, base, on) {
    this.kind = kind;
    this.env = env;
    this.base = base;
    this.on = on;
    this.heartbeat = kind === "sse" && env.EventSource ? "probe" : "stream";
    queueMicrotask(() => this.done || on.open());
  }
  kind;
  env;
  base;
  on;
  heartbeat;
  ctl = new AbortController();
  /** `?sid=…&secret=…`, once connected. */
  q = "";
  sid = "";
  secret = "";
  done = false;
  /** The session is known to be gone (close frame, 404, 410): no need to close it. */
  gone = false;
  /** A frame came (the first is hello): the transport works. */
  hello = false;
  /** A read failed on the way and was retried; a second failure in a row gives up. */
  retried = false;
  first = true;
  out = [];
  sending = false;
  cursor = "0";
  lastId = "";
  hint = 1e3;
  es;
  timer;
  unwatch;
  send(frame) {
    if (this.done) return;
    if (this.first) {
      this.first = false;
      void this.connect(frame);
      return;
    }
    this.out.push(frame);
    void this.pump();
  }
  close() {
    if (this.done) return;
    this.end();
  }
  /** Stops everything; closes the session unless it is gone. */
  end() {
    this.done = true;
    this.ctl.abort();
    clearTimeout(this.timer);
    this.unwatch?.();
    if (this.es) {
      this.es.onopen = this.es.onmessage = this.es.onerror = null;
      this.es.close();
    }
    if (this.sid && !this.gone) this.env.fetch(`${this.base}/close${this.q}`, { method: "POST", keepalive: true }).catch(() => {
    });
  }
  /** The connection is over: tell the client. */
  fail(code, reason, retry) {
    if (this.done) return;
    this.end();
    this.on.close(code, reason, retry);
  }
  async connect(frame) {
    let res;
    let body;
    try {
      res = await this.env.fetch(`${this.base}/connect`, {
        method: "POST",
        // A string body is text/plain: no CORS preflight before the first frame.
        body: `{"transport":"${this.kind}",${frame.slice(1)}`,
        signal: this.ctl.signal
      });
      body = parse(await res.text());
    } catch (err) {
      return this.fail(1006, `connect_failed: ${text(err)}`);
    }
    if (this.done) return;
    if (!res.ok || typeof body?.sid !== "string" || typeof body.secret !== "string") {
      const e = refusal(res, body, "/http/connect");
      return this.fail(refusals[e.error] ?? 1006, `${e.error}: ${e.message}`);
    }
    this.sid = body.sid;
    this.secret = body.secret;
    this.q = `?sid=${enc(this.sid)}&secret=${enc(this.secret)}`;
    this.watchPage();
    if (this.kind === "poll") void this.poll();
    else if (this.env.EventSource) this.eventSource(this.env.EventSource);
    else void this.stream();
    void this.pump();
  }
  /** A frame from the stream, a poll or a POST's answer; the close frame ends the transport. */
  frame(f) {
    if (this.done) return;
    this.hello = true;
    if (typeof f === "string" ? f.includes('"close_code"') : f.type === "close") {
      const c = typeof f === "string" ? parse(f) : f;
      if (c?.type === "close") {
        this.gone = true;
        const code = typeof c["close_code"] === "number" ? c["close_code"] : 1006;
        return this.fail(code, String(c["reason"] ?? ""), typeof c["retry"] === "number" ? c["retry"] : void 0);
      }
    }
    this.on.message(f);
  }
  /**
   * A read failed on the way (the network, a proxy's timeout, a relaying node that drains). The
   * session may live on: read again from where this one stopped (Last-Event-ID, the same poll
   * cursor), once; a second failure in a row, or one before hello, ends the transport.
   */
  dropped(why) {
    if (this.done) return;
    if (!this.hello || this.retried) return this.fail(1006, why);
    this.retried = true;
    const again = () => this.kind === "poll" ? this.poll() : this.stream();
    this.timer = setTimeout(() => void again(), this.env.random() * Math.min(this.hint, 500));
  }
  /** A read was refused: the session is gone (404, 410), taken over (409 replaced: 4011), or unreadable. */
  refused(res, body, what) {
    const e = refusal(res, body, what);
    this.gone ||= res.status === 404 || res.status === 410 || e.error === "replaced";
    this.fail(e.error === "replaced" ? 4011 : 1006, `${e.error}: ${e.message}`);
  }
  /** SSE read with fetch: keep-alives are visible, and a dropped stream continues after its last event. */
  async stream() {
    const url = `${this.base}/sse${this.q}${this.lastId ? `&last_event_id=${enc(this.lastId)}` : ""}`;
    let res;
    try {
      res = await this.env.fetch(url, { headers: { Accept: "text/event-stream" }, cache: "no-store", signal: this.ctl.signal });
    } catch (err) {
      return this.dropped(`stream_failed: ${text(err)}`);
    }
    if (this.done) return;
    if (!res.ok || !res.body) return this.refused(res, parse(await res.text().catch(() => "")), "/http/sse");
    this.retried = false;
    const parser = new EventStreamParser((data) => {
      this.lastId = parser.id;
      this.frame(data);
    });
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    try {
      for (; ; ) {
        const { done, value } = await reader.read();
        if (this.done || done) break;
        this.on.alive();
        parser.push(dec.decode(value, { stream: true }));
        this.hint = parser.retry ?? this.hint;
      }
    } catch (err) {
      return this.dropped(`stream_lost: ${text(err)}`);
    }
    this.dropped("stream_lost: the event stream ended");
  }
  /** SSE read with the browser's EventSource, which reconnects by itself with Last-Event-ID. */
  eventSource(ES) {
    const es = this.es = new ES(`${this.base}/sse${this.q}`);
    es.onopen = () => {
      this.retried = false;
      this.on.alive();
    };
    es.onmessage = (ev) => this.frame(ev.data);
    es.onerror = () => {
      if (es.readyState === 2 || !this.hello || this.retried) this.fail(1006, "stream_failed: the event stream failed");
      else this.retried = true;
    };
  }
  /** Long-polling: each answer's cursor goes into the next poll and acknowledges its frames. */
  async poll() {
    let res;
    let body;
    try {
      res = await this.env.fetch(`${this.base}/poll${this.q}&cursor=${enc(this.cursor)}`, { cache: "no-store", signal: this.ctl.signal });
      body = parse(await res.text());
    } catch (err) {
      return this.dropped(`poll_failed: ${text(err)}`);
    }
    if (this.done) return;
    if (!res.ok || typeof body?.cursor !== "string" || !Array.isArray(body.frames)) return this.refused(res, body, "/http/poll");
    this.retried = false;
    this.on.alive();
    this.cursor = body.cursor;
    for (const f of body.frames) {
      this.frame(f);
      if (this.done) return;
    }
    void this.poll();
  }
  /**
   * Upstream frames, one POST at a time so that they arrive in order (a join before the publish
   * that follows it). Replies go to the client as frames; a frame HTTP refuses (429, 503, ...)
   * is answered with the error frame a WebSocket would have carried, so its request fails with
   * that code.
   */
  async pump() {
    if (this.sending || !this.sid) return;
    this.sending = true;
    while (this.out.length && !this.done) {
      const frame = this.out.shift();
      let res;
      let body;
      try {
        res = await this.env.fetch(`${this.base}/send`, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Push-Session": this.sid, "Push-Secret": this.secret },
          body: frame,
          signal: this.ctl.signal
        });
        body = parse(await res.text());
      } catch (err) {
        return this.fail(1006, `send_failed: ${text(err)}`);
      }
      if (this.done) return;
      if (res.ok && Array.isArray(body)) {
        for (const f of body) this.frame(f);
        continue;
      }
      const e = refusal(res, body, "/http/send");
      if (res.status === 404) {
        this.gone = true;
        return this.fail(1006, `${e.error}: ${e.message}`);
      }
      if (res.status !== 410) this.frame(errorFrame(frame, e.error, e.message));
    }
    this.sending = false;
  }
  /** Closes the session at once when the page goes away, instead of a ping_timeout later. */
  watchPage() {
    const w = this.env.window;
    if (!w) return;
    const hide = () => {
      const url = `${this.base}/close${this.q}`;
      this.gone = w.navigator?.sendBeacon?.(url) === true || this.gone;
      this.fail(1001, "going_away: the page was hidden");
    };
    w.addEventListener("pagehide", hide);
    this.unwatch = () => w.removeEventListener("pagehide", hide);
  }
};
function errorFrame(frame, code, message) {
  const f = parse(frame);
  const e = { type: "error", code, message };
  if (typeof f?.id === "string") e.id = f.id;
  if (typeof f?.doc === "string") e.doc = f.doc;
  return e;
}

// src/jwt.ts
function tokenExpiry(token) {
  const part = token.split(".")[1];
  if (!part) return void 0;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const claims = JSON.parse(atob(b64));
    const exp = claims.exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp : void 0;
  } catch {
    return void 0;
  }
}
function refreshDelay(expMs, now, margin) {
  const left = expMs - now;
  return Math.max(0, left - Math.min(margin, left / 5));
}

// src/memory.ts
var memoryKey = (url) => `pushd:transport:${url}`;
function defaultStorage() {
  try {
    return globalThis.localStorage ?? void 0;
  } catch {
    return void 0;
  }
}
var TransportMemory = class {
  constructor(ttl, storage) {
    this.ttl = ttl;
    this.storage = storage;
  }
  ttl;
  storage;
  m = /* @__PURE__ */ new Map();
  /** The transport that worked on url, unless forgotten. */
  get(url) {
    let e = this.m.get(url);
    if (!e && this.storage) {
      try {
        const v = JSON.parse(this.storage.getItem(memoryKey(url)) ?? "null");
        if (typeof v?.t === "string" && typeof v.until === "number") this.m.set(url, e = v);
      } catch {
      }
    }
    return e && e.until > Date.now() ? e.t : void 0;
  }
  /** Remembers that t said hello on url. */
  set(url, t) {
    if (!(this.ttl > 0)) return;
    const e = { t, until: Date.now() + this.ttl };
    this.m.set(url, e);
    try {
      this.storage?.setItem(memoryKey(url), JSON.stringify(e));
    } catch {
    }
  }
};

// src/policy.ts
function closeAction(code) {
  switch (code) {
    case 1012:
      return "restart";
    case 1013:
    case 4009:
    case 4029:
      return "slow";
    case 4001:
    case 4003:
      return "auth";
    case 4004:
    case 4010:
    case 4011:
      return "stop";
  }
  return "retry";
}
var backoffDefaults = { min: 500, max: 3e4, restart: 1e3 };
function backoffDelay(action, attempt, options = {}, random = Math.random) {
  const { min, max, restart } = { ...backoffDefaults, ...options };
  const exp = 2 ** Math.min(attempt, 30);
  switch (action) {
    case "stop":
      return Infinity;
    case "restart":
      return random() * restart;
    case "slow": {
      const cap = Math.min(max, 8 * min * exp);
      return cap / 2 + random() * cap / 2;
    }
  }
  return random() * Math.min(max, min * exp);
}
function parseReason(reason) {
  const m = /^([a-z_]+): ([\s\S]*)$/.exec(reason);
  return m ? { error: m[1], message: m[2] } : { error: "", message: reason };
}
function reasonNode(reason) {
  const m = /^([a-z_]+): node ([0-9]+); /.exec(reason);
  return m ? Number(m[2]) : void 0;
}

// src/push.ts
function newPush(f, needsAck, ack) {
  let acked = false;
  const p = {
    target: f.target,
    event: f.event,
    data: f.data === void 0 ? null : f.data,
    needsAck,
    ack() {
      if (!needsAck || acked) return;
      acked = true;
      ack();
    }
  };
  if (f.doc !== void 0) p.doc = f.doc;
  if (f.id !== void 0) p.id = f.id;
  if (f.seq !== void 0) p.seq = f.seq;
  return p;
}
function isThenable(v) {
  return typeof v?.then === "function";
}

// src/requests.ts
var Requests = class {
  m = /* @__PURE__ */ new Map();
  /** Registers a request; it fails with `timeout` after timeout ms when given. */
  add(id, handlers, timeout) {
    const p = { ...handlers, inFlight: false };
    if (timeout !== void 0) {
      p.timer = setTimeout(() => {
        this.m.delete(id);
        p.onFail(new PushdError("timeout", `no reply within ${timeout}ms`));
      }, timeout);
    }
    this.m.set(id, p);
    return p;
  }
  /** The request with this id, while it waits. */
  get(id) {
    return this.m.get(id);
  }
  /** Settles the request whose id the frame echoes; false when there is none. */
  settle(f) {
    const id = f.id;
    const p = id === void 0 ? void 0 : this.m.get(id);
    if (!p || id === void 0) return false;
    this.m.delete(id);
    clearTimeout(p.timer);
    if (f.type === "error") p.onFail(new PushdError(String(f.code ?? "error"), String(f.message ?? ""), { doc: f.doc }));
    else p.onReply(f);
    return true;
  }
  /** Fails the requests that match with err (all when match is omitted). */
  fail(err, match = () => true) {
    for (const [id, p] of [...this.m]) {
      if (!match(p)) continue;
      this.m.delete(id);
      clearTimeout(p.timer);
      p.onFail(err());
    }
  }
};

// src/subscription.ts
var Subscription = class extends Emitter {
  /** @internal Use `client.join`. */
  constructor(doc, options, host) {
    super();
    this.host = host;
    this.doc = doc;
    this.cur = new Cursor(options.since);
    this.token = options.token;
    this.presenceEvents = options.presence === true;
    this.ready = new Promise((resolve, reject) => this.settle = { resolve, reject });
    this.ready.catch(() => {
    });
  }
  host;
  /** The doc ID. */
  doc;
  /** Where the subscription is; see {@link SubscriptionState}. */
  state = "joining";
  /**
   * Resolves with the first `subscribed` event; rejects when the join is refused for good or the
   * subscription is left before. Rejections are handled (no unhandled rejection if unused).
   */
  ready;
  /** @internal */
  cur;
  /** @internal */
  token;
  /** @internal */
  presenceEvents;
  /** @internal */
  joinedOnce = false;
  /** @internal */
  joinGen = -1;
  /** @internal */
  attempts = 0;
  /** @internal */
  timer;
  /** @internal Pushes that came before the join's answer (HTTP transports). */
  early = [];
  /** @internal */
  settle;
  /**
   * The highest seq processed whose receipts are all given: save it to resume from after a
   * reload with `join(doc, {since})`. Undefined until the server sent a seq.
   */
  get cursor() {
    return this.cur.since;
  }
  /** Leaves the doc. Resolves once the server confirmed (or at once when not connected); never rejects. */
  leave() {
    return this.host.leave(this);
  }
  /**
   * One page of who is in the doc (at most `limit` members, 100 by default, from `cursor` on).
   * Rejects with a {@link PushdError}: `forbidden` (no grant for the doc), `bad_cursor`,
   * `rate_limited`, `unavailable`, or the client's `timeout`, `disconnected`, `closed`.
   */
  async presence(options = {}) {
    const f = { type: "presence", doc: this.doc };
    if (options.limit !== void 0) f["limit"] = options.limit;
    if (options.cursor !== void 0) f["cursor"] = options.cursor;
    const r = await this.ask(f);
    const page = { doc: this.doc, sessions: Number(r["sessions"] ?? 0), users: Number(r["users"] ?? 0), members: r["members"] ?? [] };
    if (typeof r["next"] === "string") page.next = r["next"];
    return page;
  }
  /** Everyone in the doc: every page of {@link presence}, in session ID order. */
  async members() {
    const all = [];
    let cursor;
    do {
      const page = await this.presence(cursor === void 0 ? { limit: 1e3 } : { limit: 1e3, cursor });
      all.push(...page.members);
      cursor = page.next;
    } while (cursor !== void 0);
    return all;
  }
  /** The doc's member counts (`presence_stats`); rejects as {@link presence} does. */
  async presenceStats() {
    const r = await this.ask({ type: "presence_stats", doc: this.doc });
    return { doc: this.doc, sessions: Number(r["sessions"] ?? 0), users: Number(r["users"] ?? 0) };
  }
  /** A presence request, with the join token when the subscription has one (the same grant). */
  async ask(f) {
    const token = typeof this.token === "function" ? await this.token() : this.token;
    if (token !== void 0) f["token"] = token;
    return this.host.request(f, this.doc);
  }
  /** @internal A presence_diff frame for this doc. */
  presenceDiff(d) {
    if (this.state === "left" || this.state === "failed") return;
    this.emit("presence", d);
    for (const e of d.events ?? []) {
      const { event, ...rest } = e;
      if (event === "join") this.emit("presence_join", rest);
      else if (event === "leave") this.emit("presence_leave", rest);
    }
  }
  /** @internal */
  dispatch(push) {
    return this.emit("push", push);
  }
  /** @internal */
  subscribed(e) {
    this.state = "joined";
    this.attempts = 0;
    this.settle.resolve(e);
    this.emit("subscribed", e);
  }
  /** @internal The join was refused for good. */
  fail(err) {
    this.state = "failed";
    clearTimeout(this.timer);
    this.settle.reject(err);
    if (this.listens("error")) this.emit("error", err);
    else this.host.report(err);
  }
  /** @internal */
  done(err) {
    this.state = "left";
    clearTimeout(this.timer);
    this.settle.reject(err);
    this.emit("left", { doc: this.doc });
  }
  listenerError(err, type) {
    this.host.listenerError(err, type);
  }
};

// src/transport.ts
var noop = () => {
};
function webSocketTransport(WS) {
  return (url, on) => {
    let done = false;
    const ws = new WS(url);
    const detach = () => {
      done = true;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = noop;
    };
    ws.onopen = () => on.open();
    ws.onmessage = (ev) => on.message(typeof ev.data === "string" ? ev.data : String(ev.data));
    ws.onerror = noop;
    ws.onclose = (ev) => {
      if (done) return;
      detach();
      on.close(ev.code || 1006, ev.reason || "");
    };
    return {
      send(frame) {
        ws.send(frame);
      },
      close(code = 1e3, reason = "") {
        if (done) return;
        detach();
        try {
          ws.close(code, reason);
        } catch {
        }
      }
    };
  };
}

// src/client.ts
var defaults = {
  requestTimeout: 1e4,
  connectTimeout: 1e4,
  maxAuthFailures: 3,
  refreshMargin: 6e4,
  stableAfter: 1e4,
  transportTimeout: 5e3,
  rememberTransport: 36e5,
  avoidFor: 3e4,
  ack: "auto"
};
var PushdClient = class extends Emitter {
  opts;
  factories;
  names;
  memory;
  /** The next transport to try at once, after one that could not connect. */
  step;
  win;
  random;
  requests = new Requests();
  subs = /* @__PURE__ */ new Map();
  userCursor;
  _state = "disconnected";
  gen = 0;
  conn;
  attempt = 0;
  /** Index into a URL list (or the url function's attempt): where the current session is; a close moves on. */
  urlIndex = 0;
  authFailures = 0;
  hellos = 0;
  ids = 0;
  retryTimer;
  refreshTimer;
  waitingOnline = false;
  unwatch;
  queue = [];
  lastHello;
  /** The node each URL led to (its last hello, or a refusal naming its node). */
  urlNodes = /* @__PURE__ */ new Map();
  /** Nodes that sent the client away, until when to skip their URLs (ms since the epoch). */
  avoiding = /* @__PURE__ */ new Map();
  /** URLs tried since the last hello: once every URL not avoided is, the avoided ones are tried too. */
  triedSinceHello = /* @__PURE__ */ new Set();
  constructor(options) {
    super();
    if (!options.getToken && options.user === void 0) throw new TypeError("pushd: set getToken (or user, on a dev node)");
    this.opts = options;
    this.win = options.window === null ? void 0 : options.window ?? defaultWindow();
    this.random = options.random ?? Math.random;
    const g = globalThis;
    const WS = options.WebSocket ?? g.WebSocket;
    const f = options.fetch ?? globalThis.fetch;
    const env = {
      fetch: ((input, init) => f(input, init)),
      // called unbound: window.fetch refuses another `this`
      EventSource: options.EventSource === null ? void 0 : options.EventSource ?? g.EventSource,
      window: this.win,
      random: this.random
    };
    this.factories = {
      ...WS && { websocket: webSocketTransport(WS) },
      ...f && { sse: httpTransport("sse", env), poll: httpTransport("poll", env) },
      ...options.transportFactories
    };
    this.names = (options.transports ?? ["websocket", "sse", "poll"]).filter((n) => this.factories[n]);
    if (!this.names.length) throw new TypeError("pushd: no transport here: pass the ws package as the WebSocket option (or allow sse and poll where fetch exists)");
    this.memory = new TransportMemory(options.rememberTransport ?? defaults.rememberTransport, options.storage === null ? void 0 : options.storage ?? defaultStorage());
    this.userCursor = new Cursor(options.since);
  }
  /** See {@link ClientState}. */
  get state() {
    return this._state;
  }
  /** The current session's hello, while connected. */
  get session() {
    return this._state === "connected" ? this.lastHello : void 0;
  }
  /** The user subject's resume cursor: save it to pass as `since` after a reload. */
  get cursor() {
    return this.userCursor.since;
  }
  /** Starts connecting (and reconnecting until `disconnect()`). Does nothing unless disconnected. */
  connect() {
    if (this._state !== "disconnected") return;
    this.attempt = this.authFailures = this.hellos = 0;
    this.step = void 0;
    this.setState("connecting");
    this.unwatch = watchEnvironment(this.win, {
      online: () => this.wake(true),
      offline: () => {
        if (this.conn?.helloAt !== void 0) this.conn.hb.check();
        else if (this.retryTimer !== void 0) {
          clearTimeout(this.retryTimer);
          this.retryTimer = void 0;
          this.waitingOnline = true;
        }
      },
      visible: () => this.wake(false)
    });
    void this.open();
  }
  /**
   * Closes the connection and stops reconnecting; requests in flight fail with `closed`. Every
   * timer and browser listener is released. Subscriptions are kept: `connect()` rejoins them.
   */
  disconnect() {
    if (this._state === "disconnected") return;
    this.stop(1e3, "", new PushdError("closed", "disconnect() was called"));
  }
  /** Resolves with the next hello (at once when connected); rejects if the client stops first. */
  whenConnected() {
    if (this._state === "connected" && this.lastHello) return Promise.resolve(this.lastHello);
    return new Promise((resolve, reject) => {
      const offs = [
        this.on("hello", (h) => {
          offs.forEach((f) => f());
          resolve(h);
        }),
        this.on("state", (e) => {
          if (e.state !== "disconnected") return;
          offs.forEach((f) => f());
          reject(new PushdError("closed", `the client stopped (${e.code ?? "-"} ${e.reason ?? ""})`, e.code === void 0 ? {} : { closeCode: e.code }));
        })
      ];
    });
  }
  /**
   * Joins a doc; returns its subscription (the existing one when the doc is joined already). The
   * join is sent now when connected, else after the next hello, and again after every reconnect.
   */
  join(doc, options = {}) {
    const existing = this.subs.get(doc);
    if (existing) return existing;
    const sub = new Subscription(doc, options, this);
    this.subs.set(doc, sub);
    if (this.conn?.helloAt !== void 0) void this.sendJoin(sub, this.conn);
    return sub;
  }
  /** The subscription of a doc, if joined. */
  subscription(doc) {
    return this.subs.get(doc);
  }
  /**
   * Publishes to a joined doc's backends (`push.up.doc.<doc>` on NATS). Resolves when the node
   * forwarded it; rejects with a {@link PushdError}: the server's code (`not_joined`,
   * `invalid_event`, `unavailable`, `rate_limited`), `timeout`, `disconnected` (it may or may not
   * have been forwarded) or `closed`. While reconnecting it waits for the next session.
   */
  publish(doc, event, data) {
    return new Promise((resolve, reject) => {
      if (this._state === "disconnected") {
        reject(new PushdError("closed", "the client is disconnected; call connect() first", { doc }));
        return;
      }
      const id = this.id("p");
      const frame = { type: "publish", doc, event, data: data === void 0 ? null : data, id };
      const p = this.requests.add(
        id,
        {
          onReply: (f) => f.type === "published" ? resolve() : reject(new PushdError("protocol", `publish answered with ${f.type}`, { doc })),
          onFail: reject
        },
        this.opts.requestTimeout ?? defaults.requestTimeout
      );
      if (this.conn?.helloAt !== void 0) this.sendRequest(this.conn, frame, p);
      else this.queue.push({ id, frame });
    });
  }
  /**
   * @internal Sends a request frame (a presence query) and resolves with its reply; fails as
   * publish does. While reconnecting it waits for the next session.
   */
  request(frame, doc) {
    return new Promise((resolve, reject) => {
      if (this._state === "disconnected") {
        reject(new PushdError("closed", "the client is disconnected; call connect() first", { doc }));
        return;
      }
      const id = this.id("q");
      frame = { ...frame, id };
      const p = this.requests.add(id, { onReply: resolve, onFail: reject }, this.opts.requestTimeout ?? defaults.requestTimeout);
      if (this.conn?.helloAt !== void 0) this.sendRequest(this.conn, frame, p);
      else this.queue.push({ id, frame });
    });
  }
  /** @internal Leaves a subscription (sub.leave()). */
  leave(sub) {
    if (sub.state === "left" || sub.state === "failed") return Promise.resolve();
    const wasJoined = sub.joinGen === this.gen && this.conn?.helloAt !== void 0;
    if (this.subs.get(sub.doc) === sub) this.subs.delete(sub.doc);
    sub.done(new PushdError("left", "left before the join completed", { doc: sub.doc }));
    const c = this.conn;
    if (!wasJoined || !c) return Promise.resolve();
    return new Promise((resolve) => {
      const id = this.id("l");
      const p = this.requests.add(id, { onReply: () => resolve(), onFail: () => resolve() }, this.opts.requestTimeout ?? defaults.requestTimeout);
      this.sendRequest(c, { type: "leave", doc: sub.doc, id }, p);
    });
  }
  /** @internal Reports an error as an `error` event. */
  report(err) {
    this.emit("error", err);
  }
  /** @internal */
  listenerError(err, type) {
    if (type === "error") super.listenerError(err, type);
    else this.report(new PushdError("listener", `a ${type} listener threw: ${String(err)}`, { cause: err }));
  }
  // --- connections -------------------------------------------------------------------------
  async open() {
    const gen = ++this.gen;
    this.retryTimer = void 0;
    if (isOffline(this.win)) {
      this.waitingOnline = true;
      return;
    }
    this.waitingOnline = false;
    let url;
    let token;
    try {
      url = await this.nextUrl();
      if (gen !== this.gen) return;
      this.triedSinceHello.add(url);
      if (this.opts.getToken) {
        token = await this.opts.getToken();
        if (gen !== this.gen) return;
        if (typeof token !== "string" || !token) throw new Error("getToken returned no token");
      }
    } catch (err) {
      if (gen !== this.gen) return;
      this.report(new PushdError("token", `cannot connect: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      this.retry(backoffDelay("retry", this.attempt++, this.opts.backoff, this.random));
      return;
    }
    const step = this.step ?? { ti: Math.max(0, this.names.indexOf(this.memory.get(url))), tried: 1 };
    this.step = void 0;
    const transport = this.names[step.ti];
    const hb = new Heartbeat(
      () => this.conn === c && c.t.send('{"type":"ping"}'),
      (why) => this.giveUp(c, why)
    );
    const c = { gen, url, transport, ...step, hb, since: void 0, token, t: void 0 };
    this.conn = c;
    try {
      c.t = this.factories[transport](url, {
        open: () => this.onOpen(c),
        message: (m) => this.onFrame(c, m),
        alive: () => {
          if (c === this.conn && c.helloAt !== void 0) c.hb.received();
        },
        close: (code, reason, retry) => this.onClose(c, code, reason, retry)
      });
    } catch (err) {
      c.t = { send() {
      }, close() {
      } };
      this.onClose(c, 1006, `connect_failed: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    hb.mode = c.t.heartbeat ?? "ping";
    let ms = this.opts.connectTimeout ?? defaults.connectTimeout;
    if (step.tried < this.names.length) ms = Math.min(ms, this.opts.transportTimeout ?? defaults.transportTimeout);
    hb.expect(ms, `connect_timeout: no hello within ${ms}ms`);
  }
  async nextUrl() {
    const u = this.opts.url;
    const i = this.urlIndex;
    if (typeof u === "function") return u(i);
    if (typeof u === "string") return u;
    if (!u.length) throw new TypeError("pushd: the url list is empty");
    const others = u.filter((x) => !this.avoided(x));
    if (others.every((x) => this.triedSinceHello.has(x))) return u[i % u.length];
    let k = 0;
    while (this.avoided(u[(i + k) % u.length])) k++;
    this.urlIndex = i + k;
    return u[this.urlIndex % u.length];
  }
  /** Whether url is known to lead to a node to avoid now. */
  avoided(url) {
    const n = this.urlNodes.get(url);
    const until = n === void 0 ? void 0 : this.avoiding.get(n);
    if (until === void 0) return false;
    if (until > Date.now()) return true;
    this.avoiding.delete(n);
    return false;
  }
  /** A close or refusal named its node (docs/PROTOCOL.md, "Going elsewhere"): skip it for a while. */
  avoid(c, reason) {
    const n = reasonNode(reason);
    const ms = this.opts.avoidFor ?? defaults.avoidFor;
    if (n === void 0 || !(ms > 0)) return;
    this.avoiding.set(n, Date.now() + ms);
    if (c.helloAt === void 0) this.urlNodes.set(c.url, n);
  }
  onOpen(c) {
    if (c !== this.conn) return;
    c.since = this.userCursor.since;
    const f = { type: "connect", id: this.id("c") };
    if (c.token !== void 0) f["token"] = c.token;
    else f["user"] = this.opts.user;
    if (c.since !== void 0) f["since"] = c.since;
    c.t.send(JSON.stringify(f));
  }
  onFrame(c, m) {
    if (c !== this.conn) return;
    c.hb.received();
    let f;
    try {
      f = typeof m === "string" ? JSON.parse(m) : m;
      if (typeof f?.type !== "string") throw new Error("no type");
    } catch {
      this.report(new PushdError("protocol", `not a pushd frame: ${(typeof m === "string" ? m : JSON.stringify(m)).slice(0, 100)}`));
      return;
    }
    switch (f.type) {
      case "hello":
        return this.onHello(c, f);
      case "pong":
        if (typeof f.ping_interval === "number" && typeof f.ping_timeout === "number") c.hb.update(f.ping_interval, f.ping_timeout);
        return;
      case "push":
        return this.onPush(f);
      case "presence_diff": {
        const sub = typeof f.doc === "string" ? this.subs.get(f.doc) : void 0;
        const { type: _, ...diff } = f;
        if (sub) sub.presenceDiff(diff);
        return;
      }
    }
    if (this.requests.settle(f)) return;
    if (f.type === "error") this.report(new PushdError(String(f.code ?? "error"), String(f.message ?? ""), { doc: f.doc }));
  }
  onHello(c, h) {
    if (c.helloAt !== void 0) return;
    c.helloAt = Date.now();
    this.authFailures = 0;
    const first = this.hellos++ === 0;
    const { recovered, gap } = this.resume(this.userCursor, c.since, h.seq, h.recovered, first);
    this.lastHello = { sid: h.sid, node: h.node, user: h.user, url: c.url, transport: c.transport, first, recovered, gap };
    this.memory.set(c.url, c.transport);
    this.urlNodes.set(c.url, h.node);
    this.triedSinceHello.clear();
    if (h.seq !== void 0) this.lastHello.seq = h.seq;
    c.hb.start(h.ping_interval, h.ping_timeout);
    for (const sub of this.subs.values()) void this.sendJoin(sub, c);
    const queued = this.queue;
    this.queue = [];
    for (const q of queued) {
      const p = this.requests.get(q.id);
      if (p) this.sendRequest(c, q.frame, p);
    }
    this.scheduleRefresh(c);
    this.setState("connected");
    this.emit("hello", this.lastHello);
  }
  /**
   * Applies the cursor rule to a hello or joined: without a cursor sent, or when the server could
   * not recover, start at the reply's seq; when it recovers, keep the cursor (the replay advances it).
   */
  resume(cur, since, seq, rec, first) {
    const recovered = since === void 0 ? void 0 : rec === true;
    if (!recovered) {
      const s = parseSeq(seq);
      if (s !== void 0 || rec === false) cur.reset(s);
    }
    return { recovered, gap: since === void 0 ? !first : !recovered };
  }
  onClose(c, code, reason, retry) {
    if (c !== this.conn) return;
    this.conn = void 0;
    c.hb.stop();
    clearTimeout(this.refreshTimer);
    this.refreshTimer = void 0;
    const lost = () => new PushdError("disconnected", `the connection closed (${code}) before the reply`, { closeCode: code });
    this.requests.fail(lost, (p) => p.inFlight);
    this.resetSubs();
    const { error, message } = parseReason(reason);
    this.avoid(c, reason);
    let action = closeAction(code);
    if (action === "auth" && (!this.opts.getToken || ++this.authFailures >= (this.opts.maxAuthFailures ?? defaults.maxAuthFailures))) {
      action = "stop";
    }
    if (c.helloAt !== void 0 && Date.now() - c.helloAt >= (this.opts.stableAfter ?? defaults.stableAfter)) this.attempt = 0;
    const fallback = c.helloAt === void 0 && code === 1006 && c.tried < this.names.length;
    if (fallback) this.step = { ti: (c.ti + 1) % this.names.length, tried: c.tried + 1 };
    else this.urlIndex++;
    const willReconnect = action !== "stop";
    const ev = { code, reason, error, url: c.url, transport: c.transport, willReconnect };
    const avoidNode = reasonNode(reason);
    if (avoidNode !== void 0) ev.avoidNode = avoidNode;
    if (!willReconnect) {
      this.emit("disconnect", ev);
      const err = new PushdError(error || "closed", `stopped after close ${code}: ${message || "no reason"}`, { closeCode: code });
      this.stop(code, reason, err);
      this.report(err);
      return;
    }
    ev.delay = fallback ? 0 : retry !== void 0 && retry > 0 ? retry : backoffDelay(action, this.attempt++, this.opts.backoff, this.random);
    this.setState("connecting", code, reason);
    this.emit("disconnect", ev);
    if (this.conn === void 0 && this._state === "connecting" && this.retryTimer === void 0 && !this.waitingOnline) this.retry(ev.delay);
  }
  /** Gives up on a connection whose server went silent. */
  giveUp(c, why) {
    if (c !== this.conn) return;
    c.t.close(1e3, "");
    this.onClose(c, 1006, why);
  }
  retry(delay) {
    if (isOffline(this.win)) {
      this.waitingOnline = true;
      return;
    }
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }
  /** Back online, or the page became visible: reconnect now if waiting, else check the connection. */
  wake(online) {
    if (this._state === "disconnected") return;
    if (this.conn?.helloAt !== void 0) {
      this.conn.hb.check();
      return;
    }
    if (this.retryTimer === void 0 && !this.waitingOnline) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = void 0;
    if (online) this.attempt = 0;
    void this.open();
  }
  stop(code, reason, err) {
    this.gen++;
    clearTimeout(this.retryTimer);
    clearTimeout(this.refreshTimer);
    this.retryTimer = this.refreshTimer = void 0;
    this.waitingOnline = false;
    const c = this.conn;
    this.conn = void 0;
    if (c) {
      c.hb.stop();
      c.t.close(1e3, "");
    }
    this.unwatch?.();
    this.unwatch = void 0;
    this.queue = [];
    this.step = void 0;
    this.requests.fail(() => err);
    this.resetSubs();
    this.setState("disconnected", code, reason);
  }
  /** The connection is gone: joined subscriptions wait for the next one. */
  resetSubs() {
    for (const sub of this.subs.values()) {
      clearTimeout(sub.timer);
      sub.early = [];
      if (sub.state === "joined") sub.state = "joining";
    }
  }
  setState(state, code, reason) {
    const previous = this._state;
    if (state === previous) return;
    this._state = state;
    const e = { state, previous };
    if (code !== void 0) {
      e.code = code;
      e.reason = reason ?? "";
    }
    this.emit("state", e);
  }
  // --- frames --------------------------------------------------------------------------------
  id(prefix) {
    return prefix + ++this.ids;
  }
  sendRequest(c, frame, p) {
    p.inFlight = true;
    c.t.send(JSON.stringify(frame));
  }
  async sendJoin(sub, c) {
    if (sub.joinGen === c.gen) return;
    sub.joinGen = c.gen;
    let token = sub.token;
    if (typeof token === "function") {
      try {
        token = await token();
      } catch (err) {
        this.subs.delete(sub.doc);
        sub.fail(new PushdError("token", `join token for ${sub.doc}: ${String(err)}`, { doc: sub.doc, cause: err }));
        return;
      }
    }
    if (c !== this.conn || this.subs.get(sub.doc) !== sub) return;
    const since = sub.cur.since;
    const id = this.id("j");
    const frame = { type: "join", doc: sub.doc, id };
    if (token !== void 0) frame["token"] = token;
    if (since !== void 0) frame["since"] = since;
    if (sub.presenceEvents) frame["presence"] = true;
    const p = this.requests.add(id, {
      onReply: (f) => this.onJoined(sub, c, f, since),
      onFail: (err) => this.onJoinError(sub, c, err)
    });
    this.sendRequest(c, frame, p);
  }
  onJoined(sub, c, f, since) {
    if (c !== this.conn || sub.state !== "joining") return;
    const first = !sub.joinedOnce;
    sub.joinedOnce = true;
    const { recovered, gap } = this.resume(sub.cur, since, f.seq, f.recovered, first);
    sub.state = "joined";
    sub.subscribed({ doc: sub.doc, ...f.seq === void 0 ? {} : { seq: f.seq }, first, recovered, gap });
    const early = sub.early;
    sub.early = [];
    for (const p of early) this.onPush(p);
  }
  onJoinError(sub, c, err) {
    if (c !== this.conn || sub.state !== "joining" || this.subs.get(sub.doc) !== sub) return;
    sub.joinGen = -1;
    sub.early = [];
    switch (err.code) {
      case "disconnected":
        return;
      // rejoined after the next hello
      case "bad_since":
        sub.cur.reset(void 0);
        void this.sendJoin(sub, c);
        return;
      case "token_expired":
        if (typeof sub.token === "function" && sub.attempts++ === 0) {
          void this.sendJoin(sub, c);
          return;
        }
        break;
      case "unavailable":
      case "rate_limited":
        sub.timer = setTimeout(() => void this.sendJoin(sub, c), backoffDelay("retry", sub.attempts++, this.opts.backoff, this.random));
        return;
    }
    this.subs.delete(sub.doc);
    sub.fail(err);
  }
  onPush(f) {
    let sub;
    let cur;
    if (f.target === "doc") {
      sub = f.doc === void 0 ? void 0 : this.subs.get(f.doc);
      if (!sub) return;
      if (sub.state !== "joined") {
        if (sub.state === "joining" && sub.joinGen === this.conn?.gen) sub.early.push(f);
        return;
      }
      cur = sub.cur;
    } else if (f.target === "user") {
      cur = this.userCursor;
    }
    const seq = cur && parseSeq(f.seq);
    const gen = this.gen;
    if (cur && seq !== void 0) {
      if (cur.seen(seq)) return;
      cur.take(seq, f.ack === true, gen);
      if (cur.acked(seq)) {
        this.sendAck(sub, cur, seq);
        return;
      }
    }
    const byId = f.ack === true && seq === void 0 && typeof f.id === "string" && f.id !== "";
    const needsAck = f.ack === true && seq !== void 0 || byId;
    const c = this.conn;
    const push = newPush(f, needsAck, byId ? () => this.sendAckById(c, f.id) : () => this.sendAck(sub, cur, seq));
    const a = sub ? sub.dispatch(push) : { results: [], ok: true };
    const b = this.emit("push", push);
    if (!needsAck || this.opts.ack === "manual" || !a.ok || !b.ok) return;
    const waits = [...a.results, ...b.results].filter(isThenable);
    if (!waits.length) push.ack();
    else
      Promise.all(waits).then(
        () => push.ack(),
        (err) => this.report(new PushdError("listener", `a push listener rejected; no receipt for seq ${f.seq}: ${String(err)}`, { cause: err }))
      );
  }
  /**
   * Sends a receipt if the session that delivered the push is still the current one (a node takes
   * receipts only for pushes it delivered on the session); else it is sent when a resume replays
   * the push. Nothing when it was given already (for another copy of the push).
   */
  sendAck(sub, cur, seq) {
    if (!cur.awaits(seq)) return;
    const c = this.conn;
    if (!c || c.helloAt === void 0 || c.gen !== cur.deliveredOn(seq) || sub && sub.state !== "joined") {
      cur.ackLater(seq);
      return;
    }
    const f = { type: "ack", seq: seq.toString() };
    if (sub) f["doc"] = sub.doc;
    c.t.send(JSON.stringify(f));
    cur.ackSent(seq);
  }
  /**
   * Acknowledges a push without a position by its id, on the session that delivered it: such a
   * push is not replayed, so once that session is gone its receipt cannot be given.
   */
  sendAckById(c, id) {
    if (c && c === this.conn && c.helloAt !== void 0) c.t.send(JSON.stringify({ type: "ack", push_id: id }));
  }
  // --- token refresh -------------------------------------------------------------------------
  scheduleRefresh(c) {
    const exp = c.token === void 0 ? void 0 : tokenExpiry(c.token);
    if (exp === void 0) return;
    const delay = refreshDelay(exp * 1e3, Date.now(), this.opts.refreshMargin ?? defaults.refreshMargin);
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => void this.refresh(c, exp), delay);
  }
  async refresh(c, exp) {
    this.refreshTimer = void 0;
    const again = (err) => {
      if (c !== this.conn) return;
      this.report(err);
      const left = exp * 1e3 - Date.now();
      if (left > 100) this.refreshTimer = setTimeout(() => void this.refresh(c, exp), Math.min(left / 2, 5e3));
    };
    let token;
    try {
      token = await this.opts.getToken();
      if (typeof token !== "string" || !token) throw new Error("getToken returned no token");
    } catch (err) {
      again(new PushdError("token", `token refresh: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      return;
    }
    if (c !== this.conn) return;
    const id = this.id("r");
    const p = this.requests.add(
      id,
      {
        onReply: () => {
          c.token = token;
          this.scheduleRefresh(c);
        },
        onFail: (err) => again(err)
      },
      this.opts.requestTimeout ?? defaults.requestTimeout
    );
    this.sendRequest(c, { type: "refresh", token, id }, p);
  }
};
export {
  PushdClient,
  PushdError,
  Subscription,
  backoffDelay,
  closeAction,
  parseReason,
  reasonNode,
  tokenExpiry
};
