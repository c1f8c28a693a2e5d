/**
 * Drives the strict Python gibbs 0.3 peer (tests/peers/gibbs_py.py): its hub over JSON lines on
 * stdin/stdout, its workers as processes. Every wait is bounded.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type Cleanup, Proc, PYTHON, sleep } from "./_helpers.ts";

/** The strict Python gibbs 0.3 peer. */
export const GIBBS_PY: string = fileURLToPath(new URL("./peers/gibbs_py.py", import.meta.url));

/** How long a Python peer may take to start (a loaded machine imports zmq slowly). */
export const PY_START_MS = 20_000;

/** Starts a Python gibbs peer with `args` (`["worker", ...]` or `["hub", ...]`). */
export function python(args: string[]): Proc {
  return new Proc(PYTHON, [GIBBS_PY, ...args]);
}

/** Options of {@linkcode startPyHub}. */
export interface PyHubOptions {
  /** Port to bind (default 0: any free one). */
  port?: number;
  /** The hub's heartbeat interval in seconds: staler workers are dropped (default 0.5). */
  heartbeat?: number;
  /** gibbs's `resp_buffer_size` (default 4096). */
  respBuffer?: number;
  /**
   * Bind now, as the first request would (default true); false leaves the hub unbound until
   * its first request, as gibbs is when an application has just constructed it.
   */
  bind?: boolean;
}

/** What the hub's `{"op": "state"}` tells. */
export interface PyHubState {
  bound: boolean;
  /** The receive loop is alive: it has not died on a message it could not unpack. */
  receiving: boolean;
  /** Requests still pinned (answered or not). */
  pinned: number;
  /** Answers stored and never read. */
  stored: number;
  /** Workers ever heard from. */
  heard: number;
}

/** A request's answer line from the Python hub. */
export interface PyAnswer {
  id: string;
  ok: boolean;
  // The Python peer's JSON answer: tests assert on it as they please.
  // deno-lint-ignore no-explicit-any
  result?: any;
  error?: string;
  message?: string;
  traceback?: string;
  worker?: string;
  /** Attempts started (1 + the retries made). */
  attempts: number;
  /** Attempts that got a worker and were sent. */
  sent: number;
}

/** A Python gibbs 0.3 hub (strict peer) in a child process. */
export class PyHub {
  #next = 0;
  #port: number | undefined;

  constructor(readonly proc: Proc) {}

