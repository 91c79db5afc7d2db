// A scriptable stand-in for pushd's HTTP transports (docs/PROTOCOL.md, "HTTP transports"): a
// real HTTP server (node:http) on a random loopback port whose every request the test answers,
// for the faults a real node cannot be made to produce on demand (a POST's answer held while
// the stream goes on, a silent stream, refusals of every kind).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { within } from "./wait.js";

export type Frame = Record<string, any>;

/** One request the client made. */
export class Req {
  constructor(readonly req: IncomingMessage, readonly res: ServerResponse, readonly body: string) {}
  get path(): string {
    return new URL(this.req.url ?? "/", "http://x").pathname;
  }
  get query(): URLSearchParams {
    return new URL(this.req.url ?? "/", "http://x").searchParams;
  }
  get json(): Frame {
    return JSON.parse(this.body);
  }
  /** Answers with status and a JSON body. */
  reply(status: number, body: unknown): void {
    this.res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
  }
  /** Starts an event stream (SSE). */
  stream(retry = 3000): void {
    this.res.writeHead(200, { "Content-Type": "text/event-stream" });
    this.res.write(`retry: ${retry}\n`);
  }
  /** Writes one event (or raw text) on the stream. */
  event(frame: Frame, id?: string): void {
    this.res.write(`${id ? `id: ${id}\n` : ""}data: ${JSON.stringify(frame)}\n\n`);
  }
  write(raw: string): void {
    this.res.write(raw);
  }
  /** Resolves when the client went away. */
  get closed(): Promise<void> {
    return this.res.closed ? Promise.resolve() : new Promise((r) => this.res.once("close", () => r()));
  }
}

export class FakeHttp {
  readonly ws: string;
  private readonly inbox: Req[] = [];
  private readonly readers: { path: string; resolve: (r: Req) => void }[] = [];
  /** Every request, in order. */
  readonly all: Req[] = [];

  private constructor(private readonly server: Server) {
    const { port } = server.address() as { port: number };
    this.ws = `ws://127.0.0.1:${port}/ws`;
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      let body = "";
      req.setEncoding("utf8").on("data", (d: string) => (body += d));
      req.on("end", () => {
        const r = new Req(req, res, body);
        this.all.push(r);
        const i = this.readers.findIndex((w) => w.path === r.path);
        if (i >= 0) this.readers.splice(i, 1)[0]!.resolve(r);
        else this.inbox.push(r);
      });
    });
  }

  static async start(): Promise<FakeHttp> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new FakeHttp(server);
  }

  /** The next request on path (`/http/connect`, `/http/sse`, ...). */
  next(path: string, ms = 5000): Promise<Req> {
    const i = this.inbox.findIndex((r) => r.path === path);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    return within(ms, `a request on ${path}`, new Promise<Req>((resolve) => this.readers.push({ path, resolve })));
  }

  /** Requests received on path and not taken with next. */
  unread(path: string): Req[] {
    return this.inbox.filter((r) => r.path === path);
  }

  /** Answers the next connect with a session, then returns the next read (`/http/sse` or `/http/poll`). */
  async accept(read: "/http/sse" | "/http/poll"): Promise<{ connect: Req; read: Req }> {
    const connect = await this.next("/http/connect");
    connect.reply(200, { sid: "1794519372618698752", secret: "s3cret", node: 3, user: "alice", transport: connect.json["transport"] });
    return { connect, read: await this.next(read) };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A hello frame. */
export const hello = (extra: Frame = {}): Frame => ({ type: "hello", sid: "1794519372618698752", node: 3, user: "alice", ping_interval: 60_000, ping_timeout: 70_000, ...extra });
