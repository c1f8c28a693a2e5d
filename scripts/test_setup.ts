/**
 * Prepares the interop test peers before `deno task test`: installs tests/peers' npm packages
 * (zeromq.js, jszmq, playwright-core) from the npm registry when one is missing, and says
 * whether pyzmq, prometheus_client (the /metrics test) and Chromium (the dashboard and
 * browser-worker tests) are there.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const peers = fileURLToPath(new URL("../tests/peers/", import.meta.url));
const packages = ["zeromq", "jszmq", "playwright-core"];
if (packages.some((name) => !existsSync(`${peers}node_modules/${name}`))) {
  console.error(
    `test setup: installing ${packages.join(", ")} for the interop tests (npm ci in tests/peers)`,
  );
  const npm = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: peers,
    stdio: "inherit",
  });
  if (npm.status !== 0) {
    console.error(
      "test setup: npm ci failed; the zeromq.js, jszmq and browser tests will be skipped",
    );
  }
}
const python = spawnSync("/usr/bin/python3", ["-c", "import zmq, msgpack"], { stdio: "ignore" });
if (python.status !== 0) {
  console.error(
    "test setup: pyzmq is missing, so the pyzmq and Python gibbs tests will be skipped.\n" +
      "  Install it with: apt-get install -y python3-zmq python3-msgpack",
  );
}
const prometheus = spawnSync("/usr/bin/python3", ["-c", "import prometheus_client.parser"], {
  stdio: "ignore",
});
if (prometheus.status !== 0) {
  console.error(
    "test setup: prometheus_client is missing, so the /metrics parser test will be skipped.\n" +
      "  Install it with: apt-get install -y python3-prometheus-client",
  );
}
if (!existsSync("/usr/bin/chromium")) {
  console.error(
    "test setup: /usr/bin/chromium is missing, so the dashboard and browser-worker tests will be skipped.\n" +
      "  Install it with: apt-get install -y chromium",
  );
}
