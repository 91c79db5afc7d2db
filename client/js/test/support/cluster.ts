// Real servers for the end-to-end tests: the nats-server and pushd binaries in the repository's
// bin/ (built by `make js`), each on random loopback ports, stopped when the test ends.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { within } from "./wait.js";

/** The repository root (this file is client/js/build/test/support/cluster.js). */
export const repoRoot = fileURLToPath(new URL("../../../../../", import.meta.url));

function binary(name: string): string {
  const path = join(repoRoot, "bin", name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run \`make js-bins\` at the repository root (go build -o bin/pushd ./cmd/pushd; go build -o bin/nats-server github.com/nats-io/nats-server/v2)`);
  }
  return path;
}

/** A process whose output is kept for failure reports. */
class Proc {
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(readonly name: string, readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    for (const s of [child.stdout, child.stderr]) s?.setEncoding("utf8").on("data", (d: string) => this.output.push(...d.split("\n").filter(Boolean)));
  }

  /** Resolves with the first output line that matches re (its match), or rejects at exit or after ms. */
  waitFor(re: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
    const seen = this.output.map((l) => l.match(re)).find(Boolean);
    if (seen) return Promise.resolve(seen);
    return within(
      ms,
      `${this.name} output matching ${re}`,
      new Promise((resolve, reject) => {
        const onData = (d: string) => {
          for (const l of d.split("\n")) {
            const m = l.match(re);
            if (m) {
              off();
              resolve(m);
            }
          }
        };
        const onExit = (code: number | null) => {
          off();
          reject(new Error(`${this.name} exited (${code}) before printing ${re}:\n${this.output.slice(-20).join("\n")}`));
        };
        const off = () => {
          this.child.stdout?.off("data", onData);
          this.child.stderr?.off("data", onData);
          this.child.off("exit", onExit);
        };
        this.child.stdout?.on("data", onData);
        this.child.stderr?.on("data", onData);
        this.child.on("exit", onExit);
      }),
    );
  }

  /** SIGKILL, and wait for the exit. */
  async kill9(): Promise<void> {
    this.child.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM; resolves with the exit code. */
  async term(ms = 15_000): Promise<number | null> {
    this.child.kill("SIGTERM");
    return (await within(ms, `${this.name} exit after SIGTERM`, this.exited)).code;
  }
}

/** The servers one test started; stop() ends them all. */
export class Cluster {
  private readonly procs: Proc[] = [];
  private readonly dirs: string[] = [];
  natsURL = "";

  /** Starts nats-server on a random loopback port (with JetStream when jetstream is set). */
  async nats(jetstream = false): Promise<string> {
    const args = ["-a", "127.0.0.1", "-p", "-1"];
    if (jetstream) {
      const dir = mkdtempSync(join(tmpdir(), "pushd-js-"));
      this.dirs.push(dir);
      args.push("-js", "-sd", dir);
    }
    const p = this.start("nats-server", binary("nats-server"), args);
    const m = await p.waitFor(/Listening for client connections on (\S+:\d+)/);
    this.natsURL = `nats://${m[1]}`;
    return this.natsURL;
  }

  /** Starts a pushd node on this cluster's NATS; args come after the defaults (dev mode). */
  async pushd(node: number, args: string[] = ["--dev"]): Promise<PushdNode> {
    const p = this.start(`pushd node ${node}`, binary("pushd"), [
      "--nats-url", this.natsURL, "--listen", "127.0.0.1:0", "--admin-listen", "", "--node-id", String(node),
      "--log-format", "json", "--drain-timeout", "500ms", "--heartbeat-sweep", "100ms", ...args,
    ]);
    const m = await p.waitFor(/"msg":"pushd started".*"listen":"([^"]+)"/);
    return new PushdNode(p, node, m[1]!);
  }

  private start(name: string, bin: string, args: string[]): Proc {
    const p = new Proc(name, spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] }));
    this.procs.push(p);
    return p;
  }

  /** Kills everything still running; returns the logs of all processes. */
  async stop(): Promise<string> {
    await Promise.all(this.procs.map((p) => (p.child.exitCode === null && p.child.signalCode === null ? p.kill9() : undefined)));
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    return this.procs.map((p) => `--- ${p.name}\n${p.output.slice(-40).join("\n")}`).join("\n");
  }
}

/** A running pushd. */
export class PushdNode {
  readonly url: string;
  readonly http: string;
  constructor(readonly proc: Proc, readonly id: number, readonly listen: string) {
    this.url = `ws://${listen}/ws`;
    this.http = `http://${listen}`;
  }
}
