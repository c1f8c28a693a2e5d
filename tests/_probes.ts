/**
 * Whether the interop peers and tools can run here: pyzmq + msgpack (and prometheus_client, for
 * the /metrics parser test) under the Python interpreter of the peers, zeromq.js under Node, and
 * Debian's Chromium (the browser tests). Used by the tests (a test's `skip`) and by
 * `scripts/test_setup.ts` (which, with `CI=true`, fails when one is missing).
 *
 * Environment: `GIBBS_TEST_PYTHON` names the Python interpreter of the pyzmq and Python gibbs
 * peers (default `/usr/bin/python3`, Debian's, which has pyzmq and msgpack).
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The interpreter of the Python peers: `$GIBBS_TEST_PYTHON`, else Debian's `/usr/bin/python3`. */
export const PYTHON: string = process.env.GIBBS_TEST_PYTHON || "/usr/bin/python3";

const probes: Partial<Record<"pyzmq" | "zeromq" | "jszmq" | "prometheus", string | false>> = {};

/**
 * Why the pyzmq and Python gibbs peers cannot run here (for a test's `skip`), or false when
 * `PYTHON` imports zmq and msgpack. Under `CI=true` a skip fails the run (`.ci/run`).
 */
export function pyzmqMissing(): string | false {
  return probes.pyzmq ??= probePyzmq();
}

/**
 * Why the zeromq.js peer cannot run here, or false when Node loads it (zeromq.js runs under
 * Node: under Deno its ROUTER was seen to bind and never receive).
 */
export function zeromqMissing(): string | false {
  return probes.zeromq ??= nodePackageMissing("zeromq", "zeromq.js");
}

function probePyzmq(): string | false {
  try {
    const r = spawnSync(PYTHON, ["-c", "import zmq, msgpack"], {
      stdio: "ignore",
      timeout: 10_000,
    });
    return r.status === 0
      ? false
      : `${PYTHON} cannot import zmq and msgpack (apt-get install -y python3-zmq python3-msgpack)`;
  } catch (error) {
    return `${PYTHON} not runnable: ${error}`;
  }
}

/** Why Node cannot load the test peers' npm package `name` (tests/peers/node_modules), or false. */
function nodePackageMissing(name: string, hint: string): string | false {
  const dir = fileURLToPath(new URL(`./peers/node_modules/${name}/`, import.meta.url));
  try {
    const r = spawnSync("node", ["-e", `require(${JSON.stringify(dir)})`], {
      stdio: "ignore",
      timeout: 20_000,
    });
    return r.status === 0 ? false : `node cannot load ${hint} (npm ci --prefix tests/peers; ` +
      "deno task test does it)";
  } catch (error) {
    return `node not runnable: ${error}`;
  }
}

/** Why jszmq (the ws:// peer, under Node) cannot run here, or false when Node loads it. */
export function jszmqMissing(): string | false {
  return probes.jszmq ??= nodePackageMissing("jszmq", "jszmq");
}

/** Why the Prometheus parser test cannot run here, or false when `PYTHON` has prometheus_client. */
export function prometheusMissing(): string | false {
  return probes.prometheus ??= (() => {
    const r = spawnSync(PYTHON, ["-c", "import prometheus_client.parser"], {
      stdio: "ignore",
      timeout: 10_000,
    });
    return r.status === 0 ? false : `${PYTHON} cannot import prometheus_client ` +
      "(apt-get install -y python3-prometheus-client)";
  })();
}

/** Debian's Chromium (`apt-get install -y chromium`), driven by the browser tests. */
export const CHROMIUM = "/usr/bin/chromium";

/** Why the browser tests cannot run here, or false when Chromium is there. */
export function chromiumMissing(): string | false {
  return existsSync(CHROMIUM) ? false : `${CHROMIUM} not found (apt-get install -y chromium)`;
}
