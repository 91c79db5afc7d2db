/** A listener; what it returns matters only for `push` listeners (a Promise delays the receipt). */
export type Listener<T> = (event: T) => unknown;

/**
 * A tiny typed event emitter. A listener that throws does not stop the others; the error is
 * passed to {@link Emitter.listenerError} (the client reports it as an `error` event).
 */
export class Emitter<Events extends object> {
  private listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(type: K, fn: Listener<Events[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  /** Removes a listener added with {@link Emitter.on}. */
  off<K extends keyof Events>(type: K, fn: Listener<Events[K]>): void {
    this.listeners.get(type)?.delete(fn);
  }

  /** Adds a listener that runs once; returns a function that removes it. */
  once<K extends keyof Events>(type: K, fn: Listener<Events[K]>): () => void {
    const off = this.on(type, (e) => {
      off();
      return fn(e);
    });
    return off;
  }

  /** @internal Whether anyone listens to type. */
  protected listens(type: keyof Events): boolean {
    return (this.listeners.get(type)?.size ?? 0) > 0;
  }

  /**
   * @internal Calls every listener of type with event, in the order they were added, and returns
   * what they returned; `ok` is false when one of them threw.
   */
  protected emit<K extends keyof Events>(type: K, event: Events[K]): { results: unknown[]; ok: boolean } {
    const results: unknown[] = [];
    let ok = true;
    const set = this.listeners.get(type);
    if (!set) return { results, ok };
    for (const fn of [...set]) {
      try {
        results.push((fn as Listener<Events[K]>)(event));
      } catch (err) {
        ok = false;
        this.listenerError(err, String(type));
      }
    }
    return { results, ok };
  }

  /** @internal Called with what a listener threw. */
  protected listenerError(err: unknown, type: string): void {
    // No better place to report it: keep the emitter running.
    console.error(`pushd: a ${type} listener threw`, err);
  }
}
