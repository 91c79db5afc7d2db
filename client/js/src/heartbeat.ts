/**
 * @internal One connection's timers: JSON pings every `interval` ms (browsers cannot send
 * WebSocket pings) and a watchdog that declares the server dead when no frame arrives within
 * `timeout - interval` ms (the server's grace) of a ping, or within a given time of `expect`.
 */
export class Heartbeat {
  private interval = 0;
  private grace = 0;
  private pingTimer: ReturnType<typeof setTimeout> | undefined;
  private watchTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly ping: () => void,
    private readonly dead: (why: string) => void,
  ) {}

  /** Starts (or retimes) the pings with the interval and timeout of the latest hello or pong. */
  start(interval: number, timeout: number): void {
    this.update(interval, timeout);
    clearTimeout(this.pingTimer);
    if (this.interval > 0) this.pingTimer = setTimeout(() => this.tick(), this.interval); // none without a valid interval
  }

  /** Takes a pong's interval and timeout; the next ping waits the new interval. */
  update(interval: number, timeout: number): void {
    if (!(interval > 0) || !Number.isFinite(interval)) return;
    this.interval = interval;
    this.grace = timeout > interval ? timeout - interval : interval;
  }

  /** A frame arrived: the server is alive. */
  received(): void {
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

  private tick(): void {
    this.pingTimer = setTimeout(() => this.tick(), this.interval);
    this.check();
  }
}
