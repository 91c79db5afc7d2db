/**
 * How the client reaches a node. Today only WebSocket; SSE and long-polling carry the same JSON
 * frames and will be further {@link TransportFactory}s tried in order.
 */
export interface Transport {
  /** Sends one JSON frame. Only called between `open` and `close`. */
  send(frame: string): void;
  /** Closes the connection; the transport calls no handler after this. */
  close(code?: number, reason?: string): void;
}

/** What a transport reports. Each handler runs at most once except `message`. */
export interface TransportHandlers {
  open(): void;
  message(frame: string): void;
  /** The connection is gone; `code` and `reason` as in a WebSocket close (1006 when unknown). */
  close(code: number, reason: string): void;
}

/** Opens a transport to url. */
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
