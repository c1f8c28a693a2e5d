/**
 * The command-line interface: `demo`, `hub`, `worker`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEFAULT_PORT } from "../gibbs/defaults.ts";
import { DEMO_MODEL_URL } from "../gibbs/demo_model.ts";
import { Hub } from "../gibbs/hub.ts";
import { HandlerStartError } from "../gibbs/executor.ts";
import { moduleUrl } from "../gibbs/handler_module.ts";
import { spawnWorkers } from "../gibbs/spawn.ts";
import { Worker } from "../gibbs/worker.ts";
import { runtime } from "../transport/runtime.ts";
import { gatewayHandler } from "./gateway.ts";
import * as sec from "./security_flags.ts";

const USAGE = `gibbs — scale a model (or any code) across processes and machines

Usage:
  gibbs demo    [--workers N] [--requests N] [--seconds S]
  gibbs hub     --http HTTP_PORT [--http-host H] [--port P] [--heartbeat S] [--resp-buffer N]
                [--ws WS_PORT [--ws-origin ORIGIN]... [--ws-cert FILE --ws-key FILE]]
  gibbs worker  MODULE [--export NAME] [--host H] [--port P] [--heartbeat S]
                [--threads N] [--concurrency N] [--service NAME]
                [--batch-size N [--batch-wait-ms MS]]
                [--reset-after N] [--args JSON_ARRAY] [--kwargs JSON_OBJECT]
  gibbs keygen  FILE [--force]
  (hub: --curve-secret-key-file F [--authorized-keys F];
   worker: --curve-server-key KEY --curve-secret-key-file F)

Run "gibbs COMMAND --help" for the options of a command.`;

const DEMO_USAGE = `gibbs demo — a hub, worker processes, requests one at a time then in parallel

Options:
  --workers N     worker processes to start (default 4)
  --requests N    requests to send (default 10)
  --seconds S     time the demo model takes per request (default 0.25)
  --port P        hub port (default: a free port)`;

const HUB_USAGE = `gibbs hub — a hub with an HTTP gateway

Options:
  --http PORT        HTTP port of the gateway (required)
  --http-host H      HTTP interface (default 127.0.0.1)
  --port P           port workers connect to (default 5019)
  --host H           interface workers connect to (default *: all)
  --heartbeat S      worker heartbeat interval in seconds (default 1)
  --resp-buffer N    most pending requests; more get HTTP 503 (default 4096)
  --ws PORT          also listen for workers over WebSocket (ZWS 2.0): browser pages, jszmq
  --ws-origin O      a page origin allowed on --ws, e.g. https://app.example (repeatable; "*"
                     allows any; default: pages served from the hub's own host name)
  --ws-cert FILE     with --ws-key: wss:// (TLS) with this PEM certificate chain
  --ws-key FILE      the PEM private key for --ws-cert

HTTP:
  POST /request  {"args": [...], "kwargs": {...}, "timeout": s, "retries": n}
                 200 {"result"} | 500 {"error","traceback"} | 504 timeout | 503 full | 400 bad body
  POST /stream   the same body; the chunks as Server-Sent Events (Accept: text/event-stream)
                 or NDJSON lines {"chunk": v} ... {"end": true} | {"error": ...}
  POST /services/NAME/request, /services/NAME/stream   the same, for one service
  GET  /health   200 {"workers": N, "busy", "queued", "pending", "completed", "redispatched",
                 "services": {NAME: {...}}}
  GET  /gibbs.js the browser build: import { Worker } from it in a page to join over --ws
${sec.HUB_SECURITY_USAGE}`;

const WORKER_USAGE = `gibbs worker — serve a module's export to a hub

Arguments:
  MODULE             path or URL of a module; its default export (or --export NAME) is a
                     function, or a class whose call() method serves requests

Options:
  --export NAME      export to serve instead of the default one
  --host H           hub host (default localhost)
  --port P           hub port (default 5019)
  --endpoint E       full hub endpoint instead of host and port (e.g. ipc:///tmp/hub,
                     ws://hub:5020 for a hub listening with --ws)
  --heartbeat S      heartbeat interval in seconds (default 1)
  --threads N        handler threads, each with its own instance of the handler; the
                     connection's thread answers heartbeats while they compute, so a
                     handler may block for minutes (default 1; 0: run on the connection's
                     thread)
  --concurrency N    most requests served at once (default: one per thread, or 1);
                     with --batch-size, batches at once (default 1)
  --service NAME     the service this worker serves (default "default"); the hub sends
                     it only hub.service(NAME) requests
  --batch-size N     serve requests in batches of up to N: the handler's batch(items)
                     (a class method, or a function marked with batched()) is called once
                     per batch
  --batch-wait-ms MS longest a request waits for its batch to fill (default 5)
  --reset-after N    unanswered pings before reconnecting (default 2)
  --args JSON        constructor arguments, a JSON array
  --kwargs JSON      constructor keyword arguments, a JSON object
  --quiet, -q        print only warnings and errors
${sec.WORKER_SECURITY_USAGE}

SIGINT/SIGTERM finish the request in hand, answer it, then exit 0.`;

/** A usage mistake: printed with the command's usage, exit code 2. */
class UsageError extends Error {}

