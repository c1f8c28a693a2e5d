/**
 * The long fuzz run of the sans-IO ZMTP core: the properties of `tests/_zmtp_properties.ts`
 * (random input, split round trip, connection pair, mutated streams) and of
 * `tests/_security_cases.ts` (a CURVE pair, mutated CURVE streams), many more cases than the
 * test slice. A CURVE case costs
 * several X25519 operations, so those properties get a share (`CURVE_CASE_SHARE`) of the cases.
 *
 * ```sh
 * deno run scripts/fuzz.ts                      # 1,000,000 cases, spread over the properties
 * deno run --allow-read scripts/fuzz.ts         # the same, with the hang watchdog
 * deno run scripts/fuzz.ts --cases 20000        # a quick run
 * deno run scripts/fuzz.ts --property mutated-stream --seed 42 --path 17:3   # replay a failure
 * ```
 *
 * Options: `--cases N` (total, default 1,000,000), `--property NAME` (only that one), `--seed S`
 * (base seed; default random, printed), `--path P` (replay one counterexample; needs `--seed`),
 * `--hang-seconds H` (default 60).
 *
 * With `--allow-read` the cases run in a worker and the main thread watches a shared counter: a
 * case that does not return within `--hang-seconds` is reported as a hang, with the seed and path
 * that replay it. Without it (the worker must read this file) they run in the main thread and a
 * hang simply never ends. Exits 0 when every case passed, 1 on a failing case (with the
 * counterexample), 2 on a hang.
 *
 * @module
 */

import fc from "fast-check";
import { PROPERTIES as ZMTP_PROPERTIES } from "../tests/_zmtp_properties.ts";
import { CURVE_CASE_SHARE, CURVE_PROPERTIES } from "../tests/_security_cases.ts";

const PROPERTIES = { ...ZMTP_PROPERTIES, ...CURVE_PROPERTIES };

/**
 * Cases a property gets out of an even share: in a run of every property, CURVE cases (which
 * cost X25519 operations) get fewer; a run of one property gives it all.
 */
function casesOf(name: string, even: number, all: boolean): number {
  return all && name in CURVE_PROPERTIES ? Math.ceil(even * CURVE_CASE_SHARE) : even;
}

const DEFAULT_CASES = 1_000_000;
/** Cases per fast-check run; progress is printed after each. */
const BATCH = 100_000;
const DEFAULT_HANG_SECONDS = 60;
const WORKER_NAME = "zmtp-fuzz-worker";

/** What the main thread asks the worker to run. */
interface Job {
  properties: string[];
  casesEach: number;
  seed: number;
}

/** What the worker reports. */
type Report =
  | { type: "batch"; property: string; seed: number; runs: number; ms: number }
  | {
    type: "failure";
    property: string;
    seed: number;
    path: string;
    counterexample: string;
    error: string;
  }
  | { type: "done" };

/** Shared counters: [property index, batch seed, cases started in the batch]. */
const SLOT_PROPERTY = 0;
const SLOT_SEED = 1;
const SLOT_CASE = 2;

function batchSeed(base: number, property: number, batch: number): number {
  return (base + property * 1_000_003 + batch * 7919) | 0;
}

// ---------------------------------------------------------------------------------------------
// Worker side

/** Runs the job's batches, reporting each; stops at the first failure. */
function runJob(job: Job, counters: Int32Array, report: (r: Report) => void): void {
  for (const name of job.properties) {
    const index = Object.keys(PROPERTIES).indexOf(name);
    let left = casesOf(name, job.casesEach, job.properties.length > 1);
    for (let batch = 0; left > 0; batch++) {
      const runs = Math.min(BATCH, left);
      const seed = batchSeed(job.seed, index, batch);
      Atomics.store(counters, SLOT_PROPERTY, index);
      Atomics.store(counters, SLOT_SEED, seed);
      Atomics.store(counters, SLOT_CASE, 0);
      const property = PROPERTIES[name]().beforeEach((previous) => {
        previous();
        Atomics.add(counters, SLOT_CASE, 1);
      });
      const started = performance.now();
      const details = fc.check(property, { numRuns: runs, seed });
      if (details.failed) {
        report({
          type: "failure",
          property: name,
          seed,
          path: details.counterexamplePath ?? "",
          counterexample: fc.stringify(details.counterexample),
          error: String(details.errorInstance),
        });
        return;
      }
      report({ type: "batch", property: name, seed, runs, ms: performance.now() - started });
      left -= runs;
    }
  }
  report({ type: "done" });
}

