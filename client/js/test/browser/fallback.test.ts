// Transport fallback in a real headless Chromium (Debian's, driven by playwright-core): the demo
// page, served by a real pushd --dev through a proxy that refuses WebSocket upgrades (403), falls
// back to SSE read by the browser's own EventSource and gets pushes; when the proxy refuses event
// streams too, the next page load goes (from what localStorage remembered) to long-polling.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { Cluster, type PushdNode } from "../support/cluster.js";
import { Backend } from "../support/backend.js";
import { Proxy } from "../support/proxy.js";

const chromiumPath = "/usr/bin/chromium";
const cluster = new Cluster();
let node: PushdNode;
let backend: Backend;
let proxy: Proxy;
let context: BrowserContext;
let page: Page;
let profile: string;
/** The resource type of every request the page made to /http/, e.g. "eventsource /http/sse". */
const requests: string[] = [];

before(async () => {
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: run .ci/install-debs (apt-get install -y chromium)`);
  await cluster.nats(true);
  node = await cluster.pushd(71);
  backend = await Backend.connect(cluster.natsURL);
  proxy = await Proxy.start(node.http);
  profile = mkdtempSync(join(tmpdir(), "pushd-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => console.log("page error:", err));
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith("/http/")) requests.push(`${r.resourceType()} ${r.method()} ${path}`);
  });
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await proxy?.close();
  await backend?.close();
  const logs = await cluster.stop();
  if (process.exitCode) console.log(logs);
});

/** Opens the demo page through the proxy and connects as user; resolves with the transport shown. */
async function connectAs(user: string): Promise<string | null> {
  await page.goto(`${proxy.url}/`);
  await page.fill("#user", user);
  await page.click("#connect");
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 15_000 });
  return page.getAttribute("#session", "data-transport");
}

const events = async () => (await page.$$eval("#events li", (lis) => lis.map((li) => li.textContent ?? ""))).reverse();

test("a proxy refuses the WebSocket: the page falls back to SSE with the browser's EventSource and gets pushes", async () => {
  proxy.blocked.add("/ws");
  assert.equal(await connectAs("fb-web"), "sse");
  assert.equal(proxy.count("/ws"), 1, "the WebSocket was tried first");
  const log = await events();
  assert.ok(log.some((e) => /websocket closed 1006 ; trying the next transport/.test(e)), log.join("\n"));
  assert.ok(requests.includes("eventsource GET /http/sse"), `the browser's EventSource read the stream: ${requests.join(", ")}`);

  await page.fill("#doc", "fb/doc");
  await page.click("#join");
  await page.waitForSelector('#docs li[data-doc="fb/doc"][data-state="joined"]');
  assert.deepEqual((await backend.push("push.user.fb-web", { text: "hi" }, { event: "greet" })).map((r) => r.delivered), [1]);
  await page.waitForSelector('#pushes li.push[data-target="user"][data-event="greet"]');
  await backend.push("push.doc.fb/doc", [1, 2], { event: "edit" });
  await page.waitForSelector('#pushes li.push[data-target="doc"][data-doc="fb/doc"][data-event="edit"][data-seq]');

  // publish goes up in a POST from the page, its reply comes back in the answer.
  const upstream = await backend.subscribe("push.up.doc.fb/doc");
  assert.equal(await page.evaluate(() => (window as any).pushdDemo.client.publish("fb/doc", "from-page", { n: 1 }).then(() => "published")), "published");
  assert.equal((await upstream.next).headers?.get("Push-Event"), "from-page");
  assert.equal(
    await page.evaluate((k) => JSON.parse(localStorage.getItem(k) ?? "{}").t, `pushd:transport:${proxy.ws}`),
    "sse",
    "remembered in localStorage",
  );
});

test("event streams refused too: the next page load starts with the remembered SSE, then long-polls", async () => {
  proxy.blocked.add("/http/sse");
  const before = requests.length;
  assert.equal(await connectAs("fb-web"), "poll");
  assert.equal(proxy.count("/ws"), 1, "no WebSocket attempt: SSE was remembered");
  const mine = requests.slice(before);
  assert.ok(mine.includes("eventsource GET /http/sse"), mine.join(", "));
  assert.ok(mine.includes("fetch GET /http/poll"), mine.join(", "));
  assert.ok(!mine.some((r) => /POST \/http\/send/.test(r)), "no ping, nor anything else, sent yet");

  await backend.push("push.user.fb-web", "over poll", { event: "polled" });
  await page.waitForSelector('#pushes li.push[data-event="polled"]');

  // Once more: straight to long-polling.
  const again = requests.length;
  const sse = proxy.count("/http/sse");
  assert.equal(await connectAs("fb-web"), "poll");
  assert.equal(proxy.count("/http/sse"), sse);
  assert.ok(!requests.slice(again).some((r) => r.includes("/http/sse")));
  // The sessions of the pages left behind were closed as they went (sendBeacon on pagehide).
  // One abandoned (SSE refused) with a fetch, and one beacon for each page left.
  assert.equal(proxy.count("/http/close", "POST"), 3, proxy.seen.join("\n"));
});
