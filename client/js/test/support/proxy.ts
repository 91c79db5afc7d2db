// A reverse proxy in front of a real pushd, standing for the networks the HTTP transports exist
// for: it can refuse WebSocket upgrades and any path (a 403 page, as corporate proxies answer),
// and cut the event streams and polls open through it (as a flaky network or a proxy's timeout
// would). It records every request it saw.
import { createServer, request, type ClientRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { within } from "./wait.js";

export class Proxy {
  /** Paths refused with 403 (a WebSocket upgrade to one of them too). */
  readonly blocked = new Set<string>();
  /** Every request: method and URL (path and query), upgrades as "UPGRADE /ws". */
  readonly seen: string[] = [];
  private readonly open = new Set<{ res: ServerResponse; out: ClientRequest; up: IncomingMessage | undefined; path: string; url: string }>();
  private readonly waiters: { path: string; match: (url: string) => boolean; resolve: (url: string) => void }[] = [];
  private readonly sockets = new Set<Socket>();
  /** Upgraded connections (WebSockets), client side. */
  private readonly tunnels = new Set<Socket>();
  readonly url: string;
  readonly ws: string;

  private constructor(private readonly server: Server, private readonly target: URL) {
    const { port } = server.address() as { port: number };
    this.url = `http://127.0.0.1:${port}`;
    this.ws = `ws://127.0.0.1:${port}/ws`;
    server.on("request", (req, res) => this.forward(req, res));
    server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => this.upgrade(req, socket, head));
    server.on("connection", (s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  /** A proxy on a random loopback port in front of target (`http://host:port`). */
  static async start(target: string): Promise<Proxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new Proxy(server, new URL(target));
  }

  /** Requests seen whose path is path. */
  count(path: string, method?: string): number {
    return this.seen.filter((s) => {
      const [m, u] = s.split(" ");
      return new URL(u!, this.url).pathname === path && (method === undefined || m === method);
    }).length;
  }

  /**
   * Resolves with the URL (path and query) of a request on path open through the proxy and
   * matching match, at once if there is one.
   */
  opened(path: string, match: (url: string) => boolean = () => true): Promise<string> {
    const o = [...this.open].find((o) => o.path === path && match(o.url));
    if (o) return Promise.resolve(o.url);
    return within(5000, `a request on ${path}`, new Promise<string>((resolve) => void this.waiters.push({ path, match, resolve })));
  }

  /** Cuts every response open on path (an event stream, a held poll): the client sees the connection drop. */
  cut(path: string): number {
    let n = 0;
    for (const o of this.open) {
      if (o.path !== path) continue;
      n++;
      o.res.socket?.destroy();
      o.out.destroy();
    }
    return n;
  }

  /** Cuts every WebSocket open through the proxy (no close frame: the client sees 1006). */
  cutUpgrades(): number {
    const n = this.tunnels.size;
    for (const s of this.tunnels) s.destroy();
    return n;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    this.seen.push(`${req.method} ${req.url}`);
    const path = new URL(req.url ?? "/", this.url).pathname;
    if (this.blocked.has(path)) {
      res.writeHead(403, { "Content-Type": "text/html" }).end("<h1>Forbidden by policy</h1>");
      return;
    }
    const out = request(
      { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        o.up = up;
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    const o = { res, out, up: undefined as IncomingMessage | undefined, path, url: req.url ?? "/" };
    this.open.add(o);
    res.on("close", () => this.open.delete(o));
    for (const w of this.waiters.filter((w) => w.path === path && w.match(o.url))) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve(o.url);
    }
    out.on("error", () => res.socket?.destroy());
    req.pipe(out);
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    this.seen.push(`UPGRADE ${req.url}`);
    const path = new URL(req.url ?? "/", this.url).pathname;
    if (this.blocked.has(path)) {
      socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nForbidden");
      return;
    }
    const up = connect(Number(this.target.port), this.target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(lines.join("\r\n") + "\r\n\r\n");
      up.write(head);
      up.pipe(socket).pipe(up);
    });
    this.tunnels.add(socket);
    socket.on("close", () => this.tunnels.delete(socket));
    up.on("error", () => socket.destroy());
    socket.on("error", () => up.destroy());
    socket.on("close", () => up.destroy());
  }
}
