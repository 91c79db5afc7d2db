import { Cursor, parseSeq } from "./cursor.js";
import { Emitter } from "./emitter.js";
import { defaultWindow, isOffline, watchEnvironment, type WindowLike } from "./environment.js";
import { PushdError } from "./errors.js";
import type { ClientFrame, HelloFrame, PushFrame, ServerFrame } from "./frames.js";
import { Heartbeat } from "./heartbeat.js";
import { httpTransport, type EventSourceConstructor } from "./http.js";
import { refreshDelay, tokenExpiry } from "./jwt.js";
import { defaultStorage, TransportMemory, type StorageLike } from "./memory.js";
import { backoffDelay, closeAction, parseReason, reasonNode, type BackoffOptions, type CloseAction } from "./policy.js";
import { isThenable, newPush, type Push } from "./push.js";
import { Requests, type Pending } from "./requests.js";
import { Subscription, type JoinOptions, type PresenceDiff, type SubscriptionHost } from "./subscription.js";
import { webSocketTransport, type Transport, type TransportFactory, type TransportName, type WebSocketConstructor } from "./transport.js";

/**
 * - `connecting`: opening a connection, or waiting to retry (see the `disconnect` event's delay);
 * - `connected`: the server said hello;
 * - `disconnected`: not trying: before `connect()`, after `disconnect()`, or after a close that
 *   forbids retrying (the `state` event carries its code and reason).
 */
export type ClientState = "connecting" | "connected" | "disconnected";

/** Where to connect: one URL, several to rotate through (failover), or a function of the attempt. */
export type UrlOption = string | readonly string[] | ((attempt: number) => string | Promise<string>);

/** Options of {@link PushdClient}. */
export interface ClientOptions {
  /**
   * The node's WebSocket URL, e.g. `wss://push.example.com/ws`. With a list, each reconnect goes
   * to the next URL (a drained or dead node is left behind); a function is called for each
   * attempt (0, 1, ...).
   */
  url: UrlOption;
  /**
   * Returns a connection token (a JWT whose `sub` is the user). Called before every connection
   * attempt and again before the token expires (the client sends `refresh`); cache in it if you
   * like. The token travels in the first frame, never in the URL.
   */
  getToken?: (() => string | Promise<string>) | undefined;
  /** Dev nodes only (`pushd --dev`): connect as this user without a token. */
  user?: string | undefined;
  /**
   * The WebSocket implementation: the browser's by default; in Node pass `ws`'s default export
   * (without it, Node connects with SSE over its own fetch).
   */
  WebSocket?: WebSocketConstructor | undefined;
  /**
   * The transports to try, in this order: `websocket`, `sse` (server-sent events) and `poll`
   * (long-polling), all three by default (those this environment has). When one cannot connect
   * (it closes before hello without a close code, or says no hello within `transportTimeout`),
   * the next is tried at once; the one that said hello is remembered (see `rememberTransport`).
   */
  transports?: readonly TransportName[] | undefined;
  /** Milliseconds a transport that is not the last one left gets to say hello. Default 5000. */
  transportTimeout?: number;
  /**
   * Milliseconds during which connections to a URL start with the transport that last said hello
   * there, instead of trying the first one again. Default 3600000 (an hour); 0 forgets at once.
   */
  rememberTransport?: number;
  /**
   * Where to remember transports across page loads: the page's `localStorage` by default, `null`
   * for memory only.
   */
  storage?: StorageLike | null;
  /**
   * The EventSource that reads SSE: the browser's by default. Without one (Node, or `null`) SSE
   * is read with fetch, which also sees the server's keep-alives.
   */
  EventSource?: EventSourceConstructor | null;
  /** The fetch of the HTTP transports: the global one by default. */
  fetch?: typeof fetch;
  /** Reconnect delays; see {@link backoffDelay}. */
  backoff?: BackoffOptions;
  /**
   * Milliseconds during which, after a close or refusal that names its node (a drain's
   * `draining: node 3; ...`, an HTTP refusal's `avoid_node`), the URLs of a list known to lead to
   * that node (from their hellos, or that refusal) are skipped, unless all of them are, or every
   * other URL was tried since the last hello. Default 30000 (the Go SDK's `AvoidFor`); 0 turns it
   * off. A single URL (a load balancer) or a url function is never skipped.
   */
  avoidFor?: number;
  /**
   * Receipts for pushes that ask for one (`push.needsAck`). `auto` (default): acknowledged once
   * every `push` listener has returned, or, for listeners that return a Promise, once all of them
   * resolved; a listener that throws or rejects withholds it, so the push is replayed on the next
   * resume. `manual`: call `push.ack()` yourself.
   */
  ack?: "auto" | "manual";
  /** Resume the user's pushes from this seq (a `client.cursor` saved earlier). */
  since?: string | undefined;
  /** Milliseconds to wait for the reply to a publish, leave or refresh. Default 10000. */
  requestTimeout?: number;
  /** Milliseconds from opening a connection to its hello before giving up on it. Default 10000. */
  connectTimeout?: number;
  /** Auth refusals (4001, 4003) in a row after which the client stops. Default 3. */
  maxAuthFailures?: number;
  /** Refresh the token at most this many ms before it expires (a fifth of its life when shorter). Default 60000. */
  refreshMargin?: number;
  /** A connection that lasted this many ms resets the backoff. Default 10000. */
  stableAfter?: number;
  /**
   * The browser window whose online, offline and visibility events the client follows; the page's
   * own by default, `null` for none.
   */
  window?: WindowLike | null;
  /** @internal For tests: the random source of the jitter. */
  random?: () => number;
  /** @internal For tests: transports to use instead of the built-in ones. */
  transportFactories?: Partial<Record<TransportName, TransportFactory>>;
}

