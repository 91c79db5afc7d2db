// Bundles the SDK with esbuild.
//
//   node scripts/bundle.mjs web    writes ../../web/static/pushd.js, the demo page's copy (ESM, readable)
//   node scripts/bundle.mjs check  exits 1 when the committed web/static/pushd.js differs from a fresh build
//   node scripts/bundle.mjs size   prints the minified and minified+gzip -9 sizes (BENCHMARKS.md)
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const entry = here("../src/index.ts");
const webCopy = here("../../../web/static/pushd.js");
const banner = "// @pushd/client, bundled from client/js/src by esbuild. Generated: do not edit;\n// regenerate with `npm run build:web` in client/js (`make web`).";

async function bundle(minify) {
  const out = await build({
    entryPoints: [entry],
    absWorkingDir: here(".."), // comments name files relative to client/js, wherever this runs
    bundle: true,
    format: "esm",
    target: "es2022",
    minify,
    write: false,
    legalComments: "none",
    charset: "utf8",
    banner: minify ? {} : { js: banner },
  });
  return out.outputFiles[0].text;
}

const mode = process.argv[2];
if (mode === "web") {
  writeFileSync(webCopy, await bundle(false));
  console.log(`wrote ${webCopy}`);
} else if (mode === "check") {
  let committed = "";
  try {
    committed = readFileSync(webCopy, "utf8");
  } catch {}
  if (committed !== (await bundle(false))) {
    console.error("web/static/pushd.js is not the bundle of client/js/src: run `npm run build:web` in client/js (or `make web`) and commit it");
    process.exit(1);
  }
  console.log("web/static/pushd.js is up to date");
} else if (mode === "size") {
  const min = Buffer.from(await bundle(true));
  console.log(`minified: ${min.length} bytes; minified + gzip -9: ${gzipSync(min, { level: 9 }).length} bytes`);
} else {
  console.error("usage: node scripts/bundle.mjs web|check|size");
  process.exit(2);
}