function runWorker(): void {
  const scope = globalThis as unknown as {
    onmessage: ((event: MessageEvent) => void) | null;
    postMessage(message: Report): void;
  };
  scope.onmessage = (event: MessageEvent) => {
    const { job, shared } = event.data as { job: Job; shared: SharedArrayBuffer };
    runJob(job, new Int32Array(shared), (r) => scope.postMessage(r));
  };
}

// ---------------------------------------------------------------------------------------------
// Main side

interface Args {
  cases: number;
  property?: string;
  seed?: number;
  path?: string;
  hangSeconds: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { cases: DEFAULT_CASES, hangSeconds: DEFAULT_HANG_SECONDS };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const need = () => {
      if (value === undefined) throw new Error(`${flag} needs a value`);
      i++;
      return value;
    };
    switch (flag) {
      case "--cases":
        args.cases = Number(need().replaceAll("_", "").replaceAll(",", ""));
        break;
      case "--property":
        args.property = need();
        break;
      case "--seed":
        args.seed = Number(need());
        break;
      case "--path":
        args.path = need();
        break;
      case "--hang-seconds":
        args.hangSeconds = Number(need());
        break;
      default:
        throw new Error(
          `unknown argument ${flag}\nusage: deno run scripts/fuzz.ts [--cases N] ` +
            `[--property NAME] [--seed S [--path P]] [--hang-seconds H]`,
        );
    }
  }
  if (!Number.isInteger(args.cases) || args.cases < 1) throw new Error("--cases must be >= 1");
  if (args.property !== undefined && !(args.property in PROPERTIES)) {
    throw new Error(
      `unknown property ${args.property}; one of ${Object.keys(PROPERTIES).join(", ")}`,
    );
  }
  if (args.path !== undefined && (args.seed === undefined || args.property === undefined)) {
    throw new Error("--path needs --seed and --property");
  }
  return args;
}