/** A `hello`: the session is up. */
export interface HelloEvent {
  /** The session ID (a decimal string). */
  sid: string;
  /** The node's number. */
  node: number;
  user: string;
  /** The URL this session is connected to. */
  url: string;
  /** The transport that carries it. */
  transport: TransportName;
  /** The user subject's position (durable delivery). */
  seq?: string;
  /** True for the first hello after `connect()`. */
  first: boolean;
  /** With a cursor in connect: whether the user's missed pushes are being replayed. */
  recovered: boolean | undefined;
  /** User pushes may have been missed: refetch what depends on them (see SubscribedEvent.gap). */
  gap: boolean;
}

/** A connection closed. */
export interface DisconnectEvent {
  /** The close code (1006 when the connection failed or the client gave up on a silent server). */
  code: number;
  /** The close reason, `"<error>: <message>"` for pushd's refusals. */
  reason: string;
  /** The reason's error code (`token_expired`, `draining`, ...), "" when none. */
  error: string;
  url: string;
  /** The transport of the connection. */
  transport: TransportName;
  /** The node the close reason (or HTTP refusal) named: it sent the client away (drain hint). */
  avoidNode?: number;
  /** Whether the client will reconnect. */
  willReconnect: boolean;
  /**
   * Milliseconds until the next attempt (while online), when it will reconnect: 0 when the next
   * transport is tried at once.
   */
  delay?: number;
}

/** The client's state changed. */
export interface StateEvent {
  state: ClientState;
  previous: ClientState;
  /** The close code that caused it, when a close did. */
  code?: number;
  reason?: string;
}

/** The client's events. */
export interface ClientEvents {
  state: StateEvent;
  hello: HelloEvent;
  disconnect: DisconnectEvent;
  /** Every push: to the user, to joined docs (also emitted on their subscription), to all, to the session. */
  push: Push;
  /** Errors that belong to no request: refused joins nobody listens to, failed refreshes, listener errors. */
  error: PushdError;
}

/** @internal One connection attempt. */
interface Conn {
  gen: number;
  url: string;
  /** The transport, its index in the client's list, and how many were tried in this round. */
  transport: TransportName;
  ti: number;
  tried: number;
  t: Transport;
  hb: Heartbeat;
  since: string | undefined;
  token: string | undefined;
  helloAt?: number;
}

const defaults = {
  requestTimeout: 10_000,
  connectTimeout: 10_000,
  maxAuthFailures: 3,
  refreshMargin: 60_000,
  stableAfter: 10_000,
  transportTimeout: 5000,
  rememberTransport: 3_600_000,
  avoidFor: 30_000,
  ack: "auto",
} as const;

