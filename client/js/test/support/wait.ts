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
  return within(ms, `${String(type)} event`, p).finally(off);
}

/** Records every event of type on target. */
export function record<E extends object, K extends keyof E>(target: Emitter<E>, type: K): E[K][] {
  const out: E[K][] = [];
  target.on(type, (e) => void out.push(e));
  return out;
}

/** Active Node timers (setTimeout/setInterval handles). */
export function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
}
