#!/usr/bin/python3
"""A Hub and a Worker that behave as gibbs 0.3's do, point by point, for interop tests.

Written from the protocol notes in /work/shared/design.md and from reading gibbs's
gibbs/hub.py and gibbs/worker.py (astariul/gibbs, 0.3.0.dev0 on main), not copied
from them. The point of this peer is to be as strict as the real thing: a test that
passes against it would pass against gibbs. What gibbs 0.3 does, and so this peer:

Hub
- Binds lazily: nothing listens until the first request() (the harness's
  {"op": "start"} runs the same first step earlier). Workers usually start first.
- The receive loop has no exception handling. A message with more than one frame
  after the routing id must be [delimiter, msgpack([req_id, code, result])]; one
  it cannot unpack that way (three frames, bad msgpack, a map with non-string
  keys, invalid UTF-8, the wrong arity, an unhashable req_id...) raises in the
  loop, the loop dies, and the hub never receives again: no pong, no response.
  The worker that sent it was still marked available first. Any single frame is
  a ping, answered [id, "", ""].
- The ready set is a dict keyed by routing id (a worker is in it at most once,
  whatever it sends), guarded by an asyncio.Condition. get_next_worker() waits
  once when the set is empty, then popitem()s without looking again: a waiter
  woken to an empty set raises KeyError. That happens when a worker sends two
  messages in a row while two requests wait, or when a new request takes the
  worker between a notify and the wake-up. Entries older than the heartbeat
  interval are dropped when met.
- Requests are pinned (at most resp_buffer_size; past that the oldest is
  forgotten). A request forgotten before it awaits its answer fails with
  KeyError (after it was sent: the worker computes it anyway); one forgotten
  while it awaits waits forever. A request that times out stays pinned, and its
  late answer is stored and never read: both leak.
- request(timeout, retries): asyncio.wait_for per attempt; each retry is a new
  request with a new req_id (retries -1: forever). Code 1 raises
  UserCodeException; any other code is a success.

Worker
- Builds the model first (a constructor that raises kills the process before
  any connection), then a REQ/REP socket pair on 127.0.0.1 whose REQ end the
  SIGINT/SIGTERM handler sends on (a second signal raises EFSM where the main
  code is), then the DEALER with a uuid4().hex routing id.
- Pings once on start; polls heartbeat_interval; on silence resets the socket
  (close, linger 0, a new DEALER, same id) after reset_after_n_miss unanswered
  pings, then pings. Any message from the hub clears the count; ["", ""] is a
  pong. Computes in the loop: sends nothing while it computes.
- A message that is not [delimiter, payload], or a payload that is not
  msgpack [req_id, args, kwargs], or a result msgpack cannot pack, kills the
  worker (traceback, exit 1). An exception in the model is answered with code 1
  and traceback.format_exc().
- On a signal: termination wins over a request that arrived at the same time
  (left unanswered); otherwise the request in hand is answered, then quit()
  without closing the socket or the context.

Worker:
    gibbs_py.py worker [--host H] [--port P] [--heartbeat S] [--reset-after N]
                       --model NAME [--args JSON_ARRAY] [--kwargs JSON_OBJECT] [-v]

    Models: echo, add, sleep, fail, ctor_fail, scaled, pid (see MODELS below).
    stdout: {"ready": true, "routing_id": "..."} once the hub first answered us,
            then {"event": "reset"} each time the socket is thrown away.

Hub:
    gibbs_py.py hub [--port P] [--heartbeat S] [--resp-buffer N] [-v]

    --port 0 picks a free port (when the hub binds). stdout: {"ready": true}
    once it reads stdin; {"event": "bound", "port": P} when it binds.
    stdin, one JSON value per line:
        {"id": ANY, "args": [...], "kwargs": {...}, "timeout": S|null, "retries": N}
            -> {"id": ANY, "ok": true, "result": R, "worker": "<id sent to>",
                "attempts": N, "sent": N}  (attempts started; attempts sent to a worker)
             | {"id": ANY, "ok": false, "error": "UserCodeException", "traceback": "...", ...}
             | {"id": ANY, "ok": false, "error": "timeout"|"KeyError"|..., "message": "...", ...}
        [request, request, ...]: started in one event-loop step, as
            asyncio.gather(hub.request(...), ...) would be in an application.
        {"op": "start"}   -> binds now, as the first request would -> {"op": "start", "port": P}
        {"op": "workers"} -> {"op": "workers", "workers": [{"id": "...", "age": S}, ...]}
        {"op": "state"}   -> {"op": "state", "bound": B, "receiving": B, "pinned": N,
                              "stored": N, "heard": N}  (pinned: requests still pinned;
                              stored: answers kept unread; heard: workers ever heard from)
        {"op": "close"}, or end of input -> exit 0 at once.
    Events: {"event": "receive_loop_died", "error": "..."} when the loop dies.

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
MS = 1000

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
    """gibbs 0.3's Worker.run(), in this process (see the module docstring)."""

    def __init__(self, model, host="localhost", port=DEFAULT_PORT,
                 heartbeat_interval=DEFAULT_HEARTBEAT_INTERVAL,
                 reset_after_n_miss=DEFAULT_RESET_AFTER_N_MISS):
        self.model = model
        self.identity = uuid.uuid4().hex
        self.endpoint = f"tcp://{host}:{port}"
        self.heartbeat_t = heartbeat_interval
        self.reset_n_miss = reset_after_n_miss
        self.waiting_pong = 0

    def dealer(self, context):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt_string(zmq.IDENTITY, self.identity)
        sock.connect(self.endpoint)
        return sock

    def termination_socket(self, context):
        # As gibbs: the handler sends on a REQ socket; the loop polls the REP end.
        # The REQ socket refuses a second send before a reply (EFSM), and the
        # handler does not catch that: a second signal raises where the main code is.
        trigger = context.socket(zmq.REQ)
        port = trigger.bind_to_random_port("tcp://127.0.0.1")

        def on_signal(signum, frame):
            log.info("signal %d: finishing the request in hand, then exiting", signum)
            trigger.send(PING)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        listener = context.socket(zmq.REP)
        listener.connect(f"tcp://localhost:{port}")
        return listener

    def ping(self, sock):
        sock.send(PING)
        self.waiting_pong += 1

    def run(self):
        context = zmq.Context()
        poller = zmq.Poller()
        term = self.termination_socket(context)
        poller.register(term, zmq.POLLIN)
        sock = self.dealer(context)
        poller.register(sock, zmq.POLLIN)
        log.info("worker %s connecting to %s", self.identity, self.endpoint)
        said_ready = False

        self.ping(sock)
        while True:
            events = dict(poller.poll(self.heartbeat_t * MS))
            if term in events:
                break  # even if a request arrived too: it stays unanswered
            if sock not in events:
                if self.waiting_pong >= self.reset_n_miss:
                    log.warning("hub silent after %d pings: resetting the socket", self.waiting_pong)
                    poller.unregister(sock)
                    sock.close(linger=0)
                    sock = self.dealer(context)
                    poller.register(sock, zmq.POLLIN)
                    self.waiting_pong = 0
                    emit({"event": "reset"})
                self.ping(sock)
                continue

            _, workload = sock.recv_multipart(zmq.NOBLOCK)  # any other shape: ValueError, death
            self.waiting_pong = 0
            if not said_ready:
                emit({"ready": True, "routing_id": self.identity})
                said_ready = True
            if workload == PONG:
                continue

            req_id, req_args, req_kwargs = msgpack.unpackb(workload)  # or death
            log.debug("request %s", req_id)
            try:
                res = self.model(*req_args, **req_kwargs)
            except Exception as e:
                log.warning("exception in model: %s(%s)", e.__class__.__name__, e)
                sock.send_multipart([b"", msgpack.packb([req_id, CODE_FAILURE, traceback.format_exc()])])
            else:
                sock.send_multipart([b"", msgpack.packb([req_id, CODE_SUCCESS, res])])  # or death

        log.info("worker %s shut down", self.identity)
        # gibbs ends with quit(): the socket and the context are never closed, so a
        # response still queued in libzmq when the process ends may not leave.
        sys.exit(0)