/**
 * A pushd client: one session at a time, reconnected with backoff, with its subscriptions.
 *
 * ```ts
 * const client = new PushdClient({ url: "wss://push.example.com/ws", getToken });
 * client.on("push", (p) => console.log(p.event, p.data));
 * client.connect();
 * ```
 */
export class PushdClient extends Emitter<ClientEvents> implements SubscriptionHost {
  private readonly opts: ClientOptions;
  private readonly factories: Partial<Record<TransportName, TransportFactory>>;
  private readonly names: TransportName[];
  private readonly memory: TransportMemory;
  /** The next transport to try at once, after one that could not connect. */
  private step: { ti: number; tried: number } | undefined;
  private readonly win: WindowLike | undefined;
  private readonly random: () => number;
  private readonly requests = new Requests();
  private readonly subs = new Map<string, Subscription>();
  private readonly userCursor: Cursor;
  private _state: ClientState = "disconnected";
  private gen = 0;
  private conn: Conn | undefined;
  private attempt = 0;
  /** Index into a URL list (or the url function's attempt): where the current session is; a close moves on. */
  private urlIndex = 0;
  private authFailures = 0;
  private hellos = 0;
  private ids = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private waitingOnline = false;
  private unwatch: (() => void) | undefined;
  private queue: { id: string; frame: ClientFrame }[] = [];
  private lastHello: HelloEvent | undefined;
  /** The node each URL led to (its last hello, or a refusal naming its node). */
  private readonly urlNodes = new Map<string, number>();
  /** Nodes that sent the client away, until when to skip their URLs (ms since the epoch). */
  private readonly avoiding = new Map<number, number>();
  /** URLs tried since the last hello: once every URL not avoided is, the avoided ones are tried too. */
  private readonly triedSinceHello = new Set<string>();

  constructor(options: ClientOptions) {
    super();
    if (!options.getToken && options.user === undefined) throw new TypeError("pushd: set getToken (or user, on a dev node)");
    this.opts = options;
    this.win = options.window === null ? undefined : (options.window ?? defaultWindow());
    this.random = options.random ?? Math.random;
    const g = globalThis as { WebSocket?: WebSocketConstructor; EventSource?: EventSourceConstructor };
    const WS = options.WebSocket ?? g.WebSocket;
    const f: typeof fetch | undefined = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    const env = {
      fetch: ((input, init) => f!(input, init)) as typeof fetch, // called unbound: window.fetch refuses another `this`
      EventSource: options.EventSource === null ? undefined : (options.EventSource ?? g.EventSource),
      window: this.win,
      random: this.random,
    };
    this.factories = {
      ...(WS && { websocket: webSocketTransport(WS) }),
      ...(f && { sse: httpTransport("sse", env), poll: httpTransport("poll", env) }),
      ...options.transportFactories,
    };
    this.names = (options.transports ?? ["websocket", "sse", "poll"]).filter((n) => this.factories[n]);
    if (!this.names.length) throw new TypeError("pushd: no transport here: pass the ws package as the WebSocket option (or allow sse and poll where fetch exists)");
    this.memory = new TransportMemory(options.rememberTransport ?? defaults.rememberTransport, options.storage === null ? undefined : (options.storage ?? defaultStorage()));
    this.userCursor = new Cursor(options.since);
  }

  /** See {@link ClientState}. */
  get state(): ClientState {
    return this._state;
  }

  /** The current session's hello, while connected. */
  get session(): HelloEvent | undefined {
    return this._state === "connected" ? this.lastHello : undefined;
  }

  /** The user subject's resume cursor: save it to pass as `since` after a reload. */
  get cursor(): string | undefined {
    return this.userCursor.since;
  }

  /** Starts connecting (and reconnecting until `disconnect()`). Does nothing unless disconnected. */
  connect(): void {
    if (this._state !== "disconnected") return;
    this.attempt = this.authFailures = this.hellos = 0;
    this.step = undefined;
    this.setState("connecting");
    this.unwatch = watchEnvironment(this.win, {
      online: () => this.wake(true),
      offline: () => {
        if (this.conn?.helloAt !== undefined) this.conn.hb.check();
        else if (this.retryTimer !== undefined) {
          clearTimeout(this.retryTimer);
          this.retryTimer = undefined;
          this.waitingOnline = true;
        }
      },
      visible: () => this.wake(false),
    });
    void this.open();
  }

