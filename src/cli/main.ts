/**
 * The command-line interface: `demo`, `hub`, `worker`.
 *
 * Every command takes `--log-level`, `--log-format`, `--quiet` and `--help`. Log records go to
 * standard error (text or JSON lines); the demo's report and `--help` go to standard output.
 * A failure ends the command with one line `gibbs: …` on standard error naming what failed
 * (the file, the port, the flag), exit code 2 for a usage mistake and 1 for a runtime failure;
 * `--log-level debug` adds the stack trace.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEFAULT_PORT } from "../gibbs/defaults.ts";
import { DEMO_MODEL_URL } from "../gibbs/demo_model.ts";
import { HandlerStartError } from "../gibbs/executor.ts";
import { moduleUrl } from "../gibbs/handler_module.ts";
import { Hub } from "../gibbs/hub.ts";
import {
  createLogger,
  Log,
  LOG_LEVELS,
  type LogFormat,
  type Logger,
  type LogLevel,
} from "../gibbs/logger.ts";
import { spawnWorkers, watchParent } from "../gibbs/spawn.ts";
import { Worker } from "../gibbs/worker.ts";
import { parseEndpoint } from "../transport/endpoint.ts";
import { runtime } from "../transport/runtime.ts";
import { DEFAULT_MAX_BODY_BYTES, gatewayHandler } from "./gateway.ts";
import * as sec from "./security_flags.ts";
import { statusCommand } from "./status.ts";

const LOG_USAGE = `
  --log-level L      debug, info, warn or error (default info); debug adds stack traces
  --log-format F     text, or json: one object per line (default text)
  --quiet, -q        same as --log-level warn
  --help, -h         this help`;

const USAGE = `gibbs — scale a model (or any code) across processes and machines

Usage:
  gibbs demo    [--workers N] [--requests N] [--seconds S] [--port P]
  gibbs hub     --http HTTP_PORT [--http-host H] [--port P] [--host H] [--endpoint E]
                [--heartbeat S] [--resp-buffer N] [--max-body SIZE]
                [--ws WS_PORT [--ws-origin ORIGIN]... [--ws-cert FILE --ws-key FILE]]
  gibbs worker  MODULE [--export NAME] [--host H] [--port P] [--endpoint E] [--heartbeat S]
                [--threads N] [--concurrency N] [--service NAME]
                [--batch-size N [--batch-wait-ms MS]]
                [--reset-after N] [--args JSON_ARRAY] [--kwargs JSON_OBJECT] [--parent PID]
  gibbs status  URL [--watch] [--interval S]
  gibbs keygen  FILE [--force]
  (hub: --curve-secret-key-file F [--authorized-keys F];
   worker: --curve-server-key KEY --curve-secret-key-file F)

Every command also takes:${LOG_USAGE}

Run "gibbs COMMAND --help" for the options of a command.`;

const DEMO_USAGE = `gibbs demo — a hub, worker processes, requests one at a time then in parallel

Options:
  --workers N        worker processes to start (default 4)
  --requests N       requests to send (default 10)
  --seconds S        time the demo model takes per request (default 0.25)
  --port P           hub port (default: a free port)${LOG_USAGE}

SIGINT/SIGTERM stop the workers and the hub, then exit 130/143.`;

const HUB_USAGE = `gibbs hub — a hub with an HTTP gateway

Options:
  --http PORT        HTTP port of the gateway (required; 0: a free port)
  --http-host H      HTTP interface (default 127.0.0.1)
  --port P           port workers connect to (default 5019)
  --host H           interface workers connect to (default *: all)
  --endpoint E       full endpoint for workers instead of host and port (e.g. ipc:///tmp/hub)
  --heartbeat S      worker heartbeat interval in seconds (default 1)
  --resp-buffer N    most pending requests; more get HTTP 503 (default 4096)
  --max-body SIZE    largest request body, in bytes or with KiB/MiB/GiB (default 16MiB)
  --ws PORT          also listen for workers over WebSocket (ZWS 2.0): browser pages, jszmq
  --ws-origin O      a page origin allowed on --ws, e.g. https://app.example (repeatable; "*"
                     allows any; default: pages served from the hub's own host name)
  --ws-cert FILE     with --ws-key: wss:// (TLS) with this PEM certificate chain
  --ws-key FILE      the PEM private key for --ws-cert${LOG_USAGE}

HTTP:
  POST /request  {"args": [...], "kwargs": {...}, "timeout": s, "retries": n}
                 200 {"result"} | 500 {"error","traceback"} | 504 timeout | 503 full or
                 shutting down | 400 bad body | 413 body over --max-body
  POST /stream   the same body; the chunks as Server-Sent Events (Accept: text/event-stream)
                 or NDJSON lines {"chunk": v} ... {"end": true} | {"error": ...}
  POST /services/NAME/request, /services/NAME/stream   the same, for one service
  GET  /health   200 {"workers": N, "busy", "queued", "pending", "completed", "redispatched",
                 "services": {NAME: {...}}}
  GET  /metrics  Prometheus text format (requests by outcome, latency histograms, workers, ...)
  GET  /status   JSON: figures, workers, per-second history, recent events (gibbs status URL)
  GET  /         the live dashboard
  GET  /gibbs.js the browser build: import { Worker } from it in a page to join over --ws
${sec.HUB_SECURITY_USAGE}

SIGINT/SIGTERM: stop accepting, fail pending requests (HTTP 503), exit 0 within a second.
A second signal exits at once.`;

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
  --reset-after N    unanswered pings before reconnecting, at least 1 (default 2)
  --args JSON        constructor arguments, a JSON array
  --kwargs JSON      constructor keyword arguments, a JSON object
  --parent PID       stop when process PID has exited (spawnWorkers passes its own)${LOG_USAGE}
${sec.WORKER_SECURITY_USAGE}

SIGINT/SIGTERM finish the request in hand, answer it, then exit 0; a second signal while a
request runs quits at once (exit 130/143).`;

/** How long the hub's shutdown may take before the process exits anyway, in ms. */
const SHUTDOWN_MS = 1000;
/** How long an orphaned worker may take to finish its request before it exits anyway, in ms. */
const ORPHAN_GRACE_MS = 5000;

