/**
 * Starting workers as child processes from code: JavaScript cannot ship a class to another
 * process, so the child imports a module and serves its export.
 *
 * @module
 */

import { runtime } from "../transport/runtime.ts";
import type { ChildProcess } from "../transport/runtime_types.ts";
import type { WorkerOptions } from "./worker.ts";
import { curveKey } from "../socket/security.ts";
import { z85Encode } from "../zmtp/z85.ts";

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
  /** Workers print only warnings and errors (default false). */
  quiet?: boolean;
}

/** Worker processes started by {@linkcode spawnWorkers}. */
export interface WorkerProcesses {
  /** The child processes, in start order. */
  readonly processes: ChildProcess[];
  /** Starts one more worker with the same settings and returns it. */
  add(): ChildProcess;
  /** Asks every worker to finish its request and exit (SIGTERM), and waits for them. */
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
  const stdio = options.inheritOutput === false ? "ignore" : "inherit";
  const processes: ChildProcess[] = [];
  const add = () => {
    const child = runtime.spawnScript(CLI_ENTRY.href, args, { stdio, env });
    processes.push(child);
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
