#!/usr/bin/python3
"""A remote-controlled libzmq socket (through pyzmq), for interoperability tests.

The test drives this process over stdin/stdout, one JSON object per line.

    /usr/bin/python3 tests/peers/zmq_peer.py --type router --bind tcp://127.0.0.1:* [options]

Options:
    --type dealer|router       socket type (required)
    --bind EP | --connect EP   exactly one endpoint (tcp:// or ipc://)
    --routing-id STR           routing id, UTF-8, or "hex:ABCD" for raw bytes
    --heartbeat-ivl MS         ZMQ_HEARTBEAT_IVL
    --heartbeat-timeout MS     ZMQ_HEARTBEAT_TIMEOUT
    --heartbeat-ttl MS         ZMQ_HEARTBEAT_TTL
    --router-mandatory         ZMQ_ROUTER_MANDATORY (router only)
    --linger MS                ZMQ_LINGER (default 0)
    --maxmsgsize N             ZMQ_MAXMSGSIZE
    --echo                     send every received message straight back (a ROUTER
                               routes it to its sender by the id frame; a DEALER
                               sends it to its peer, round-robin if it has several);
                               "recv" ops then always time out
    --monitor                  print socket monitor events

Output (stdout, each line one JSON object, flushed):
    {"ready": true, "endpoint": "..."}      once bound/connected (the real endpoint
                                            when bound to port 0 or *)
    {"event": "connected", "endpoint": "...", "value": N}   with --monitor; other
            names: accepted, listening, disconnected, closed, connect_delayed,
            connect_retried, handshake_succeeded, handshake_failed_protocol
            (then also "protocol_error": "ZMTP_..."), handshake_failed_no_detail, ...
    {"event": "echo_failed", "error": "..."}  an echo that could not be sent

Ops (stdin), answered in order, one answer line each (answers never have "event"):
    {"op":"send","frames":["<base64>",...],"timeout":MS?}  -> {"ok":true} | {"error":"..."}
    {"op":"send_fill","frames":[{"size":N,"byte":B},...]}  -> {"ok":true} | {"error":"..."}
    {"op":"recv","timeout":MS}          -> {"frames":["<base64>",...]} | {"error":"timeout"}
    {"op":"recv_summary","timeout":MS}  -> {"sizes":[...],"sha256":["<hex>",...]} | {"error":"timeout"}
    {"op":"close"}                      -> closes the socket, {"ok":true}, exit 0
EOF on stdin closes the socket and exits 0 as well.

One thread, one poll loop over the data socket, the monitor socket and stdin's file
descriptor, so that echoing, monitor events and ops never wait on one another.
"""

import argparse
import base64
import errno
import hashlib
import json
import os
import sys
import time
from collections import deque

import zmq
from zmq.utils.monitor import recv_monitor_message

# Default time a "send" op keeps retrying while the socket would block (HWM
# reached, or a DEALER with no peer yet): long enough for a reconnect, short
# enough that a test never hangs on a send.
DEFAULT_SEND_TIMEOUT_MS = 5000
ECHO_SEND_TIMEOUT_MS = 10000

# Explicit table rather than zmq.Event(n).name: pyzmq's Event enum has aliases
# (e.g. PROTOCOL_ERROR_*) that would give odd names for some values.
EVENT_NAMES = {
    zmq.EVENT_CONNECTED: "connected",
    zmq.EVENT_CONNECT_DELAYED: "connect_delayed",
    zmq.EVENT_CONNECT_RETRIED: "connect_retried",
    zmq.EVENT_LISTENING: "listening",
    zmq.EVENT_BIND_FAILED: "bind_failed",
    zmq.EVENT_ACCEPTED: "accepted",
    zmq.EVENT_ACCEPT_FAILED: "accept_failed",
    zmq.EVENT_CLOSED: "closed",
    zmq.EVENT_CLOSE_FAILED: "close_failed",
    zmq.EVENT_DISCONNECTED: "disconnected",
    zmq.EVENT_MONITOR_STOPPED: "monitor_stopped",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed_no_detail",
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake_succeeded",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_failed_auth",
}

