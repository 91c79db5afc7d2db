import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { FakeServer } from "../support/fake-server.js";
import { disconnectAll, newClient } from "../support/client.js";
import { activeTimers, nextEvent } from "../support/wait.js";

/** A browser window stand-in: online/offline events, navigator.onLine, document visibility. */
class FakeWindow extends EventTarget {
  navigator = { onLine: true };
  document = Object.assign(new EventTarget(), { visibilityState: "visible" });
  listeners = 0;
  override addEventListener(type: string, fn: () => void) {
    this.listeners++;
    super.addEventListener(type, fn);
  }
  override removeEventListener(type: string, fn: () => void) {
    this.listeners--;
    super.removeEventListener(type, fn);
  }
  set(online: boolean) {
    this.navigator.onLine = online;
    this.dispatchEvent(new Event(online ? "online" : "offline"));
  }
  show(state: "visible" | "hidden") {
    this.document.visibilityState = state;
    this.document.dispatchEvent(new Event("visibilitychange"));
  }
}

let server: FakeServer;
beforeEach(async () => void (server = await FakeServer.start()));
afterEach(async () => {
  disconnectAll();
  await server.close();
});

const slow = { min: 60_000, max: 60_000, restart: 60_000 };

test("offline: no attempts and no timers; back online: reconnect at once", async () => {
  const win = new FakeWindow();
  const client = newClient(server.url, { window: win, backoff: slow, random: () => 0.5 });
  client.connect();
  const conn = await server.nextConn();
  await conn.accept();
  await client.whenConnected();
  win.navigator.onLine = false; // the network went away, then the socket
  const gone = nextEvent(client, "disconnect");
  conn.ws.terminate();
  await gone;
  await conn.closed;
  assert.equal(client.state, "connecting");
  assert.equal(activeTimers(), 0, "waiting for the online event, not spinning");
  assert.equal(server.backlog, 0);
  win.set(true);
  await (await server.nextConn(1000)).accept(); // a 60 s backoff would not get here
  await client.whenConnected();
});

test("going offline during a backoff wait cancels the timer; online reconnects at once", async () => {
  const win = new FakeWindow();
  const client = newClient(server.url, { window: win, backoff: slow, random: () => 0.5 });
  client.connect();
  const conn = await server.nextConn();
  await conn.accept();
  const gone = nextEvent(client, "disconnect");
  conn.close(4008, "slow consumer");
  assert.ok((await gone).delay! > 1000);
  await conn.closed;
  assert.equal(activeTimers(), 1, "the backoff timer");
  win.set(false);
  assert.equal(activeTimers(), 0);
  win.set(true);
  await (await server.nextConn(1000)).accept();
});

test("a connection is checked when the page becomes visible or the network changes", async () => {
  const win = new FakeWindow();
  const client = newClient(server.url, { window: win });
  client.connect();
  const conn = await server.nextConn();
  await conn.accept({ ping_interval: 60_000, ping_timeout: 60_150 });
  await client.whenConnected();
  conn.autoPong = false;
  win.show("hidden");
  win.show("visible");
  await conn.next("ping", 1000); // long before the 60 s interval
  conn.send({ type: "pong", ping_interval: 60_000, ping_timeout: 60_150 });
  const marker = nextEvent(client, "push");
  conn.push({ target: "user", data: "after the pong" });
  await marker; // the check is over
  win.set(false);
  await conn.next("ping", 1000);
  // No pong this time: the check gives up on the connection after the grace (150 ms).
  const d = await nextEvent(client, "disconnect");
  assert.match(d.reason, /^heartbeat_timeout/);
});

test("a page that becomes visible while waiting to reconnect reconnects now", async () => {
  const win = new FakeWindow();
  const client = newClient(server.url, { window: win, backoff: slow, random: () => 0.5 });
  client.connect();
  const conn = await server.nextConn();
  await conn.accept();
  const gone = nextEvent(client, "disconnect");
  conn.close(4008, "slow consumer");
  await gone;
  win.show("visible");
  await (await server.nextConn(1000)).accept();
  await client.whenConnected();
});

test("starting offline waits for the online event", async () => {
  const win = new FakeWindow();
  win.navigator.onLine = false;
  const client = newClient(server.url, { window: win });
  client.connect();
  assert.equal(client.state, "connecting");
  assert.equal(activeTimers(), 0);
  win.set(true);
  await (await server.nextConn(1000)).accept();
});

test("disconnect removes the window listeners", async () => {
  const win = new FakeWindow();
  const client = newClient(server.url, { window: win });
  client.connect();
  assert.equal(win.listeners, 2); // online, offline (+ the document's visibilitychange)
  client.disconnect();
  assert.equal(win.listeners, 0);
});
