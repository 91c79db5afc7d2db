import { test } from "node:test";
import assert from "node:assert/strict";
import { EventStreamParser } from "../../src/sse.js";
import { httpBase } from "../../src/http.js";

function parse(chunks: string[]) {
  const events: [string, string][] = [];
  const p = new EventStreamParser((data) => void events.push([p.id, data]));
  for (const c of chunks) p.push(c);
  return { events, p };
}

test("events as pushd writes them: retry, id, data; keep-alive comments skipped", () => {
  const { events, p } = parse([
    'retry: 3000\nid: 1-4031\ndata: {"type":"hello"}\n\n: keepalive\n\n',
    'id: 2-4032\ndata: {"type":"push","data":{"a":\ndata:  1}}\n\n',
  ]);
  assert.deepEqual(events, [
    ["1-4031", '{"type":"hello"}'],
    ["2-4032", '{"type":"push","data":{"a":\n 1}}'],
  ]);
  assert.equal(p.retry, 3000);
});

test("any chunking, and every line ending, gives the same events", () => {
  const stream = 'id: 7\r\ndata: a\r\ndata: b\r\n\r\nid: 8\rdata: c\r\rdata:d\n\n';
  const want = [["7", "a\nb"], ["8", "c"], ["8", "d"]];
  for (let size = 1; size <= stream.length; size++) {
    const chunks: string[] = [];
    for (let i = 0; i < stream.length; i += size) chunks.push(stream.slice(i, i + size));
    assert.deepEqual(parse(chunks).events, want, `chunks of ${size}`);
  }
});

test("an event is dispatched only at its blank line, and its id with it", () => {
  const { events, p } = parse(["id: 9\ndata: x\n"]);
  assert.deepEqual(events, []);
  assert.equal(p.id, "", "the id of an event not yet complete is not the last event's");
  p.push("\n");
  assert.deepEqual(events, [["9", "x"]]);
  p.push("id: 10\n\n"); // no data: no event, but the id counts
  assert.equal(p.id, "10");
  p.push("retry: soon\ndata\n\n"); // a bad retry is ignored; "data" alone is an empty line of data
  assert.equal(p.retry, undefined);
  assert.deepEqual(events.at(-1), ["10", ""]);
});

test("the HTTP endpoints of a WebSocket URL", () => {
  assert.equal(httpBase("wss://push.example.com/ws"), "https://push.example.com/http");
  assert.equal(httpBase("ws://127.0.0.1:8080/ws?user=x#y"), "http://127.0.0.1:8080/http");
  assert.equal(httpBase("wss://example.com/push/ws/"), "https://example.com/push/http");
  assert.equal(httpBase("https://example.com/"), "https://example.com/http");
});