def run_worker(opts):
    model_cls = MODELS[opts.model]
    args = from_tagged(json.loads(opts.args))
    kwargs = from_tagged(json.loads(opts.kwargs))
    model = model_cls(*args, **kwargs)  # raises before any socket exists, as gibbs
    Worker(model, host=opts.host, port=opts.port, heartbeat_interval=opts.heartbeat,
           reset_after_n_miss=opts.reset_after).run()
    return 0


# ---------------------------------------------------------------- hub


class WorkerManager:
    """gibbs 0.3's ready set: a dict of routing id -> last heard, under a Condition.

    recheck=True is the one friendlier behaviour on offer (for the benchmark's
    anchor, never by default): a waiter woken to an empty set waits again
    instead of raising KeyError.
    """

    def __init__(self, heartbeat_interval, recheck=False):
        self.heartbeat_t = heartbeat_interval
        self.recheck = recheck
        self.w_ts = {}
        self.w_access = asyncio.Condition()

    async def reckon(self, address):
        async with self.w_access:
            self.w_ts[address] = time.time()
            self.w_access.notify()

    async def get_next_worker(self):
        async with self.w_access:
            alive = False
            while not alive:
                if not self.w_ts:
                    await self.w_access.wait()
                    while self.recheck and not self.w_ts:
                        await self.w_access.wait()
                # Not checked again after the wait: an empty dict raises KeyError here.
                address, ts = self.w_ts.popitem()
                alive = time.time() - ts < self.heartbeat_t
            return address


