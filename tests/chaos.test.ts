/**
 * Chaos: workers are SIGKILLed while they hold requests and replaced; every request is answered
 * once, with the right result, and no caller needs a timeout to get it.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { Hub, spawnWorkers } from "../mod.ts";
import { EXT, waitFor, withTimeout } from "./_helpers.ts";

const MODEL = new URL(`./fixtures/chaos_model${EXT}`, import.meta.url);

test("killing workers that hold requests loses none of them", { timeout: 180_000 }, async () => {
  const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", heartbeatInterval: 0.5, logger: () => {} });
  const endpoint = await withTimeout(hub.ready, 5000, "hub.ready");
  const workers = spawnWorkers(MODEL, {
    count: 4,
    endpoint,
    heartbeatInterval: 0.5,
    inheritOutput: false,
  });
  let chaos: ReturnType<typeof setInterval> | undefined;
  let kills = 0;
  const killed = new Set<number>();
  try {
    await waitFor(() => hub.workers >= 4, 20_000, "4 workers");
    const N = 3000;
    const results = new Array<unknown>(N);
    let next = 0;
    chaos = setInterval(() => {
      // A random live worker dies without warning; a fresh one takes its place.
      const live = workers.processes.filter((p) => !killed.has(p.pid));
      const victim = live[Math.floor(Math.random() * live.length)];
      victim.kill("SIGKILL");
      killed.add(victim.pid);
      kills++;
      workers.add();
    }, 300);
    await withTimeout(
      Promise.all(Array.from({ length: 32 }, async () => {
        while (next < N) {
          const i = next++;
          // No timeout: re-dispatch alone must recover what a dead worker held.
          results[i] = await hub.request(i);
        }
      })),
      120_000,
      `${N} requests under chaos`,
    );
    clearInterval(chaos);
    for (let i = 0; i < N; i++) assert.equal(results[i], 3 * i, `result of request ${i}`);
    const stats = hub.stats();
    assert.equal(stats.completed, N, "each request completed exactly once");
    assert.equal(stats.pending, 0);
    assert.ok(kills >= 3, `only ${kills} kills happened`);
    assert.ok(stats.redispatched > 0, "some requests were held by killed workers");
  } finally {
    clearInterval(chaos);
    await workers.kill();
    await hub.close();
  }
});