/** Runs the CLI with the given arguments (default: the process's). */
export async function main(args: string[] = runtime.args()): Promise<void> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "demo":
        return await demo(rest);
      case "hub":
        return await hub(rest);
      case "worker":
        return await worker(rest);
      case "keygen":
        return await keygen(rest);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return;
      default:
        throw new UsageError(`unknown command "${command}"\n\n${USAGE}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`gibbs: ${error.message}`);
      runtime.exit(2);
    }
    if (
      error instanceof TypeError && (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
    ) {
      console.error(`gibbs: ${error.message}`);
      runtime.exit(2);
    }
    throw error;
  }
}

function number(value: string | undefined, name: string, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`${name} must be a number, got "${value}"`);
  return n;
}

function integer(value: string | undefined, name: string, min: number): number | undefined {
  const n = number(value, name);
  if (n !== undefined && !(Number.isInteger(n) && n >= min)) {
    throw new UsageError(`${name} must be an integer >= ${min}, got "${value}"`);
  }
  return n;
}

function json<T>(
  value: string | undefined,
  name: string,
  check: (v: unknown) => boolean,
): T | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new UsageError(`${name} is not valid JSON: ${value}`);
  }
  if (!check(parsed)) throw new UsageError(`${name} has the wrong shape: ${value}`);
  return parsed as T;
}

async function demo(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: "string" },
      requests: { type: "string" },
      seconds: { type: "string" },
      port: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return console.log(DEMO_USAGE);
  const count = number(values.workers, "--workers", 4)!;
  const requests = number(values.requests, "--requests", 10)!;
  const seconds = number(values.seconds, "--seconds", 0.25)!;
  const port = number(values.port, "--port", 0)!;

  console.log(
    `gibbs demo: 1 hub, ${count} worker processes, a model taking ${seconds * 1000} ms per request`,
  );
  const hub = new Hub({ endpoint: `tcp://127.0.0.1:${port}` });
  const endpoint = await hub.ready;
  const t0 = runtime.now();
  const workers = spawnWorkers(DEMO_MODEL_URL, { count, endpoint, args: [seconds], quiet: true });
  try {
    let shown = -1;
    while (hub.workers < count) {
      if (runtime.now() - t0 > 60_000) {
        throw new Error(`only ${hub.workers} of ${count} workers connected within 60 s`);
      }
      if (hub.workers !== shown) {
        shown = hub.workers;
        console.log(`  starting workers: ${shown}/${count} connected`);
      }
      await sleep(20);
    }
    console.log(`  ${count}/${count} workers connected in ${fmt(runtime.now() - t0)}`);
    await hub.request(0); // warm-up: the first request also opens every code path

    let t = runtime.now();
    for (let i = 0; i < requests; i++) await hub.request(i);
    const sequential = runtime.now() - t;
    console.log(`  ${requests} requests one at a time: ${fmt(sequential)}`);

    t = runtime.now();
    const results = await Promise.all(Array.from({ length: requests }, (_, i) => hub.request(i)));
    const parallel = runtime.now() - t;
    const ideal = Math.ceil(requests / count) * seconds * 1000;
    console.log(
      `  ${requests} requests in parallel:   ${fmt(parallel)}  (${
        (sequential / parallel).toFixed(1)
      }x faster; ideal ${fmt(ideal)})`,
    );
    const expected = Array.from({ length: requests }, (_, i) => i * 2);
    if (JSON.stringify(results) !== JSON.stringify(expected)) {
      throw new Error(`wrong results: ${JSON.stringify(results)}`);
    }
    console.log(`  results: ${JSON.stringify(results)}`);
  } finally {
    await workers.stop();
    await hub.close();
  }
}

