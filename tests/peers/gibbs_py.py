#!/usr/bin/python3
"""A Hub and a Worker speaking the gibbs 0.3 wire protocol, for interop tests.

Written from the protocol notes in /work/shared/design.md and from reading gibbs'
hub.py and worker.py (astariul/gibbs, version 0.3.0.dev0 on main, whose gibbs/
package is unchanged since the 0.2.0 release). It reproduces what gibbs does on
the wire, including its quirks, and fixes only the defects that would make a
test peer hang or crash for no reason (each marked "Deviation" below).

Worker:
    gibbs_py.py worker [--host H] [--port P] [--heartbeat S] [--reset-after N]
                       --model NAME [--args JSON_ARRAY] [--kwargs JSON_OBJECT] [-v]

    Models: echo, add, sleep, fail, ctor_fail, scaled, pid (see MODELS below).
    stdout: {"ready": true, "routing_id": "..."} once the hub first answered us
            (the hub then knows this worker), then {"event": "reset"} each time
            the socket is thrown away and reconnected after missed pongs.
    SIGINT/SIGTERM: the request in hand is finished and answered, then exit 0.

Hub:
    gibbs_py.py hub [--port P] [--heartbeat S] [--resp-buffer N] [-v]

    --port 0 picks a free port. stdout: {"ready": true, "port": P} once bound.
    stdin, one JSON object per line, each handled concurrently:
        {"id": ANY, "args": [...], "kwargs": {...}, "timeout": S|null, "retries": N}
            -> {"id": ANY, "ok": true, "result": R, "worker": "<routing id>"}
             | {"id": ANY, "ok": false, "error": "UserCodeException", "traceback": "..."}
             | {"id": ANY, "ok": false, "error": "timeout"|"KeyError"|..., "message": "..."}
        {"op": "workers"} -> {"workers": [{"id": "...", "age": S}, ...]} (available set)
        {"op": "close"}   -> exit 0 at once. On EOF the hub exits once every
                             request read so far has been answered.
    Other stdout lines carry an "event" key: "bad_message", "unknown_response".

Tagged JSON (args, kwargs, results; also --args/--kwargs of the worker), because
JSON alone cannot carry what msgpack can:
    {"$bytes": "<base64>"}   bytes (msgpack bin)
    {"$int": "<decimal>"}    integers outside +-(2^53 - 1)
    {"$float": 1.0}          integral floats; also "NaN", "Infinity", "-Infinity"
    {"$map": [[k, v], ...]}  maps whose keys are not all strings, or that would
                             look like a tag
    {"$ext": [code, "<base64>"]}  msgpack extension types
"""

import argparse
import asyncio
import base64
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid

import msgpack
import zmq
import zmq.asyncio

DEFAULT_PORT = 5019
DEFAULT_HEARTBEAT_INTERVAL = 1.0
DEFAULT_RESET_AFTER_N_MISS = 2
RESPONSE_BUFFER_SIZE = 4096
CODE_SUCCESS = 0
CODE_FAILURE = 1
PING = b""
PONG = b""

log = logging.getLogger("gibbs_py")


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def routing_id_text(rid):
    """Routing ids as text: gibbs workers use hex strings; anything else as hex:..."""
    try:
        text = rid.decode("utf-8")
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    return "hex:" + rid.hex()


# ---------------------------------------------------------------- tagged JSON

MAX_SAFE_INT = 2**53 - 1
TAGS = ("$bytes", "$int", "$float", "$map", "$ext")


