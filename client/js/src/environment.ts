/**
 * The parts of a browser's `window` the client watches: `online`/`offline` events and
 * `navigator.onLine`, the document's `visibilitychange`, and `pagehide` (HTTP transports). In
 * Node there is none.
 */
export interface WindowLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
  /** `sendBeacon` closes an HTTP session when the page goes away (`pagehide`). */
  navigator?: { onLine?: boolean; sendBeacon?(url: string): boolean };
  document?: {
    visibilityState?: string;
    addEventListener(type: string, listener: () => void): void;
    removeEventListener(type: string, listener: () => void): void;
  };
}

/** @internal What the client does on each browser signal. */
export interface EnvironmentHandlers {
  online(): void;
  offline(): void;
  visible(): void;
}

/** @internal The page's window when there is one. */
export function defaultWindow(): WindowLike | undefined {
  const w = (globalThis as { window?: WindowLike }).window;
  return w && typeof w.addEventListener === "function" ? w : undefined;
}

/** @internal Whether the browser says it is offline (unknown counts as online). */
export function isOffline(w: WindowLike | undefined): boolean {
  return w?.navigator?.onLine === false;
}

/** @internal Listens to the window's signals; returns a function that stops listening. */
export function watchEnvironment(w: WindowLike | undefined, on: EnvironmentHandlers): () => void {
  if (!w) return () => {};
  const online = () => on.online();
  const offline = () => on.offline();
  const visibility = () => {
    if (w.document?.visibilityState === "visible") on.visible();
  };
  w.addEventListener("online", online);
  w.addEventListener("offline", offline);
  w.document?.addEventListener("visibilitychange", visibility);
  return () => {
    w.removeEventListener("online", online);
    w.removeEventListener("offline", offline);
    w.document?.removeEventListener("visibilitychange", visibility);
  };
}
