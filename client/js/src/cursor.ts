/**
 * The resume cursor of one subject (the user's, or one doc's): where to resume from after a
 * reconnect, and which pushes were already processed. Seqs are JetStream stream sequences:
 * increasing per subject, not contiguous, possibly above 2^53, so they are kept as bigints.
 *
 * `base` is the resume point: every push at or below it was processed (and acknowledged when it
 * asked for a receipt). A push that asked for a receipt and is not acknowledged yet holds `base`
 * below it, so a resume replays it; pushes processed above `base` meanwhile are remembered in
 * `done` and dropped when replayed.
 */
export class Cursor {
  private base: bigint | undefined;
  private readonly done = new Set<bigint>();
  /** Pushes awaiting their receipt, and the connection (generation) that delivered each. */
  private readonly pending = new Map<bigint, number>();
  /** Receipts the app gave that the server could not take yet (see ackLater). */
  private readonly unsent = new Set<bigint>();

  constructor(since?: string) {
    if (since !== undefined) this.base = BigInt(since);
  }

  /** The seq to resume from (`since`), or undefined when nothing is known yet. */
  get since(): string | undefined {
    return this.base?.toString();
  }

  /** Whether a push with this seq was processed already: drop it. */
  seen(seq: bigint): boolean {
    return (this.base !== undefined && seq <= this.base) || this.done.has(seq);
  }

  /** Records that the push with seq was processed (delivered on connection gen); needsAck holds the cursor until its receipt. */
  take(seq: bigint, needsAck: boolean, gen = 0): void {
    if (needsAck) this.pending.set(seq, gen);
    else this.done.add(seq);
    this.compact();
  }

  /** Whether the push with seq awaits its receipt. */
  awaits(seq: bigint): boolean {
    return this.pending.has(seq);
  }

  /** The connection that delivered the push awaiting a receipt. */
  deliveredOn(seq: bigint): number | undefined {
    return this.pending.get(seq);
  }

  /** The receipt of a pending push was sent: the cursor may pass it. */
  ackSent(seq: bigint): void {
    if (!this.pending.delete(seq)) return;
    this.unsent.delete(seq);
    this.done.add(seq);
    this.compact();
  }

  /**
   * The app gave a receipt the server cannot take now: a node takes receipts only for pushes it
   * delivered on the current session, so it is sent when the resume replays the push.
   */
  ackLater(seq: bigint): void {
    if (this.pending.has(seq)) this.unsent.add(seq);
  }

  /** Whether the app acknowledged this push already, waiting for a replay to send it. */
  acked(seq: bigint): boolean {
    return this.unsent.has(seq);
  }

  /** Starts over at seq: the server's position, when history did not reach back to `since`. */
  reset(seq: bigint | undefined): void {
    this.base = seq;
    this.done.clear();
    this.pending.clear();
    this.unsent.clear();
  }

  /** @internal For tests: seqs processed above the resume point, and those awaiting a receipt. */
  state(): { since: string | undefined; done: string[]; pending: string[] } {
    const list = (s: Set<bigint>) => [...s].sort((a, b) => (a < b ? -1 : 1)).map(String);
    return { since: this.since, done: list(this.done), pending: list(new Set(this.pending.keys())) };
  }

  /** Moves base up over processed seqs that are below every pending one. */
  private compact(): void {
    let lowPending: bigint | undefined;
    for (const p of this.pending.keys()) if (lowPending === undefined || p < lowPending) lowPending = p;
    for (;;) {
      let low: bigint | undefined;
      for (const d of this.done) if (low === undefined || d < low) low = d;
      if (low === undefined || (lowPending !== undefined && low > lowPending)) return;
      this.done.delete(low);
      if (this.base === undefined || low > this.base) this.base = low;
    }
  }
}

/** A seq from a frame as a bigint, or undefined when absent or not a decimal string. */
export function parseSeq(seq: unknown): bigint | undefined {
  return typeof seq === "string" && /^\d{1,20}$/.test(seq) ? BigInt(seq) : undefined;
}