def to_tagged(v):
    """A msgpack-decoded value -> a JSON-able value (see the module docstring)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return {"$int": str(v)} if abs(v) > MAX_SAFE_INT else v
    if isinstance(v, float):
        if math.isnan(v):
            return {"$float": "NaN"}
        if math.isinf(v):
            return {"$float": "Infinity" if v > 0 else "-Infinity"}
        return {"$float": v} if v.is_integer() else v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, (list, tuple)):
        return [to_tagged(x) for x in v]
    if isinstance(v, dict):
        plain = all(isinstance(k, str) for k in v) and not (len(v) == 1 and next(iter(v)) in TAGS)
        if plain:
            return {k: to_tagged(x) for k, x in v.items()}
        return {"$map": [[to_tagged(k), to_tagged(x)] for k, x in v.items()]}
    if isinstance(v, msgpack.ExtType):
        return {"$ext": [v.code, base64.b64encode(v.data).decode("ascii")]}
    raise TypeError(f"cannot encode {type(v).__name__} as tagged JSON")


def _hashable(v):
    # msgpack itself decodes array keys to tuples when it accepts them.
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def from_tagged(v):
    """The inverse of to_tagged."""
    if isinstance(v, list):
        return [from_tagged(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1:
            (tag, x), = v.items()
            if tag == "$bytes":
                return base64.b64decode(x)
            if tag == "$int":
                return int(x)
            if tag == "$float":
                return float(x)  # float("NaN"), float("Infinity") work too
            if tag == "$map":
                return {_hashable(from_tagged(k)): from_tagged(y) for k, y in x}
            if tag == "$ext":
                return msgpack.ExtType(int(x[0]), base64.b64decode(x[1]))
        return {k: from_tagged(x) for k, x in v.items()}
    return v


# ---------------------------------------------------------------- models


class Echo:
    """Returns [args, kwargs]: the caller sees exactly what arrived."""

    def __call__(self, *args, **kwargs):
        return [list(args), kwargs]


class Add:
    def __call__(self, *args, **kwargs):
        return sum(args) + kwargs.get("offset", 0)


class Sleep:
    def __call__(self, *args, **kwargs):
        time.sleep(args[0])
        return args[0]


class Fail:
    def __call__(self, *args, **kwargs):
        raise ValueError("boom: " + repr(args))


class CtorFail:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("ctor_fail: simulated crash in __init__()")


class Scaled:
    def __init__(self, factor):
        self.factor = factor

    def __call__(self, *args, **kwargs):
        return args[0] * self.factor


class Pid:
    def __call__(self, *args, **kwargs):
        return os.getpid()


MODELS = {
    "echo": Echo,
    "add": Add,
    "sleep": Sleep,
    "fail": Fail,
    "ctor_fail": CtorFail,
    "scaled": Scaled,
    "pid": Pid,
}


# ---------------------------------------------------------------- worker


class Worker:
    """A gibbs worker: DEALER, routing id uuid4().hex, ping/pong heartbeat.

    Mirrors gibbs.worker.Worker.run():
    - one ping right after connecting ("tell the hub we are ready");
    - poll for heartbeat_interval; on silence, reset the socket if
      waiting_pong >= reset_after_n_miss (close with linger 0, new DEALER, same
      routing id, waiting_pong = 0), then ping again (waiting_pong += 1);
    - any message from the hub sets waiting_pong = 0; ["", ""] is a pong;
    - a request is computed in the poll loop itself, so nothing (not even a
      ping) is sent while computing;
    - the response is [ "", msgpack([req_id, code, result]) ], code 1 with
      traceback.format_exc() when the model raised an Exception.
    Like gibbs, a malformed message from the hub, or a result msgpack cannot
    pack, is not caught: the worker dies with a traceback (exit status 1).
    """

    def __init__(self, model, host="localhost", port=DEFAULT_PORT,
                 heartbeat_interval=DEFAULT_HEARTBEAT_INTERVAL,
                 reset_after_n_miss=DEFAULT_RESET_AFTER_N_MISS):
        self.model = model
        self.identity = uuid.uuid4().hex
        self.endpoint = f"tcp://{host}:{port}"
        self.heartbeat_t = heartbeat_interval
        self.reset_n_miss = reset_after_n_miss
        self.waiting_pong = 0
        self.stopping = False

    def create_socket(self):
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt_string(zmq.IDENTITY, self.identity)
        sock.connect(self.endpoint)
        return sock

    def ping(self):
        self.sock.send(PING)
        self.waiting_pong += 1

    def install_signal_handlers(self):
        # gibbs sends a byte on a REQ->REP socket pair from its signal handler;
        # a wakeup fd does the same job: the signal makes poll() return, and the
        # flag says why. (gibbs' REQ socket raises EFSM on a second signal; a
        # flag does not care.)
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)

        def on_signal(signum, frame):
            log.info("signal %d: finishing, then exiting", signum)
            self.stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

    def run(self):
        # As in gibbs, signal handling starts after the model is built: a signal
        # during construction kills the process the default way.
        self.install_signal_handlers()
        self.ctx = zmq.Context()
        self.poller = zmq.Poller()
        self.poller.register(self.wake_r.fileno(), zmq.POLLIN)
        self.sock = self.create_socket()
        self.poller.register(self.sock, zmq.POLLIN)
        log.info("worker %s connecting to %s", self.identity, self.endpoint)

        ready_said = False
        self.ping()
        while True:
            events = dict(self.poller.poll(self.heartbeat_t * 1000))

            # Like gibbs, termination wins over a request that arrived at the
            # same time: that request is left unanswered (the hub's timeout and
            # retry recover it).
            if self.stopping:
                break
            if self.wake_r.fileno() in events:
                try:
                    self.wake_r.recv(4096)
                except BlockingIOError:
                    pass

            if self.sock in events:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
                self.waiting_pong = 0
                if not ready_said:
                    emit({"ready": True, "routing_id": self.identity})
                    ready_said = True
                _, workload = frames  # gibbs: ValueError (crash) on any other shape
            elif self.wake_r.fileno() in events:
                continue  # woken by a signal that did not ask us to stop
            else:
                log.debug("nothing for %ss (%d pings unanswered)", self.heartbeat_t, self.waiting_pong)
                if self.waiting_pong >= self.reset_n_miss:
                    log.warning("hub silent after %d pings: resetting the socket", self.waiting_pong)
                    self.poller.unregister(self.sock)
                    self.sock.close(linger=0)
                    self.sock = self.create_socket()
                    self.poller.register(self.sock, zmq.POLLIN)
                    self.waiting_pong = 0
                    emit({"event": "reset"})
                self.ping()
                continue

            if workload == PONG:
                continue

            req_id, req_args, req_kwargs = msgpack.unpackb(workload)
            log.debug("request %s", req_id)
            try:
                res = self.model(*req_args, **req_kwargs)
            except Exception as e:
                log.warning("exception in model: %s(%s)", e.__class__.__name__, e)
                self.sock.send_multipart([b"", msgpack.packb([req_id, CODE_FAILURE, traceback.format_exc()])])
            else:
                self.sock.send_multipart([b"", msgpack.packb([req_id, CODE_SUCCESS, res])])

        log.info("worker %s shut down", self.identity)
        # Give the last response time to leave before the process ends.
        self.sock.close(linger=2000)
        self.ctx.term()


def run_worker(opts):
    model_cls = MODELS[opts.model]
    args = from_tagged(json.loads(opts.args))
    kwargs = from_tagged(json.loads(opts.kwargs))
    # A constructor that raises kills the worker with its traceback on stderr
    # and a non-zero status, before any connection, as gibbs does.
    model = model_cls(*args, **kwargs)
    Worker(model, host=opts.host, port=opts.port, heartbeat_interval=opts.heartbeat,
           reset_after_n_miss=opts.reset_after).run()
    return 0


# ---------------------------------------------------------------- hub


class WorkerManager:
    """The set of available workers, each stamped with when it last spoke.

    As in gibbs: reckon() (re)marks a worker available; get_next_worker() takes
    the most recently added entry (gibbs uses dict.popitem(), i.e. LIFO),
    dropping entries older than heartbeat_interval, and removes it from the set.
    Deviation: gibbs waits on an asyncio.Condition once and then pops, which
    raises KeyError when another request took the worker first; here requests
    wait in a FIFO queue until a fresh worker is really there.
    """

    def __init__(self, heartbeat_interval):
        self.heartbeat_t = heartbeat_interval
        self.w_ts = {}
        self.waiters = []  # futures, FIFO

    def reckon(self, address):
        self.w_ts[address] = time.time()
        self._wake_one()

    def _wake_one(self):
        while self.waiters:
            fut = self.waiters.pop(0)
            if not fut.done():
                fut.set_result(None)
                return

    def _pop_fresh(self):
        now = time.time()
        while self.w_ts:
            address, ts = self.w_ts.popitem()
            if now - ts < self.heartbeat_t:
                return address
            log.debug("dropping stale worker %s", address)
        return None

    async def get_next_worker(self):
        first = True
        while True:
            # Newcomers queue behind earlier waiters instead of overtaking them.
            if not (first and self.waiters):
                address = self._pop_fresh()
                if address is not None:
                    return address
            first = False
            fut = asyncio.get_running_loop().create_future()
            self.waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # Woken and cancelled at once (e.g. a timeout): pass the wake-up on.
                if fut.done() and not fut.cancelled():
                    self._wake_one()
                else:
                    fut.cancel()
                raise

    def available(self):
        now = time.time()
        return [{"id": routing_id_text(a), "age": now - ts} for a, ts in self.w_ts.items()]


class UserCodeException(Exception):
    def __init__(self, tb):
        super().__init__(f"Exception raised in user-defined code. Traceback :\n{tb}")
        self.traceback = tb


class Hub:
    """A gibbs hub: ROUTER bound on tcp://*:port.

    As in gibbs.hub.Hub: every message from a worker marks it available; a
    message with one frame after the routing id is a ping, answered with
    [id, "", ""]; one with two frames is a response [id, "", msgpack([req_id,
    code, result])], decoded with msgpack's defaults (raw=False,
    strict_map_key=True). A request is pinned (at most resp_buffer_size pinned,
    the oldest forgotten), sent to the next available worker as
    [id, "", msgpack([uuid4().hex, args, kwargs])] and awaited; code 1 raises
    UserCodeException; any other code is a success. request() adds a timeout
    and retries (-1: forever), each attempt with a new req_id.
    Deviations, none visible to a worker: a malformed message or undecodable
    response is reported (event line) and skipped where gibbs' receive loop would
    die; a request forgotten while already awaited fails with KeyError at once
    where gibbs waits forever; timed-out requests are unpinned.
    """

    def __init__(self, port=DEFAULT_PORT, heartbeat_interval=DEFAULT_HEARTBEAT_INTERVAL,
                 resp_buffer_size=RESPONSE_BUFFER_SIZE, on_event=None):
        self.ctx = zmq.asyncio.Context()
        self.socket = self.ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(f"tcp://*:{port}")
        self.port = int(self.socket.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
        self.w_manager = WorkerManager(heartbeat_interval)
        self.resp_buffer_size = resp_buffer_size
        self.pending = {}  # req_id -> Future[(code, result, worker)], oldest first
        self.seen_workers = set()
        self.on_event = on_event or (lambda obj: None)
        self.recv_task = asyncio.get_running_loop().create_task(self.receive_loop())

    async def receive_loop(self):
        while True:
            address, *frames = await self.socket.recv_multipart()
            self.seen_workers.add(address)
            # Whatever it sent, the worker is ready for more.
            self.w_manager.reckon(address)

            if len(frames) == 1:
                await self.socket.send_multipart([address, b"", PONG])
                continue
            try:
                _, resp = frames
                req_id, code, res = msgpack.unpackb(resp)
            except Exception as e:  # gibbs: its receive loop dies here
                log.error("bad message from %s: %r", address, e)
                self.on_event({"event": "bad_message", "worker": routing_id_text(address),
                               "error": f"{type(e).__name__}: {e}"})
                continue

            fut = self.pending.get(req_id)
            if fut is not None and not fut.done():
                fut.set_result((code, res, address))
            else:
                log.warning("response to unknown or forgotten request %s: ignored", req_id)
                self.on_event({"event": "unknown_response", "worker": routing_id_text(address),
                               "req_id": req_id if isinstance(req_id, str) else repr(req_id)})

    def _pin(self, req_id):
        fut = asyncio.get_running_loop().create_future()
        self.pending[req_id] = fut
        if len(self.pending) > self.resp_buffer_size:
            oldest = next(iter(self.pending))
            log.warning("response buffer overflow (>%d): forgetting %s", self.resp_buffer_size, oldest)
            old = self.pending.pop(oldest)
            if not old.done():
                old.set_exception(KeyError(
                    f"Request #{oldest} was not pinned, or was removed because of buffer overflow"))
        return fut

    async def _request(self, args, kwargs):
        req_id = uuid.uuid4().hex
        fut = self._pin(req_id)
        try:
            address = await self.w_manager.get_next_worker()
            # Packed before sending, as gibbs does: an unpackable argument fails
            # the request without using the worker... which then stays out of
            # the available set until it speaks again (as in gibbs).
            payload = msgpack.packb([req_id, list(args), kwargs])
            await self.socket.send_multipart([address, b"", payload])
            # An evicted request has still been sent (as in gibbs), then fails.
            code, res, worker = await fut
        finally:
            if self.pending.get(req_id) is fut:
                del self.pending[req_id]
        if code == CODE_FAILURE:
            raise UserCodeException(res)
        return res, worker

    async def request_with_worker(self, args=(), kwargs=None, timeout=None, retries=0):
        """Like gibbs' Hub.request, also telling which worker answered."""
        kwargs = kwargs or {}
        while True:
            try:
                return await asyncio.wait_for(self._request(args, kwargs), timeout=timeout)
            except asyncio.TimeoutError:
                if retries == 0:
                    raise
                retries = max(retries - 1, -1)
                log.warning("no response within %ss, retrying (%d left)", timeout, retries)

    async def request(self, *args, gibbs_timeout=None, gibbs_retries=0, **kwargs):
        res, _ = await self.request_with_worker(args, kwargs, gibbs_timeout, gibbs_retries)
        return res

    def close(self):
        self.recv_task.cancel()
        self.socket.close(linger=0)
        self.ctx.term()


