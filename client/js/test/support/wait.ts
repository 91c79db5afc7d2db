// Waiting for events in tests, always with a deadline.
import type { Emitter } from "../../src/emitter.js";

/** Rejects when promise is not settled within ms. */
export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms}ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The next event of type on target that matches (every one when match is omitted). */
export function nextEvent<E extends object, K extends keyof E>(target: Emitter<E>, type: K, match: (e: E[K]) => boolean = () => true, ms = 5000): Promise<E[K]> {
  let off = () => {};
  const p = new Promise<E[K]>((resolve) => {
    off = target.on(type, (e) => {
      if (!match(e)) return;
      off();
      resolve(e);
    });
  });
  const r = within(ms, `${String(type)} event`, p).finally(off);
  r.catch(() => {}); // rejected for whoever awaits it; not unhandled if a test fails before
  return r;
}

/** Records every event of type on target. */
export function record<E extends object, K extends keyof E>(target: Emitter<E>, type: K): E[K][] {
  const out: E[K][] = [];
  target.on(type, (e) => void out.push(e));
  return out;
}

// The SDK's own timers: setTimeout is wrapped so that timers created from the SDK's compiled
// source (build/src/) are counted until they fire or are cleared. (Other timers, such as ws's own
// close timers, come and go on their own schedule.) timers.test.ts also checks that a process
// that disconnects exits, which counts every handle.
const live = new Map<unknown, string>();
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
  // The caller is the frame below this wrapper's.
  const caller = (new Error().stack ?? "").split("\n")[2] ?? "";
  const fromSdk = /[/\\]build[/\\]src[/\\]/.test(caller);
  const t = realSetTimeout((...a: unknown[]) => {
    live.delete(t);
    fn(...a);
  }, ms, ...args);
  if (fromSdk) live.set(t, new Error().stack ?? "");
  return t;
}) as typeof setTimeout;
globalThis.clearTimeout = ((t?: Parameters<typeof clearTimeout>[0]) => {
  live.delete(t);
  realClearTimeout(t);
}) as typeof clearTimeout;

/** Timers the SDK has running. */
export function activeTimers(): number {
  if (process.env["DEBUG_TIMERS"]) for (const s of live.values()) console.error("LIVE TIMER", s);
  return live.size;
}
