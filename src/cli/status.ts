/**
 * `gibbs status URL [--watch]`: what the dashboard shows, as a terminal table, read from a hub
 * gateway's `GET /status`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { HubStatus } from "../gibbs/hub_observer.ts";
import { runtime } from "../transport/runtime.ts";

/** Usage of `gibbs status`. */
export const STATUS_USAGE = `gibbs status — a hub's workers, requests and recent events

Usage:
  gibbs status URL [--watch] [--interval S] [--workers N] [--events N]

Arguments:
  URL             the hub's HTTP gateway (gibbs hub --http), e.g. http://127.0.0.1:8080

Options:
  --watch, -w     refresh until interrupted (Ctrl-C)
  --interval S    seconds between refreshes with --watch (default 1)
  --workers N     most workers listed (default 50)
  --events N      most recent events listed (default 10)

Exit codes: 0 shown, 1 the hub could not be read, 2 a usage mistake.`;

/** Options of {@linkcode formatStatus}. */
export interface FormatStatusOptions {
  /** Most workers listed (default 50). */
  workers?: number;
  /** Most recent events listed (default 10). */
  events?: number;
}

/**
 * Renders a hub's status as text: a summary, the workers table and the recent events.
 *
 * @example
 * ```ts ignore
 * const status = await (await fetch("http://127.0.0.1:8080/status")).json();
 * console.log(formatStatus(status, "http://127.0.0.1:8080"));
 * ```
 */
export function formatStatus(s: HubStatus, url: string, options: FormatStatusOptions = {}): string {
  const m = s.metrics;
  const svc = m.services[0];
  const out: string[] = [];
  out.push(
    `gibbs hub ${url} — workers connect to ${s.endpoint ?? "?"}, up ${duration(m.uptimeSeconds)}`,
  );
  const whole = s.history.requests.slice(0, -1);
  const rate = whole.slice(-10).reduce((a, b) => a + b, 0) / 10;
  out.push(
    `workers ${num(m.workers)} (busy ${num(m.busy)}${
      m.quarantined ? `, quarantined ${num(m.quarantined)}` : ""
    })   queue ${num(svc.queued)}   pending ${num(svc.pending)}   throughput ${
      num(rate, 1)
    } req/s (last 10 s)`,
  );
  let total = 0;
  const parts: string[] = [];
  for (const [outcome, n] of Object.entries(svc.requests)) {
    total += n;
    if (outcome === "ok" || n > 0) parts.push(`${outcome.replace("_", " ")} ${num(n)}`);
  }
  out.push(
    `requests ${num(total)}: ${parts.join(", ")}   re-dispatched ${num(svc.redispatched)}`,
  );
  const w = s.history.window;
  out.push(
    `latency p50 ${ms(w.p50Ms)}, p99 ${ms(w.p99Ms)} (last ${w.seconds} s, ${
      num(w.requests)
    } requests)   traffic in ${bytes(m.bytesReceived)}, out ${bytes(m.bytesSent)}`,
  );
  out.push("");
  const limit = options.workers ?? 50;
  const rows = s.workers.slice(0, limit).map((x) => [
    x.id,
    x.address ?? "–",
    x.runtime + (x.quarantined ? " (quarantined)" : ""),
    x.service,
    num(x.capacity),
    num(x.held),
    num(x.served),
    ms(x.meanMs),
    x.lastHeardMs === null ? "–" : `${ms(x.lastHeardMs)} ago`,
    duration(x.connectedSeconds),
  ]);
  if (rows.length === 0) {
    out.push("no worker connected");
  } else {
    out.push(
      ...table(
        [
          "WORKER",
          "ADDRESS",
          "RUNTIME",
          "SERVICE",
          "CAP",
          "HELD",
          "SERVED",
          "MEAN",
          "LAST HEARD",
          "CONNECTED",
        ],
        rows,
        new Set([4, 5, 6, 7, 8, 9]),
      ),
    );
    const shown = Math.min(rows.length, s.workers.length);
    if (s.workersTotal > shown) out.push(`… and ${num(s.workersTotal - shown)} more`);
  }
  const events = s.events.slice(-(options.events ?? 10)).reverse();
  if (events.length > 0) {
    out.push("", "recent events:");
    for (const e of events) {
      const who = ("worker" in e && e.worker) || ("remote" in e && e.remote) || "";
      let why: string;
      if (e.type === "worker.joined") why = `${e.runtime}, capacity ${e.capacity}`;
      else if (e.type === "request.redispatched") why = `request ${e.reqId}: ${e.reason}`;
      else if (e.type === "queue.full") why = e.message;
      else {
        const code = "code" in e ? e.code : undefined;
        // A ZMTP error's reason starts with its code already; "closed" and "error" add nothing.
        const plain = !code || code === "closed" || code === "error" || e.reason.startsWith(code);
        why = plain ? e.reason : `${code}: ${e.reason}`;
      }
      out.push(`  ${clock(e.time)}  ${e.type.padEnd(20)} ${who.padEnd(32)} ${why}`);
    }
  }
  return out.join("\n");
}