async def serve_hub(opts):
    hub = Hub(port=opts.port, heartbeat_interval=opts.heartbeat,
              resp_buffer_size=opts.resp_buffer, on_event=emit)
    emit({"ready": True, "port": hub.port})

    # stdin is read on a thread (works for pipes, ttys and files alike).
    loop = asyncio.get_running_loop()
    lines = asyncio.Queue()

    def read_stdin():
        for raw in sys.stdin.buffer:
            loop.call_soon_threadsafe(lines.put_nowait, raw)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()

    async def handle(req):
        rid = req.get("id")
        try:
            res, worker = await hub.request_with_worker(
                from_tagged(req.get("args", [])), from_tagged(req.get("kwargs", {})),
                req.get("timeout"), req.get("retries", 0))
            out = {"id": rid, "ok": True, "result": to_tagged(res), "worker": routing_id_text(worker)}
        except UserCodeException as e:
            out = {"id": rid, "ok": False, "error": "UserCodeException", "traceback": e.traceback}
        except asyncio.TimeoutError:
            out = {"id": rid, "ok": False, "error": "timeout", "message": "no response within the timeout"}
        except Exception as e:
            out = {"id": rid, "ok": False, "error": type(e).__name__, "message": str(e)}
        emit(out)

    tasks = set()
    while True:
        raw = await lines.get()
        if raw is None:
            break
        if not raw.strip():
            continue
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError as e:
            emit({"ok": False, "error": "bad_request", "message": str(e)})
            continue
        op = req.get("op", "request")
        if op == "close":
            break
        if op == "workers":
            emit({"workers": hub.w_manager.available()})
            continue
        task = asyncio.create_task(handle(req))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    if raw is None and tasks:  # EOF: answer what was asked before leaving
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in tasks:
        t.cancel()
    hub.close()
    return 0


