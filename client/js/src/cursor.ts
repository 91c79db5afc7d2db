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
  private readonly pending = new Set<bigint>();
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

  /** Records that the push with seq was processed; needsAck holds the cursor until ack(seq). */
  take(seq: bigint, needsAck: boolean): void {
    if (needsAck) this.pending.add(seq);
    else this.done.add(seq);
    this.compact();
  }

  /** Whether the push with seq awaits its receipt. */
  awaits(seq: bigint): boolean {
    return this.pending.has(seq);
  }

  /** Records the receipt of a push taken with needsAck; sent false means it is still to be sent. */
  ack(seq: bigint, sent = true): void {
    if (!this.pending.has(seq)) return;
    if (!sent) {
      this.unsent.add(seq);
      return;
    }
    this.pending.delete(seq);
    this.unsent.delete(seq);
    this.done.add(seq);
    this.compact();
  }

  /** Receipts given while disconnected, to send once the subject is resumed. */
  unsentAcks(): bigint[] {
    return [...this.unsent];
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
    return { since: this.since, done: list(this.done), pending: list(this.pending) };
  }

  /** Moves base up over processed seqs that are below every pending one. */
  private compact(): void {
    let lowPending: bigint | undefined;
    for (const p of this.pending) if (lowPending === undefined || p < lowPending) lowPending = p;
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
