/**
 * The gibbs layer over `ws://`: a hub bound on tcp and ws at once (`HubOptions.endpoints`)
 * serving workers of both in one queue; ZMTP heartbeats inside ZWS, so that a ws worker that
 * stops answering has its request re-dispatched after `deadAfter`; a hostile ws peer logged and
 * dropped while the ws workers keep serving; a failed extra bind releasing everything; the CLI's
 * `--ws` options.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
// @ts-types="./_ws_package.d.ts"
import { WebSocket } from "ws";
import { Hub, spawnWorkers } from "../mod.ts";
import {
  Cleanup,
  cli,
  Log,
  MODELS_URL,
  settle,
  signalPid,
  startHub,
  startWorker,
  waitFor,
  withTimeout,
} from "./_helpers.ts";

const SPAWN_MS = 20_000;

describe("a hub on tcp and ws at once", () => {
  test(
    "endpoints: one queue served by workers over tcp and over ws",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub } = await startHub({ endpoints: ["ws://127.0.0.1:0"] });
        c.add(() => hub.close());
        assert.equal(hub.endpoints.length, 2);
        const [tcp, ws] = hub.endpoints;
        assert.match(tcp, /^tcp:\/\/127\.0\.0\.1:\d+$/);
        assert.match(ws, /^ws:\/\/127\.0\.0\.1:\d+$/);
        const slow = (name: string) => async (x: number) => {
          await new Promise((r) => setTimeout(r, 20));
          return [name, x * 2];
        };
        const overTcp = startWorker(slow("tcp"), tcp);
        const overWs = startWorker(slow("ws"), ws);
        c.add(() => overTcp.stop());
        c.add(() => overWs.stop());
        await waitFor(() => hub.workers === 2, 10_000, "both workers");
        const results = await withTimeout(
          Promise.all(Array.from({ length: 20 }, (_, i) => hub.request(i))),
          20_000,
          "20 requests",
        ) as [string, number][];
        assert.deepEqual(results.map(([, y]) => y), Array.from({ length: 20 }, (_, i) => i * 2));
        const names = new Set(results.map(([name]) => name));
        assert.deepEqual([...names].sort(), ["tcp", "ws"]);
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a ws worker that stops answering (SIGSTOP) is dropped after deadAfter; its request completes elsewhere",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub } = await startHub({ endpoints: ["ws://127.0.0.1:0"], deadAfter: 1 });
        c.add(() => hub.close());
        const ws = hub.endpoints[1];
        const stopped = spawnWorkers(MODELS_URL, {
          count: 1,
          endpoint: ws,
          export: "slowDouble",
          heartbeatInterval: 0.2,
          inheritOutput: false,
          quiet: true,
        });
        c.add(() => stopped.stop());
        await waitFor(() => hub.workers === 1, SPAWN_MS, "the ws worker process");
        const pid = stopped.processes[0].pid;
        const request = settle(hub.request(21, 0.5));
        await waitFor(() => hub.stats().busy === 1, 5000, "the request is computing");
        signalPid(pid, "SIGSTOP");
        c.add(() => signalPid(pid, "SIGCONT"));
        const spare = startWorker((x: number) => [x * 2, "spare"], hub.endpoints[0]);
        c.add(() => spare.stop());
        // No caller timeout: the hub's PINGs inside ZWS go unanswered, deadAfter drops the peer.
        const outcome = await withTimeout(request, 15_000, "the held request");
        assert.ok(outcome.ok, String(!outcome.ok && outcome.error));
        assert.deepEqual(outcome.value, [42, "spare"]);
        assert.ok(hub.stats().redispatched >= 1);
      } finally {
        await c.run();
      }
    },
  );

  test("a hostile ws peer is logged and dropped while a ws worker keeps serving", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, log } = await startHub({ endpoints: ["ws://127.0.0.1:0"] });
      c.add(() => hub.close());
      const ws = hub.endpoints[1];
      const w = startWorker((x: number) => x + 1, ws);
      c.add(() => w.stop());
      assert.equal(await withTimeout(hub.request(1), 10_000, "before"), 2);
      const bad = new WebSocket(ws, ["ZWS2.0"]);
      bad.on("error", () => {});
      await new Promise<void>((resolve) => bad.on("open", () => resolve()));
      bad.send('{"not": "zeromq"}');
      await waitFor(() => log.has("text-frame"), 5000, "the drop logged");
      assert.ok(
        log.lines.some((l) => /(dropped|refused) peer .*: text-frame: /.test(l)),
        log.lines.join("\n"),
      );
      assert.equal(await withTimeout(hub.request(2), 10_000, "after"), 3);
    } finally {
      await c.run();
    }
  });

  test("an extra endpoint that cannot be bound fails ready and releases the main one", {
    timeout: 60_000,
  }, async () => {
    const listen = async (port = 0) => {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve());
      });
      return { server, port: (server.address() as { port: number }).port };
    };
    const blocker = await listen();
    const free = await listen();
    await new Promise((resolve) => free.server.close(resolve));
    const log = new Log();
    const hub = new Hub({
      endpoint: `tcp://127.0.0.1:${free.port}`,
      endpoints: [`ws://127.0.0.1:${blocker.port}`],
      logger: log.fn,
    });
    try {
      await assert.rejects(withTimeout(hub.ready, 5000, "ready"), /in use/i);
      await assert.rejects(withTimeout(hub.request(1), 5000, "request"), /cannot listen|closed/i);
      await withTimeout(hub.close(), 5000, "close");
      // The main endpoint, bound before the other failed, is free again.
      const again = await listen(free.port);
      await new Promise((resolve) => again.server.close(resolve));
    } finally {
      await hub.close();
      blocker.server.close();
    }
  });
});

describe("gibbs hub --ws", () => {
  test("usage: --ws options without --ws, or a certificate without its key, exit 2", {
    timeout: 60_000,
  }, async () => {
    const cases: [string[], RegExp][] = [
      [["hub", "--http", "0", "--ws-origin", "https://a.example"], /need --ws PORT/],
      [["hub", "--http", "0", "--ws", "0", "--ws-cert", "c.pem"], /go together/],
      [["hub", "--http", "0", "--ws", "nope"], /--ws must be a number/],
    ];
    for (const [args, re] of cases) {
      const p = cli(args);
      try {
        const exit = await withTimeout(p.exited, 20_000, `gibbs ${args.join(" ")}`);
        assert.equal(exit.code, 2, `gibbs ${args.join(" ")}: ${p.stderr}`);
        assert.match(p.stderr, re);
      } finally {
        await p.dispose();
      }
    }
  });

  test("--help documents --ws and /gibbs.js", { timeout: 60_000 }, async () => {
    const p = cli(["hub", "--help"]);
    try {
      assert.equal((await withTimeout(p.exited, 20_000, "gibbs hub --help")).code, 0);
      const out = p.lines.join("\n");
      for (const re of [/--ws PORT/, /--ws-origin/, /--ws-cert/, /GET {2}\/gibbs\.js/]) {
        assert.match(out, re);
      }
    } finally {
      await p.dispose();
    }
  });
});
