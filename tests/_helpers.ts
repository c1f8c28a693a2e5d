/**
 * Shared helpers of the tests, each defined once: timeouts, polling, hubs and workers that clean
 * up, child processes with line-by-line output, free ports and temporary ipc paths, and the probes
 * that say whether an interop peer can run here. Runtime-neutral (node:* only, no `Deno.*`), so the
 * same tests run under `deno test` and, built to JS, under `node --test`.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Handler, Hub, type HubOptions, Worker, type WorkerOptions } from "../mod.ts";

/** True under Deno, false under Node. */
export const isDeno = "Deno" in globalThis;

/**
 * `test` under Deno; under Node, registers nothing. For tests that only Deno can run (they start
 * Deno itself): not registered is not skipped, and a skipped test fails a CI run.
 */
export const testDeno: typeof test = isDeno ? test : ((() => {}) as unknown as typeof test);

/** `.ts` when running from source, `.js` in the built test tree. */
export const EXT = import.meta.url.endsWith(".ts") ? ".ts" : ".js";

/** The repository root (where mod.ts is). */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** mod.ts (or mod.js), the CLI's entry under Deno (`import.meta.main`). */
export const MOD_PATH: string = fileURLToPath(new URL(`../mod${EXT}`, import.meta.url));

/** The fixture module of worker handlers, for spawned workers. */
export const MODELS_URL: URL = new URL(`./fixtures/models${EXT}`, import.meta.url);

/** Path of the fixture module. */
export const MODELS_PATH: string = fileURLToPath(MODELS_URL);

export {
  chromiumMissing,
  jszmqMissing,
  prometheusMissing,
  PYTHON,
  pyzmqMissing,
  zeromqMissing,
} from "./_probes.ts";

/**
 * Records a duration a test bounds (label, value, the bound), one JSON line appended to the file
 * named by `GIBBS_TEST_TIMINGS` when set: how the spread of timing bounds over many runs on a
 * loaded machine is measured. Does nothing otherwise.
 */
export function observe(label: string, ms: number, bound: string): void {
  const path = process.env.GIBBS_TEST_TIMINGS;
  if (path) appendFileSync(path, JSON.stringify({ label, ms: Math.round(ms), bound }) + "\n");
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with a message naming `what` if `promise` does not settle within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what = "operation"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `condition` every `step` ms until true; throws, naming `what`, after `ms`. */
export async function waitFor(
  condition: () => boolean,
  ms: number,
  what = "condition",
  step = 10,
): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting: ${what}`);
    await sleep(step);
  }
}

/**
 * Awaits a promise that must reject within `ms`, checks the error's class, and returns it.
 */
export async function rejectsWith<E extends Error>(
  promise: Promise<unknown>,
  // Parsed JSON lines and error classes of any constructor: the tests assert on the values.
  // deno-lint-ignore no-explicit-any
  cls: abstract new (...args: any[]) => E,
  ms: number,
  what = "request",
): Promise<E> {
  let result: unknown;
  try {
    result = await withTimeout(promise, ms, what);
  } catch (error) {
    if (error instanceof cls) return error;
    throw new Error(
      `${what}: expected ${cls.name}, got ${(error as Error)?.stack ?? String(error)}`,
    );
  }
  throw new Error(`${what}: expected ${cls.name}, but it resolved with ${String(result)}`);
}

/** Settles a promise into a plain record, never throwing (for many concurrent requests). */
export function settle<T>(
  promise: Promise<T>,
): Promise<{ ok: true; value: T; at: number } | { ok: false; error: unknown; at: number }> {
  return promise.then(
    (value) => ({ ok: true as const, value, at: performance.now() }),
    (error) => ({ ok: false as const, error, at: performance.now() }),
  );
}

/** Warnings the hub or a worker printed, kept instead of printed. */
export class Log {
  readonly lines: string[] = [];
  readonly fn = (message: string): void => {
    this.lines.push(message);
  };
  /** True if a line contains `text` (case-insensitive). */
  has(text: string): boolean {
    const t = text.toLowerCase();
    return this.lines.some((l) => l.toLowerCase().includes(t));
  }
}

/** A hub on a free loopback port, with its warnings collected. */
export interface TestHub {
  hub: Hub;
  endpoint: string;
  port: number;
  log: Log;
}

/** Starts a hub on `tcp://127.0.0.1:0` (unless `endpoint` is given) and waits until bound. */
export async function startHub(options: HubOptions = {}): Promise<TestHub> {
  const log = new Log();
  const hub = new Hub({
    endpoint: "tcp://127.0.0.1:0",
    heartbeatInterval: 0.5,
    logger: log.fn,
    ...options,
  });
  const endpoint = await withTimeout(hub.ready, 5000, "hub.ready");
  return { hub, endpoint, port: portOf(endpoint), log };
}

/** The port of a `tcp://host:port` endpoint. */
export function portOf(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
}

/**
 * A loopback port free a moment ago, for a peer that must be told its port before it binds
 * (the kernel hands out the ports of `bind(0)` and of `connect()` from different halves of its
 * range, so another process taking it meanwhile is unlikely, not impossible).
 */
export function freePort(): Promise<number> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    }),
    5000,
    "a free port",
  );
}

