#!/usr/bin/python3
"""Anchor for the hub benchmark: a Python gibbs 0.3 hub with 2 Python gibbs 0.3 workers.

Runs the strict gibbs 0.3 hub of tests/peers/gibbs_py.py in this process
(asyncio + zmq.asyncio and gibbs's own dispatch: the Condition-guarded ready
dict, pinned requests) and two `gibbs_py.py worker --model add` processes on a
free port, warms up, then measures
  (a) round trips per second with 64 requests in flight, for ~3 s;
  (b) latency of 2000 sequential requests, one at a time (p50, p99).
With more requests than idle workers gibbs 0.3's ready set raises KeyError
(see the peer's docstring), so (a) runs twice: first with that one race fixed
(a woken waiter re-checks the set: the anchor, kinder to Python than gibbs
is), then as gibbs 0.3 is, where a caller that gets a KeyError asks again, as
an application would have to; those are counted, not hidden (strict_*).
Sequential requests (b) never race: gibbs as it is.
Prints one JSON line:
  {"name": "python-gibbs-protocol", "req_per_s": ..., "p50_us": ..., "p99_us": ...,
   "strict_req_per_s": ..., "strict_answered": N, "strict_key_errors": N, "strict_hung": N}

    /usr/bin/python3 bench/gibbs_py_bench.py [--seconds 3] [--concurrency 64] [--sequential 2000]

Bounded in time (a watchdog stops it after 40 s) and kills its workers on exit.
"""

import argparse
import asyncio
import importlib.util
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "..", "tests", "peers", "gibbs_py.py")
WATCHDOG_S = 40
N_WORKERS = 2


def load_peer_module():
    spec = importlib.util.spec_from_file_location("gibbs_py", PEER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def percentile(sorted_values, q):
    # Nearest-rank percentile.
    rank = math.ceil(q * len(sorted_values))
    return sorted_values[min(len(sorted_values), max(1, rank)) - 1]


async def bench(opts, gibbs_py, workers):
    hub = gibbs_py.Hub(port=0)
    hub._start_if_not_started()  # what its first request() does: bind, start receiving
    for _ in range(N_WORKERS):
        workers.append(subprocess.Popen(
            [sys.executable, PEER, "worker", "--host", "127.0.0.1", "--port", str(hub.port), "--model", "add"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        ))

    # Wait until both workers have spoken to the hub.
    deadline = time.monotonic() + 10
    while len(hub.heard) < N_WORKERS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(hub.heard)} of {N_WORKERS} workers showed up")
        await asyncio.sleep(0.01)

    async def flood(seconds, concurrency):
        """Requests/s answered, answered, KeyErrors, requests still waiting 2 s after the end."""
        counts = {"done": 0, "key_errors": 0}
        stop_at = time.perf_counter() + seconds

        async def one_client():
            while time.perf_counter() < stop_at:
                try:
                    assert await hub.request(1, 2) == 3
                except KeyError:
                    counts["key_errors"] += 1  # an application would ask again
                    continue
                counts["done"] += 1

        t0 = time.perf_counter()
        lanes = [asyncio.ensure_future(one_client()) for _ in range(concurrency)]
        # A request evicted from the buffer while awaited (gibbs 0.3) would wait forever.
        _, hung = await asyncio.wait(lanes, timeout=seconds + 2)
        for lane in hung:
            lane.cancel()
        elapsed = time.perf_counter() - t0 if not hung else seconds
        return counts["done"] / elapsed, counts["done"], counts["key_errors"], len(hung)

    # Warm-up: both workers, both code paths.
    hub.w_manager.recheck = True
    await flood(0.5, opts.concurrency)
    for _ in range(200):
        await hub.request(1, 2)

    # The anchor: gibbs's dispatch with its one race fixed (no KeyError); one at a time (no race:
    # gibbs as it is); then gibbs as it is under load, last, since its KeyErrors leak pins.
    req_per_s, _, _, _ = await flood(opts.seconds, opts.concurrency)
    hub.w_manager.recheck = False
    lat = []
    for _ in range(opts.sequential):
        t0 = time.perf_counter_ns()
        await hub.request(1, 2)
        lat.append(time.perf_counter_ns() - t0)
    lat.sort()

    strict_rate, strict_done, key_errors, hung = await flood(opts.seconds, opts.concurrency)

    hub.receive_task.cancel()
    return {
        "name": "python-gibbs-protocol",
        "req_per_s": round(req_per_s),
        "p50_us": round(percentile(lat, 0.50) / 1000, 1),
        "p99_us": round(percentile(lat, 0.99) / 1000, 1),
        "strict_req_per_s": round(strict_rate),
        "strict_answered": strict_done,
        "strict_key_errors": key_errors,
        "strict_hung": hung,
    }


def stop_workers(workers):
    for p in workers:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)  # graceful: they are idle by now
    for p in workers:
        try:
            p.wait(timeout=2)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--sequential", type=int, default=2000)
    opts = ap.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    # gibbs 0.3 logs each forgotten request (thousands, once KeyErrors leak pins): errors only.
    logging.getLogger("gibbs_py").setLevel(logging.ERROR)
    gibbs_py = load_peer_module()
    workers = []
    # SIGTERM to the bench becomes an exception, so that `finally` kills the workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = asyncio.run(asyncio.wait_for(bench(opts, gibbs_py, workers), WATCHDOG_S))
    finally:
        stop_workers(workers)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
