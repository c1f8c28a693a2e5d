/**
 * Prepares the interop test peers before `deno task test`: installs tests/peers' npm packages
 * (zeromq.js, jszmq, playwright-core; `npm ci`, from the npm registry) when one is missing, then
 * checks that each peer and tool runs here — zeromq.js and jszmq under Node, pyzmq and msgpack
 * (and prometheus_client, for the /metrics test) under the peers' Python (`GIBBS_TEST_PYTHON`,
 * default `/usr/bin/python3`), Chromium for the dashboard and browser-worker tests.
 *
 * On a developer machine what is missing is reported and its tests are skipped. With `CI=true`
 * it is an error: this exits 1, naming what is missing, and `deno task test` stops there.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  chromiumMissing,
  jszmqMissing,
  prometheusMissing,
  pyzmqMissing,
  zeromqMissing,
} from "../tests/_probes.ts";

const ci = process.env.CI === "true";
const peers = fileURLToPath(new URL("../tests/peers/", import.meta.url));
const problems: string[] = [];

const packages = ["zeromq", "jszmq", "playwright-core"];
if (packages.some((name) => !existsSync(`${peers}node_modules/${name}`))) {
  console.error(
    `test setup: installing ${packages.join(", ")} for the interop tests (npm ci in tests/peers)`,
  );
  const npm = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: peers,
    stdio: "inherit",
    timeout: 600_000,
  });
  if (npm.status !== 0) {
    problems.push(`npm ci in tests/peers failed (${npm.error ?? `exit ${npm.status}`})`);
  }
}
const probes: [string, () => string | false][] = [
  ["zeromq.js", zeromqMissing],
  ["jszmq", jszmqMissing],
  ["pyzmq", pyzmqMissing],
  ["prometheus_client", prometheusMissing],
  ["chromium", chromiumMissing],
];
for (const [name, missing] of probes) {
  const why = missing();
  if (why) problems.push(`${name}: ${why}`);
}

if (problems.length > 0) {
  const list = problems.map((p) => `  - ${p}`).join("\n");
  if (ci) {
    console.error(`test setup: CI=true and an interop peer is missing:\n${list}`);
    process.exit(1);
  }
  console.error(`test setup: the tests of these peers will be skipped:\n${list}`);
}
