import { PushdError } from "./errors.js";
import type { ServerFrame } from "./frames.js";

/** @internal A request waiting for the reply that echoes its id. */
export interface Pending {
  onReply(frame: ServerFrame): void;
  onFail(err: PushdError): void;
  /** Sent on the current connection: a close fails it. Queued requests survive reconnects. */
  inFlight: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

/** @internal Requests by frame id. */
export class Requests {
  private readonly m = new Map<string, Pending>();

  /** Registers a request; it fails with `timeout` after timeout ms when given. */
  add(id: string, handlers: Pick<Pending, "onReply" | "onFail">, timeout?: number): Pending {
    const p: Pending = { ...handlers, inFlight: false };
    if (timeout !== undefined) {
      p.timer = setTimeout(() => {
        this.m.delete(id);
        p.onFail(new PushdError("timeout", `no reply within ${timeout}ms`));
      }, timeout);
    }
    this.m.set(id, p);
    return p;
  }

  /** The request with this id, while it waits. */
  get(id: string): Pending | undefined {
    return this.m.get(id);
  }

  /** Settles the request whose id the frame echoes; false when there is none. */
  settle(f: ServerFrame): boolean {
    const id = f.id;
    const p = id === undefined ? undefined : this.m.get(id);
    if (!p || id === undefined) return false;
    this.m.delete(id);
    clearTimeout(p.timer);
    if (f.type === "error") p.onFail(new PushdError(String(f.code ?? "error"), String(f.message ?? ""), { doc: f.doc }));
    else p.onReply(f);
    return true;
  }

  /** Fails the requests that match with err (all when match is omitted). */
  fail(err: () => PushdError, match: (p: Pending) => boolean = () => true): void {
    for (const [id, p] of [...this.m]) {
      if (!match(p)) continue;
      this.m.delete(id);
      clearTimeout(p.timer);
      p.onFail(err());
    }
  }
}
