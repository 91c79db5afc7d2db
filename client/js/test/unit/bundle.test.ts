import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

test("the demo page's web/static/pushd.js is the bundle of the current source", () => {
  const script = fileURLToPath(new URL("../../../scripts/bundle.mjs", import.meta.url));
  const r = spawnSync(process.execPath, [script, "check"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr.trim());
});
