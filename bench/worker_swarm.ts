/**
 * Many in-process workers in one process, for the hub's scale benchmark:
 *
 *   deno run -A bench/worker_swarm.ts ENDPOINT COUNT [HEARTBEAT_S]
 *
 * Each worker has its own connection and routing id, as separate processes would.
 *
 * @module
 */

import { Worker } from "../mod.ts";
import add from "./models.ts";
import { scriptArgs } from "./_args.ts";
import { exitWithParent } from "./_process.ts";

exitWithParent();

const [endpoint, count, heartbeat = "1"] = scriptArgs();
const workers = Array.from(
  { length: Number(count) },
  () => new Worker(add, { endpoint, heartbeatInterval: Number(heartbeat), logger: () => {} }),
);
const runs = workers.map((w) => w.run());
process.on("SIGTERM", () => {
  for (const w of workers) w.stop();
});
await Promise.all(runs);
process.exit(0);
