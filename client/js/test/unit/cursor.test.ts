import { test } from "node:test";
import assert from "node:assert/strict";
import { Cursor, parseSeq } from "../../src/cursor.js";
import { tokenExpiry } from "../../src/index.js";
import { signJWT } from "../support/jwt.js";

test("a cursor advances over processed seqs and drops what it saw", () => {
  const c = new Cursor("10");
  assert.ok(c.seen(10n) && c.seen(3n));
  assert.ok(!c.seen(12n));
  c.take(12n, false);
  c.take(15n, false);
  assert.equal(c.since, "15");
  assert.ok(c.seen(12n) && c.seen(15n) && !c.seen(16n));
});

test("an unacknowledged push holds the cursor below it; seqs processed above it are remembered", () => {
  const c = new Cursor("10");
  c.take(11n, false);
  c.take(12n, true); // asks for a receipt
  c.take(14n, false);
  c.take(20n, false);
  assert.deepEqual(c.state(), { since: "11", done: ["14", "20"], pending: ["12"] });
  assert.ok(!c.seen(12n), "the unacknowledged push is delivered again when replayed");
  assert.ok(c.seen(14n) && c.seen(20n), "pushes processed after it are dropped when replayed");
  c.ackSent(12n);
  assert.deepEqual(c.state(), { since: "20", done: [], pending: [] });
});

test("a receipt the server cannot take yet is kept until sent", () => {
  const c = new Cursor("1");
  c.take(2n, true, 7);
  assert.equal(c.deliveredOn(2n), 7);
  c.ackLater(2n);
  assert.ok(c.acked(2n) && c.awaits(2n));
  assert.equal(c.since, "1", "still held below the push");
  c.ackSent(2n);
  assert.ok(!c.acked(2n) && !c.awaits(2n));
  assert.equal(c.since, "2");
});

test("seqs above 2^53 compare exactly", () => {
  const big = "18446744073709551610";
  const c = new Cursor(big);
  assert.ok(c.seen(BigInt(big)));
  assert.ok(!c.seen(BigInt("18446744073709551611")));
  c.take(BigInt("18446744073709551611"), false);
  assert.equal(c.since, "18446744073709551611");
  assert.equal(Number("18446744073709551611") === Number("18446744073709551610"), true, "as numbers they would collide");
});

test("reset starts over, even below the old position (a stream reset)", () => {
  const c = new Cursor("100");
  c.take(101n, true);
  c.reset(5n);
  assert.deepEqual(c.state(), { since: "5", done: [], pending: [] });
  assert.ok(!c.seen(6n));
});

test("parseSeq takes decimal strings only", () => {
  assert.equal(parseSeq("42"), 42n);
  assert.equal(parseSeq(42), undefined);
  assert.equal(parseSeq("4e2"), undefined);
  assert.equal(parseSeq(undefined), undefined);
});

test("tokenExpiry reads exp without verifying", () => {
  assert.equal(tokenExpiry(signJWT({ sub: "alice", exp: 1_900_000_000, name: "Zoë ~~~??" })), 1_900_000_000);
  assert.equal(tokenExpiry(signJWT({ sub: "alice" })), undefined);
  assert.equal(tokenExpiry("not-a-jwt"), undefined);
  assert.equal(tokenExpiry("a.!!!.c"), undefined);
});