  /**
   * Closes the connection and stops reconnecting; requests in flight fail with `closed`. Every
   * timer and browser listener is released. Subscriptions are kept: `connect()` rejoins them.
   */
  disconnect(): void {
    if (this._state === "disconnected") return;
    this.stop(1000, "", new PushdError("closed", "disconnect() was called"));
  }

  /** Resolves with the next hello (at once when connected); rejects if the client stops first. */
  whenConnected(): Promise<HelloEvent> {
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
          reject(new PushdError("closed", `the client stopped (${e.code ?? "-"} ${e.reason ?? ""})`, e.code === undefined ? {} : { closeCode: e.code }));
        }),
      ];
    });
  }

  /**
   * Joins a doc; returns its subscription (the existing one when the doc is joined already). The
   * join is sent now when connected, else after the next hello, and again after every reconnect.
   */
  join(doc: string, options: JoinOptions = {}): Subscription {
    const existing = this.subs.get(doc);
    if (existing) return existing;
    const sub = new Subscription(doc, options, this);
    this.subs.set(doc, sub);
    if (this.conn?.helloAt !== undefined) void this.sendJoin(sub, this.conn);
    return sub;
  }

  /** The subscription of a doc, if joined. */
  subscription(doc: string): Subscription | undefined {
    return this.subs.get(doc);
  }

  /**
   * Publishes to a joined doc's backends (`push.up.doc.<doc>` on NATS). Resolves when the node
   * forwarded it; rejects with a {@link PushdError}: the server's code (`not_joined`,
   * `invalid_event`, `unavailable`, `rate_limited`), `timeout`, `disconnected` (it may or may not
   * have been forwarded) or `closed`. While reconnecting it waits for the next session.
   */
  publish(doc: string, event: string, data: unknown): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this._state === "disconnected") {
        reject(new PushdError("closed", "the client is disconnected; call connect() first", { doc }));
        return;
      }
      const id = this.id("p");
      const frame: ClientFrame = { type: "publish", doc, event, data: data === undefined ? null : data, id };
      const p = this.requests.add(
        id,
        {
          onReply: (f) => (f.type === "published" ? resolve() : reject(new PushdError("protocol", `publish answered with ${f.type}`, { doc }))),
          onFail: reject,
        },
        this.opts.requestTimeout ?? defaults.requestTimeout,
      );
      if (this.conn?.helloAt !== undefined) this.sendRequest(this.conn, frame, p);
      else this.queue.push({ id, frame });
    });
  }

  /**
   * @internal Sends a request frame (a presence query) and resolves with its reply; fails as
   * publish does. While reconnecting it waits for the next session.
   */
  request(frame: ClientFrame, doc: string): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      if (this._state === "disconnected") {
        reject(new PushdError("closed", "the client is disconnected; call connect() first", { doc }));
        return;
      }
      const id = this.id("q");
      frame = { ...frame, id };
      const p = this.requests.add(id, { onReply: resolve, onFail: reject }, this.opts.requestTimeout ?? defaults.requestTimeout);
      if (this.conn?.helloAt !== undefined) this.sendRequest(this.conn, frame, p);
      else this.queue.push({ id, frame });
    });
  }

  /** @internal Leaves a subscription (sub.leave()). */
  leave(sub: Subscription): Promise<void> {
    if (sub.state === "left" || sub.state === "failed") return Promise.resolve();
    const wasJoined = sub.joinGen === this.gen && this.conn?.helloAt !== undefined;
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
  report(err: PushdError): void {
    this.emit("error", err);
  }

  /** @internal */
  override listenerError(err: unknown, type: string): void {
    if (type === "error") super.listenerError(err, type);
    else this.report(new PushdError("listener", `a ${type} listener threw: ${String(err)}`, { cause: err }));
  }

  // --- connections -------------------------------------------------------------------------

  private async open(): Promise<void> {
    const gen = ++this.gen;
    this.retryTimer = undefined;
    if (isOffline(this.win)) {
      this.waitingOnline = true; // the online event calls wake
      return;
    }
    this.waitingOnline = false;
    let url: string;
    let token: string | undefined;
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
    // A round tries each transport once, from the one that last worked on this URL.
    const step = this.step ?? { ti: Math.max(0, this.names.indexOf(this.memory.get(url)!)), tried: 1 };
    this.step = undefined;
    const transport = this.names[step.ti]!;
    const hb = new Heartbeat(
      () => this.conn === c && c.t.send('{"type":"ping"}'),
      (why) => this.giveUp(c, why),
    );
    const c: Conn = { gen, url, transport, ...step, hb, since: undefined, token, t: undefined as unknown as Transport };
    this.conn = c;
    try {
      c.t = this.factories[transport]!(url, {
        open: () => this.onOpen(c),
        message: (m) => this.onFrame(c, m),
        alive: () => {
          if (c === this.conn && c.helloAt !== undefined) c.hb.received();
        },
        close: (code, reason, retry) => this.onClose(c, code, reason, retry),
      });
    } catch (err) {
      c.t = { send() {}, close() {} };
      this.onClose(c, 1006, `connect_failed: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    hb.mode = c.t.heartbeat ?? "ping";
    let ms = this.opts.connectTimeout ?? defaults.connectTimeout;
    if (step.tried < this.names.length) ms = Math.min(ms, this.opts.transportTimeout ?? defaults.transportTimeout);
    hb.expect(ms, `connect_timeout: no hello within ${ms}ms`);
  }

  private async nextUrl(): Promise<string> {
    const u = this.opts.url;
    const i = this.urlIndex;
    if (typeof u === "function") return u(i);
    if (typeof u === "string") return u;
    if (!u.length) throw new TypeError("pushd: the url list is empty");
    // The next URL that does not lead to a node that sent the client away; when they all do, or
    // all the others failed since the last hello, the next one anyway (a drained node's URL may
    // lead to its successor by now).
    const others = u.filter((x) => !this.avoided(x));
    if (others.every((x) => this.triedSinceHello.has(x))) return u[i % u.length]!;
    let k = 0;
    while (this.avoided(u[(i + k) % u.length]!)) k++;
    this.urlIndex = i + k;
    return u[this.urlIndex % u.length]!;
  }

  /** Whether url is known to lead to a node to avoid now. */
  private avoided(url: string): boolean {
    const n = this.urlNodes.get(url);
    const until = n === undefined ? undefined : this.avoiding.get(n);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.avoiding.delete(n!);
    return false;
  }

  /** A close or refusal named its node (docs/PROTOCOL.md, "Going elsewhere"): skip it for a while. */
  private avoid(c: Conn, reason: string): void {
    const n = reasonNode(reason);
    const ms = this.opts.avoidFor ?? defaults.avoidFor;
    if (n === undefined || !(ms > 0)) return;
    this.avoiding.set(n, Date.now() + ms);
    if (c.helloAt === undefined) this.urlNodes.set(c.url, n); // refused there: that URL leads to n
  }

  private onOpen(c: Conn): void {
    if (c !== this.conn) return;
    c.since = this.userCursor.since;
    const f: ClientFrame = { type: "connect", id: this.id("c") };
    if (c.token !== undefined) f["token"] = c.token;
    else f["user"] = this.opts.user;
    if (c.since !== undefined) f["since"] = c.since;
    c.t.send(JSON.stringify(f));
  }

  private onFrame(c: Conn, m: string | ServerFrame): void {
    if (c !== this.conn) return;
    c.hb.received();
    let f: ServerFrame;
    try {
      f = typeof m === "string" ? (JSON.parse(m) as ServerFrame) : m;
      if (typeof f?.type !== "string") throw new Error("no type");
    } catch {
      this.report(new PushdError("protocol", `not a pushd frame: ${(typeof m === "string" ? m : JSON.stringify(m)).slice(0, 100)}`));
      return;
    }
    switch (f.type) {
      case "hello":
        return this.onHello(c, f as unknown as HelloFrame);
      case "pong":
        if (typeof f.ping_interval === "number" && typeof f.ping_timeout === "number") c.hb.update(f.ping_interval, f.ping_timeout);
        return;
      case "push":
        return this.onPush(f as unknown as PushFrame);
      case "presence_diff": {
        const sub = typeof f.doc === "string" ? this.subs.get(f.doc) : undefined;
        const { type: _, ...diff } = f;
        if (sub) sub.presenceDiff(diff as unknown as PresenceDiff);
        return;
      }
    }
    if (this.requests.settle(f)) return;
    if (f.type === "error") this.report(new PushdError(String(f.code ?? "error"), String(f.message ?? ""), { doc: f.doc }));
    // Anything else is a frame this client does not know yet: ignored, as the protocol asks.
  }

  private onHello(c: Conn, h: HelloFrame): void {
    if (c.helloAt !== undefined) return;
    c.helloAt = Date.now();
    this.authFailures = 0;
    const first = this.hellos++ === 0;
    const { recovered, gap } = this.resume(this.userCursor, c.since, h.seq, h.recovered, first);
    this.lastHello = { sid: h.sid, node: h.node, user: h.user, url: c.url, transport: c.transport, first, recovered, gap };
    this.memory.set(c.url, c.transport);
    this.urlNodes.set(c.url, h.node);
    this.triedSinceHello.clear();
    if (h.seq !== undefined) this.lastHello.seq = h.seq;
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
  private resume(cur: Cursor, since: string | undefined, seq: string | undefined, rec: boolean | undefined, first: boolean) {
    const recovered = since === undefined ? undefined : rec === true;
    if (!recovered) {
      const s = parseSeq(seq);
      if (s !== undefined || rec === false) cur.reset(s);
    }
    return { recovered, gap: since === undefined ? !first : !recovered };
  }

  private onClose(c: Conn, code: number, reason: string, retry?: number): void {
    if (c !== this.conn) return;
    this.conn = undefined;
    c.hb.stop();
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    const lost = () => new PushdError("disconnected", `the connection closed (${code}) before the reply`, { closeCode: code });
    this.requests.fail(lost, (p) => p.inFlight);
    this.resetSubs();
    const { error, message } = parseReason(reason);
    this.avoid(c, reason);
    let action: CloseAction = closeAction(code);
    if (action === "auth" && (!this.opts.getToken || ++this.authFailures >= (this.opts.maxAuthFailures ?? defaults.maxAuthFailures))) {
      action = "stop";
    }
    if (c.helloAt !== undefined && Date.now() - c.helloAt >= (this.opts.stableAfter ?? defaults.stableAfter)) this.attempt = 0;
    // Failed before hello without a close code: this transport does not get through here (a
    // proxy refused the WebSocket, a buffered stream never said hello), so the next one is tried
    // at once on the same URL. A server's close code means it got through: the usual policy.
    const fallback = c.helloAt === undefined && code === 1006 && c.tried < this.names.length;
    if (fallback) this.step = { ti: (c.ti + 1) % this.names.length, tried: c.tried + 1 };
    else this.urlIndex++;
    const willReconnect = action !== "stop";
    const ev: DisconnectEvent = { code, reason, error, url: c.url, transport: c.transport, willReconnect };
    const avoidNode = reasonNode(reason);
    if (avoidNode !== undefined) ev.avoidNode = avoidNode;
    if (!willReconnect) {
      this.emit("disconnect", ev);
      const err = new PushdError(error || "closed", `stopped after close ${code}: ${message || "no reason"}`, { closeCode: code });
      this.stop(code, reason, err);
      this.report(err);
      return;
    }
    // The server's retry hint (an HTTP close frame's, after a drain) says when to come back.
    ev.delay = fallback ? 0 : retry !== undefined && retry > 0 ? retry : backoffDelay(action, this.attempt++, this.opts.backoff, this.random);
    this.setState("connecting", code, reason);
    this.emit("disconnect", ev);
    if (this.conn === undefined && this._state === "connecting" && this.retryTimer === undefined && !this.waitingOnline) this.retry(ev.delay);
  }

  /** Gives up on a connection whose server went silent. */
  private giveUp(c: Conn, why: string): void {
    if (c !== this.conn) return;
    c.t.close(1000, "");
    this.onClose(c, 1006, why);
  }

  private retry(delay: number): void {
    if (isOffline(this.win)) {
      this.waitingOnline = true;
      return;
    }
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }

  /** Back online, or the page became visible: reconnect now if waiting, else check the connection. */
  private wake(online: boolean): void {
    if (this._state === "disconnected") return;
    if (this.conn?.helloAt !== undefined) {
      this.conn.hb.check();
      return;
    }
    if (this.retryTimer === undefined && !this.waitingOnline) return; // an attempt is under way
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (online) this.attempt = 0;
    void this.open();
  }

  private stop(code: number, reason: string, err: PushdError): void {
    this.gen++;
    clearTimeout(this.retryTimer);
    clearTimeout(this.refreshTimer);
    this.retryTimer = this.refreshTimer = undefined;
    this.waitingOnline = false;
    const c = this.conn;
    this.conn = undefined;
    if (c) {
      c.hb.stop();
      c.t.close(1000, "");
    }
    this.unwatch?.();
    this.unwatch = undefined;
    this.queue = [];
    this.step = undefined;
    this.requests.fail(() => err);
    this.resetSubs();
    this.setState("disconnected", code, reason);
  }

  /** The connection is gone: joined subscriptions wait for the next one. */
  private resetSubs(): void {
    for (const sub of this.subs.values()) {
      clearTimeout(sub.timer);
      sub.early = [];
      if (sub.state === "joined") sub.state = "joining";
    }
  }

  private setState(state: ClientState, code?: number, reason?: string): void {
    const previous = this._state;
    if (state === previous) return;
    this._state = state;
    const e: StateEvent = { state, previous };
    if (code !== undefined) {
      e.code = code;
      e.reason = reason ?? "";
    }
    this.emit("state", e);
  }

  // --- frames --------------------------------------------------------------------------------

  private id(prefix: string): string {
    return prefix + ++this.ids;
  }

  private sendRequest(c: Conn, frame: ClientFrame, p: Pending): void {
    p.inFlight = true;
    c.t.send(JSON.stringify(frame));
  }

  private async sendJoin(sub: Subscription, c: Conn): Promise<void> {
    if (sub.joinGen === c.gen) return;
    sub.joinGen = c.gen;
    let token = sub.token;
    if (typeof token === "function") {
      // Only a token function waits: other joins go out at once, before queued publishes.
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
    const frame: ClientFrame = { type: "join", doc: sub.doc, id };
    if (token !== undefined) frame["token"] = token;
    if (since !== undefined) frame["since"] = since;
    if (sub.presenceEvents) frame["presence"] = true;
    const p = this.requests.add(id, {
      onReply: (f) => this.onJoined(sub, c, f, since),
      onFail: (err) => this.onJoinError(sub, c, err),
    });
    this.sendRequest(c, frame, p);
  }

  private onJoined(sub: Subscription, c: Conn, f: ServerFrame, since: string | undefined): void {
    if (c !== this.conn || sub.state !== "joining") return;
    const first = !sub.joinedOnce;
    sub.joinedOnce = true;
    const { recovered, gap } = this.resume(sub.cur, since, f.seq, f.recovered, first);
    sub.state = "joined";
    sub.subscribed({ doc: sub.doc, ...(f.seq === undefined ? {} : { seq: f.seq }), first, recovered, gap });
    const early = sub.early;
    sub.early = [];
    for (const p of early) this.onPush(p);
  }

  private onJoinError(sub: Subscription, c: Conn, err: PushdError): void {
    if (c !== this.conn || sub.state !== "joining" || this.subs.get(sub.doc) !== sub) return;
    sub.joinGen = -1;
    sub.early = [];
    switch (err.code) {
      case "disconnected":
        return; // rejoined after the next hello
      case "bad_since":
        sub.cur.reset(undefined);
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

  private onPush(f: PushFrame): void {
    let sub: Subscription | undefined;
    let cur: Cursor | undefined;
    if (f.target === "doc") {
      sub = f.doc === undefined ? undefined : this.subs.get(f.doc);
      if (!sub) return;
      if (sub.state !== "joined") {
        // Over HTTP a join's answer comes in its POST and the pushes it replays down the stream,
        // where they may come first (docs/PROTOCOL.md): they wait for the answer.
        if (sub.state === "joining" && sub.joinGen === this.conn?.gen) sub.early.push(f);
        return;
      }
      cur = sub.cur;
    } else if (f.target === "user") {
      cur = this.userCursor;
    }
    const seq = cur && parseSeq(f.seq);
    const gen = this.gen;
    if (cur && seq !== undefined) {
      if (cur.seen(seq)) return; // a duplicate from a resume
      cur.take(seq, f.ack === true, gen);
      if (cur.acked(seq)) {
        // The app acknowledged an earlier copy while this session could not take it: the replay
        // makes this session owe the receipt, so send it now, and do not deliver the push again.
        this.sendAck(sub, cur, seq);
        return;
      }
    }
    // A push without a position (a broadcast, a session push, any push on a node without
    // history) asks for a receipt only with an id, and is acknowledged by it.
    const byId = f.ack === true && seq === undefined && typeof f.id === "string" && f.id !== "";
    const needsAck = (f.ack === true && seq !== undefined) || byId;
    const c = this.conn;
    const push = newPush(f, needsAck, byId ? () => this.sendAckById(c, f.id!) : () => this.sendAck(sub, cur!, seq!));
    const a = sub ? sub.dispatch(push) : { results: [], ok: true };
    const b = this.emit("push", push);
    if (!needsAck || this.opts.ack === "manual" || !a.ok || !b.ok) return;
    const waits = [...a.results, ...b.results].filter(isThenable);
    if (!waits.length) push.ack();
    else
      Promise.all(waits).then(
        () => push.ack(),
        (err) => this.report(new PushdError("listener", `a push listener rejected; no receipt for seq ${f.seq}: ${String(err)}`, { cause: err })),
      );
  }

  /**
   * Sends a receipt if the session that delivered the push is still the current one (a node takes
   * receipts only for pushes it delivered on the session); else it is sent when a resume replays
   * the push. Nothing when it was given already (for another copy of the push).
   */
  private sendAck(sub: Subscription | undefined, cur: Cursor, seq: bigint): void {
    if (!cur.awaits(seq)) return;
    const c = this.conn;
    if (!c || c.helloAt === undefined || c.gen !== cur.deliveredOn(seq) || (sub && sub.state !== "joined")) {
      cur.ackLater(seq);
      return;
    }
    const f: ClientFrame = { type: "ack", seq: seq.toString() };
    if (sub) f["doc"] = sub.doc;
    c.t.send(JSON.stringify(f));
    cur.ackSent(seq);
  }

  /**
   * Acknowledges a push without a position by its id, on the session that delivered it: such a
   * push is not replayed, so once that session is gone its receipt cannot be given.
   */
  private sendAckById(c: Conn | undefined, id: string): void {
    if (c && c === this.conn && c.helloAt !== undefined) c.t.send(JSON.stringify({ type: "ack", push_id: id }));
  }

  // --- token refresh -------------------------------------------------------------------------

  private scheduleRefresh(c: Conn): void {
    const exp = c.token === undefined ? undefined : tokenExpiry(c.token);
    if (exp === undefined) return;
    const delay = refreshDelay(exp * 1000, Date.now(), this.opts.refreshMargin ?? defaults.refreshMargin);
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => void this.refresh(c, exp), delay);
  }

  private async refresh(c: Conn, exp: number): Promise<void> {
    this.refreshTimer = undefined;
    const again = (err: PushdError) => {
      if (c !== this.conn) return;
      this.report(err);
      const left = exp * 1000 - Date.now();
      // Retry while there is time; past exp the node closes with 4001 and we reconnect.
      if (left > 100) this.refreshTimer = setTimeout(() => void this.refresh(c, exp), Math.min(left / 2, 5000));
    };
    let token: string;
    try {
      token = await this.opts.getToken!();
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
        onFail: (err) => again(err),
      },
      this.opts.requestTimeout ?? defaults.requestTimeout,
    );
    this.sendRequest(c, { type: "refresh", token, id }, p);
  }
}
