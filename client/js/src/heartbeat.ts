import type { HeartbeatMode } from "./transport.js";

/**
 * @internal One connection's timers. In `ping` mode (WebSocket): JSON pings every `interval` ms
 * (browsers cannot send WebSocket pings) and a watchdog that declares the server dead when no
 * frame arrives within `timeout - interval` ms (the server's grace) of a ping. On HTTP the
 * stream or the poll is the heartbeat (docs/PROTOCOL.md), so no pings: in `stream` mode the
 * server is dead after `timeout` ms without any sign of life; in `probe` mode (an EventSource,
 * whose keep-alives page code cannot see) an `interval` without a frame costs one ping, which
 * must be answered within the grace. In every mode `expect` arms the watchdog for a given time.
 */
export class Heartbeat {
  /** See {@link HeartbeatMode}; set before `start`. */
  mode: HeartbeatMode = "ping";
  private interval = 0;
  private grace = 0;
  private timeout = 0;
  private last = 0;
  private pingTimer: ReturnType<typeof setTimeout> | undefined;
  private watchTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly ping: () => void,
    private readonly dead: (why: string) => void,
  ) {}

  /** Starts (or retimes) the heartbeat with the interval and timeout of the latest hello or pong. */
  start(interval: number, timeout: number): void {
    this.set(interval, timeout);
    this.last = Date.now();
    clearTimeout(this.pingTimer);
    if (this.interval > 0) this.pingTimer = setTimeout(() => this.tick(), this.interval); // none without a valid interval
  }

  /** Takes a pong's interval and timeout; the next ping waits the new interval. */
  update(interval: number, timeout: number): void {
    // The server's keep-alives and polls keep hello's interval: a pong's adaptive one is for pings.
    if (this.mode !== "stream") this.set(interval, timeout);
  }

  /** A frame (or, on HTTP, any traffic) arrived: the server is alive. */
  received(): void {
    this.last = Date.now();
    if (this.watchTimer === undefined) return;
    clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
  }

  /** Pings now and expects a frame within the grace (page visible again, network changed). */
  check(): void {
    if (this.watchTimer !== undefined || !this.interval) return;
    this.ping();
    this.expect(this.grace, `heartbeat_timeout: no frame from the server within ${this.grace}ms of a ping`);
  }

  /** Declares the server dead unless a frame arrives within ms. */
  expect(ms: number, why: string): void {
    clearTimeout(this.watchTimer);
    this.watchTimer = setTimeout(() => {
      this.stop();
      this.dead(why);
    }, ms);
  }

  /** Clears every timer. */
  stop(): void {
    clearTimeout(this.pingTimer);
    clearTimeout(this.watchTimer);
    this.pingTimer = this.watchTimer = undefined;
  }

  private set(interval: number, timeout: number): void {
    if (!(interval > 0) || !Number.isFinite(interval)) return;
    this.interval = interval;
    this.timeout = timeout > interval ? timeout : 2 * interval;
    this.grace = this.timeout - interval;
  }

  private tick(): void {
    this.pingTimer = setTimeout(() => this.tick(), this.interval);
    const silent = Date.now() - this.last;
    if (this.mode === "ping" || (this.mode === "probe" && silent >= this.interval)) this.check();
    else if (this.mode === "stream" && silent > this.timeout) {
      this.stop();
      this.dead(`heartbeat_timeout: nothing from the server for ${silent}ms (ping_timeout ${this.timeout}ms)`);
    }
  }
}
