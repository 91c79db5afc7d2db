// Drain hints (docs/PROTOCOL.md, "Going elsewhere"): a close or refusal that names its node makes
// the client skip, for a while, the URLs of its list that it knows lead to that node.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { FakeServer } from "../support/fake-server.js";
import { disconnectAll, newClient } from "../support/client.js";
import { nextEvent, record } from "../support/wait.js";
import { reasonNode } from "../../src/index.js";

let servers: FakeServer[];
beforeEach(async () => void (servers = await Promise.all([FakeServer.start(), FakeServer.start(), FakeServer.start()])));
afterEach(async () => {
  disconnectAll();
  await Promise.all(servers.map((s) => s.close()));
});

test("reasonNode reads the node a close reason names", () => {
  assert.equal(reasonNode("draining: node 3; reconnect elsewhere"), 3);
  assert.equal(reasonNode("duplicate_node_id: node 1023; another live node uses this node's number"), 1023);
  assert.equal(reasonNode("draining: node is draining"), undefined);
  assert.equal(reasonNode("token_expired: node 3; no"), 3, "any error code: the node is what matters");
  assert.equal(reasonNode("Draining: node 3; x"), undefined);
  assert.equal(reasonNode(""), undefined);
});

test("a drained node's URL is skipped on later reconnects while the hint lasts", async () => {
  const [a, b, c] = servers as [FakeServer, FakeServer, FakeServer];
  const client = newClient([a.url, b.url, c.url]);
  client.connect();
  const onA = await a.nextConn();
  await onA.accept({ node: 1 });
  await client.whenConnected();
  onA.close(1012, "draining: node 1; reconnect elsewhere");
  const onB = await b.nextConn();
  await onB.accept({ node: 2 });
  assert.equal((await client.whenConnected()).node, 2);
  onB.close(4008, "slow_consumer: too slow");
  const onC = await c.nextConn();
  await onC.accept({ node: 3 });
  await client.whenConnected();
  // The rotation's next URL is a's, which leads to node 1: skipped, b is next.
  const hello = nextEvent(client, "hello");
  onC.close(4008, "slow_consumer: too slow");
  await (await b.nextConn()).accept({ node: 2 });
  assert.equal((await hello).url, b.url);
  assert.equal(a.backlog, 0, "nothing went to the drained node's URL");
});

test("a refusal before hello that names its node teaches which node that URL leads to", async () => {
  const [a, b] = servers as [FakeServer, FakeServer];
  const client = newClient([a.url, b.url]);
  client.connect();
  const refused = nextEvent(client, "disconnect");
  (await a.nextConn()).close(1013, "not_leased: node 7; nothing vouches for this node's number, reconnect elsewhere");
  assert.equal((await refused).code, 1013);
  const onB = await b.nextConn();
  await onB.accept({ node: 2 });
  await client.whenConnected();
  const hello = nextEvent(client, "hello");
  onB.close(4008, "slow_consumer: too slow");
  await (await b.nextConn()).accept({ node: 2 });
  assert.equal((await hello).url, b.url);
  assert.equal(a.backlog, 0);
});

test("one URL (a load balancer) is reconnected to; so is a list whose every URL is avoided", async () => {
  const [a, b] = servers as [FakeServer, FakeServer];
  const lb = newClient(a.url);
  lb.connect();
  const first = await a.nextConn();
  await first.accept({ node: 1 });
  await lb.whenConnected();
  first.close(1012, "draining: node 1; reconnect elsewhere");
  await (await a.nextConn()).accept({ node: 2 });
  assert.equal((await lb.whenConnected()).node, 2);
  lb.disconnect();

  const client = newClient([a.url, b.url]);
  client.connect();
  const onA = await a.nextConn();
  await onA.accept({ node: 1 });
  await client.whenConnected();
  onA.close(1012, "draining: node 1; reconnect elsewhere");
  const onB = await b.nextConn();
  await onB.accept({ node: 2 });
  await client.whenConnected();
  onB.close(1012, "draining: node 2; reconnect elsewhere");
  // Both nodes are avoided: the rotation goes on (a's URL may lead to a successor by now).
  await (await a.nextConn()).accept({ node: 5 });
  assert.equal((await client.whenConnected()).node, 5);
});

test("once every other URL failed since the last hello, an avoided one is tried too", async () => {
  const [a, b] = servers as [FakeServer, FakeServer];
  const client = newClient([a.url, b.url]);
  const closes = record(client, "disconnect");
  client.connect();
  const onA = await a.nextConn();
  await onA.accept({ node: 1 });
  await client.whenConnected();
  onA.close(1012, "draining: node 1; reconnect elsewhere");
  const onB = await b.nextConn();
  await onB.accept({ node: 2 });
  await client.whenConnected();
  onB.close(4008, "slow_consumer: too slow");
  (await b.nextConn()).close(1013, "starting: not ready yet"); // a's URL skipped once; b refuses
  await (await a.nextConn()).accept({ node: 1 });
  assert.equal((await client.whenConnected()).url, a.url);
  assert.deepEqual(closes.map((d) => d.avoidNode), [1, undefined, undefined]);
});

test("avoidFor: 0 turns the hints off", async () => {
  const [a, b, c] = servers as [FakeServer, FakeServer, FakeServer];
  const client = newClient([a.url, b.url, c.url], { avoidFor: 0 });
  client.connect();
  const onA = await a.nextConn();
  await onA.accept({ node: 1 });
  await client.whenConnected();
  onA.close(1012, "draining: node 1; reconnect elsewhere");
  const onB = await b.nextConn();
  await onB.accept({ node: 2 });
  await client.whenConnected();
  onB.close(4008, "slow_consumer: too slow");
  const onC = await c.nextConn();
  await onC.accept({ node: 3 });
  await client.whenConnected();
  onC.close(4008, "slow_consumer: too slow");
  await (await a.nextConn()).accept({ node: 1 });
  assert.equal((await client.whenConnected()).url, a.url);
});
