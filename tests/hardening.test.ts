/**
 * The defects a code review found (issue 8), one test each: state that only grew, timers that
 * stopped too early, a hostile peer inflating the worker table, user callbacks taking the
 * protocol path, large frames changed while queued, an ERROR command lost, a reply escaping a
 * worker's run(), a hub whose bind failed; and the typed errors of the runtime adapters.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import {
  Dealer,
  EndpointError,
  GibbsError,
  Hub,
  Router,
  SocketClosedError,
  SocketError,
  type SocketEvent,
  Worker,
} from "../mod.ts";
import { pack } from "../src/gibbs/codec.ts";
import { concat, longHeader, messageBytes, peerGreeting, readyFrame } from "./_wire_kit.ts";
import {
  Cleanup,
  freePort,
  portOf,
  sleep,
  startHub,
  startWorker,
  waitFor,
  withTimeout,
} from "./_helpers.ts";

const EMPTY = new Uint8Array(0);

/** Opens a raw TCP connection, writes `bytes`, and resolves with what came back by the close. */
function rawExchange(port: number, bytes: Uint8Array, ms = 5000): Promise<Uint8Array> {
  return withTimeout(
    new Promise<Uint8Array>((resolve, reject) => {
      const chunks: Uint8Array[] = [];
      const socket = net.connect({ host: "127.0.0.1", port }, () => socket.write(bytes));
      socket.on("data", (d: Uint8Array) => chunks.push(new Uint8Array(d)));
      socket.on("error", () => {}); // a reset after our bad bytes is expected
      socket.on("close", () => resolve(concat(chunks)));
      socket.setTimeout(ms, () => reject(new Error("the hub kept the connection open")));
    }),
    ms + 1000,
    "raw exchange",
  );
}