function fmt(ms: number): string {
  return `${(ms / 1000).toFixed(3)} s`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function hub(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      heartbeat: { type: "string" },
      "resp-buffer": { type: "string" },
      http: { type: "string" },
      "http-host": { type: "string" },
      ws: { type: "string" },
      "ws-origin": { type: "string", multiple: true },
      "ws-cert": { type: "string" },
      "ws-key": { type: "string" },
      ...sec.HUB_SECURITY_FLAGS,
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return console.log(HUB_USAGE);
  if (values.http === undefined) throw new UsageError(`--http PORT is required\n\n${HUB_USAGE}`);
  const ws = wsEndpoint(values);
  const theHub = new Hub({
    endpoints: ws ? [ws] : undefined,
    port: number(values.port, "--port", DEFAULT_PORT),
    host: values.host,
    heartbeatInterval: number(values.heartbeat, "--heartbeat"),
    respBufferSize: number(values["resp-buffer"], "--resp-buffer"),
    overflow: "reject-new",
    security: await sec.hubSecurity(values, usageFail, (m) => console.log(m)),
  });
  const endpoint = await theHub.ready;
  const httpHost = values["http-host"] ?? "127.0.0.1";
  const server = await runtime.serveHttp(
    httpHost,
    number(values.http, "--http")!,
    gatewayHandler(theHub),
  );
  console.log(
    `gibbs hub: workers connect to ${endpoint}; HTTP gateway on http://${httpHost}:${server.port}`,
  );
  if (ws) {
    console.log(
      `gibbs hub: browser workers connect to ${theHub.endpoints[1]}; ` +
        `they import http://${httpHost}:${server.port}/gibbs.js`,
    );
  }
  let remove = () => {};
  const signal = await new Promise<string>((resolve) => {
    remove = runtime.onShutdownSignal(resolve);
  });
  remove();
  console.log(`gibbs hub: ${signal}, shutting down`);
  await server.close();
  await theHub.close();
}

/** The WebSocket endpoint of `gibbs hub --ws`, with its bind options, or undefined. */
function wsEndpoint(values: {
  ws?: string;
  host?: string;
  "ws-origin"?: string[];
  "ws-cert"?: string;
  "ws-key"?: string;
}): { endpoint: string; origins?: string[]; certFile?: string; keyFile?: string } | undefined {
  const tls = values["ws-cert"] !== undefined || values["ws-key"] !== undefined;
  if (values.ws === undefined) {
    if (tls || values["ws-origin"]) {
      throw new UsageError("--ws-origin, --ws-cert and --ws-key need --ws PORT");
    }
    return undefined;
  }
  if (tls && (values["ws-cert"] === undefined || values["ws-key"] === undefined)) {
    throw new UsageError("--ws-cert and --ws-key go together");
  }
  const port = number(values.ws, "--ws")!;
  return {
    endpoint: `${tls ? "wss" : "ws"}://${values.host ?? "*"}:${port}`,
    origins: values["ws-origin"],
    certFile: values["ws-cert"],
    keyFile: values["ws-key"],
  };
}

async function worker(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      export: { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      endpoint: { type: "string" },
      heartbeat: { type: "string" },
      "reset-after": { type: "string" },
      threads: { type: "string" },
      concurrency: { type: "string" },
      service: { type: "string" },
      "batch-size": { type: "string" },
      "batch-wait-ms": { type: "string" },
      args: { type: "string" },
      kwargs: { type: "string" },
      quiet: { type: "boolean", short: "q" },
      ...sec.WORKER_SECURITY_FLAGS,
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return console.log(WORKER_USAGE);
  const say = values.quiet ? () => {} : (m: string) => console.error(m);
  if (positionals.length !== 1) throw new UsageError(`expected one MODULE\n\n${WORKER_USAGE}`);
  const ctorArgs = json<unknown[]>(values.args, "--args", Array.isArray);
  const ctorKwargs = json<Record<string, unknown>>(
    values.kwargs,
    "--kwargs",
    (v) => typeof v === "object" && v !== null && !Array.isArray(v),
  );
  const specifier = positionals[0];
  const name = values.export ?? "default";
  const threads = integer(values.threads, "--threads", 0);
  const concurrency = integer(values.concurrency, "--concurrency", 1);
  const batchSize = integer(values["batch-size"], "--batch-size", 1);
  if (batchSize === undefined && values["batch-wait-ms"] !== undefined) {
    throw new UsageError("--batch-wait-ms needs --batch-size");
  }
  const options = {
    threads,
    concurrency,
    service: values.service,
    batch: batchSize === undefined ? undefined : {
      maxSize: batchSize,
      maxWaitMs: number(values["batch-wait-ms"], "--batch-wait-ms", 5)!,
    },
    export: name,
    host: values.host,
    port: number(values.port, "--port"),
    endpoint: values.endpoint,
    heartbeatInterval: number(values.heartbeat, "--heartbeat"),
    resetAfterNMiss: number(values["reset-after"], "--reset-after"),
    args: ctorArgs,
    kwargs: ctorKwargs,
    handleSignals: true,
    security: await sec.workerSecurity(values, usageFail, say),
  };
  const w = new Worker(moduleUrl(specifier, runtime.cwd()), options);
  const where = w.threads > 0
    ? `on ${w.threads} thread${w.threads === 1 ? "" : "s"}`
    : "on the connection's thread";
  say(
    `gibbs worker ${w.id}: serving ${specifier} (${name}) ${where}, up to ${w.concurrency} at once, to ${w.endpoint}`,
  );
  try {
    await w.run();
  } catch (error) {
    if (error instanceof HandlerStartError) {
      if (error.kind === "module") throw new UsageError(error.message);
      console.error(`gibbs worker: the handler failed to start:\n${error.detail}`);
      runtime.exit(1);
    }
    throw error;
  }
  say(`gibbs worker ${w.id}: stopped after ${w.served} requests`);
  runtime.exit(0);
}

function usageFail(message: string): never {
  throw new UsageError(message);
}

async function keygen(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { force: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) return console.log(sec.KEYGEN_USAGE);
  if (positionals.length !== 1) throw new UsageError(`expected one FILE\n\n${sec.KEYGEN_USAGE}`);
  await sec.keygen(positionals[0], values.force ?? false, usageFail);
}
