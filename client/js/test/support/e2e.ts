// The servers and clients of one end-to-end test file: a NATS server, one pushd on it and a
// backend, started by start() (in the file's before) and ended by stop() (in its after), which
// disconnects the file's clients first and prints the servers' logs when the run failed.
import type { PushdClient } from "../../src/index.js";
import { Backend } from "./backend.js";
import { Cluster, type PushdNode } from "./cluster.js";

export class E2E {
  readonly cluster = new Cluster();
  node!: PushdNode;
  backend!: Backend;
  /** The file's clients, disconnected by stop(). */
  readonly clients: PushdClient[] = [];

  /** Starts NATS (with JetStream when jetstream is set), pushd node id with args, and the backend. */
  async start(id: number, args?: string[], jetstream = false): Promise<void> {
    await this.cluster.nats(jetstream);
    this.node = await this.cluster.pushd(id, args);
    this.backend = await Backend.connect(this.cluster.natsURL);
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.disconnect();
    await this.backend?.close();
    const logs = await this.cluster.stop();
    if (process.exitCode) console.log(logs);
  }
}