  /** The bound port (after `bind()` or a first request). */
  get port(): number {
    if (this.#port === undefined) throw new Error("the Python hub is not bound yet");
    return this.#port;
  }

  /** Binds now, as gibbs's first request() would; returns the port. */
  async bind(): Promise<number> {
    const answer = await this.#op({ op: "start" });
    this.#port = answer.port as number;
    return this.#port;
  }

  /** Waits for the hub to bind by itself (on its first request); returns the port. */
  async bound(ms = 10_000): Promise<number> {
    const event = await this.proc.waitJson((v) => v.event === "bound", ms, "python hub bound");
    this.#port = event.port as number;
    return this.#port;
  }

  /** Sends a request; returns its id, for {@linkcode answer}. */
  send(body: Record<string, unknown>): string {
    const id = `r${this.#next++}`;
    this.proc.send({ id, ...body });
    return id;
  }

  /** Sends requests that the hub starts in one event-loop step (as `asyncio.gather`). */
  sendAll(bodies: Record<string, unknown>[]): string[] {
    const ids = bodies.map(() => `r${this.#next++}`);
    this.proc.send(bodies.map((body, i) => ({ id: ids[i], ...body })));
    return ids;
  }

  /** Waits for the answer to request `id`. */
  answer(id: string, ms = 10_000): Promise<PyAnswer> {
    return this.proc.waitJson((v) => v.id === id, ms, `python hub answer to ${id}`);
  }

  /** True if an answer to `id` has arrived. */
  answered(id: string): boolean {
    return this.proc.lines.some((line) => line.includes(`"id": "${id}"`));
  }

  /** Sends a request and waits for its answer. */
  request(body: Record<string, unknown>, ms = 10_000): Promise<PyAnswer> {
    return this.answer(this.send(body), ms);
  }

  /** gibbs's `request(*args)` with its defaults (no timeout, no retries); waits for the answer. */
  call(args: unknown[], ms = 15_000): Promise<PyAnswer> {
    return this.request({ args, kwargs: {}, timeout: null, retries: 0 }, ms);
  }

  /**
   * Requests started in one step, as `asyncio.gather` would: requests arriving one by one as a
   * worker frees up race in gibbs 0.3's own ready set (KeyError), whatever the worker does.
   */
  callAll(argsList: unknown[][], ms = 15_000): Promise<PyAnswer[]> {
    const ids = this.sendAll(argsList.map((args) => ({ args })));
    return Promise.all(ids.map((id) => this.answer(id, ms)));
  }

  /** The hub's state (see {@linkcode PyHubState}). */
  async state(): Promise<PyHubState> {
    return (await this.#op({ op: "state" })) as unknown as PyHubState;
  }

  /** Workers in the ready set now. */
  async workers(): Promise<{ id: string; age: number }[]> {
    return (await this.#op({ op: "workers" })).workers as { id: string; age: number }[];
  }

  /** Waits until the ready set holds `n` workers. */
  async waitWorkers(n: number, ms = PY_START_MS): Promise<void> {
    const deadline = performance.now() + ms;
    while ((await this.workers()).length < n) {
      if (performance.now() > deadline) {
        throw new Error(`the Python hub saw fewer than ${n} workers`);
      }
      await sleep(50);
    }
  }

  /**
   * Asserts that the hub still receives: its receive loop did not die (gibbs's dies on any
   * message it cannot unpack, and never receives again) and no request failed with the
   * KeyError of an empty ready set.
   */
  async assertReceiving(): Promise<void> {
    const state = await this.state();
    const died = this.proc.lines.find((line) => line.includes('"receive_loop_died"'));
    assert.ok(state.receiving && died === undefined, `the Python hub stopped receiving: ${died}`);
    const keyErrors = this.proc.lines.filter((line) => line.includes('"error": "KeyError"'));
    assert.deepEqual(keyErrors, [], "requests failed with KeyError on the Python hub");
  }

  async #op(request: { op: string }): Promise<Record<string, unknown>> {
    const from = this.proc.lines.length;
    this.proc.send(request);
    return await this.proc.waitJson((v) => v.op === request.op, 10_000, `op ${request.op}`, from);
  }
}

/** Starts a strict Python gibbs hub; by default binds it at once (see `bind`). */
export async function startPyHub(c: Cleanup, options: PyHubOptions = {}): Promise<PyHub> {
  const proc = python([
    "hub",
    "--port",
    String(options.port ?? 0),
    "--heartbeat",
    String(options.heartbeat ?? 0.5),
    "--resp-buffer",
    String(options.respBuffer ?? 4096),
  ]);
  c.add(() => proc.dispose());
  await proc.waitJson((v) => v.ready === true, PY_START_MS, "python hub ready");
  const hub = new PyHub(proc);
  if (options.bind ?? true) await hub.bind();
  return hub;
}

/**
 * Starts a Python gibbs 0.3 worker of `model` (tests/peers/gibbs_py.py's models) for the hub on
 * `port`, heartbeat 0.2 s; by default waits until the hub answered it.
 */
export async function startPyWorker(
  c: Cleanup,
  port: number,
  model: string,
  extra: string[] = [],
  waitReady = true,
): Promise<Proc> {
  const p = python([
    "worker",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--heartbeat",
    "0.2",
    "--model",
    model,
    ...extra,
  ]);
  c.add(() => p.dispose());
  if (waitReady) {
    await p.waitJson((v) => v.ready === true, PY_START_MS, `python ${model} worker ready`);
  }
  return p;
}

/**
 * Asserts that a Python gibbs worker is still running: gibbs's worker dies on any message from
 * the hub it cannot unpack as `["", msgpack([req_id, args, kwargs])]`.
 */
export function assertAlive(worker: Proc): void {
  assert.ok(
    worker.child.exitCode === null && worker.child.signalCode === null,
    `the Python worker died (exit ${worker.child.exitCode}/${worker.child.signalCode}):\n` +
      worker.stderr,
  );
}
