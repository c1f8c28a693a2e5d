/**
 * Makes the README's picture of the dashboard: a hub with its gateway, three of our workers and
 * (when pyzmq is there) a Python gibbs-protocol worker, a minute of mixed load with a few
 * failures, a worker that dies and a peer that breaks the protocol; then headless Chromium
 * (tests/_browser.ts) takes a screenshot of `/`.
 *
 *   deno run -A scripts/dashboard_screenshot.ts [--out docs/dashboard.png] [--seconds 75]
 *
 * @module
 */

import { spawn } from "node:child_process";
import { connect } from "node:net";
import { parseArgs } from "node:util";
import { Hub, UserCodeError, Worker } from "../mod.ts";
import { gatewayHandler } from "../src/cli/gateway.ts";
import { runtime } from "../src/transport/runtime.ts";
import { launchBrowser } from "../tests/_browser.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string", default: "docs/dashboard.png" },
    seconds: { type: "string", default: "75" },
  },
});
const seconds = Number(values.seconds);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", logger: () => {} });
const endpoint = await hub.ready;
const port = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
const server = await runtime.serveHttp("127.0.0.1", 0, gatewayHandler(hub));

/** A model taking 2–12 ms, failing on negative input. */
const model = async (x: number) => {
  if (x < 0) throw new RangeError(`x must be >= 0, got ${x}`);
  await sleep(2 + Math.random() * 10);
  return x * 2;
};
const workers = [0, 1, 2].map((i) => {
  const w = new Worker(model, { endpoint, concurrency: i === 0 ? 4 : 1, logger: () => {} });
  return { w, done: w.run() };
});
const python = spawn("/usr/bin/python3", [
  new URL("../tests/peers/gibbs_py.py", import.meta.url).pathname,
  "worker",
  "--port",
  String(port),
  "--model",
  "echo",
], { stdio: "ignore" });
python.on("error", () => {});

let stop = false;
const load = (async () => {
  const t0 = performance.now();
  let n = 0;
  await Promise.all(Array.from({ length: 12 }, async () => {
    while (!stop) {
      const t = (performance.now() - t0) / 1000;
      // A burst in the middle of the minute, a quieter start and end.
      if (t < 20 || t > 50) await sleep(8);
      const x = n++ % 97 === 0 ? -1 : n;
      await hub.request(x).catch((e) => {
        if (!(e instanceof UserCodeError)) throw e;
      });
    }
  }));
})();

await sleep((seconds / 3) * 1000);
// A peer that is not ZMTP at all: refused with a reason.
const bad = connect(port, "127.0.0.1", () => bad.end("GET / HTTP/1.1\r\n\r\n"));
bad.on("error", () => {});
await sleep((seconds / 3) * 1000);
// One of ours leaves (stopping), another joins.
workers[2].w.stop();
await workers[2].done;
const late = new Worker(model, { endpoint, logger: () => {} });
const lateDone = late.run();
await sleep((seconds / 3) * 1000);

const session = await launchBrowser([], { width: 1400, height: 1060 });
try {
  await session.page.goto(`http://127.0.0.1:${server.port}/`);
  await session.page.waitForFunction(
    `document.querySelector("#live").className === "ok" &&
      document.querySelectorAll("#workers tbody tr").length >= 3`,
  );
  await sleep(1500);
  await session.page.screenshot({ path: values.out, fullPage: true });
  console.log(`dashboard screenshot written to ${values.out}`);
} finally {
  await session.close();
  stop = true;
  await load;
  python.kill("SIGTERM");
  late.stop();
  for (const { w } of workers) w.stop();
  await Promise.all([lateDone, ...workers.map((w) => w.done)]);
  await server.close();
  await hub.close();
}
