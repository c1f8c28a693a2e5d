#!/usr/bin/env node
// A remote-controlled headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// for the browser tests. Same JSON-lines style as zmq_peer.mjs:
//
//   node tests/peers/browser_peer.mjs [--executable /usr/bin/chromium]
//
// First line out: {"ready":true,"version":"<browser version>"}; on a failed start the only line
// is {"error":"..."} and the exit code is 1. Ops in, answered in order:
//   {"op":"open","page":NAME,"url":URL}   -> {"ok":true} once loaded in a new tab
//        (from a real server: Chromium's local-network checks stop a page fulfilled by the
//        driver itself from opening WebSockets to loopback addresses)
//   {"op":"eval","page":NAME,"expr":JS}   -> {"value":<JSON of the awaited result>} | {"error"}
//   {"op":"close_page","page":NAME}       -> {"ok":true} (the tab closes, as a user closing it)
//   {"op":"close"}                        -> {"ok":true}, then exit 0
// Events: {"event":"console","page":NAME,"type":"log|warn|error","text":...} for each console
// message of a page, {"event":"pageerror","page":NAME,"text":...} for uncaught errors.
//
// Chromium runs headless with a fresh, empty profile and without any outside network use:
// the machines that run the tests have none, and `npx playwright install` cannot work there.

import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

const require = createRequire(import.meta.url);

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function fail(message) {
  out({ error: message });
  process.exit(1);
}

const { values: args } = parseArgs({
  options: { executable: { type: "string", default: "/usr/bin/chromium" } },
});

let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch (err) {
  fail(`playwright-core missing (npm ci --prefix tests/peers): ${err.message}`);
}

const profile = mkdtempSync(join(tmpdir(), "gibbs-chromium-"));
let context;
try {
  // A persistent context is how Playwright takes a user-data-dir: an empty one, made here.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: args.executable,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
} catch (err) {
  rmSync(profile, { recursive: true, force: true });
  fail(`cannot start ${args.executable}: ${err.message}`);
}

const pages = new Map();
out({ ready: true, version: context.browser()?.version() ?? "unknown" });

async function open(op) {
  const page = await context.newPage();
  pages.set(op.page, page);
  page.on("console", (message) => {
    out({ event: "console", page: op.page, type: message.type(), text: message.text() });
  });
  page.on("pageerror", (error) => out({ event: "pageerror", page: op.page, text: String(error) }));
  if (typeof op.html === "string") {
    await page.route(
      op.url,
      (route) =>
        route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: op.html }),
    );
  }
  await page.goto(op.url, { waitUntil: "load" });
  return { ok: true };
}

async function handle(op) {
  switch (op?.op) {
    case "open":
      return await open(op);
    case "eval": {
      const page = pages.get(op.page);
      if (!page) return { error: `no page ${op.page}` };
      const value = await page.evaluate(op.expr);
      return { value: value === undefined ? null : value };
    }
    case "close_page": {
      const page = pages.get(op.page);
      pages.delete(op.page);
      await page?.close();
      return { ok: true };
    }
    case "close":
      return { ok: true };
    default:
      return { error: `unknown op ${JSON.stringify(op?.op)}` };
  }
}

async function shutdown(code = 0) {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(code);
}

// The test process going away (SIGTERM, or stdin closed) takes the browser with it.
process.on("SIGTERM", () => shutdown(0));
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  let op;
  try {
    op = JSON.parse(line);
  } catch {
    out({ error: "not JSON" });
    continue;
  }
  out(await handle(op).catch((err) => ({ error: String(err?.message ?? err) })));
  if (op?.op === "close") await shutdown(0);
}
await shutdown(0);
