import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, closeAction, parseReason } from "../../src/index.js";
import { refreshDelay } from "../../src/jwt.js";

const opts = { min: 500, max: 30_000, restart: 1000 };

test("retry backoff is full jitter under an exponential cap", () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const cap = Math.min(30_000, 500 * 2 ** attempt);
    assert.equal(backoffDelay("retry", attempt, opts, () => 0), 0, `attempt ${attempt}: low end`);
    assert.ok(Math.abs(backoffDelay("retry", attempt, opts, () => 0.999999) - cap) < 1, `attempt ${attempt}: high end near ${cap}`);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay("retry", attempt, opts);
      assert.ok(d >= 0 && d <= cap, `attempt ${attempt}: ${d} outside [0, ${cap}]`);
    }
  }
  assert.equal(backoffDelay("auth", 3, opts, () => 0.5), backoffDelay("retry", 3, opts, () => 0.5));
});

test("slow backoff (1013, 4009, 4029) is never short: [cap/2, cap] with an 8x cap", () => {
  for (let attempt = 0; attempt < 10; attempt++) {
    const cap = Math.min(30_000, 8 * 500 * 2 ** attempt);
    assert.equal(backoffDelay("slow", attempt, opts, () => 0), cap / 2);
    assert.ok(backoffDelay("slow", attempt, opts, () => 0.999999) <= cap);
    assert.ok(backoffDelay("slow", attempt, opts, () => 0) >= backoffDelay("retry", attempt, opts, () => 0.49));
  }
});

test("restart backoff (1012) is a small jitter whatever the attempt", () => {
  for (const attempt of [0, 5, 50]) {
    assert.equal(backoffDelay("restart", attempt, opts, () => 0), 0);
    assert.ok(backoffDelay("restart", attempt, opts, () => 0.999999) < 1000);
  }
  assert.equal(backoffDelay("stop", 0, opts), Infinity);
});

test("backoff defaults and a huge attempt count stay bounded", () => {
  assert.ok(backoffDelay("retry", 1e9, {}, () => 0.999999) <= 30_000);
  assert.ok(backoffDelay("retry", 0, {}, () => 0.999999) <= 500);
});

test("close codes map to the documented actions", () => {
  const want: Record<number, string> = {
    1000: "retry", 1006: "retry", 4000: "retry", 4002: "retry", 4008: "retry",
    1012: "restart",
    1013: "slow", 4009: "slow", 4029: "slow",
    4001: "auth", 4003: "auth",
    4004: "stop", 4010: "stop",
  };
  for (const [code, action] of Object.entries(want)) assert.equal(closeAction(Number(code)), action, `close ${code}`);
});

test("close reasons split into error and message", () => {
  assert.deepEqual(parseReason("draining: node is not accepting connections (node 3; reconnect to another node)"), {
    error: "draining",
    message: "node is not accepting connections (node 3; reconnect to another node)",
  });
  assert.deepEqual(parseReason("too many bad frames"), { error: "", message: "too many bad frames" });
  assert.deepEqual(parseReason(""), { error: "", message: "" });
});

test("refresh happens a fifth of the remaining life before exp, at most margin before it", () => {
  const now = 1_000_000;
  assert.equal(refreshDelay(now + 10_000, now, 60_000), 8000);
  assert.equal(refreshDelay(now + 3_600_000, now, 60_000), 3_540_000);
  assert.equal(refreshDelay(now - 5, now, 60_000), 0);
});