function includes(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** A Router that shows how many queues of waiting sends it holds. */
class ProbedRouter extends Router {
  queues(): number {
    return this.sendQueueCount();
  }
}

describe("hardening (issue 8)", () => {
  test("10,000 peers sending a valid ping then bad bytes leave the worker table as it was", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub({ handshakeTimeout: 2 });
      c.add(() => h.hub.close());
      const good = startWorker((x: number) => x + 1, h.endpoint);
      c.add(() => good.stop());
      await waitFor(() => h.hub.workers === 1, 5000, "the good worker");
      const before = h.hub.stats().workers;
      const attack = (i: number) =>
        concat([
          peerGreeting(),
          readyFrame([["Socket-Type", "DEALER"], ["Identity", `peer-${i}`]]),
          messageBytes([EMPTY]), // a gibbs ping: a valid message...
          longHeader(0x00, 1n << 62n), // ...then a frame no limit allows, in the same write
        ]);
      const total = 10_000;
      let next = 0;
      const lane = async () => {
        while (next < total) await rawExchange(h.port, attack(next++));
      };
      await withTimeout(Promise.all(Array.from({ length: 50 }, lane)), 120_000, "10,000 peers");
      await sleep(100); // messages queued before the drops reach the hub's loop
      assert.equal(h.hub.workers, before);
      assert.equal(h.hub.stats().workers, before);
      assert.equal(await withTimeout(h.hub.request(1), 5000, "request after the attack"), 2);
    } finally {
      await c.run();
    }
  });

  test(
    "a Router's queues of waiting sends do not outlive their backpressure",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const router = new ProbedRouter({ sendHighWaterMark: 1 });
        c.add(() => router.close());
        const endpoint = await router.bind("tcp://127.0.0.1:0");
        const dealer = new Dealer({ routingId: "d" });
        c.add(() => dealer.close());
        dealer.connect(endpoint);
        await dealer.send("hello");
        const [id] = await withTimeout(router.receive(), 5000, "hello");
        const received = (async () => {
          for (let i = 0; i < 1000; i++) await dealer.receive();
        })();
        for (let i = 0; i < 500; i++) {
          // The second send finds the first one in flight: it waits in a queue of its own.
          await withTimeout(
            Promise.all([router.send([id, "a"]), router.send([id, "b"])]),
            5000,
            `episode ${i}`,
          );
        }
        await withTimeout(received, 5000, "1000 messages");
        assert.equal(router.queues(), 1, "only the socket's own queue is left");
      } finally {
        await c.run();
      }
    },
  );

  test("a closed socket's lingering peer still gets heartbeats: a dead peer is dropped", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      // A peer that completes the handshake and then neither reads nor writes.
      const sockets: net.Socket[] = [];
      const server = net.createServer((s) => {
        sockets.push(s);
        s.on("error", () => {});
        s.write(concat([peerGreeting(), readyFrame([["Socket-Type", "ROUTER"]])]));
        s.pause();
      });
      c.add(() => {
        for (const s of sockets) s.destroy();
        return new Promise((r) => server.close(r));
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const port = (server.address() as net.AddressInfo).port;
      const events: SocketEvent[] = [];
      const dealer = new Dealer({
        linger: -1,
        heartbeatInterval: 100,
        heartbeatTimeout: 300,
        onEvent: (e) => events.push(e),
      });
      c.add(() => dealer.close());
      dealer.connect(`tcp://127.0.0.1:${port}`);
      await waitFor(() => events.some((e) => e.type === "handshake"), 5000, "handshake");
      // More than the kernel buffers hold: the pipe lingers with unwritten bytes.
      dealer.send(new Uint8Array(64 * 1024 * 1024)).catch(() => {});
      dealer.close();
      await waitFor(
        () => events.some((e) => e.type === "disconnect" && e.code === "heartbeat-timeout"),
        5000,
        "the silent peer dropped by its heartbeat",
      );
    } finally {
      await c.run();
    }
  });

  test("an onEvent callback that throws breaks neither the connection nor the process", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      let calls = 0;
      const router = new Router({
        onEvent: () => {
          calls++;
          throw new Error("a bug in user code");
        },
      });
      c.add(() => router.close());
      const endpoint = await router.bind("tcp://127.0.0.1:0");
      const dealer = new Dealer({
        onEvent: () => {
          throw new Error("another bug");
        },
      });
      c.add(() => dealer.close());
      dealer.connect(endpoint);
      await dealer.send("ping");
      const [id, body] = await withTimeout(router.receive(), 5000, "ping");
      assert.equal(new TextDecoder().decode(body), "ping");
      await router.send([id, "pong"]);
      const [reply] = await withTimeout(dealer.receive(), 5000, "pong");
      assert.equal(new TextDecoder().decode(reply), "pong");
      assert.ok(calls >= 2, "the callback was called (and threw)");
    } finally {
      await c.run();
    }
  });

  test("trySend: a large frame changed right after the call leaves as it was given", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const router = new Router();
      c.add(() => router.close());
      const endpoint = await router.bind("tcp://127.0.0.1:0");
      const dealer = new Dealer();
      c.add(() => dealer.close());
      dealer.connect(endpoint);
      await dealer.send("hi");
      const [id] = await withTimeout(router.receive(), 5000, "hi");
      const first = new Uint8Array(32 * 1024 * 1024); // in flight while the next one queues
      router.send([id, first]).catch(() => {});
      const frame = new Uint8Array(1024 * 1024).fill(0x11);
      assert.equal(router.trySend([id, frame]), true);
      frame.fill(0x99); // the caller reuses its buffer at once
      await withTimeout(dealer.receive(), 10_000, "the 32 MiB message");
      const [second] = await withTimeout(dealer.receive(), 10_000, "the 1 MiB message");
      assert.equal(second.length, frame.length);
      assert.ok(second.every((b) => b === 0x11), "bytes changed after trySend reached the wire");
    } finally {
      await c.run();
    }
  });

  test("a refused peer receives our ERROR command before the connection closes", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const router = new Router();
      c.add(() => router.close());
      const port = portOf(await router.bind("tcp://127.0.0.1:0"));
      for (let i = 0; i < 20; i++) {
        const back = await rawExchange(
          port,
          concat([peerGreeting(), readyFrame([["Socket-Type", "PUB"]])]),
        );
        assert.ok(
          includes(back, new TextEncoder().encode("\x05ERROR")),
          `attempt ${i}: no ERROR command among the ${back.length} bytes received`,
        );
      }
    } finally {
      await c.run();
    }
  });

  test("a worker stopped while answering a malformed request ends run() normally", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const router = new Router();
      c.add(() => router.close());
      const endpoint = await router.bind("tcp://127.0.0.1:0");
      const worker = new Worker(() => 1, { endpoint, logger: () => {} });
      const done = worker.run();
      done.catch(() => {});
      const [id] = await withTimeout(router.receive(), 5000, "the worker's ping");
      // Malformed (args is not a list) but its request id is readable: the worker answers...
      await router.send([id, EMPTY, pack(["0".repeat(32), "not a list", {}])]);
      router.close(); // ...to a hub that is gone, so the answer waits for a peer
      await sleep(50);
      worker.stop();
      await withTimeout(done, 5000, "run() after stop()");
    } finally {
      await c.run();
    }
  });

  test("a hub that cannot bind fails its requests with a typed error and closes", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const first = new Hub({ endpoint: "tcp://127.0.0.1:0", logger: () => {} });
      c.add(() => first.close());
      const endpoint = await first.ready;
      const second = new Hub({ endpoint, logger: () => {} });
      const pending = second.request(1);
      const error = await second.ready.then(() => null, (e) => e);
      assert.ok(error instanceof SocketError, `ready rejected with ${error}`);
      assert.equal(error.code, "EADDRINUSE");
      assert.match(error.message, /address already in use/);
      const failed = await withTimeout(pending.then(() => null, (e) => e), 5000, "request");
      assert.ok(failed instanceof GibbsError);
      assert.match(failed.message, /Hub cannot listen/);
      await withTimeout(second.close(), 5000, "close of a hub that never listened");
    } finally {
      await c.run();
    }
  });
});