/** Runs `gibbs status` with its arguments. */
export async function statusCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      watch: { type: "boolean", short: "w" },
      interval: { type: "string" },
      workers: { type: "string" },
      events: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return console.log(STATUS_USAGE);
  const usage = (message: string): never => {
    console.error(`gibbs: ${message}\n\n${STATUS_USAGE}`);
    return runtime.exit(2);
  };
  if (positionals.length !== 1) usage("expected one URL");
  let base: URL;
  try {
    base = new URL(positionals[0]);
    if (base.protocol !== "http:" && base.protocol !== "https:") throw new Error("not http");
  } catch {
    return usage(`URL must be an http:// or https:// address, got "${positionals[0]}"`);
  }
  const count = (value: string | undefined, name: string, fallback: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    return Number.isInteger(n) && n >= 0 ? n : usage(`${name} must be an integer >= 0`);
  };
  const interval = values.interval === undefined ? 1 : Number(values.interval);
  if (!(interval > 0)) usage("--interval must be a positive number of seconds");
  const options = {
    workers: count(values.workers, "--workers", 50),
    events: count(values.events, "--events", 10),
  };
  const url = new URL("status", base.href.endsWith("/") ? base : `${base.href}/`);
  url.searchParams.set("workers", String(options.workers));
  const shown = base.href.replace(/\/$/, "");

  const read = async (): Promise<string> => {
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status} from ${url}`);
    }
    return formatStatus(await response.json() as HubStatus, shown, options);
  };
  if (!values.watch) {
    try {
      console.log(await read());
    } catch (error) {
      console.error(`gibbs status: cannot read ${url}: ${describe(error)}`);
      runtime.exit(1);
    }
    return;
  }
  let stopped = false;
  let wake = () => {};
  const remove = runtime.onShutdownSignal(() => {
    stopped = true;
    wake();
  });
  try {
    while (!stopped) {
      let text: string;
      try {
        text = await read();
      } catch (error) {
        text = `gibbs status: cannot read ${url}: ${describe(error)} (retrying)`;
      }
      // Home and clear, then the new picture: the terminal shows one table at a time.
      console.log(`\x1b[H\x1b[2J${text}\n\n(every ${interval} s; Ctrl-C to stop)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, interval * 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    remove();
  }
}

function describe(error: unknown): string {
  const e = error as { message?: string; cause?: { message?: string; code?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `${e?.message ?? String(error)}${
    cause && !e.message?.includes(cause) ? ` (${cause})` : ""
  }`;
}

function table(head: string[], rows: string[][], right: Set<number>): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)];
}

function num(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits });
}

function ms(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return "–";
  if (x >= 1000) return `${num(x / 1000, 2)} s`;
  return x >= 10 ? `${num(x)} ms` : `${x.toFixed(2)} ms`;
}

function bytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${num(n, i === 0 ? 0 : 1)} ${units[i]}`;
}

function duration(s: number): string {
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function clock(time: number): string {
  return new Date(time).toTimeString().slice(0, 8);
}