class RequestManager:
    """gibbs 0.3's pinned requests: an Event per req_id, answers stored beside."""

    def __init__(self, resp_buffer_size):
        self.resp_buffer_size = resp_buffer_size
        self.responses = {}
        self.req_states = {}

    def pin(self, req_id):
        self.req_states[req_id] = asyncio.Event()
        if len(self.req_states) > self.resp_buffer_size:
            oldest = list(self.req_states)[0]  # as gibbs: O(n) per request once overflowing
            log.warning("response buffer overflow (>%d): forgetting %s", self.resp_buffer_size, oldest)
            self.req_states.pop(oldest)
            self.responses.pop(oldest, None)

    async def wait_for(self, req_id):
        if req_id not in self.req_states:
            raise KeyError(f"Request #{req_id} was not pinned, or was removed because of buffer overflow")
        # Forgotten from here on, nothing sets this event: the wait never ends.
        await self.req_states[req_id].wait()
        code, res = self.responses.pop(req_id)
        self.req_states.pop(req_id)
        return code, res

    def store(self, req_id, code, res):
        if req_id in self.req_states:  # an unhashable req_id raises TypeError here
            self.responses[req_id] = (code, res)
            self.req_states[req_id].set()
        else:
            log.warning("response to a forgotten request %s: ignored", req_id)


class UserCodeException(Exception):
    def __init__(self, tb):
        super().__init__(f"Exception raised in user-defined code. Traceback :\n{tb}")
        self.traceback = tb


