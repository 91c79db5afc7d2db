// docs/SDK.md shows the examples in client/js/examples verbatim: every TypeScript block is one of
// those files (marked <!-- example: path -->), and every example file is shown. The examples
// themselves run in e2e/examples.test.ts and unit/examples.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../../../", import.meta.url));
const doc = readFileSync(`${root}docs/SDK.md`, "utf8");

test("every TypeScript block in docs/SDK.md is an example file, verbatim", () => {
  const blocks = [...doc.matchAll(/(?:<!-- example: (\S+) -->\n)?```(\w*)\n([\s\S]*?)```/g)];
  const shown = new Set<string>();
  for (const [, path, lang, body] of blocks) {
    if (lang === "sh" || lang === "") continue; // shell commands
    if (lang === "go") continue; // the Go SDK's examples: client/docs_test.go checks those
    assert.ok(path, `a ${lang} block without an <!-- example: path --> marker:\n${body}`);
    assert.equal(body, readFileSync(`${root}${path}`, "utf8"), `${path} differs from its copy in docs/SDK.md`);
    shown.add(path!);
  }
  const files = readdirSync(`${root}client/js/examples`).map((f) => `client/js/examples/${f}`);
  assert.deepEqual([...shown].sort(), files.sort(), "every example file is shown in docs/SDK.md");
});