# ---------------------------------------------------------------- CLI


def parse_args(argv):
    p = argparse.ArgumentParser(description="gibbs 0.3 protocol hub/worker test peer")
    sub = p.add_subparsers(dest="cmd", required=True)

    w = sub.add_parser("worker")
    w.add_argument("--host", default="localhost")
    w.add_argument("--port", type=int, default=DEFAULT_PORT)
    w.add_argument("--heartbeat", type=float, default=DEFAULT_HEARTBEAT_INTERVAL, metavar="S")
    w.add_argument("--reset-after", type=int, default=DEFAULT_RESET_AFTER_N_MISS, metavar="N")
    w.add_argument("--model", required=True, choices=sorted(MODELS))
    w.add_argument("--args", default="[]", metavar="JSON_ARRAY")
    w.add_argument("--kwargs", default="{}", metavar="JSON_OBJECT")
    w.add_argument("-v", "--verbose", action="store_true")

    h = sub.add_parser("hub")
    h.add_argument("--port", type=int, default=DEFAULT_PORT)
    h.add_argument("--heartbeat", type=float, default=DEFAULT_HEARTBEAT_INTERVAL, metavar="S")
    h.add_argument("--resp-buffer", type=int, default=RESPONSE_BUFFER_SIZE, metavar="N")
    h.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if opts.verbose else logging.INFO,
        format=f"%(asctime)s gibbs_py {opts.cmd}[{os.getpid()}] %(levelname)s %(message)s",
    )
    if opts.cmd == "worker":
        return run_worker(opts)
    return asyncio.run(serve_hub(opts))


if __name__ == "__main__":
    sys.exit(main())
