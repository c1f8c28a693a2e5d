/**
 * Workers in a browser tab, end to end, in headless Chromium (Debian's chromium, driven by
 * playwright-core from tests/peers/browser_peer.mjs): `gibbs hub --ws` serves one pool of a
 * worker in a page (the browser build, imported from the gateway's /gibbs.js), a worker over
 * tcp and a Python gibbs worker; a tab closed while it holds a request has that request
 * completed by the tcp worker; the example pages (examples/browser/) serve and call the hub.
 * Skipped, with the reason, where chromium or playwright-core is missing.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import {
  Cleanup,
  cli,
  pyzmqMissing,
  type RunningWorker,
  sleep,
  startWorker,
  waitFor,
  waitStderr,
  withTimeout,
} from "./_helpers.ts";
import { python } from "./_gibbs_py.ts";

const pythonSkip = pyzmqMissing();

const CHROMIUM = "/usr/bin/chromium";
const PEER = fileURLToPath(new URL("./peers/browser_peer.mjs", import.meta.url));
const PLAYWRIGHT = fileURLToPath(new URL("./peers/node_modules/playwright-core", import.meta.url));
const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** Test pages: fixtures, and the examples (read from the repository, not the built tree). */
const page = (path: string) => readFileSync(`${ROOT}${path}`, "utf8");

/**
 * Serves `pages` (path → HTML) on a loopback port and passes every other request on to the
 * hub's gateway, so that pages, /gibbs.js and /request share one origin, as
 * examples/browser/serve.ts does. A real server matters: Chromium blocks a page that came from
 * nowhere (one a test fulfils itself) from opening WebSockets to loopback addresses.
 */
async function pageServer(gateway: string, pages: Record<string, string>): Promise<{
  base: string;
  server: Server;
}> {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path in pages) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(page(pages[path]));
      return;
    }
    const chunks: Uint8Array[] = [];
    for await (const chunk of req) chunks.push(chunk as Uint8Array);
    try {
      const forwarded = await fetch(`${gateway}${req.url}`, {
        method: req.method,
        headers: { "content-type": req.headers["content-type"] ?? "application/json" },
        body: req.method === "GET" || req.method === "HEAD" ? undefined : Buffer.concat(chunks),
      });
      res.writeHead(forwarded.status, {
        "content-type": forwarded.headers.get("content-type") ?? "application/octet-stream",
      });
      res.end(new Uint8Array(await forwarded.arrayBuffer()));
    } catch (error) {
      res.writeHead(502);
      res.end(String(error));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as { port: number }).port;
  return { base: `http://127.0.0.1:${port}`, server };
}

const skip = !existsSync(CHROMIUM)
  ? `${CHROMIUM} missing: apt-get install -y chromium (the browser tests need it; CI installs it)`
  : !existsSync(PLAYWRIGHT)
  ? "playwright-core missing: npm ci --prefix tests/peers"
  : false;

