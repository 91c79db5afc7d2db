import type { PushFrame } from "./frames.js";

/** A push: a message a backend published to the user, a doc, everyone, or this session. */
export interface Push<T = unknown> {
  /** What the backend published to. */
  readonly target: "user" | "doc" | "all" | "session";
  /** The doc, for doc pushes. */
  readonly doc?: string;
  /** The event name (`message` unless the backend set one). */
  readonly event: string;
  /** The backend's Push-Id, when it set one. */
  readonly id?: string;
  /** The position in the user's or doc's history (durable delivery), a decimal string. */
  readonly seq?: string;
  /** The payload: any JSON value. */
  readonly data: T;
  /** Whether the backend asked for a receipt (the frame's `ack: true`). */
  readonly needsAck: boolean;
  /**
   * Sends the receipt (`{"type":"ack",...}`) once; later calls and calls on pushes that asked for
   * none do nothing. With `ack: "auto"` (the default) the client calls it for you.
   */
  ack(): void;
}

/** @internal Builds the Push handed to listeners. */
export function newPush(f: PushFrame, needsAck: boolean, ack: () => void): Push {
  let acked = false;
  const p: { -readonly [K in keyof Push]: Push[K] } = {
    target: f.target,
    event: f.event,
    data: f.data === undefined ? null : f.data,
    needsAck,
    ack() {
      if (!needsAck || acked) return;
      acked = true;
      ack();
    },
  };
  if (f.doc !== undefined) p.doc = f.doc;
  if (f.id !== undefined) p.id = f.id;
  if (f.seq !== undefined) p.seq = f.seq;
  return p;
}

/** @internal Whether v is a Promise or another thenable. */
export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null)?.then === "function";
}
