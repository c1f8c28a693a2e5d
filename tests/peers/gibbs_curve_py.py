#!/usr/bin/python3
"""A gibbs 0.3 worker and hub on pyzmq with CURVE, for the security interop tests.

Python gibbs itself has no option for CURVE; these speak its wire protocol (see
/work/shared/design.md) over a socket that has one, as any pyzmq-based gibbs peer could.

Worker:
    gibbs_curve_py.py worker --connect EP --server-key Z85 --secret-key Z85 [--heartbeat S]
    Model: add (sums its positional arguments). stdout: {"ready": true, "routing_id": "..."}
    once the hub first answered. Runs until stdin closes.

Hub:
    gibbs_curve_py.py hub --bind EP --secret-key Z85 [--allow Z85 ...]
    A ROUTER with CURVE_SERVER; with --allow, a ZAP handler admits only those worker keys.
    stdout: {"ready": true, "endpoint": "..."} once bound.
    stdin, one JSON object per line: {"id": ANY, "args": [...]} sends a request to a worker
    that pinged (waiting for one, up to 10 s) -> {"id": ANY, "ok": true, "result": R} or
    {"id": ANY, "ok": false, "error": "..."}. EOF: exit.
"""

import argparse
import json
import os
import sys
import time
import uuid

import msgpack
import zmq
from zmq.auth.thread import ThreadAuthenticator


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class AllowList:
    def __init__(self, keys):
        self.keys = {k.encode("ascii") for k in keys}

    def callback(self, domain, key):
        # pyzmq passes the key as Z85 already (raw 32 bytes in some versions).
        return (zmq.utils.z85.encode(key) if len(key) == 32 else key) in self.keys


def worker(opts):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    identity = uuid.uuid4().hex
    sock.setsockopt_string(zmq.IDENTITY, identity)
    sock.setsockopt(zmq.LINGER, 1000)
    secret = opts.secret_key.encode("ascii")
    sock.curve_secretkey = secret
    sock.curve_publickey = zmq.curve_public(secret)
    sock.curve_serverkey = opts.server_key.encode("ascii")
    sock.connect(opts.connect)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(sys.stdin.fileno(), zmq.POLLIN)
    sock.send(b"")  # ping: "ready"
    said = False
    while True:
        events = dict(poller.poll(opts.heartbeat * 1000))
        if sys.stdin.fileno() in events and not os.read(sys.stdin.fileno(), 4096):
            break
        if sock not in events:
            sock.send(b"")
            continue
        _, workload = sock.recv_multipart()
        if not said:
            emit({"ready": True, "routing_id": identity})
            said = True
        if workload == b"":
            continue  # pong
        req_id, args, _kwargs = msgpack.unpackb(workload)
        sock.send_multipart([b"", msgpack.packb([req_id, 0, sum(args)])])
    sock.close()
    ctx.term()
    return 0


def hub(opts):
    ctx = zmq.Context()
    auth = None
    if opts.allow:
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve_callback(domain="*", credentials_provider=AllowList(opts.allow))
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.curve_server = True
    sock.curve_secretkey = opts.secret_key.encode("ascii")
    sock.bind(opts.bind)
    emit({"ready": True, "endpoint": sock.getsockopt_string(zmq.LAST_ENDPOINT)})
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(sys.stdin.fileno(), zmq.POLLIN)
    available = []  # worker ids that pinged
    waiting = []  # (request, deadline) with no worker yet
    pending = {}  # req_id -> client id
    buffered = b""
    done = False
    while not done or pending:
        for request, deadline in list(waiting):
            if available:
                waiting.remove((request, deadline))
                req_id = uuid.uuid4().hex
                pending[req_id] = request["id"]
                sock.send_multipart([available.pop(0), b"",
                                     msgpack.packb([req_id, request.get("args", []), {}])])
            elif time.monotonic() > deadline:
                waiting.remove((request, deadline))
                emit({"id": request["id"], "ok": False, "error": "no worker within 10 s"})
        if done and not waiting and not pending:
            break
        events = dict(poller.poll(100))
        if sock in events:
            frames = sock.recv_multipart()
            wid = frames[0]
            if frames[1:] == [b""]:  # ping
                sock.send_multipart([wid, b"", b""])
                if wid not in available:
                    available.append(wid)
            elif len(frames) == 3:
                req_id, code, result = msgpack.unpackb(frames[2])
                client = pending.pop(req_id, None)
                if client is not None:
                    emit({"id": client, "ok": code == 0, "result": result})
                if wid not in available:
                    available.append(wid)
        if sys.stdin.fileno() in events:
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                done = True
                poller.unregister(sys.stdin.fileno())
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                if line.strip():
                    waiting.append((json.loads(line), time.monotonic() + 10))
    sock.close()
    if auth is not None:
        auth.stop()
    ctx.term()
    return 0


def main():
    p = argparse.ArgumentParser(description="gibbs 0.3 protocol over CURVE, on pyzmq")
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--connect", required=True)
    w.add_argument("--server-key", required=True)
    w.add_argument("--secret-key", required=True)
    w.add_argument("--heartbeat", type=float, default=1.0)
    h = sub.add_parser("hub")
    h.add_argument("--bind", required=True)
    h.add_argument("--secret-key", required=True)
    h.add_argument("--allow", action="append", default=[])
    opts = p.parse_args()
    return worker(opts) if opts.cmd == "worker" else hub(opts)


if __name__ == "__main__":
    sys.exit(main())
