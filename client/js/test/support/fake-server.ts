// A scriptable pushd stand-in for the SDK's unit tests: a real WebSocket server (ws) on a random
// loopback port whose every frame the test reads and writes.
import { WebSocketServer, type WebSocket } from "ws";
import { within } from "./wait.js";

/** A frame as JSON. */
export type Frame = Record<string, any>;

export class FakeServer {
  readonly url: string;
  private readonly accepted: FakeConn[] = [];
  private readonly waiting: ((c: FakeConn) => void)[] = [];
  /** Every connection ever accepted, in order. */
  readonly all: FakeConn[] = [];

  private constructor(private readonly wss: WebSocketServer, port: number) {
    this.url = `ws://127.0.0.1:${port}/ws`;
    wss.on("connection", (ws, req) => {
      const c = new FakeConn(ws, req.url ?? "");
      this.all.push(c);
      const w = this.waiting.shift();
      if (w) w(c);
      else this.accepted.push(c);
    });
  }

  static async start(): Promise<FakeServer> {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve, reject) => {
      wss.once("listening", resolve);
      wss.once("error", reject);
    });
    const addr = wss.address();
    if (!addr || typeof addr === "string") throw new Error("unexpected address " + addr);
    return new FakeServer(wss, addr.port);
  }

  /** The next connection the server accepts. */
  nextConn(ms = 5000): Promise<FakeConn> {
    const c = this.accepted.shift();
    if (c) return Promise.resolve(c);
    return within(ms, "a connection", new Promise<FakeConn>((resolve) => this.waiting.push(resolve)));
  }

  /** How many connections are waiting to be taken with nextConn. */
  get backlog(): number {
    return this.accepted.length;
  }

  /** Drops every connection and stops listening. */
  async close(): Promise<void> {
    for (const c of this.all) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** One accepted connection. */
export class FakeConn {
  /** Frames the client sent and the test has not read, oldest first. */
  private readonly inbox: Frame[] = [];
  private readonly readers: ((f: Frame) => void)[] = [];
  /** Every frame the client sent. */
  readonly received: Frame[] = [];
  /** Answer pings with pongs (ping_interval/ping_timeout below). */
  autoPong = true;
  pingInterval = 60_000;
  pingTimeout = 70_000;
  /** Resolves with the close code and reason the client sent (or 1006). */
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket, readonly path: string) {
    this.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on("message", (data) => {
      const f = JSON.parse(data.toString()) as Frame;
      this.received.push(f);
      if (f.type === "ping" && this.autoPong) {
        this.send({ type: "pong", ping_interval: this.pingInterval, ping_timeout: this.pingTimeout });
        return;
      }
      const r = this.readers.shift();
      if (r) r(f);
      else this.inbox.push(f);
    });
  }

  /** The next frame from the client; when type is given it must be of that type. */
  async next(type?: string, ms = 5000): Promise<Frame> {
    const f = this.inbox.length
      ? this.inbox.shift()!
      : await within(ms, `a ${type ?? "frame"} from the client`, new Promise<Frame>((resolve) => this.readers.push(resolve)));
    if (type !== undefined && f.type !== type) throw new Error(`got ${JSON.stringify(f)}, want a ${type} frame`);
    return f;
  }

  /** Frames received and not read yet. */
  get unread(): Frame[] {
    return [...this.inbox];
  }

  send(f: Frame): void {
    this.ws.send(JSON.stringify(f));
  }

  /** Reads the connect frame and answers hello; returns the connect frame. */
  async accept(hello: Frame = {}): Promise<Frame> {
    const c = await this.next("connect");
    this.send({ type: "hello", sid: "1794519372618698752", node: 3, user: c.user ?? "alice", ping_interval: this.pingInterval, ping_timeout: this.pingTimeout, id: c.id, ...hello });
    return c;
  }

  /** Reads a join frame for doc and answers joined with extra fields; returns the join frame. */
  async joined(doc: string, extra: Frame = {}): Promise<Frame> {
    const j = await this.next("join");
    if (j.doc !== doc) throw new Error(`join for ${j.doc}, want ${doc}`);
    this.send({ type: "joined", doc, id: j.id, ...extra });
    return j;
  }

  push(f: Frame): void {
    this.send({ type: "push", event: "message", data: null, ...f });
  }

  close(code: number, reason = ""): void {
    this.ws.close(code, reason);
  }
}
