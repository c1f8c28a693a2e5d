/**
 * Prepares the interop test peers before `deno task test`: installs zeromq.js into tests/peers
 * (`npm ci`, from the npm registry) when it is missing, then checks that each peer runs here —
 * zeromq.js under Node, pyzmq and msgpack (and prometheus_client, for the /metrics test) under
 * the peers' Python (`GIBBS_TEST_PYTHON`, default `/usr/bin/python3`), Chromium for the
 * dashboard test.
 *
 * On a developer machine a missing peer is reported and its tests are skipped. With `CI=true` it
 * is an error: this exits 1, naming what is missing, and `deno task test` stops there.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  chromiumMissing,
  prometheusMissing,
  pyzmqMissing,
  zeromqMissing,
} from "../tests/_probes.ts";

const ci = process.env.CI === "true";
const peers = fileURLToPath(new URL("../tests/peers/", import.meta.url));
const problems: string[] = [];

if (!existsSync(`${peers}node_modules/zeromq`)) {
  console.error("test setup: installing zeromq.js for the interop tests (npm ci in tests/peers)");
  const npm = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: peers,
    stdio: "inherit",
    timeout: 600_000,
  });
  if (npm.status !== 0) {
    problems.push(`npm ci in tests/peers failed (${npm.error ?? `exit ${npm.status}`})`);
  }
}
const zeromq = zeromqMissing();
if (zeromq) problems.push(`zeromq.js: ${zeromq}`);
const pyzmq = pyzmqMissing();
if (pyzmq) problems.push(`pyzmq: ${pyzmq}`);
const prometheus = prometheusMissing();
if (prometheus) problems.push(`prometheus_client: ${prometheus}`);
const chromium = chromiumMissing();
if (chromium) problems.push(`chromium: ${chromium}`);

if (problems.length > 0) {
  const list = problems.map((p) => `  - ${p}`).join("\n");
  if (ci) {
    console.error(`test setup: CI=true and an interop peer is missing:\n${list}`);
    process.exit(1);
  }
  console.error(`test setup: the tests of these peers will be skipped:\n${list}`);
}