/** A plain TCP listener that only counts the connections it accepts (and drops them). */
export interface Listener {
  endpoint: string;
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/**
 * Listens on a free loopback port and counts connections: where a test must show that a process
 * never connected (a worker whose constructor throws), a hub's worker count proves nothing.
 */
export async function listener(): Promise<Listener> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
    }),
    5000,
    "a listening socket",
  );
  return {
    endpoint: `tcp://127.0.0.1:${port}`,
    port,
    accepted: () => accepted,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return withTimeout(
        new Promise<void>((resolve) => server.close(() => resolve())),
        5000,
        "close",
      );
    },
  };
}

let ipcCount = 0;

/**
 * A fresh `ipc://` endpoint in the temporary folder; `cleanup` removes its socket file (libzmq
 * leaves it behind when its process is killed).
 */
export function ipcEndpoint(cleanup: Cleanup, name = "ipc"): string {
  const path = join(tmpdir(), `gibbs-test-${name}-${process.pid}-${ipcCount++}.sock`);
  cleanup.add(() => rmSync(path, { force: true }));
  return `ipc://${path}`;
}

/** An in-process worker and the promise of its `run()`. */
export interface RunningWorker {
  worker: Worker;
  done: Promise<void>;
  log: Log;
  /** Stops it and waits (bounded) for `run()` to end. */
  stop(): Promise<void>;
}

/** Starts an in-process worker (heartbeat 0.2 s by default) connected to `endpoint`. */
export function startWorker(
  handler: Handler,
  endpoint: string,
  options: WorkerOptions = {},
): RunningWorker {
  return runWorker(handler, { endpoint, ...options });
}

/** An in-process worker with these options, a 0.2 s heartbeat and its log collected, running. */
function runWorker(handler: Handler, options: WorkerOptions): RunningWorker {
  const log = new Log();
  const worker = new Worker(handler, { heartbeatInterval: 0.2, logger: log.fn, ...options });
  const done = worker.run();
  // A failing run() surfaces through stop(); never as an unhandled rejection.
  done.catch(() => {});
  return {
    worker,
    done,
    log,
    async stop() {
      worker.stop();
      await withTimeout(done, 5000, `worker ${worker.id} run() after stop()`);
    },
  };
}

