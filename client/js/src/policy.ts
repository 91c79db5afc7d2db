/**
 * What the client does after a connection closes, by close code (docs/PROTOCOL.md):
 *
 * - `restart`: 1012, the node is draining: reconnect soon, with a small jitter, to the next URL;
 * - `slow`: 1013 (node full or not ready), 4009 (too many sessions), 4029 (rate limited): a longer
 *   backoff;
 * - `auth`: 4001 (token expired), 4003 (token missing or invalid, bad user, auth timeout): get a
 *   new token from `getToken()` and retry with backoff, but stop after `maxAuthFailures` in a row;
 * - `stop`: 4004 (origin not allowed), 4010 (kicked by an admin), 4011 (an HTTP session's stream
 *   or poll was taken over by another reader with the session's secret: do not fight it): stay
 *   disconnected;
 * - `retry`: anything else (1006 lost connection, 4002 heartbeat timeout, 4008 slow consumer,
 *   1000 from the server, ...): exponential backoff with full jitter.
 */
export type CloseAction = "retry" | "restart" | "slow" | "auth" | "stop";

/** The {@link CloseAction} for a close code. */
export function closeAction(code: number): CloseAction {
  switch (code) {
    case 1012:
      return "restart";
    case 1013:
    case 4009:
    case 4029:
      return "slow";
    case 4001:
    case 4003:
      return "auth";
    case 4004:
    case 4010:
    case 4011:
      return "stop";
  }
  return "retry";
}

/** Reconnect delays, in milliseconds. */
export interface BackoffOptions {
  /** The first retry's upper bound; each failure in a row doubles it. Default 500. */
  min?: number;
  /** The largest delay. Default 30000. */
  max?: number;
  /** After a 1012 (drain), the delay is uniform in [0, restart]. Default 1000. */
  restart?: number;
}

/** @internal */
export const backoffDefaults: Required<BackoffOptions> = { min: 500, max: 30_000, restart: 1000 };

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry after a close) for a close
 * with action `action`; `random` returns a number in [0, 1).
 *
 * - `retry` and `auth`: full jitter, uniform in [0, min(max, min * 2^attempt)];
 * - `slow`: equal jitter over a cap eight times larger, uniform in [cap/2, cap] with
 *   cap = min(max, 8 * min * 2^attempt), so it is never short;
 * - `restart`: uniform in [0, restart];
 * - `stop`: no reconnect (Infinity).
 */
export function backoffDelay(action: CloseAction, attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const { min, max, restart } = { ...backoffDefaults, ...options };
  const exp = 2 ** Math.min(attempt, 30);
  switch (action) {
    case "stop":
      return Infinity;
    case "restart":
      return random() * restart;
    case "slow": {
      const cap = Math.min(max, 8 * min * exp);
      return cap / 2 + (random() * cap) / 2;
    }
  }
  return random() * Math.min(max, min * exp);
}

/** A close reason `"<error>: <message>"` split in two; error is "" when the reason has no code. */
export function parseReason(reason: string): { error: string; message: string } {
  const m = /^([a-z_]+): ([\s\S]*)$/.exec(reason);
  return m ? { error: m[1]!, message: m[2]! } : { error: "", message: reason };
}

/**
 * The node a close reason sends the client away from (docs/PROTOCOL.md, "Going elsewhere"):
 * `draining: node 3; reconnect elsewhere` names node 3. Undefined when the reason names none.
 */
export function reasonNode(reason: string): number | undefined {
  const m = /^([a-z_]+): node ([0-9]+); /.exec(reason);
  return m ? Number(m[2]) : undefined;
}