/** A usage mistake: one line, exit code 2. */
class UsageError extends Error {}

/** A runtime failure already described for the user: one line, exit code 1. */
class CliError extends Error {}

/** True once `--log-level debug` was given: failures then come with their stack. */
let showStacks = false;

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
      case "status":
        return await statusCommand(rest);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return;
      default:
        throw new UsageError(
          `unknown command "${command}" (commands: demo, hub, worker; see gibbs --help)`,
        );
    }
  } catch (error) {
    fail(error);
  }
}

/** Prints a failure as one line (plus its stack with --log-level debug) and exits. */
function fail(error: unknown): never {
  const usage = error instanceof UsageError;
  const known = usage || error instanceof CliError;
  const message = error instanceof Error ? error.message : String(error);
  console.error(
    `gibbs: ${known ? message : `unexpected error: ${firstLine(message)}`}` +
      (known || showStacks ? "" : " (--log-level debug shows the stack)"),
  );
  if (showStacks) {
    const cause = known ? (error as Error).cause : error;
    if (cause instanceof Error && cause.stack) console.error(cause.stack);
  }
  runtime.exit(usage ? 2 : 1);
}

// ---------------------------------------------------------------------------------------------
// Arguments

type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string }>;

const LOG_OPTIONS = {
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionSpec;

/**
 * Parses a command's arguments; every mistake is a {@linkcode UsageError} naming the option.
 * Options are checked against the command's list first: parseArgs's own message for an unknown
 * option is a paragraph.
 */
function parse<T extends OptionSpec>(
  command: string,
  argv: string[],
  options: T,
  allowPositionals = false,
) {
  const all = { ...options, ...LOG_OPTIONS };
  const shorts = new Set(Object.values(all).map((o) => (o as { short?: string }).short));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") break;
    const name = arg.startsWith("--") ? arg.slice(2).split("=", 1)[0] : undefined;
    const known = name !== undefined
      ? name in all
      : arg.startsWith("-") && arg.length > 1
      ? shorts.has(arg.slice(1))
      : true;
    if (!known) throw new UsageError(`unknown option ${arg} (see gibbs ${command} --help)`);
    // The value of a string option is not an option, whatever it looks like ("-3").
    if (name !== undefined && !arg.includes("=") && all[name].type === "string") i++;
  }
  try {
    return parseArgs({ args: argv, options: all, allowPositionals, strict: true });
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      const text = firstSentence((error as Error).message);
      throw new UsageError(`${text} (see gibbs ${command} --help)`);
    }
    throw error;
  }
}