/** Runs cleanups in reverse order, all of them, then throws the first failure. */
export class Cleanup {
  #fns: (() => unknown)[] = [];
  /** Registers a cleanup. */
  add(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  /** Runs them all, newest first. */
  async run(): Promise<void> {
    let first: unknown;
    for (const fn of this.#fns.reverse()) {
      try {
        await withTimeout(Promise.resolve().then(fn), 10_000, "cleanup");
      } catch (error) {
        first ??= error;
      }
    }
    this.#fns = [];
    if (first !== undefined) throw first;
  }
}

/** A child process whose stdout is read line by line and whose stderr is kept. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  #partial = "";
  #waiters: (() => void)[] = [];

  constructor(
    command: string,
    args: string[],
    options: { cwd?: string; env?: Record<string, string> } = {},
  ) {
    this.child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: options.env ? { ...process.env, ...options.env } : undefined,
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => resolve({ code, signal }));
      this.child.once("error", () => resolve({ code: -1, signal: null }));
    });
    this.child.stdout!.setEncoding("utf8");
    this.child.stdout!.on("data", (chunk: string) => {
      const parts = (this.#partial + chunk).split("\n");
      this.#partial = parts.pop()!;
      for (const line of parts) if (line.trim() !== "") this.lines.push(line);
      this.#wake();
    });
    this.child.stderr!.setEncoding("utf8");
    this.child.stderr!.on("data", (chunk: string) => {
      this.stderr += chunk;
      this.#wake();
    });
    this.child.stdin!.on("error", () => {});
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Waits for a stdout line matching `predicate`, among lines from index `from` on. */
  async waitLine(
    predicate: (line: string) => boolean,
    ms: number,
    what = "line",
    from = 0,
  ): Promise<string> {
    const deadline = performance.now() + ms;
    while (true) {
      for (; from < this.lines.length; from++) {
        if (predicate(this.lines[from])) return this.lines[from];
      }
      const left = deadline - performance.now();
      if (left <= 0 || this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `no ${what} within ${ms} ms (exit ${this.child.exitCode}/${this.child.signalCode}); ` +
            `stdout:\n${this.lines.join("\n")}\nstderr:\n${this.stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for a stdout JSON line whose object satisfies `predicate`; returns it parsed. */
  async waitJson(
    // deno-lint-ignore no-explicit-any
    predicate: (value: any) => boolean,
    ms: number,
    what = "JSON line",
    from = 0,
    // deno-lint-ignore no-explicit-any
  ): Promise<any> {
    const line = await this.waitLine(
      (l) => {
        try {
          return predicate(JSON.parse(l));
        } catch {
          return false;
        }
      },
      ms,
      what,
      from,
    );
    return JSON.parse(line);
  }

  /** Writes one JSON line on stdin. */
  send(value: unknown): void {
    this.child.stdin!.write(JSON.stringify(value) + "\n");
  }

  /**
   * Sends a signal; ignores a process that is gone. Through `process.kill(pid)`: Deno's
   * `ChildProcess.kill()` makes the exit event report that signal even when the child caught
   * it and exited 0.
   */
  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    signalPid(this.pid, signal);
  }

  /** SIGKILLs it (if still running) and waits for it, bounded. */
  async dispose(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.kill("SIGKILL");
    await withTimeout(this.exited, 5000, `exit of pid ${this.pid}`).catch(() => {});
  }
}

/** The npm package's `gibbs` bin, the CLI's entry under Node (in the built tree). */
const BIN_PATH: string = fileURLToPath(new URL("../bin/gibbs.js", import.meta.url));

/** Runs our CLI in a child process: `deno run -A mod.ts ...args`, or the bin under Node. */
export function cli(args: string[]): Proc {
  return isDeno
    ? new Proc(process.execPath, ["run", "-A", MOD_PATH, ...args])
    : new Proc(process.execPath, [BIN_PATH, ...args]);
}

/** Our CLI worker serving an export of the test models with the flags given, disposed by `c`. */
export function cliWorker(
  c: Cleanup,
  endpoint: string,
  exportName: string,
  flags: string[] = [],
): Proc {
  const proc = cli([
    "worker",
    MODELS_PATH,
    "--export",
    exportName,
    "--endpoint",
    endpoint,
    ...flags,
  ]);
  c.add(() => proc.dispose());
  return proc;
}

/** Sends a POSIX signal to a pid (SIGSTOP/SIGCONT included); ignores a pid that is gone. */
export function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

/** The lines a process wrote on standard error so far (blank ones left out). */
export function stderrLines(p: Proc): string[] {
  return p.stderr.split("\n").filter((line) => line.trim() !== "");
}

/**
 * Waits for a standard-error line of `p` matching `pattern`, polling; returns it. Throws,
 * with everything the process wrote, after `ms` or once the process has exited without one.
 */
export async function waitStderr(
  p: Proc,
  pattern: RegExp,
  ms: number,
  what = String(pattern),
): Promise<string> {
  const deadline = performance.now() + ms;
  while (true) {
    const line = stderrLines(p).find((l) => pattern.test(l));
    if (line !== undefined) return line;
    const exited = p.child.exitCode !== null || p.child.signalCode !== null;
    if (exited || performance.now() > deadline) {
      throw new Error(
        `no stderr line ${what} within ${ms} ms (exit ${p.child.exitCode}/${p.child.signalCode})` +
          `; stdout:\n${p.lines.join("\n")}\nstderr:\n${p.stderr}`,
      );
    }
    await sleep(20);
  }
}

/**
 * True while process `pid` runs. A zombie (exited, not yet reaped: orphans handed to a pid 1
 * that does not reap) counts as gone; Linux's /proc tells, elsewhere signal 0 alone does.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true;
  }
}

/** Runs a script of the test tree with this runtime: `deno run -A FILE` or `node FILE`. */
export function script(path: string, args: string[] = []): Proc {
  return isDeno
    ? new Proc(process.execPath, ["run", "-A", path, ...args])
    : new Proc(process.execPath, [path, ...args]);
}

/**
 * Starts an in-process worker serving several hubs at once (heartbeat 0.2 s by default), with
 * its warnings collected.
 */
export function startSharedWorker(
  handler: Handler,
  endpoints: string[],
  options: WorkerOptions = {},
): RunningWorker {
  return runWorker(handler, { endpoints, ...options });
}
