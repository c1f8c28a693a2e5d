#!/usr/bin/python3
"""libzmq's CURVE (through Debian's pyzmq, libsodium inside): the anchor of our CURVE figures.

    /usr/bin/python3 bench/curve_pyzmq_bench.py --size 64 [--count N] [--null]

Measured as bench/socket_bench.ts measures ours: a DEALER in this process sends N messages of
SIZE bytes, one send call each; a ROUTER in another process (with CURVE_SERVER) times from the
first to the last message. --null measures the same without CURVE. Prints one JSON line.
"""

import argparse
import json
import multiprocessing as mp
import time

import zmq


def sink(endpoint_queue, result_queue, count, size, curve, server_secret):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve:
        sock.curve_server = True
        sock.curve_secretkey = server_secret
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    endpoint_queue.put(port)
    sock.recv_multipart()
    t0 = time.perf_counter()
    for _ in range(count - 1):
        sock.recv_multipart(copy=size < 65536)
    elapsed = time.perf_counter() - t0
    result_queue.put(elapsed)
    sock.close()
    ctx.term()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int)
    p.add_argument("--null", action="store_true", help="no CURVE, for reference")
    opts = p.parse_args()
    curve = not opts.null
    count = opts.count or (2000 if opts.size >= 65536 else 300_000)
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    endpoint_queue, result_queue = mp.Queue(), mp.Queue()
    child = mp.Process(target=sink, args=(endpoint_queue, result_queue, count, opts.size, curve,
                                          server_secret))
    child.start()
    port = endpoint_queue.get(timeout=20)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 2000)
    if curve:
        sock.curve_serverkey = server_public
        sock.curve_publickey = client_public
        sock.curve_secretkey = client_secret
    sock.connect(f"tcp://127.0.0.1:{port}")
    msg = b"a" * opts.size
    copy = opts.size < 65536
    for _ in range(count):
        sock.send(msg, copy=copy)
    elapsed = result_queue.get(timeout=120)
    child.join(10)
    sock.close()
    ctx.term()
    measured = count - 1
    print(json.dumps({
        "name": "pyzmq, CURVE" if curve else "pyzmq",
        "test": "throughput",
        "size": opts.size,
        "count": count,
        "msg_per_s": round(measured / elapsed, 1),
        "mb_per_s": round(measured * opts.size / elapsed / 1e6, 1),
        "elapsed_s": round(elapsed, 6),
    }))


if __name__ == "__main__":
    main()