/** The headless browser, driven op by op. */
interface Browser {
  events: Array<{ event: string; page?: string; text?: string }>;
  op(request: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

async function startBrowser(): Promise<Browser> {
  const child: ChildProcess = spawn("node", [PEER, "--executable", CHROMIUM], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const events: Browser["events"] = [];
  const answers: Array<(answer: Record<string, unknown>) => void> = [];
  let buffered = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line === "") continue;
      const message = JSON.parse(line);
      if ("event" in message) events.push(message);
      else answers.shift()?.(message);
    }
  });
  const next = () => new Promise<Record<string, unknown>>((resolve) => answers.push(resolve));
  const first = await withTimeout(
    Promise.race([next(), exited.then(() => ({ error: "the browser peer exited" }))]),
    60_000,
    "chromium to start",
  );
  if (first.error) throw new Error(`browser peer: ${first.error}`);
  return {
    events,
    async op(request) {
      const answer = next();
      child.stdin!.write(JSON.stringify(request) + "\n");
      const result = await withTimeout(answer, 30_000, `browser op ${request.op}`);
      if (result.error) throw new Error(`browser op ${request.op}: ${result.error}`);
      return result;
    },
    async close() {
      if (child.exitCode === null) {
        child.stdin!.end(JSON.stringify({ op: "close" }) + "\n");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

async function health(base: string): Promise<Record<string, number>> {
  return await (await fetch(`${base}/health`)).json() as Record<string, number>;
}

// The gateway's JSON: the tests assert on it.
// deno-lint-ignore no-explicit-any
async function request(base: string, body: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${base}/request`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** A tcp worker (this process) tagging its answers. */
function tcpWorker(endpoint: string): RunningWorker {
  return startWorker(async (x: unknown) => {
    await sleep(20);
    return { by: "tcp", x };
  }, endpoint);
}

describe("browser workers (headless Chromium)", () => {
  test(
    "gibbs hub --ws: a page, a tcp worker and a Python worker in one pool; a tab closed mid-request has its request completed over tcp; the example pages",
    { skip: skip, timeout: 120_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = cli(["hub", "--http", "0", "--port", "0", "--ws", "0", "--heartbeat", "0.5"]);
        c.add(() => hub.dispose());
        const tcpLine = await waitStderr(hub, /HTTP gateway on/, 20_000, "the address line");
        const wsLine = await waitStderr(hub, /browser workers connect to/, 5000, "the ws line");
        const [, tcpPort, base] = /tcp:\/\/[^:]+:(\d+); HTTP gateway on (http:\/\/\S+)/.exec(
          tcpLine,
        )!;
        const [, wsPort] = /ws:\/\/[^:]+:(\d+)/.exec(wsLine)!;
        assert.match(wsLine, new RegExp(`import ${base}/gibbs.js`));
        const ws = `ws://127.0.0.1:${wsPort}`;
        const tcp = `tcp://127.0.0.1:${tcpPort}`;

        const pages = await pageServer(base, {
          "/test/worker.html": "tests/fixtures/browser_worker.html",
          "/": "examples/browser/worker.html",
          "/client.html": "examples/browser/client.html",
        });
        c.add(() => new Promise((resolve) => pages.server.close(resolve)));
        const browser = await startBrowser();
        c.add(() => browser.close());
        // /gibbs.js comes from the gateway; the WebSocket goes to the page's own host name, which
        // the hub's default origin rule lets in.
        await browser.op({
          op: "open",
          page: "p1",
          url: `${pages.base}/test/worker.html?ws=${ws}&heartbeat=0.2`,
        });
        await waitFor(
          () =>
            browser.events.some((e) => e.page === "p1" && /^worker [0-9a-f]{32}$/.test(e.text!)),
          20_000,
          "the page's worker to start",
        );
        let tcpW = tcpWorker(tcp);
        c.add(() => tcpW.stop());
        let py = null;
        if (!pythonSkip) {
          py = python(["worker", "--port", tcpPort, "--heartbeat", "0.2", "--model", "sleep"]);
          c.add(() => py!.dispose());
          await py.waitJson((o) => o.ready === true, 20_000, "the Python worker");
        }
        const expected = py ? 3 : 2;
        await withTimeout(
          (async () => {
            while ((await health(base)).workers < expected) await sleep(50);
          })(),
          20_000,
          `${expected} workers in the pool`,
        );

        // One queue: 30 requests at once go to all of them.
        const answers = await withTimeout(
          Promise.all(Array.from({ length: 30 }, () => request(base, { args: [0.02] }))),
          30_000,
          "30 requests",
        );
        const by = new Map<string, number>();
        for (const { status, body } of answers) {
          assert.equal(status, 200, JSON.stringify(body));
          const who = typeof body.result === "number" ? "python" : body.result.by;
          if (who !== "python") assert.equal(body.result.x, 0.02);
          else assert.equal(body.result, 0.02);
          by.set(who, (by.get(who) ?? 0) + 1);
        }
        assert.ok((by.get("browser") ?? 0) >= 1, `the page served some: ${[...by]}`);
        assert.ok((by.get("tcp") ?? 0) >= 1, `the tcp worker served some: ${[...by]}`);
        if (py) assert.ok((by.get("python") ?? 0) >= 1, `Python served some: ${[...by]}`);

        // Only the page left: it takes a request and holds it...
        await tcpW.stop();
        if (py) {
          py.kill("SIGTERM");
          await withTimeout(py.exited, 10_000, "the Python worker to stop");
        }
        await withTimeout(
          (async () => {
            while ((await health(base)).workers !== 1) await sleep(50);
          })(),
          20_000,
          "only the page's worker left",
        );
        const held = request(base, { args: [99], kwargs: { hold: true }, timeout: 60 });
        held.catch(() => {});
        await waitFor(
          () => browser.events.some((e) => e.page === "p1" && e.text === "holding 99"),
          20_000,
          "the page to hold the request",
        );
        // ...a tcp worker joins, and the tab is closed with the request in hand.
        tcpW = tcpWorker(tcp);
        await withTimeout(
          (async () => {
            while ((await health(base)).workers !== 2) await sleep(50);
          })(),
          20_000,
          "the tcp worker to join",
        );
        await browser.op({ op: "close_page", page: "p1" });
        const completed = await withTimeout(held, 20_000, "the held request");
        assert.equal(completed.status, 200, JSON.stringify(completed.body));
        assert.deepEqual(completed.body, { result: { by: "tcp", x: 99 } });
        const after = await health(base);
        assert.ok(after.redispatched >= 1, JSON.stringify(after));
        assert.equal(after.workers, 1);

        // The example pages: a worker tab, and a page calling the hub through the gateway.
        await browser.op({ op: "open", page: "example-worker", url: `${pages.base}/?ws=${ws}` });
        await browser.op({ op: "open", page: "client", url: `${pages.base}/client.html` });
        await withTimeout(
          (async () => {
            while ((await health(base)).workers !== 2) await sleep(50);
          })(),
          20_000,
          "the example worker to join",
        );
        await tcpW.stop();
        await withTimeout(
          (async () => {
            while ((await health(base)).workers !== 1) await sleep(50);
          })(),
          20_000,
          "only the example worker left",
        );
        const asked = await browser.op({
          op: "eval",
          page: "client",
          expr: `ask(["hello world"])`,
        });
        assert.deepEqual(asked.value, {
          status: 200,
          body: {
            result: {
              words: 2,
              sha256: "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
              by: "browser",
            },
          },
        });
        // The example page counts what it served (refreshed every 250 ms).
        await withTimeout(
          (async () => {
            const count = { op: "eval", page: "example-worker", expr: `served.textContent` };
            while ((await browser.op(count)).value !== "1") await sleep(100);
          })(),
          5000,
          "the example page to show 1 served",
        );
        assert.deepEqual(
          browser.events.filter((e) => e.event === "pageerror"),
          [],
          "no uncaught errors in the pages",
        );
      } finally {
        await c.run();
      }
    },
  );
});
