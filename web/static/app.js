// The demo page's script: a PushdClient connected to the node that served the page (or to the
// comma-separated WebSocket URLs in ?ws=, over the transports in ?transports=, e.g. sse,poll),
// its subscriptions, and a form that publishes pushes through the dev node's POST /dev/publish.
import { PushdClient } from "./pushd.js";

const $ = (id) => document.getElementById(id);
const ownURL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const params = new URLSearchParams(location.search);
const urls = params.get("ws")?.split(",") ?? [ownURL];
const transports = params.get("transports")?.split(",");
let client;

function log(list, text, attrs = {}) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) li.dataset[k] = v;
  $(list).prepend(li);
  return li;
}

function showState(state) {
  $("status").textContent = state;
  $("status").dataset.state = state;
  $("connect").disabled = state !== "disconnected";
  $("disconnect").disabled = state === "disconnected";
  $("join").disabled = state === "disconnected";
  if (state !== "connected") {
    $("session").textContent = "";
    delete $("session").dataset.transport;
  }
}

function connect(user) {
  client = new PushdClient({ url: urls, user, ...(transports && { transports }) });
  window.pushdDemo = { client };
  client.on("state", (e) => {
    showState(e.state);
    if (e.code !== undefined) log("events", `state ${e.state} (close ${e.code} ${e.reason})`);
  });
  client.on("hello", (h) => {
    $("session").textContent = `as ${h.user}, session ${h.sid} on node ${h.node} over ${h.transport} (${h.url})`;
    $("session").dataset.transport = h.transport;
    log("events", `hello: session ${h.sid} on node ${h.node} over ${h.transport}` + (h.seq ? ` at seq ${h.seq}` : "") +
      (h.recovered !== undefined ? `, recovered ${h.recovered}` : "") + (h.gap ? ", pushes may have been missed" : ""));
  });
  client.on("disconnect", (d) =>
    log("events", `${d.transport} closed ${d.code} ${d.reason}` + (!d.willReconnect ? "; not reconnecting"
      : d.delay === 0 ? "; trying the next transport" : `; reconnecting in ${Math.round(d.delay)}ms`)));
  client.on("error", (e) => log("events", `error ${e.code}: ${e.message}`));
  client.on("push", (p) => {
    const where = p.target === "doc" ? `doc ${p.doc}` : p.target;
    const li = log("pushes", `${where} ${p.event} ${JSON.stringify(p.data)}`,
      { target: p.target, doc: p.doc, event: p.event, seq: p.seq, id: p.id });
    li.classList.add("push");
    if (p.seq) {
      const seq = document.createElement("span");
      seq.className = "seq";
      seq.textContent = ` seq ${p.seq}`;
      li.append(seq);
    }
  });
  client.connect();
}

function join(doc) {
  if (client.subscription(doc)) return;
  const sub = client.join(doc);
  const li = document.createElement("li");
  li.dataset.doc = doc;
  const label = document.createElement("span");
  const leave = document.createElement("button");
  leave.textContent = "Leave";
  leave.onclick = async () => {
    await sub.leave();
    li.remove();
  };
  li.append(label, " ", leave);
  $("docs").append(li);
  const show = () => {
    label.textContent = `${doc}: ${sub.state}` + (sub.cursor ? ` (cursor ${sub.cursor})` : "");
    li.dataset.state = sub.state;
  };
  show();
  sub.on("subscribed", (e) => {
    show();
    log("events", `joined ${doc}` + (e.seq ? ` at seq ${e.seq}` : "") +
      (e.recovered !== undefined ? `, recovered ${e.recovered}` : "") + (e.gap ? "; pushes may have been missed: refetch" : ""));
  });
  sub.on("push", show);
  sub.on("error", (e) => {
    show();
    log("events", `join ${doc} refused: ${e.code} ${e.message}`);
  });
  client.on("state", show);
}

$("connect-form").onsubmit = (ev) => {
  ev.preventDefault();
  connect($("user").value.trim());
};
$("disconnect").onclick = () => {
  client.disconnect();
  $("docs").replaceChildren();
};
$("join-form").onsubmit = (ev) => {
  ev.preventDefault();
  join($("doc").value.trim());
};
$("publish-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const body = { target: $("target").value, key: $("target").value === "all" ? "" : $("key").value.trim(), event: $("event").value.trim() };
  try {
    body.data = JSON.parse($("data").value || "null");
  } catch {
    body.data = $("data").value; // not JSON: send it as a string
  }
  const res = await fetch("/dev/publish", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const r = await res.json();
  $("report").textContent = res.ok
    ? `published on ${r.subject}: ${r.delivered} of ${r.matched} sessions on ${r.nodes} node(s)`
    : `refused: ${r.error}: ${r.message}`;
};
showState("disconnected");