/** The logger the command's options ask for; records go to standard error. */
function logger(values: { "log-level"?: string; "log-format"?: string; quiet?: boolean }): Logger {
  const level = (values["log-level"] ?? (values.quiet ? "warn" : "info")) as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    throw new UsageError(
      `--log-level must be one of ${LOG_LEVELS.join(", ")}, got "${values["log-level"]}"`,
    );
  }
  const format = (values["log-format"] ?? "text") as LogFormat;
  if (format !== "text" && format !== "json") {
    throw new UsageError(`--log-format must be text or json, got "${values["log-format"]}"`);
  }
  showStacks = level === "debug";
  return createLogger({ level, format, write: (line) => console.error(line) });
}

function number(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`${name} must be a number, got "${value}"`);
  }
  return n;
}

function positive(value: string | undefined, name: string, what: string): number | undefined {
  const n = number(value, name);
  if (n !== undefined && !(n > 0)) {
    throw new UsageError(`${name} must be > 0 ${what}, got ${value}`);
  }
  return n;
}

function integer(value: string | undefined, name: string, min: number): number | undefined {
  const n = number(value, name);
  if (n !== undefined && !(Number.isInteger(n) && n >= min)) {
    throw new UsageError(`${name} must be an integer >= ${min}, got ${value}`);
  }
  return n;
}

function port(value: string | undefined, name: string): number | undefined {
  const n = number(value, name);
  if (n !== undefined && !(Number.isInteger(n) && n >= 0 && n <= 65535)) {
    throw new UsageError(`${name} must be a port number from 0 to 65535, got ${value}`);
  }
  return n;
}

const SIZE_UNITS: Record<string, number> = { "": 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** A size in bytes: `1048576`, `512KiB`, `16MiB`, `1GiB`. */
function size(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]ib)?$/i.exec(value.trim());
  const bytes = match
    ? Math.floor(Number(match[1]) * SIZE_UNITS[(match[2] ?? "").toLowerCase()])
    : 0;
  if (!(bytes >= 1)) {
    throw new UsageError(
      `${name} must be a size in bytes, or with KiB, MiB or GiB, got "${value}"`,
    );
  }
  return bytes;
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

/** `--endpoint`, or `tcp://HOST:PORT` from `--host` and `--port`, checked. */
function endpointOf(
  values: { endpoint?: string; host?: string; port?: string },
  defaultHost: string,
): string {
  if (values.endpoint !== undefined) {
    if (values.host !== undefined || values.port !== undefined) {
      throw new UsageError("--endpoint replaces --host and --port: give one or the other");
    }
    checkEndpoint(values.endpoint, "--endpoint");
    return values.endpoint;
  }
  const p = port(values.port, "--port") ?? DEFAULT_PORT;
  const endpoint = `tcp://${values.host ?? defaultHost}:${p}`;
  checkEndpoint(endpoint, "--host");
  return endpoint;
}

