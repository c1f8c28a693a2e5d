/**
 * A hub that starts its own workers and checks their answers, for scripts/npm_ci.sh:
 *
 *   node hub_check.mjs [--lib SPEC] [--workers N] [--expect node|deno] -- COMMAND...
 *
 * Imports `Hub` from SPEC (default the package, `gibbs-zmq`; a relative path is taken from
 * this file), binds a free port, starts N copies of COMMAND with `{port}` replaced by that port,
 * sends requests in parallel, checks every result (and that the workers run on the expected
 * runtime), then stops the workers with SIGTERM and expects them to exit 0. Runs under Node and
 * under Deno. Prints one line per finding; exits 0 only if all is well. Bounded by a watchdog;
 * the workers are killed whatever happens.
 */
import { spawn } from "node:child_process";
import process from "node:process";
import { parseArgs } from "node:util";

const WATCHDOG_MS = 45_000;
const REQUESTS = 12;

const argv = typeof globalThis.Deno === "undefined" ? process.argv.slice(2) : globalThis.Deno.args;
const split = argv.indexOf("--");
if (split < 0 || split === argv.length - 1) {
  console.error("usage: hub_check.mjs [--lib SPEC] [--workers N] [--expect RUNTIME] -- COMMAND...");
  process.exit(2);
}
const { values } = parseArgs({
  args: argv.slice(0, split),
  options: {
    lib: { type: "string", default: "gibbs-zmq" },
    workers: { type: "string", default: "2" },
    expect: { type: "string" },
  },
});
const command = argv.slice(split + 1);
const count = Number(values.workers);
const lib = values.lib.startsWith(".") ? new URL(values.lib, import.meta.url).href : values.lib;
const runtime = typeof globalThis.Deno === "undefined" ? "node" : "deno";

const children = [];
/** Kills each worker's process group (npx and deno launchers start the real worker below). */
function killAll(signal) {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  }
}
const fail = (message) => {
  console.error(`hub_check: ${message}`);
  killAll("SIGKILL");
  process.exit(1);
};
const watchdog = setTimeout(() => fail(`watchdog: not done after ${WATCHDOG_MS} ms`), WATCHDOG_MS);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => fail(`got ${signal}`));
process.on("exit", () => killAll("SIGKILL"));

const { Hub } = await import(lib);
const hub = new Hub({ port: 0, logger: () => {} });
const port = new URL((await hub.ready).replace(/^tcp:/, "http:")).port;
console.log(
  `${runtime} hub (${values.lib}) on port ${port}: starting ${count} x ${command.join(" ")}`,
);

const exits = [];
for (let i = 0; i < count; i++) {
  const args = command.slice(1).map((arg) => arg.replaceAll("{port}", port));
  // Own process group, so that killAll reaches the launcher's children too.
  const child = spawn(command[0], args, {
    stdio: ["ignore", "inherit", "inherit"],
    detached: true,
  });
  child.on("error", (error) => fail(`cannot start ${command[0]}: ${error.message}`));
  children.push(child);
  exits.push(
    new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal }))),
  );
}

const t0 = performance.now();
while (hub.workers < count) {
  if (children.some((c) => c.exitCode !== null)) fail("a worker exited before connecting");
  await new Promise((resolve) => setTimeout(resolve, 20));
}
console.log(`${count} workers connected in ${Math.round(performance.now() - t0)} ms`);

const results = await Promise.all(
  Array.from(
    { length: REQUESTS },
    (_, i) => hub.requestWith({ args: [i], kwargs: { offset: 1 }, timeout: 10, retries: 1 }),
  ),
);
const pids = new Set();
for (const [i, result] of results.entries()) {
  if (result?.value !== i * 2 + 1) {
    fail(`request ${i}: expected ${i * 2 + 1}, got ${JSON.stringify(result)}`);
  }
  if (values.expect && result.runtime !== values.expect) {
    fail(`request ${i} was served by a ${result.runtime} worker, expected ${values.expect}`);
  }
  pids.add(result.pid);
}
console.log(
  `${REQUESTS} requests answered right by ${pids.size} ${values.expect ?? ""} worker process(es)`,
);

// SIGTERM to each worker's process group: the worker finishes and exits 0. npx does not pass the
// signal on (it dies of it, leaving its child running): for npx the group's end is what counts.
killAll("SIGTERM");
const codes = await Promise.all(exits);
const viaNpx = command[0] === "npx";
const bad = codes.filter(({ code, signal }) => !(code === 0 || (viaNpx && signal === "SIGTERM")));
if (bad.length > 0) fail(`workers did not exit 0 on SIGTERM: ${JSON.stringify(bad)}`);
const groupAlive = (pid) => {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
};
const stopDeadline = performance.now() + 10_000;
while (children.some((child) => groupAlive(child.pid))) {
  if (performance.now() > stopDeadline) fail("worker processes still running 10 s after SIGTERM");
  await new Promise((resolve) => setTimeout(resolve, 20));
}
await hub.close();
clearTimeout(watchdog);
console.log("workers stopped on SIGTERM");
process.exit(0);
