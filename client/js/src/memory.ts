import type { TransportName } from "./transport.js";

/** Where the client remembers the transport that worked: `localStorage`, or anything like it. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** @internal The storage key of url's transport. */
export const memoryKey = (url: string) => `pushd:transport:${url}`;

/** @internal localStorage when the page has one (reading it throws in some sandboxed frames). */
export function defaultStorage(): StorageLike | undefined {
  try {
    return (globalThis as { localStorage?: StorageLike }).localStorage ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * @internal The transport that last said hello on each URL, for `ttl` ms: reconnects (and, with
 * a storage, page loads) start with it instead of waiting for a blocked WebSocket each time. Once
 * it expires the client starts from the first transport again, so a network that lets WebSockets
 * through again gets them back.
 */
export class TransportMemory {
  private readonly m = new Map<string, { t: TransportName; until: number }>();

  constructor(
    private readonly ttl: number,
    private readonly storage: StorageLike | undefined,
  ) {}

  /** The transport that worked on url, unless forgotten. */
  get(url: string): TransportName | undefined {
    let e = this.m.get(url);
    if (!e && this.storage) {
      try {
        const v = JSON.parse(this.storage.getItem(memoryKey(url)) ?? "null");
        if (typeof v?.t === "string" && typeof v.until === "number") this.m.set(url, (e = v as { t: TransportName; until: number }));
      } catch {
        // unreadable or not ours: as if nothing was remembered
      }
    }
    return e && e.until > Date.now() ? e.t : undefined;
  }

  /** Remembers that t said hello on url. */
  set(url: string, t: TransportName): void {
    if (!(this.ttl > 0)) return;
    const e = { t, until: Date.now() + this.ttl };
    this.m.set(url, e);
    try {
      this.storage?.setItem(memoryKey(url), JSON.stringify(e));
    } catch {
      // full or forbidden: memory only
    }
  }
}