class Hub:
    """gibbs 0.3's Hub (see the module docstring). on_event observes, never changes, it."""

    def __init__(self, port=DEFAULT_PORT, heartbeat_interval=DEFAULT_HEARTBEAT_INTERVAL,
                 resp_buffer_size=RESPONSE_BUFFER_SIZE, on_event=None):
        self.port = port
        self.heartbeat_t = heartbeat_interval
        self.socket = None
        self.w_manager = None
        self.req_manager = RequestManager(resp_buffer_size)
        self.on_event = on_event or (lambda obj: None)
        self.receive_task = None
        self.heard = set()  # observation only: workers ever heard from

    async def receive_loop(self):
        while True:
            address, *frames = await self.socket.recv_multipart()
            self.heard.add(address)
            await self.w_manager.reckon(address)  # whatever it sent, it is ready for more
            if len(frames) == 1:
                await self.socket.send_multipart([address, b"", PONG])
                continue
            _, resp = frames
            req_id, code, res = msgpack.unpackb(resp)
            self.req_manager.store(req_id, code, res)

    def _start_if_not_started(self):
        if self.socket is not None:
            return
        context = zmq.asyncio.Context()
        self.socket = context.socket(zmq.ROUTER)
        self.socket.bind(f"tcp://*:{self.port}")
        self.port = int(self.socket.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
        self.w_manager = WorkerManager(self.heartbeat_t)
        self.receive_task = asyncio.get_running_loop().create_task(self.receive_loop())
        self.receive_task.add_done_callback(self._receive_loop_ended)
        log.info("bound tcp://*:%d", self.port)
        self.on_event({"event": "bound", "port": self.port})

    def _receive_loop_ended(self, task):
        # gibbs never looks at this task: its exception is only logged at exit.
        if task.cancelled():
            return
        error = task.exception()
        log.error("receive loop died: %r; this hub never receives again", error)
        self.on_event({"event": "receive_loop_died", "error": f"{type(error).__name__}: {error}"})

    @property
    def receiving(self):
        return self.receive_task is not None and not self.receive_task.done()

    async def _request(self, args, kwargs, trace):
        self._start_if_not_started()
        trace["attempts"] = trace.get("attempts", 0) + 1
        req_id = uuid.uuid4().hex
        self.req_manager.pin(req_id)
        address = await self.w_manager.get_next_worker()
        trace["sent"] = trace.get("sent", 0) + 1
        trace["worker"] = address
        await self.socket.send_multipart([address, b"", msgpack.packb([req_id, args, kwargs])])
        code, res = await self.req_manager.wait_for(req_id)
        if code == CODE_FAILURE:
            raise UserCodeException(res)
        return res

    async def request_traced(self, args, kwargs, timeout=None, retries=0, trace=None):
        """request(*args, gibbs_timeout=timeout, gibbs_retries=retries, **kwargs),
        recording in trace the attempts started, those sent, and the worker the last
        one went to."""
        trace = {} if trace is None else trace
        try:
            return await asyncio.wait_for(self._request(tuple(args), kwargs, trace), timeout=timeout)
        except asyncio.TimeoutError:
            if retries == 0:
                log.error("no response within %ss", timeout)
                raise
            left = max(retries - 1, -1)
            log.warning("no response within %ss, retrying %d more times", timeout, left)
            return await self.request_traced(args, kwargs, timeout, left, trace)

    async def request(self, *args, gibbs_timeout=None, gibbs_retries=0, **kwargs):
        return await self.request_traced(args, kwargs, gibbs_timeout, gibbs_retries)


async def serve_hub(opts):
    hub = Hub(port=opts.port, heartbeat_interval=opts.heartbeat,
              resp_buffer_size=opts.resp_buffer, on_event=emit)
    loop = asyncio.get_running_loop()
    lines = asyncio.Queue()

    def read_stdin():  # on a thread: works for pipes, ttys and files alike
        for raw in sys.stdin.buffer:
            loop.call_soon_threadsafe(lines.put_nowait, raw)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    emit({"ready": True})

    async def handle(req):
        rid = req.get("id")
        trace = {}
        try:
            res = await hub.request_traced(
                from_tagged(req.get("args", [])), from_tagged(req.get("kwargs", {})),
                req.get("timeout"), req.get("retries", 0), trace)
            out = {"id": rid, "ok": True, "result": to_tagged(res)}
        except UserCodeException as e:
            out = {"id": rid, "ok": False, "error": "UserCodeException", "traceback": e.traceback}
        except asyncio.TimeoutError:
            out = {"id": rid, "ok": False, "error": "timeout", "message": "no response within the timeout"}
        except Exception as e:
            out = {"id": rid, "ok": False, "error": type(e).__name__, "message": str(e)}
        out["attempts"] = trace.get("attempts", 0)
        out["sent"] = trace.get("sent", 0)
        if "worker" in trace:
            out["worker"] = routing_id_text(trace["worker"])
        emit(out)

    tasks = set()

    def start(req):
        task = asyncio.create_task(handle(req))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    while True:
        raw = await lines.get()
        if raw is None:
            break
        if not raw.strip():
            continue
        try:
            req = json.loads(raw)
            if isinstance(req, list):
                if not all(isinstance(r, dict) for r in req):
                    raise ValueError("a list of requests holds a non-object")
            elif not isinstance(req, dict):
                raise ValueError("not an object or a list of objects")
        except ValueError as e:
            emit({"ok": False, "error": "bad_request", "message": str(e)})
            continue
        if isinstance(req, list):
            for r in req:  # no await in between: one step, as asyncio.gather
                start(r)
            continue
        op = req.get("op", "request")
        if op == "close":
            break
        if op == "start":
            hub._start_if_not_started()
            emit({"op": "start", "port": hub.port})
        elif op == "workers":
            now = time.time()
            ready = hub.w_manager.w_ts.items() if hub.w_manager else []
            emit({"op": "workers", "workers": [{"id": routing_id_text(a), "age": now - ts} for a, ts in ready]})
        elif op == "state":
            emit({"op": "state", "bound": hub.socket is not None, "receiving": hub.receiving,
                  "pinned": len(hub.req_manager.req_states), "stored": len(hub.req_manager.responses),
                  "heard": len(hub.heard)})
        elif op == "request":
            start(req)
        else:
            emit({"ok": False, "error": "bad_request", "message": f"unknown op {op!r}"})
    # Requests still waiting (some forever, as in gibbs) end with the process.
    os._exit(0)


# ---------------------------------------------------------------- CLI


def parse_args(argv):
    p = argparse.ArgumentParser(description="gibbs 0.3 hub/worker test peer, as strict as gibbs")
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
