import type { WindowLike } from "./environment.js";
import type { ServerFrame } from "./frames.js";
import { EventStreamParser } from "./sse.js";
import type { HeartbeatMode, Transport, TransportFactory, TransportHandlers } from "./transport.js";

// The HTTP transports (docs/PROTOCOL.md, "HTTP transports: SSE and long-polling"): the same
// session and frames as a WebSocket, carried by plain HTTP for networks that break WebSockets.
//
//   POST /http/connect  the client's connect frame (plus "transport"); answers sid and secret
//   GET  /http/sse      downstream frames as server-sent events (EventSource, or fetch)
//   GET  /http/poll     downstream frames, long-polled with cursors
//   POST /http/send     one upstream frame; its replies come back in the answer
//   POST /http/close    ends the session (sendBeacon when the page goes away)

/** The parts of the EventSource API the SSE transport uses: the browser's, or a polyfill. */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  close(): void;
}

/** An EventSource constructor: `globalThis.EventSource` in browsers. */
export type EventSourceConstructor = new (url: string) => EventSourceLike;

/** @internal What the HTTP transports take from their environment. */
export interface HttpEnv {
  fetch: typeof fetch;
  /** Reads SSE with it when set; else with fetch. */
  EventSource?: EventSourceConstructor | undefined;
  /** Closes the session with sendBeacon when the page is hidden for good (`pagehide`). */
  window?: WindowLike | undefined;
  random: () => number;
}

/**
 * The HTTP endpoints' base of a node's WebSocket URL: `wss://h/ws` → `https://h/http`,
 * `ws://h/push/ws` → `http://h/push/http`.
 */
export function httpBase(url: string): string {
  const u = new URL(url, (globalThis as { location?: { href: string } }).location?.href);
  u.protocol = u.protocol === "wss:" ? "https:" : u.protocol === "ws:" ? "http:" : u.protocol;
  u.pathname = u.pathname.replace(/\/?(ws\/?)?$/, "/http");
  u.search = u.hash = "";
  return u.href;
}

/** The close codes of POST /http/connect's refusals, as a WebSocket handshake gives them. */
const refusals: Record<string, number> = {
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
  starting: 1013,
};

/** @internal The SSE (`sse`) or long-polling (`poll`) transport. */
export function httpTransport(kind: "sse" | "poll", env: HttpEnv): TransportFactory {
  return (url, on) => new HttpConn(kind, env, httpBase(url), on);
}

const enc = encodeURIComponent;
const text = (err: unknown) => (err instanceof Error ? err.message : String(err));

