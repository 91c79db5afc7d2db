import { Cursor } from "./cursor.js";
import { Emitter } from "./emitter.js";
import type { PushdError } from "./errors.js";
import type { PushFrame } from "./frames.js";
import type { Push } from "./push.js";

/**
 * - `joining`: the join is on its way (also while the client reconnects);
 * - `joined`: pushes to the doc arrive;
 * - `left`: `leave()` was called;
 * - `failed`: the server refused the join (see the `error` event); the client will not retry.
 */
export type SubscriptionState = "joining" | "joined" | "left" | "failed";

/** Emitted each time the doc is joined: after `join()`, and again after every reconnect. */
export interface SubscribedEvent {
  doc: string;
  /** The doc's position after the replay (durable delivery), when the server sends it. */
  seq?: string;
  /** True for the first `subscribed` of this subscription. */
  first: boolean;
  /**
   * With a resume cursor (`since`) in the join: true when the server replays every push missed
   * since it, false when history no longer reaches back. Undefined when the join had no cursor.
   */
  recovered: boolean | undefined;
  /**
   * Pushes may have been missed: refetch the doc's state. True when a resume was not recovered,
   * or when a rejoin after a reconnect had no cursor to resume from (a server without durable
   * delivery).
   */
  gap: boolean;
}

/** A subscription's events. */
export interface SubscriptionEvents {
  /** A push to the doc, once (duplicates from a resume are dropped). */
  push: Push;
  subscribed: SubscribedEvent;
  /** The join was refused for good (`forbidden`, `invalid_doc`, `too_many_docs`, ...). */
  error: PushdError;
  /** `leave()` finished. */
  left: { doc: string };
}

/** Options of `client.join`. */
export interface JoinOptions {
  /**
   * A join token for the doc, or a function returning one: a function is called for every join,
   * including the rejoins after reconnects (join tokens are short-lived).
   */
  token?: string | (() => string | Promise<string>) | undefined;
  /** Resume from this seq (a cursor saved earlier with `sub.cursor`). */
  since?: string | undefined;
}

/** @internal What a subscription needs from its client. */
export interface SubscriptionHost {
  leave(sub: Subscription): Promise<void>;
  report(err: PushdError): void;
  listenerError(err: unknown, type: string): void;
}

/**
 * A joined doc. It survives reconnects: the client rejoins it with its cursor, so the server
 * replays what was missed, and drops pushes it already delivered.
 */
export class Subscription extends Emitter<SubscriptionEvents> {
  /** The doc ID. */
  readonly doc: string;
  /** Where the subscription is; see {@link SubscriptionState}. */
  state: SubscriptionState = "joining";
  /**
   * Resolves with the first `subscribed` event; rejects when the join is refused for good or the
   * subscription is left before. Rejections are handled (no unhandled rejection if unused).
   */
  readonly ready: Promise<SubscribedEvent>;
  /** @internal */ readonly cur: Cursor;
  /** @internal */ readonly token: JoinOptions["token"];
  /** @internal */ joinedOnce = false;
  /** @internal */ joinGen = -1;
  /** @internal */ attempts = 0;
  /** @internal */ timer: ReturnType<typeof setTimeout> | undefined;
  /** @internal Pushes that came before the join's answer (HTTP transports). */ early: PushFrame[] = [];
  /** @internal */ settle!: { resolve(e: SubscribedEvent): void; reject(e: PushdError): void };

  /** @internal Use `client.join`. */
  constructor(doc: string, options: JoinOptions, private readonly host: SubscriptionHost) {
    super();
    this.doc = doc;
    this.cur = new Cursor(options.since);
    this.token = options.token;
    this.ready = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.ready.catch(() => {});
  }

  /**
   * The highest seq processed whose receipts are all given: save it to resume from after a
   * reload with `join(doc, {since})`. Undefined until the server sent a seq.
   */
  get cursor(): string | undefined {
    return this.cur.since;
  }

  /** Leaves the doc. Resolves once the server confirmed (or at once when not connected); never rejects. */
  leave(): Promise<void> {
    return this.host.leave(this);
  }

  /** @internal */
  dispatch(push: Push): { results: unknown[]; ok: boolean } {
    return this.emit("push", push);
  }

  /** @internal */
  subscribed(e: SubscribedEvent): void {
    this.state = "joined";
    this.attempts = 0;
    this.settle.resolve(e);
    this.emit("subscribed", e);
  }

  /** @internal The join was refused for good. */
  fail(err: PushdError): void {
    this.state = "failed";
    clearTimeout(this.timer);
    this.settle.reject(err);
    if (this.listens("error")) this.emit("error", err);
    else this.host.report(err);
  }

  /** @internal */
  done(err: PushdError): void {
    this.state = "left";
    clearTimeout(this.timer);
    this.settle.reject(err);
    this.emit("left", { doc: this.doc });
  }

  protected override listenerError(err: unknown, type: string): void {
    this.host.listenerError(err, type);
  }
}
