/**
 * Starting workers as child processes from code: JavaScript cannot ship a class to another
 * process, so the child imports a module and serves its export.
 *
 * No worker outlives the process that started it: the parent asks its workers to stop when it
 * exits (normally, through `Deno.exit`/`process.exit`, or — on Node — after an uncaught error),
 * and each worker also watches its parent ({@linkcode watchParent}) and stops by itself once it
 * is gone, which covers what no exit handler sees: a fatal signal, an uncaught error under
 * Deno, SIGKILL.
 *
 * @module
 */

import { runtime } from "../transport/runtime.ts";
import type { ChildProcess } from "../transport/runtime_types.ts";
import type { LogFormat, LogLevel } from "./logger.ts";
import type { WorkerOptions } from "./worker.ts";
import { curveKey } from "../socket/security.ts";
import { z85Encode } from "../zmtp/z85.ts";

/** How often a worker started with a parent checks that its parent is still there, in ms. */
export const PARENT_CHECK_MS = 200;

// The CLI entry next door: `.ts` when running from source, `.js` in the npm build.
const CLI_ENTRY = new URL(
  import.meta.url.endsWith(".ts") ? "../cli/entry.ts" : "../cli/entry.js",
  import.meta.url,
);

/**
 * Options of {@linkcode spawnWorkers}: those of a worker, and how many to start. Constructor
 * `args` and `kwargs` reach the children as JSON, so they must be JSON-serialisable.
 */
export interface SpawnWorkersOptions extends
  Pick<
    WorkerOptions,
    | "host"
    | "port"
    | "endpoint"
    | "heartbeatInterval"
    | "resetAfterNMiss"
    | "args"
    | "kwargs"
    | "threads"
    | "concurrency"
    | "service"
    | "batch"
    | "security"
  > {
  /** How many worker processes (default 1). */
  count?: number;
  /** Name of the module's export to serve (default: its default export). */
  export?: string;
  /** Show the workers' output (default true). */
  inheritOutput?: boolean;
  /** Workers print only warnings and errors (default false): `logLevel: "warn"`. */
  quiet?: boolean;
  /** The workers' log level (default `"info"`, or `"warn"` with `quiet`). */
  logLevel?: LogLevel;
  /** The workers' log format (default `"text"`). */
  logFormat?: LogFormat;
}

/**
 * Worker processes started by {@linkcode spawnWorkers}. They stop by themselves when the
 * process that started them exits, however it exits.
 */
export interface WorkerProcesses {
  /** The child processes, in start order. */
  readonly processes: ChildProcess[];
  /** Starts one more worker with the same settings and returns it. */
  add(): ChildProcess;
  /**
   * Asks every worker to finish its request in hand and exit (SIGTERM), and waits for them.
   * A worker whose hub is gone does not wait for it: it exits within its socket's linger (1 s).
   */
  stop(): Promise<void>;
  /** Kills every worker at once (SIGKILL) and waits for them. */
  kill(): Promise<void>;
}

/**
 * Starts worker processes serving `module`'s default export (or `options.export`).
 *
 * @example
 * ```ts ignore
 * import { Hub, spawnWorkers } from "../../mod.ts";
 * const hub = new Hub({ port: 5019 });
 * const workers = spawnWorkers(new URL("./model.ts", import.meta.url), { count: 4, port: 5019 });
 * console.log(await hub.request(21));
 * await workers.stop();
 * await hub.close();
 * ```
 */