function checkEndpoint(endpoint: string, name: string): void {
  try {
    parseEndpoint(endpoint);
  } catch (error) {
    throw new UsageError(`${name}: ${(error as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Failures

/** What an errno code means to someone starting a server. */
const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE: "address already in use (another process listens there)",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "address not available on this machine",
  ENOENT: "no such directory",
};

/** A failure to listen, naming the address, what it was for and the flag that chose it. */
function listenFailure(error: unknown, address: string, role: string): CliError {
  const code = (error as { code?: string })?.code;
  const why = (code && LISTEN_FAILURES[code]) ?? firstLine((error as Error)?.message ?? "");
  return new CliError(`cannot listen on ${address} (${role}): ${why}`, { cause: error });
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0].trim();
}

function firstSentence(text: string): string {
  const line = firstLine(text);
  const end = line.indexOf(". ");
  return end < 0 ? line.replace(/\.$/, "") : line.slice(0, end);
}

// ---------------------------------------------------------------------------------------------
// Signals

/** Resolves with the name of the next SIGINT or SIGTERM. */
function nextSignal(): Promise<string> {
  return new Promise((resolve) => {
    const remove = runtime.onShutdownSignal((signal) => {
      remove();
      resolve(signal);
    });
  });
}

/** Exit code of a process ended by a signal, as a shell reports it. */
function signalExitCode(signal: string): number {
  return signal === "SIGINT" ? 130 : 143;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// ---------------------------------------------------------------------------------------------
// Commands

async function demo(argv: string[]): Promise<void> {
  const { values } = parse("demo", argv, {
    workers: { type: "string" },
    requests: { type: "string" },
    seconds: { type: "string" },
    port: { type: "string" },
  });
  if (values.help) return console.log(DEMO_USAGE);
  const log = logger(values);
  const count = integer(values.workers, "--workers", 1) ?? 4;
  const requests = integer(values.requests, "--requests", 1) ?? 10;
  const seconds = number(values.seconds, "--seconds") ?? 0.25;
  if (seconds < 0) throw new UsageError(`--seconds must be >= 0, got ${values.seconds}`);
  const hubPort = port(values.port, "--port") ?? 0;

  const address = `tcp://127.0.0.1:${hubPort}`;
  const hub = new Hub({ endpoint: address, logger: log });
  let endpoint: string;
  try {
    endpoint = await hub.ready;
  } catch (error) {
    throw listenFailure(error, address, "the demo's hub, --port");
  }
  console.log(
    `gibbs demo: 1 hub, ${count} worker processes, a model taking ${seconds * 1000} ms per request`,
  );
  const t0 = runtime.now();
  const workers = spawnWorkers(DEMO_MODEL_URL, {
    count,
    endpoint,
    args: [seconds],
    // The workers' "serving" lines would only clutter the report.
    logLevel: log.level === "info" ? "warn" : log.level,
    logFormat: values["log-format"] as LogFormat | undefined,
  });
  const stopAll = async () => {
    await workers.stop();
    await hub.close();
  };
  // Interrupted: stop the workers and the hub, then exit as a signal would end us. The requests
  // in flight fail meanwhile; that is no error of the demo's.
  let interrupted = false;
  nextSignal().then(async (signal) => {
    interrupted = true;
    console.error(`gibbs demo: ${signal}, stopping the workers`);
    await Promise.race([stopAll(), sleep(SHUTDOWN_MS * 2)]);
    runtime.exit(signalExitCode(signal));
  });
  try {
    while (hub.workers < count) {
      const exited = await Promise.race([
        Promise.any(workers.processes.map((p) => p.exited)),
        sleep(20).then(() => null),
      ]);
      if (exited) {
        throw new CliError(`a demo worker exited before connecting (${JSON.stringify(exited)})`);
      }
      if (runtime.now() - t0 > 60_000) {
        throw new CliError(`only ${hub.workers} of ${count} workers connected within 60 s`);
      }
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
      throw new CliError(`wrong results: ${JSON.stringify(results)}`);
    }
  } catch (error) {
    if (!interrupted) throw error;
  } finally {
    await stopAll();
  }
  if (!interrupted) runtime.exit(0);
}

function fmt(ms: number): string {
  return `${(ms / 1000).toFixed(3)} s`;
}

async function hub(argv: string[]): Promise<void> {
  const { values } = parse("hub", argv, {
    port: { type: "string" },
    host: { type: "string" },
    endpoint: { type: "string" },
    heartbeat: { type: "string" },
    "resp-buffer": { type: "string" },
    "max-body": { type: "string" },
    http: { type: "string" },
    "http-host": { type: "string" },
    ws: { type: "string" },
    "ws-origin": { type: "string", multiple: true },
    "ws-cert": { type: "string" },
    "ws-key": { type: "string" },
    ...sec.HUB_SECURITY_FLAGS,
  });
  if (values.help) return console.log(HUB_USAGE);
  const logs = logger(values);
  if (values.http === undefined) {
    throw new UsageError("--http PORT is required (see gibbs hub --help)");
  }
  const httpPort = port(values.http, "--http")!;
  const httpHost = values["http-host"] ?? "127.0.0.1";
  const endpoint = endpointOf(values, "*");
  const heartbeatInterval = positive(values.heartbeat, "--heartbeat", "seconds");
  const respBufferSize = integer(values["resp-buffer"], "--resp-buffer", 1);
  const maxBodyBytes = size(values["max-body"], "--max-body") ?? DEFAULT_MAX_BODY_BYTES;
  const ws = wsEndpoint(values);

  const log = new Log(logs, "hub");
  const security = await sec.hubSecurity(
    values,
    usageFail,
    (m) => log.info("hub.security", m),
  );
  const theHub = new Hub({
    endpoint,
    endpoints: ws ? [ws] : undefined,
    heartbeatInterval,
    respBufferSize,
    overflow: "reject-new",
    logger: logs,
    security,
  });
  let bound: string;
  try {
    bound = await theHub.ready;
  } catch (error) {
    if (ws && /wss?:\/\//.test((error as Error)?.message ?? "")) {
      throw listenFailure(error, ws.endpoint, "browser workers, --ws");
    }
    throw listenFailure(
      error,
      endpoint,
      values.endpoint ? "workers, --endpoint" : "workers, --port",
    );
  }
  let server;
  try {
    server = await runtime.serveHttp(
      httpHost,
      httpPort,
      gatewayHandler(theHub, { maxBodyBytes }),
    );
  } catch (error) {
    await theHub.close();
    throw listenFailure(error, `http://${httpHost}:${httpPort}`, "the HTTP gateway, --http");
  }
  const http = `http://${httpHost.includes(":") ? `[${httpHost}]` : httpHost}:${server.port}`;
  log.info("hub.listening", `workers connect to ${bound}; HTTP gateway on ${http}`, {
    endpoint: bound,
    http,
  });
  if (ws) {
    const browsers = theHub.endpoints[1];
    log.info(
      "hub.listening.ws",
      `browser workers connect to ${browsers}; they import ${http}/gibbs.js`,
      { endpoint: browsers },
    );
  }

  const signal = await nextSignal();
  // A second signal while shutting down quits at once.
  runtime.onShutdownSignal((again) => {
    log.warn("hub.quit", `second ${again}: quitting now`);
    runtime.exit(signalExitCode(again));
  });
  const pending = theHub.stats().pending;
  log.info(
    "hub.stopping",
    `${signal}, shutting down` +
      (pending > 0 ? `: ${plural(pending, "pending request")} answered with HTTP 503` : ""),
    { pending },
  );
  // The hub closes first: its pending requests fail at once, so their HTTP callers get 503 and
  // the server's close, which waits for the answers in flight, has none left to wait for.
  const closed = Promise.all([theHub.close(), server.close()]).then(() => true);
  if (!await Promise.race([closed, sleep(SHUTDOWN_MS).then(() => false)])) {
    log.warn("hub.shutdown.slow", "HTTP connections still open after 1 s: exiting anyway");
  }
  runtime.exit(0);
}

/** The WebSocket endpoint of `gibbs hub --ws`, with its bind options, or undefined. */
function wsEndpoint(values: {
  ws?: string;
  host?: string;
  "ws-origin"?: string | string[];
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
  const wsPort = port(values.ws, "--ws")!;
  return {
    endpoint: `${tls ? "wss" : "ws"}://${values.host ?? "*"}:${wsPort}`,
    origins: values["ws-origin"] === undefined ? undefined : [values["ws-origin"]].flat(),
    certFile: values["ws-cert"],
    keyFile: values["ws-key"],
  };
}

async function worker(argv: string[]): Promise<void> {
  const { values, positionals } = parse("worker", argv, {
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
    parent: { type: "string" },
    ...sec.WORKER_SECURITY_FLAGS,
  }, true);
  if (values.help) return console.log(WORKER_USAGE);
  const logs = logger(values);
  if (positionals.length !== 1) {
    throw new UsageError(
      `expected one MODULE, got ${positionals.length} (see gibbs worker --help)`,
    );
  }
  const endpoint = endpointOf(values, "localhost");
  const heartbeatInterval = positive(values.heartbeat, "--heartbeat", "seconds");
  const resetAfterNMiss = integer(values["reset-after"], "--reset-after", 1);
  const parent = integer(values.parent, "--parent", 1);
  const threads = integer(values.threads, "--threads", 0);
  const concurrency = integer(values.concurrency, "--concurrency", 1);
  const batchSize = integer(values["batch-size"], "--batch-size", 1);
  if (batchSize === undefined && values["batch-wait-ms"] !== undefined) {
    throw new UsageError("--batch-wait-ms needs --batch-size");
  }
  const batchWaitMs = number(values["batch-wait-ms"], "--batch-wait-ms") ?? 5;
  const ctorArgs = json<unknown[]>(values.args, "--args", Array.isArray);
  const ctorKwargs = json<Record<string, unknown>>(
    values.kwargs,
    "--kwargs",
    (v) => typeof v === "object" && v !== null && !Array.isArray(v),
  );
  const specifier = positionals[0];
  const name = values.export ?? "default";
  const url = moduleUrl(specifier, runtime.cwd());
  const startLog = new Log(logs, "worker");
  const security = await sec.workerSecurity(
    values,
    usageFail,
    (m) => startLog.info("worker.security", m),
  );

  let w: Worker;
  try {
    w = new Worker(url, {
      endpoint,
      heartbeatInterval,
      resetAfterNMiss,
      threads,
      concurrency,
      service: values.service,
      batch: batchSize === undefined ? undefined : { maxSize: batchSize, maxWaitMs: batchWaitMs },
      export: name,
      args: ctorArgs,
      kwargs: ctorKwargs,
      handleSignals: true,
      logger: logs,
      security,
    });
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
  const log = new Log(logs, `worker ${w.id}`);
  const stopWatching = parent === undefined ? () => {} : watchParent(parent, () => {
    log.warn("parent.gone", `parent process ${parent} has exited: stopping`, { parent });
    w.stop();
    // Its hub is most likely gone with it: a request in hand gets a little time, not forever.
    setTimeout(() => runtime.exit(1), ORPHAN_GRACE_MS);
  });
  const where = w.threads > 0 ? `on ${plural(w.threads, "thread")}` : "on the connection's thread";
  const running = w.run();
  running.catch(() => {}); // reported through `started` when the handler fails to start
  try {
    await w.started;
    log.info(
      "worker.serving",
      `serving ${specifier} (${name}) ${where}, up to ${w.capacity} at once, to ${w.endpoint}`,
      { endpoint: w.endpoint, threads: w.threads, capacity: w.capacity, service: w.service },
    );
    await running;
  } catch (error) {
    if (error instanceof HandlerStartError) throw startFailure(error, specifier, name, url.href);
    throw error;
  }
  stopWatching();
  log.info("worker.stopped", `stopped after ${plural(w.served, "request")}`, {
    served: w.served,
  });
  runtime.exit(0);
}

/**
 * What a handler that failed to start says, naming the module as the user gave it: a module
 * that is missing, has no such export or one that cannot serve is a usage mistake; one that
 * throws as it loads or as its class is constructed is a runtime failure.
 */
function startFailure(
  error: HandlerStartError,
  specifier: string,
  name: string,
  url: string,
): Error {
  const named = (text: string) => text.split(url).join(specifier);
  if (error.kind === "module") {
    const message = named(error.message);
    return error.reason === "load-failed"
      ? new CliError(message, { cause: error })
      : new UsageError(message, { cause: error });
  }
  // The stack worth showing (--log-level debug) is the handler's own, from its thread.
  const thrown = new Error(firstLine(error.detail));
  thrown.stack = error.detail;
  return new CliError(
    `${specifier} (${name}) failed to start: ${describeStack(error.detail, url)}`,
    { cause: thrown },
  );
}

/** `Name: message (at file:line:col)` from a stack's text: its first line, and where in `module`. */
function describeStack(stack: string, module: string): string {
  const lines = stack.split("\n").map((l) => l.trim());
  const frame = lines.find((l) => l.startsWith("at ") && l.includes(module));
  const where = frame ? /\(?((?:file|https?):\/\/[^()\s]+)\)?$/.exec(frame)?.[1] : undefined;
  return `${lines[0]}${where ? ` (at ${where})` : ""}`;
}

function usageFail(message: string): never {
  throw new UsageError(message);
}

async function keygen(argv: string[]): Promise<void> {
  const { values, positionals } = parse("keygen", argv, { force: { type: "boolean" } }, true);
  if (values.help) return console.log(sec.KEYGEN_USAGE);
  if (positionals.length !== 1) {
    throw new UsageError(`expected one FILE (see gibbs keygen --help)`);
  }
  await sec.keygen(positionals[0], values.force ?? false, usageFail);
}
