// A backend on NATS, as docs/NATS.md describes one: publishes pushes with headers and collects
// the nodes' delivery reports; listens to what clients publish upstream.
import { connect, createInbox, headers, type NatsConnection, type Msg } from "nats";

export interface Report {
  node: number;
  matched: number;
  delivered: number;
}

export class Backend {
  private constructor(readonly nc: NatsConnection) {}

  static async connect(url: string): Promise<Backend> {
    return new Backend(await connect({ servers: url }));
  }

  /**
   * Publishes data (JSON) on subject with Push-Event and Push-Id (and Push-Receipt: ask sessions
   * for receipts on that subject) and returns the delivery reports that arrive until `want` nodes
   * answered (or within 2 s).
   */
  async push(subject: string, data: unknown, opts: { event?: string; id?: string; want?: number; receipt?: string } = {}): Promise<Report[]> {
    const h = headers();
    if (opts.event) h.set("Push-Event", opts.event);
    if (opts.id) h.set("Push-Id", opts.id);
    const inbox = createInbox();
    // Reports go to Push-Report; a pushd without history answers the NATS reply instead, and
    // with history JetStream answers the reply with where it stored the push (skipped here).
    h.set("Push-Report", inbox);
    if (opts.receipt) h.set("Push-Receipt", opts.receipt);
    const sub = this.nc.subscribe(inbox);
    // Wait for `want` reports, at most 2 s; with want 0 (no node should report) a short window.
    const want = opts.want ?? 1;
    const deadline = setTimeout(() => sub.unsubscribe(), want === 0 ? 300 : 2000);
    this.nc.publish(subject, JSON.stringify(data), { headers: h, reply: inbox });
    const reports: Report[] = [];
    for await (const m of sub) {
      if (m.data.length === 0) break; // NATS's "no responders": no node holds the target
      const r = JSON.parse(new TextDecoder().decode(m.data)) as Report & { stream?: string };
      if (r.stream !== undefined) continue;
      reports.push(r);
      if (want > 0 && reports.length >= want) break;
    }
    clearTimeout(deadline);
    sub.unsubscribe();
    return reports;
  }

  /** Subscribes now (resolves once the server has the subscription); `next` is the next message. */
  async subscribe(subject: string, ms = 5000): Promise<{ next: Promise<Msg> }> {
    const sub = this.nc.subscribe(subject, { max: 1, timeout: ms });
    await this.nc.flush();
    const next = (async () => {
      for await (const m of sub) return m;
      throw new Error(`no message on ${subject}`);
    })();
    next.catch(() => {}); // handled by whoever awaits it
    return { next };
  }

  close(): Promise<void> {
    return this.nc.close();
  }
}