export function spawnWorkers(
  module: string | URL,
  options: SpawnWorkersOptions = {},
): WorkerProcesses {
  const args = ["worker", module instanceof URL ? module.href : module];
  if (options.export) args.push("--export", options.export);
  if (options.endpoint) args.push("--endpoint", options.endpoint);
  if (options.host) args.push("--host", options.host);
  if (options.port !== undefined) args.push("--port", String(options.port));
  if (options.heartbeatInterval !== undefined) {
    args.push("--heartbeat", String(options.heartbeatInterval));
  }
  if (options.resetAfterNMiss !== undefined) {
    args.push("--reset-after", String(options.resetAfterNMiss));
  }
  if (options.threads !== undefined) args.push("--threads", String(options.threads));
  if (options.concurrency !== undefined) args.push("--concurrency", String(options.concurrency));
  if (options.service !== undefined) args.push("--service", options.service);
  if (options.batch !== undefined) {
    args.push("--batch-size", String(options.batch.maxSize));
    args.push("--batch-wait-ms", String(options.batch.maxWaitMs));
  }
  if (options.args) args.push("--args", JSON.stringify(options.args));
  if (options.kwargs) args.push("--kwargs", JSON.stringify(options.kwargs));
  if (options.quiet) args.push("--quiet");
  const env: Record<string, string> = {};
  const security = options.security;
  if (security) {
    // What the worker CLI takes: the hub's key as a flag, the secret through the environment.
    const { curveServerKey, curveSecretKey, ...rest } = security;
    if (curveServerKey === undefined || Object.values(rest).some((v) => v !== undefined)) {
      throw new RangeError(
        "spawnWorkers passes CURVE client keys only (curveServerKey, curveSecretKey)",
      );
    }
    args.push("--curve-server-key", z85Encode(curveKey(curveServerKey, "curveServerKey")));
    if (curveSecretKey !== undefined) {
      env.GIBBS_CURVE_SECRET_KEY = z85Encode(curveKey(curveSecretKey, "curveSecretKey"));
    }
  }
  const logLevel = options.logLevel ?? (options.quiet ? "warn" : undefined);
  if (logLevel) args.push("--log-level", logLevel);
  if (options.logFormat) args.push("--log-format", options.logFormat);
  // Each worker watches this process and stops once it is gone (see watchParent).
  args.push("--parent", String(runtime.pid()));
  const stdio = options.inheritOutput === false ? "ignore" : "inherit";
  const processes: ChildProcess[] = [];
  const running = new Set<ChildProcess>();
  // When this process exits, its workers are told at once; the watch in each worker is there
  // for the exits that run no code.
  let removeExitHook: (() => void) | null = null;
  const add = () => {
    const child = runtime.spawnScript(CLI_ENTRY.href, args, { stdio, env });
    processes.push(child);
    running.add(child);
    removeExitHook ??= runtime.onExit(() => {
      for (const p of running) p.kill("SIGTERM");
    });
    child.exited.then(() => {
      running.delete(child);
      if (running.size === 0) {
        removeExitHook?.();
        removeExitHook = null;
      }
    });
    return child;
  };
  for (let i = 0; i < (options.count ?? 1); i++) add();
  const waitAll = async () => {
    await Promise.all(processes.map((p) => p.exited));
  };
  return {
    processes,
    add,
    stop() {
      for (const p of processes) p.kill("SIGTERM");
      return waitAll();
    },
    kill() {
      for (const p of processes) p.kill("SIGKILL");
      return waitAll();
    },
  };
}

/**
 * Calls `onGone` once the process `pid` is gone, checking every `intervalMs` without keeping
 * this process alive. When `pid` is this process's parent, "gone" means the parent changed
 * (the system hands an orphan to another process), which a reused pid cannot fake; otherwise
 * the process no longer exists. The `gibbs worker --parent PID` option runs on this, and
 * {@linkcode spawnWorkers} passes its own pid. Returns a function that stops watching.
 *
 * @example
 * ```ts ignore
 * import { watchParent } from "./spawn.ts";
 * watchParent(parentPid, () => worker.stop());
 * ```
 */
export function watchParent(
  pid: number,
  onGone: () => void,
  intervalMs: number = PARENT_CHECK_MS,
): () => void {
  const direct = runtime.ppid() === pid;
  const gone = () => direct ? runtime.ppid() !== pid : !runtime.processExists(pid);
  let done = false;
  const fire = () => {
    if (done || !gone()) return;
    done = true;
    stop();
    onGone();
  };
  const stop = runtime.every(intervalMs, fire);
  // Already gone (the parent died while this process was starting): say so at once.
  queueMicrotask(fire);
  return () => {
    done = true;
    stop();
  };
}
