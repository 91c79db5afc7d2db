import type { ServerFrame } from "./frames.js";

/** The transports the client can use, in the order it tries them by default. */
export type TransportName = "websocket" | "sse" | "poll";

/**
 * How a connection shows the server is alive (docs/PROTOCOL.md, "Heartbeats"):
 *
 * - `ping`: the client sends `{"type":"ping"}` every `ping_interval` (WebSocket);
 * - `stream`: the transport's own reads are the heartbeat and it reports every sign of life,
 *   keep-alives included (SSE read with fetch, long-polling): no pings; the server is taken for
 *   dead after `ping_timeout` of silence;
 * - `probe`: the stream is the heartbeat but its keep-alives are invisible (a browser's
 *   EventSource): after a `ping_interval` without a frame the client sends one ping.
 */
export type HeartbeatMode = "ping" | "stream" | "probe";

/**
 * How the client reaches a node: WebSocket ({@link webSocketTransport}), or the HTTP transports
 * (server-sent events and long-polling, http.ts), all carrying the same JSON frames.
 */
export interface Transport {
  /** Sends one JSON frame. Only called between `open` and `close`; the first is `connect`. */
  send(frame: string): void;
  /** Closes the connection; the transport calls no handler after this. */
  close(code?: number, reason?: string): void;
  /** See {@link HeartbeatMode}; `ping` when absent. */
  readonly heartbeat?: HeartbeatMode;
}

/** What a transport reports. Each handler runs at most once except `message` and `alive`. */
export interface TransportHandlers {
  open(): void;
  /** A frame from the server, as text or parsed already. */
  message(frame: string | ServerFrame): void;
  /** Traffic that carries no frame (an SSE keep-alive, an empty poll): the server is alive. */
  alive(): void;
  /**
   * The connection is gone; `code` and `reason` as in a WebSocket close (1006 when unknown), and
   * the server's `retry` hint (ms) when it gave one.
   */
  close(code: number, reason: string, retry?: number): void;
}

/** Opens a transport to url (the node's WebSocket URL). */
export type TransportFactory = (url: string, handlers: TransportHandlers) => Transport;

/**
 * The parts of the WebSocket API the client uses: the browser's, or Node's `ws` package. (The
 * handlers take `any` so that both implementations' event types fit.)
 */
export interface WebSocketLike {
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `ws`'s default export in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

const noop = () => {};

/** The WebSocket transport; WS is the WebSocket constructor to use. */
export function webSocketTransport(WS: WebSocketConstructor): TransportFactory {
  return (url, on) => {
    let done = false;
    const ws = new WS(url);
    const detach = () => {
      done = true;
      // Not null: Node's ws throws an error event that has no listener.
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = noop;
    };
    ws.onopen = () => on.open();
    ws.onmessage = (ev: { data: unknown }) => on.message(typeof ev.data === "string" ? ev.data : String(ev.data));
    ws.onerror = noop; // a close event follows
    ws.onclose = (ev: { code: number; reason: string }) => {
      if (done) return;
      detach();
      on.close(ev.code || 1006, ev.reason || "");
    };
    return {
      send(frame) {
        ws.send(frame);
      },
      close(code = 1000, reason = "") {
        if (done) return;
        detach();
        try {
          ws.close(code, reason);
        } catch {
          // already closing, or an invalid code: the socket is abandoned either way
        }
      },
    };
  };
}