/** Replays one counterexample in this thread and prints what fast-check says. */
function replay(property: string, seed: number, path: string): number {
  const details = fc.check(PROPERTIES[property](), { seed, path, numRuns: 1, verbose: 2 });
  if (!details.failed) {
    console.log(`${property} seed ${seed} path ${path}: passes`);
    return 0;
  }
  console.log(fc.defaultReportMessage(details));
  console.log(details.errorInstance);
  return 1;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Runs the job in a worker, reporting a case that does not return within `hangSeconds`. */
function watched(
  job: Job,
  shared: SharedArrayBuffer,
  counters: Int32Array,
  hangSeconds: number,
  onReport: (report: Report) => number | undefined,
): Promise<number> {
  const worker = new Worker(import.meta.url, { type: "module", name: WORKER_NAME });
  return new Promise<number>((resolve) => {
    const finish = (code: number) => {
      clearInterval(watchdog);
      worker.terminate();
      resolve(code);
    };
    let lastCount = -1;
    let lastSeed = 0;
    let stillSince = performance.now();
    const watchdog = setInterval(() => {
      const count = Atomics.load(counters, SLOT_CASE);
      const seed = Atomics.load(counters, SLOT_SEED);
      if (count !== lastCount || seed !== lastSeed) {
        lastCount = count;
        lastSeed = seed;
        stillSince = performance.now();
        return;
      }
      if (performance.now() - stillSince < hangSeconds * 1000) return;
      const name = Object.keys(PROPERTIES)[Atomics.load(counters, SLOT_PROPERTY)];
      console.error(
        `HANG: ${name}: a case did not return within ${hangSeconds} s.\n` +
          `replay: deno run scripts/fuzz.ts --property ${name} --seed ${seed} ` +
          `--path ${Math.max(0, count - 1)}`,
      );
      finish(2);
    }, 1000);
    worker.onerror = (event) => {
      event.preventDefault();
      console.error(`worker crashed: ${event.message}`);
      finish(1);
    };
    worker.onmessage = (event: MessageEvent<Report>) => {
      const code = onReport(event.data);
      if (code !== undefined) finish(code);
    };
    worker.postMessage({ job, shared });
  });
}

async function main(): Promise<number> {
  const args = parseArgs(Deno.args);
  if (args.path !== undefined) return replay(args.property!, args.seed!, args.path);

  const properties = args.property === undefined ? Object.keys(PROPERTIES) : [args.property];
  const casesEach = Math.ceil(args.cases / properties.length);

  const planned = properties.reduce(
    (sum, name) => sum + casesOf(name, casesEach, properties.length > 1),
    0,
  );
  const seed = args.seed ?? ((Math.random() * 2 ** 31) | 0);
  console.log(
    `fuzzing ${properties.join(", ")}: ${fmt(casesEach)} cases each` +
      (planned < casesEach * properties.length
        ? ` (CURVE ones ${fmt(Math.ceil(casesEach * CURVE_CASE_SHARE))})`
        : "") +
      `, seed ${seed}` +
      ` (rerun: --seed ${seed} --cases ${args.cases})`,
  );

  const shared = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
  const counters = new Int32Array(shared);
  const started = performance.now();
  const done = new Map<string, { runs: number; ms: number }>();
  let total = 0;
  let lastPrinted = 0;

  /** Handles one report; returns the exit code once the run is over. */
  const onReport = (report: Report): number | undefined => {
    if (report.type === "batch") {
      const entry = done.get(report.property) ?? { runs: 0, ms: 0 };
      entry.runs += report.runs;
      entry.ms += report.ms;
      done.set(report.property, entry);
      total += report.runs;
      if (total - lastPrinted >= BATCH || total === planned) {
        lastPrinted = total;
        const seconds = (performance.now() - started) / 1000;
        console.log(
          `  ${fmt(total)} cases (${report.property} ${fmt(entry.runs)}), ` +
            `${seconds.toFixed(1)} s, ${fmt(total / seconds)} cases/s`,
        );
      }
      return undefined;
    }
    if (report.type === "failure") {
      console.error(
        `FAILED: ${report.property}\n${report.error}\n` +
          `counterexample: ${report.counterexample}\n` +
          `replay: deno run scripts/fuzz.ts --property ${report.property} ` +
          `--seed ${report.seed} --path ${report.path}`,
      );
      return 1;
    }
    return 0;
  };

  const job: Job = { properties, casesEach, seed };
  let outcome: number;
  const workerAllowed =
    Deno.permissions.querySync({ name: "read", path: new URL(import.meta.url) }).state ===
      "granted";
  if (!workerAllowed) {
    // A worker needs to read this file; without --allow-read, run here, without the watchdog.
    console.log("  (no --allow-read: running in this thread, without the hang watchdog)");
    outcome = 1;
    runJob(job, counters, (report) => {
      const code = onReport(report);
      if (code !== undefined) outcome = code;
    });
  } else {
    outcome = await watched(job, shared, counters, args.hangSeconds, onReport);
  }

  const seconds = (performance.now() - started) / 1000;
  console.log(outcome === 0 ? "summary: all cases passed" : "summary: stopped early");
  for (const [name, entry] of done) {
    console.log(
      `  ${name.padEnd(20)} ${fmt(entry.runs).padStart(11)} cases ` +
        `${(entry.ms / 1000).toFixed(1).padStart(7)} s ${
          fmt(entry.runs / (entry.ms / 1000))
            .padStart(8)
        } cases/s`,
    );
  }
  console.log(
    `  ${"total".padEnd(20)} ${fmt(total).padStart(11)} cases ${seconds.toFixed(1).padStart(7)} s ${
      fmt(total / seconds).padStart(8)
    } cases/s`,
  );
  return outcome;
}

if ((globalThis as { name?: string }).name === WORKER_NAME) {
  runWorker();
} else if (import.meta.main) {
  Deno.exit(await main());
}