function parse(s: string): any {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/**
 * An HTTP error answer's `error` and `message` (a proxy's page has neither). A refusal that names
 * its node (`"avoid_node":N`: draining, not_leased, ...) gets the message a WebSocket close reason
 * would carry, `node N; <text>`, so the client reads the drain hint the same way from both.
 */
function refusal(res: Response, body: any, what: string): { error: string; message: string } {
  if (typeof body?.error !== "string") return { error: "http_error", message: `HTTP ${res.status} from ${what}` };
  let message = String(body.message ?? "");
  const n = body.avoid_node;
  if (Number.isInteger(n) && n >= 0) message = `node ${n}; ${message.replace(/^node [0-9]+; /, "")}`;
  return { error: body.error, message };
}

class HttpConn implements Transport {
  readonly heartbeat: HeartbeatMode;
  private readonly ctl = new AbortController();
  /** `?sid=…&secret=…`, once connected. */
  private q = "";
  private sid = "";
  private secret = "";
  private done = false;
  /** The session is known to be gone (close frame, 404, 410): no need to close it. */
  private gone = false;
  /** A frame came (the first is hello): the transport works. */
  private hello = false;
  /** A read failed on the way and was retried; a second failure in a row gives up. */
  private retried = false;
  private first = true;
  private out: string[] = [];
  private sending = false;
  private cursor = "0";
  private lastId = "";
  private hint = 1000;
  private es: EventSourceLike | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private unwatch: (() => void) | undefined;

  constructor(
    private readonly kind: "sse" | "poll",
    private readonly env: HttpEnv,
    private readonly base: string,
    private readonly on: TransportHandlers,
  ) {
    this.heartbeat = kind === "sse" && env.EventSource ? "probe" : "stream";
    queueMicrotask(() => this.done || on.open());
  }

  send(frame: string): void {
    if (this.done) return;
    if (this.first) {
      // The connect frame is the body of POST /http/connect.
      this.first = false;
      void this.connect(frame);
      return;
    }
    this.out.push(frame);
    void this.pump();
  }

  close(): void {
    if (this.done) return;
    this.end();
  }

  /** Stops everything; closes the session unless it is gone. */
  private end(): void {
    this.done = true;
    this.ctl.abort();
    clearTimeout(this.timer);
    this.unwatch?.();
    if (this.es) {
      this.es.onopen = this.es.onmessage = this.es.onerror = null;
      this.es.close();
    }
    if (this.sid && !this.gone) this.env.fetch(`${this.base}/close${this.q}`, { method: "POST", keepalive: true }).catch(() => {});
  }

  /** The connection is over: tell the client. */
  private fail(code: number, reason: string, retry?: number): void {
    if (this.done) return;
    this.end();
    this.on.close(code, reason, retry);
  }

  private async connect(frame: string): Promise<void> {
    let res: Response;
    let body: any;
    try {
      res = await this.env.fetch(`${this.base}/connect`, {
        method: "POST",
        // A string body is text/plain: no CORS preflight before the first frame.
        body: `{"transport":"${this.kind}",${frame.slice(1)}`,
        signal: this.ctl.signal,
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
  private frame(f: string | ServerFrame): void {
    if (this.done) return;
    this.hello = true;
    if (typeof f === "string" ? f.includes('"close_code"') : f.type === "close") {
      const c: ServerFrame | undefined = typeof f === "string" ? parse(f) : f;
      if (c?.type === "close") {
        this.gone = true;
        const code = typeof c["close_code"] === "number" ? c["close_code"] : 1006;
        return this.fail(code, String(c["reason"] ?? ""), typeof c["retry"] === "number" ? c["retry"] : undefined);
      }
    }
    this.on.message(f);
  }

  /**
   * A read failed on the way (the network, a proxy's timeout, a relaying node that drains). The
   * session may live on: read again from where this one stopped (Last-Event-ID, the same poll
   * cursor), once; a second failure in a row, or one before hello, ends the transport.
   */
  private dropped(why: string): void {
    if (this.done) return;
    if (!this.hello || this.retried) return this.fail(1006, why);
    this.retried = true;
    const again = () => (this.kind === "poll" ? this.poll() : this.stream());
    // Soon (many clients cut at once spread over the first backoff step), but not later than
    // the server's `retry:` asks.
    this.timer = setTimeout(() => void again(), this.env.random() * Math.min(this.hint, 500));
  }

  /** A read was refused: the session is gone (404, 410), taken over (409 replaced: 4011), or unreadable. */
  private refused(res: Response, body: any, what: string): void {
    const e = refusal(res, body, what);
    // Gone, or another reader's now: not ours to close.
    this.gone ||= res.status === 404 || res.status === 410 || e.error === "replaced";
    this.fail(e.error === "replaced" ? 4011 : 1006, `${e.error}: ${e.message}`);
  }

  /** SSE read with fetch: keep-alives are visible, and a dropped stream continues after its last event. */
  private async stream(): Promise<void> {
    const url = `${this.base}/sse${this.q}${this.lastId ? `&last_event_id=${enc(this.lastId)}` : ""}`;
    let res: Response;
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
      for (;;) {
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
  private eventSource(ES: EventSourceConstructor): void {
    const es = (this.es = new ES(`${this.base}/sse${this.q}`));
    es.onopen = () => {
      this.retried = false;
      this.on.alive();
    };
    es.onmessage = (ev: { data: string }) => this.frame(ev.data);
    es.onerror = () => {
      // CLOSED: the answer was not an event stream (the session is gone, or a proxy refused it).
      // Else the browser reconnects in `retry:` ms; a second error before it opens ends it.
      if (es.readyState === 2 || !this.hello || this.retried) this.fail(1006, "stream_failed: the event stream failed");
      else this.retried = true;
    };
  }

  /** Long-polling: each answer's cursor goes into the next poll and acknowledges its frames. */
  private async poll(): Promise<void> {
    let res: Response;
    let body: any;
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
    for (const f of body.frames as ServerFrame[]) {
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
  private async pump(): Promise<void> {
    if (this.sending || !this.sid) return;
    this.sending = true;
    while (this.out.length && !this.done) {
      const frame = this.out.shift()!;
      let res: Response;
      let body: any;
      try {
        res = await this.env.fetch(`${this.base}/send`, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Push-Session": this.sid, "Push-Secret": this.secret },
          body: frame,
          signal: this.ctl.signal,
        });
        body = parse(await res.text());
      } catch (err) {
        // It may or may not have arrived: as when a WebSocket breaks, the requests in flight fail.
        return this.fail(1006, `send_failed: ${text(err)}`);
      }
      if (this.done) return;
      if (res.ok && Array.isArray(body)) {
        for (const f of body as ServerFrame[]) this.frame(f);
        continue;
      }
      const e = refusal(res, body, "/http/send");
      if (res.status === 404) {
        this.gone = true;
        return this.fail(1006, `${e.error}: ${e.message}`);
      }
      // 410: the session ended; its close frame is on the stream and ends this transport.
      if (res.status !== 410) this.frame(errorFrame(frame, e.error, e.message));
    }
    this.sending = false;
  }

  /** Closes the session at once when the page goes away, instead of a ping_timeout later. */
  private watchPage(): void {
    const w = this.env.window;
    if (!w) return;
    const hide = () => {
      const url = `${this.base}/close${this.q}`;
      this.gone = w.navigator?.sendBeacon?.(url) === true || this.gone;
      // Back from the back-forward cache, the client reconnects (and resumes).
      this.fail(1001, "going_away: the page was hidden");
    };
    w.addEventListener("pagehide", hide);
    this.unwatch = () => w.removeEventListener("pagehide", hide);
  }
}

/** The error frame a WebSocket session would answer frame with. */
function errorFrame(frame: string, code: string, message: string): ServerFrame {
  const f = parse(frame);
  const e: ServerFrame = { type: "error", code, message };
  if (typeof f?.id === "string") e.id = f.id;
  if (typeof f?.doc === "string") e.doc = f.doc;
  return e;
}
