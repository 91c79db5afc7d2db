import { Cursor } from "./cursor.js";
import { Emitter } from "./emitter.js";
import type { PushdError } from "./errors.js";
import type { ClientFrame, PushFrame, ServerFrame } from "./frames.js";
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

/** A session in a doc (docs/PROTOCOL.md, "Presence"). */
export interface PresenceMember {
  /** The session ID (a decimal string). */
  sid: string;
  user: string;
  /** The node holding the session. */
  node: number;
  /** When it joined (RFC 3339). */
  joined_at: string;
  /** The `info` claim of its token, verbatim, when it had one. */
  info?: unknown;
}

/** A session that left a doc, and why. */
export interface PresenceLeave {
  sid: string;
  user: string;
  node: number;
  /** `left` (it left the doc), `disconnected` (its session ended) or `node_lost` (its node died or lost NATS). */
  reason: "left" | "disconnected" | "node_lost";
}

/** One change in a `presence_diff`: a member joined or left. */
export type PresenceChange = ({ event: "join" } & PresenceMember) | ({ event: "leave" } & PresenceLeave);

/**
 * A doc's presence changes since the last ones (one frame per coalescing window). A large doc's
 * frames carry counts only: `joined` and `left` instead of `events` (ask `members()` when the list
 * matters).
 */
export interface PresenceDiff {
  doc: string;
  /** The doc's members and distinct users after these changes. */
  sessions: number;
  users: number;
  /** The changes, in the order the node saw them. */
  events?: PresenceChange[];
  /** Counts-only frames: how many joined and left. */
  joined?: number;
  left?: number;
}

/** Who is in a doc: one page of its members, by session ID. */
export interface PresencePage {
  doc: string;
  /** The doc's members and distinct users (the whole doc, not the page). */
  sessions: number;
  users: number;
  members: PresenceMember[];
  /** Present when more members follow: pass it as `cursor` for the next page. */
  next?: string;
}

/** A doc's member counts. */
export interface PresenceStats {
  doc: string;
  sessions: number;
  users: number;
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
  /** With `presence: true`: the doc's presence changed (every `presence_diff` frame). */
  presence: PresenceDiff;
  /** With `presence: true`: a session joined the doc (one per join in a diff's `events`). */
  presence_join: PresenceMember;
  /** With `presence: true`: a session left the doc. */
  presence_leave: PresenceLeave;
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
  /**
   * Also get the doc's presence changes: `presence`, `presence_join` and `presence_leave` events
   * on the subscription, from this join on (the join sends `"presence":true`).
   */
  presence?: boolean | undefined;
}

/** @internal What a subscription needs from its client. */
export interface SubscriptionHost {
  leave(sub: Subscription): Promise<void>;
  request(frame: ClientFrame, doc: string): Promise<ServerFrame>;
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
  /** @internal */ readonly presenceEvents: boolean;
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
    this.presenceEvents = options.presence === true;
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

  /**
   * One page of who is in the doc (at most `limit` members, 100 by default, from `cursor` on).
   * Rejects with a {@link PushdError}: `forbidden` (no grant for the doc), `bad_cursor`,
   * `rate_limited`, `unavailable`, or the client's `timeout`, `disconnected`, `closed`.
   */
  async presence(options: { limit?: number; cursor?: string } = {}): Promise<PresencePage> {
    const f: ClientFrame = { type: "presence", doc: this.doc };
    if (options.limit !== undefined) f["limit"] = options.limit;
    if (options.cursor !== undefined) f["cursor"] = options.cursor;
    const r = await this.ask(f);
    const page: PresencePage = { doc: this.doc, sessions: Number(r["sessions"] ?? 0), users: Number(r["users"] ?? 0), members: (r["members"] as PresenceMember[] | undefined) ?? [] };
    if (typeof r["next"] === "string") page.next = r["next"];
    return page;
  }

  /** Everyone in the doc: every page of {@link presence}, in session ID order. */
  async members(): Promise<PresenceMember[]> {
    const all: PresenceMember[] = [];
    let cursor: string | undefined;
    do {
      const page: PresencePage = await this.presence(cursor === undefined ? { limit: 1000 } : { limit: 1000, cursor });
      all.push(...page.members);
      cursor = page.next;
    } while (cursor !== undefined);
    return all;
  }

  /** The doc's member counts (`presence_stats`); rejects as {@link presence} does. */
  async presenceStats(): Promise<PresenceStats> {
    const r = await this.ask({ type: "presence_stats", doc: this.doc });
    return { doc: this.doc, sessions: Number(r["sessions"] ?? 0), users: Number(r["users"] ?? 0) };
  }

  /** A presence request, with the join token when the subscription has one (the same grant). */
  private async ask(f: ClientFrame): Promise<ServerFrame> {
    const token = typeof this.token === "function" ? await this.token() : this.token;
    if (token !== undefined) f["token"] = token;
    return this.host.request(f, this.doc);
  }

  /** @internal A presence_diff frame for this doc. */
  presenceDiff(d: PresenceDiff): void {
    if (this.state === "left" || this.state === "failed") return;
    this.emit("presence", d);
    for (const e of d.events ?? []) {
      const { event, ...rest } = e;
      if (event === "join") this.emit("presence_join", rest as PresenceMember);
      else if (event === "leave") this.emit("presence_leave", rest as PresenceLeave);
    }
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