# For handshake_failed_protocol the event value is one of libzmq's
# ZMQ_PROTOCOL_ERROR_* codes; name it so tests can assert on text.
PROTOCOL_ERRORS = {
    getattr(zmq, name): name[len("PROTOCOL_ERROR_"):]
    for name in dir(zmq)
    if name.startswith("PROTOCOL_ERROR_")
}


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write(f"zmq_peer[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


def zmq_error_text(e):
    name = errno.errorcode.get(e.errno, str(e.errno))
    return f"{name}: {e.strerror}"


def parse_routing_id(text):
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    return text.encode("utf-8")


def parse_args(argv):
    p = argparse.ArgumentParser(description="remote-controlled libzmq socket for interop tests")
    p.add_argument("--type", required=True, choices=["dealer", "router"])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--bind", metavar="EP")
    where.add_argument("--connect", metavar="EP")
    p.add_argument("--routing-id", metavar="STR")
    p.add_argument("--heartbeat-ivl", type=int, metavar="MS")
    p.add_argument("--heartbeat-timeout", type=int, metavar="MS")
    p.add_argument("--heartbeat-ttl", type=int, metavar="MS")
    p.add_argument("--router-mandatory", action="store_true")
    p.add_argument("--linger", type=int, default=0, metavar="MS")
    p.add_argument("--maxmsgsize", type=int, metavar="N")
    p.add_argument("--echo", action="store_true")
    p.add_argument("--monitor", action="store_true")
    return p.parse_args(argv)


class Peer:
    def __init__(self, opts):
        self.opts = opts
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER if opts.type == "dealer" else zmq.ROUTER)
        s = self.sock
        s.setsockopt(zmq.LINGER, opts.linger)
        if opts.routing_id is not None:
            s.setsockopt(zmq.ROUTING_ID, parse_routing_id(opts.routing_id))
        if opts.heartbeat_ivl is not None:
            s.setsockopt(zmq.HEARTBEAT_IVL, opts.heartbeat_ivl)
        if opts.heartbeat_timeout is not None:
            s.setsockopt(zmq.HEARTBEAT_TIMEOUT, opts.heartbeat_timeout)
        if opts.heartbeat_ttl is not None:
            s.setsockopt(zmq.HEARTBEAT_TTL, opts.heartbeat_ttl)
        if opts.router_mandatory:
            if opts.type != "router":
                raise SystemExit("--router-mandatory needs --type router")
            s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if opts.maxmsgsize is not None:
            s.setsockopt(zmq.MAXMSGSIZE, opts.maxmsgsize)
        self.configure(s)

        # The monitor is attached before bind/connect so that the first events
        # (listening, connect_delayed, ...) are not missed.
        self.mon = s.get_monitor_socket() if opts.monitor else None

        if opts.bind:
            s.bind(opts.bind)
        else:
            s.connect(opts.connect)

        self.stdin_fd = sys.stdin.fileno()
        self.stdin_buf = b""
        self.stdin_eof = False
        self.lines = deque()
        # A pending "recv"/"recv_summary": (deadline, summary?) or None.
        self.pending_recv = None

    def configure(self, sock):
        """Hook for subclasses (secure_peer.py): more options, set before bind/connect."""

    # ------------------------------------------------------------------ output

    def drain_monitor(self):
        if self.mon is None:
            return
        while True:
            try:
                ev = recv_monitor_message(self.mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            out = {
                "event": EVENT_NAMES.get(ev["event"], f"unknown_{ev['event']}"),
                "endpoint": ev["endpoint"].decode("utf-8", "replace"),
                "value": ev["value"],
            }
            if ev["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                out["protocol_error"] = PROTOCOL_ERRORS.get(ev["value"], str(ev["value"]))
            emit(out)

    # ------------------------------------------------------------------ sending

    def send(self, frames, timeout_ms):
        """Send one multipart message, retrying while it would block.

        NOBLOCK + retry instead of a blocking send keeps monitor events flowing
        and bounds the wait. libzmq checks the high-water mark on a message's
        first frame only, so a multipart send never stops half way.
        Returns None on success, an error text otherwise.
        """
        if not frames:
            return "a message needs at least one frame"
        # Large frames are handed to libzmq without a copy.
        copy = max(len(f) for f in frames) < 65536
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                self.sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=copy)
                return None
            except zmq.Again:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "EAGAIN: send would block (no peer or high-water mark reached)"
                poller = zmq.Poller()
                poller.register(self.sock, zmq.POLLOUT)
                if self.mon is not None:
                    poller.register(self.mon, zmq.POLLIN)
                # A ROUTER is always "writable", so also cap the wait to retry soon.
                poller.poll(min(left, 0.05) * 1000)
                self.drain_monitor()
            except zmq.ZMQError as e:
                return zmq_error_text(e)

    # ------------------------------------------------------------------ ops

    def answer_recv(self, frames, summary):
        if summary:
            emit({
                "sizes": [len(f) for f in frames],
                "sha256": [hashlib.sha256(f).hexdigest() for f in frames],
            })
        else:
            emit({"frames": [base64.b64encode(f).decode("ascii") for f in frames]})

    def try_recv_now(self):
        try:
            return self.sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None

    def handle_op(self, line):
        """Handle one stdin line. Returns False when the peer must exit."""
        try:
            req = json.loads(line)
            op = req.get("op")
        except (ValueError, AttributeError) as e:
            emit({"error": f"bad request: {e}"})
            return True

        try:
            if op == "send":
                frames = [base64.b64decode(f) for f in req["frames"]]
                err = self.send(frames, req.get("timeout", DEFAULT_SEND_TIMEOUT_MS))
                emit({"error": err} if err else {"ok": True})
            elif op == "send_fill":
                frames = [bytes([int(f["byte"]) & 0xFF]) * int(f["size"]) for f in req["frames"]]
                err = self.send(frames, req.get("timeout", DEFAULT_SEND_TIMEOUT_MS))
                emit({"error": err} if err else {"ok": True})
            elif op in ("recv", "recv_summary"):
                summary = op == "recv_summary"
                frames = None if self.opts.echo else self.try_recv_now()
                if frames is not None:
                    self.answer_recv(frames, summary)
                else:
                    timeout = req.get("timeout")
                    deadline = None if timeout is None else time.monotonic() + timeout / 1000
                    self.pending_recv = (deadline, summary)
            elif op == "close":
                self.close()
                emit({"ok": True})
                return False
            else:
                emit({"error": f"unknown op {op!r}"})
        except (KeyError, TypeError, ValueError) as e:
            emit({"error": f"bad request: {e!r}"})
        return True

    def read_stdin(self):
        chunk = os.read(self.stdin_fd, 1 << 20)
        if not chunk:
            self.stdin_eof = True
            if self.stdin_buf.strip():
                self.lines.append(self.stdin_buf)
            self.stdin_buf = b""
            return
        self.stdin_buf += chunk
        *complete, self.stdin_buf = self.stdin_buf.split(b"\n")
        self.lines.extend(line for line in complete if line.strip())

    # ------------------------------------------------------------------ loop

    def echo_all(self):
        # Bounded batch so stdin and the monitor get their turn under a flood.
        for _ in range(1000):
            frames = self.try_recv_now()
            if frames is None:
                return
            err = self.send(frames, ECHO_SEND_TIMEOUT_MS)
            if err:
                emit({"event": "echo_failed", "error": err})

    def run(self):
        emit({"ready": True, "endpoint": self.sock.getsockopt_string(zmq.LAST_ENDPOINT)})
        while True:
            # Ops are answered strictly in order: while a recv is pending, later
            # lines stay queued.
            while self.pending_recv is None and self.lines:
                if not self.handle_op(self.lines.popleft()):
                    return
            if self.stdin_eof and (self.pending_recv is None or self.pending_recv[0] is None):
                # EOF: exit once queued ops are done (a recv without a timeout
                # could otherwise never end).
                self.close()
                return

            poller = zmq.Poller()
            if self.mon is not None:
                poller.register(self.mon, zmq.POLLIN)
            if self.opts.echo or self.pending_recv is not None:
                # Otherwise messages stay queued inside libzmq until asked for.
                poller.register(self.sock, zmq.POLLIN)
            if not self.stdin_eof:
                poller.register(self.stdin_fd, zmq.POLLIN)

            timeout_ms = None
            if self.pending_recv is not None and self.pending_recv[0] is not None:
                timeout_ms = max(0.0, (self.pending_recv[0] - time.monotonic()) * 1000)
            events = dict(poller.poll(timeout_ms))

            if self.mon is not None and self.mon in events:
                self.drain_monitor()
            if self.sock in events:
                if self.opts.echo:
                    self.echo_all()
                elif self.pending_recv is not None:
                    frames = self.try_recv_now()
                    if frames is not None:
                        self.answer_recv(frames, self.pending_recv[1])
                        self.pending_recv = None
            if self.stdin_fd in events:
                self.read_stdin()
            if self.pending_recv is not None and self.pending_recv[0] is not None:
                if time.monotonic() >= self.pending_recv[0]:
                    emit({"error": "timeout"})
                    self.pending_recv = None

    def close(self):
        if self.mon is not None:
            self.drain_monitor()
            self.sock.disable_monitor()
            self.mon.close(linger=0)
            self.mon = None
        self.sock.close()  # with the configured linger
        self.ctx.term()    # waits up to linger for queued messages


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        peer = Peer(opts)
    except zmq.ZMQError as e:
        log(f"setup failed: {zmq_error_text(e)}")
        return 1
    peer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
