/**
 * libzmq from C as the ceiling our socket benchmark is measured against: builds
 * bench/libzmq_bench.c with `cc … -lzmq` (installing Debian's `libzmq3-dev` first when its
 * headers are missing and apt-get can run) and runs it with the roles and counts of
 * bench/socket_bench.ts, printing its one JSON line.
 *
 *   deno run -A bench/libzmq_anchor.ts build                    (prints {"binary": PATH})
 *   deno run -A bench/libzmq_anchor.ts throughput --size 64     (or --size 1MiB)
 *   deno run -A bench/libzmq_anchor.ts rtt --size 64
 *
 * When it cannot build (no compiler, no headers and no way to install them) it says why on
 * standard error and prints `{"skipped": REASON}` instead, exiting with status 0: the anchor is
 * then left out of the table, with the reason printed beside it.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { scriptArgs } from "./_args.ts";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const SOURCE = here("./libzmq_bench.c");
const BINARY = here("../.bench/libzmq_bench");
const HEADER = "/usr/include/zmq.h";

const found = (command: string) =>
  spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).status === 0;

/** Builds the C benchmark when missing or older than its source; returns it or why not. */
export function buildLibzmqBench(): { binary: string } | { skipped: string } {
  if (existsSync(BINARY) && statSync(BINARY).mtimeMs >= statSync(SOURCE).mtimeMs) {
    return { binary: BINARY };
  }
  if (!found("cc")) return { skipped: "no C compiler (cc) on this machine" };
  if (!existsSync(HEADER)) {
    const root = process.getuid?.() === 0;
    if (!root || !found("apt-get")) {
      return { skipped: `${HEADER} missing: install libzmq3-dev (apt-get install -y libzmq3-dev)` };
    }
    console.error("libzmq anchor: installing libzmq3-dev (apt-get install -y libzmq3-dev)...");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    let install = spawnSync("apt-get", ["install", "-y", "-qq", "libzmq3-dev"], { env });
    if (install.status !== 0) {
      // A fresh machine may not know the package yet.
      spawnSync("apt-get", ["update", "-qq"], { env });
      install = spawnSync("apt-get", ["install", "-y", "-qq", "libzmq3-dev"], { env });
    }
    if (install.status !== 0 || !existsSync(HEADER)) {
      return { skipped: "apt-get install -y libzmq3-dev failed" };
    }
  }
  mkdirSync(here("../.bench/"), { recursive: true });
  const cc = spawnSync("cc", ["-O2", "-o", BINARY, SOURCE, "-lzmq"], { encoding: "utf8" });
  if (cc.status !== 0) {
    return { skipped: `cc -O2 libzmq_bench.c -lzmq failed: ${cc.stderr.trim().split("\n")[0]}` };
  }
  return { binary: BINARY };
}

if (import.meta.main) {
  const [role, ...rest] = scriptArgs();
  const built = buildLibzmqBench();
  if ("skipped" in built) {
    console.error(`libzmq anchor skipped: ${built.skipped}`);
    console.log(JSON.stringify(built));
    process.exit(0);
  }
  if (role === "build") {
    console.log(JSON.stringify(built));
    process.exit(0);
  }
  const run = spawnSync(built.binary, [role, ...rest], { stdio: "inherit", timeout: 30_000 });
  process.exit(run.status ?? 1);
}