describe("typed runtime errors", () => {
  test("bind to a port in use: SocketError EADDRINUSE, also reported as bind:error", {
    timeout: 60_000,
  }, async () => {
    const events: SocketEvent[] = [];
    const a = new Router();
    const b = new Router({ onEvent: (e) => events.push(e) });
    try {
      const endpoint = await a.bind("tcp://127.0.0.1:0");
      const error = await b.bind(endpoint).then(() => null, (e) => e);
      assert.ok(error instanceof SocketError);
      assert.equal(error.code, "EADDRINUSE");
      assert.ok(events.some((e) => e.type === "bind:error" && e.code === "EADDRINUSE"));
    } finally {
      a.close();
      b.close();
    }
  });

  test(
    "a refused connection is retried and reported with ECONNREFUSED",
    { timeout: 60_000 },
    async () => {
      const endpoint = `tcp://127.0.0.1:${await freePort()}`; // nobody listens there
      const events: SocketEvent[] = [];
      const dealer = new Dealer({ onEvent: (e) => events.push(e) });
      try {
        dealer.connect(endpoint);
        await waitFor(
          () => events.filter((e) => e.type === "connect:retry").length >= 2,
          5000,
          "two retries",
        );
        const retry = events.find((e) => e.type === "connect:retry")!;
        assert.equal(retry.code, "ECONNREFUSED");
        assert.equal(typeof retry.interval, "number");
      } finally {
        dealer.close();
      }
    },
  );

  test(
    "a malformed endpoint is an EndpointError, a SocketError with EINVAL",
    { timeout: 60_000 },
    () => {
      const dealer = new Dealer();
      try {
        for (const bad of ["tcp://nohost", "udp://1.2.3.4:5", "tcp://h:99999", "nonsense"]) {
          assert.throws(() => dealer.connect(bad), (e: unknown) => {
            assert.ok(e instanceof EndpointError, `${bad}: ${e}`);
            assert.ok(e instanceof SocketError);
            assert.equal((e as SocketError).code, "EINVAL");
            return true;
          });
        }
      } finally {
        dealer.close();
      }
    },
  );

  test("operations on a closed socket reject with EBADF, as zeromq.js reports them", {
    timeout: 60_000,
  }, async () => {
    const dealer = new Dealer();
    dealer.close();
    const error = await dealer.send("x").then(() => null, (e) => e);
    assert.ok(error instanceof SocketClosedError);
    assert.equal(error.code, "EBADF");
  });
});
