/**
 * Our Dealer and Router together, and our Router against raw, broken or hostile TCP peers.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect as netConnect, type Socket } from "node:net";
import {
  Dealer,
  HostUnreachableError,
  Router,
  SocketClosedError,
  type SocketEvent,
  TimeoutError,
} from "../mod.ts";
import { Cleanup, ipcEndpoint, portOf, sleep, waitFor, withTimeout } from "./_helpers.ts";

const enc = new TextEncoder();
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** A router with 200 messages from each of two dealers, "A" and "B", queued inside it. */
async function floodedRouter() {
  const router = new Router();
  const endpoint = await router.bind("tcp://127.0.0.1:0");
  const dealers = [new Dealer({ routingId: "A" }), new Dealer({ routingId: "B" })];
  const close = () => {
    for (const d of dealers) d.close();
    router.close();
  };
  try {
    for (const d of dealers) d.connect(endpoint);
    await waitFor(() => router.peerCount === 2, 5000, "two peers");
    for (const d of dealers) for (let i = 0; i < 200; i++) await d.send(`${i}`);
    await sleep(100); // both floods are queued inside the router now
  } catch (error) {
    close();
    throw error;
  }
  return { router, dealers, close };
}

/** The first 20 senders, in the order taken: turns alternate rather than draining one first. */
function assertTakesTurns(order: string[]): void {
  assert.ok(order.filter((x) => x === "A").length >= 8, order.join(""));
  assert.ok(order.filter((x) => x === "B").length >= 8, order.join(""));
}

describe("Dealer and Router", () => {
  test(
    "round trip with multipart messages of strings, bytes and ArrayBuffers",
    { timeout: 30_000 },
    async () => {
      const router = new Router();
      const endpoint = await router.bind("tcp://127.0.0.1:0");
      assert.match(endpoint, /^tcp:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(portOf(endpoint), 0);
      assert.equal(router.lastEndpoint, endpoint);
      const dealer = new Dealer({ routingId: "d1" });
      try {
        dealer.connect(endpoint);
        await dealer.send(["a", new Uint8Array([1, 2]), new Uint8Array([3]).buffer, ""]);
        const [id, a, bytes, buffer, empty] = await withTimeout(router.receive(), 5000, "receive");
        assert.equal(text(id), "d1");
        assert.equal(text(a), "a");
        assert.deepEqual([...bytes], [1, 2]);
        assert.deepEqual([...buffer], [3]);
        assert.equal(empty.length, 0);
        await router.send([id, "back"]);
        assert.deepEqual((await withTimeout(dealer.receive(), 5000, "reply")).map(text), ["back"]);
      } finally {
        dealer.close();
        router.close();
      }
    },
  );

  test("DEALER sends round-robin over its peers", { timeout: 30_000 }, async () => {
    const routers = [new Router(), new Router()];
    const dealer = new Dealer();
    try {
      for (const r of routers) dealer.connect(await r.bind("tcp://127.0.0.1:0"));
      await waitFor(() => dealer.peerCount === 2, 5000, "two peers");
      for (let i = 0; i < 10; i++) await dealer.send(`m${i}`);
      const counts = [0, 0];
      for (const [i, r] of routers.entries()) {
        for (let n = 0; n < 5; n++) {
          await withTimeout(r.receive(), 5000, "round-robin share");
          counts[i]++;
        }
      }
      assert.deepEqual(counts, [5, 5]);
    } finally {
      dealer.close();
      for (const r of routers) r.close();
    }
  });

  test("ROUTER fair-queues messages from several peers", { timeout: 30_000 }, async () => {
    const { router, close } = await floodedRouter();
    try {
      const order: string[] = [];
      for (let i = 0; i < 20; i++) order.push(text((await router.receive())[0]));
      assertTakesTurns(order);
    } finally {
      close();
    }
  });

  test("consume() hands every message over in order, fair-queued, and may reply from inside", {
    timeout: 30_000,
  }, async () => {
    // Both floods are queued inside the router before the consumer comes.
    const { router, dealers, close } = await floodedRouter();
    try {
      const got: string[] = [];
      const readAt: number[] = [];
      const before = performance.now();
      router.consume(([id, body], receivedAt) => {
        readAt.push(receivedAt);
        got.push(`${text(id)}${text(body)}`);
        assert.ok(router.trySend([id, body]), "a reply from inside the consumer");
      });
      // Messages are queued and the consumer's pass has not run yet: an iterator takes none.
      await assert.rejects(router[Symbol.asyncIterator]().next(), /consumer/);
      await waitFor(() => got.length === 400, 5000, "400 messages handed over");
      // Read before the consumer came (the floods were queued), and never in the future.
      assert.ok(readAt.every((t) => t >= before - 1000 && t <= performance.now()), `${readAt[0]}`);
      for (const name of ["A", "B"]) {
        const mine = got.filter((m) => m[0] === name).map((m) => Number(m.slice(1)));
        assert.deepEqual(mine, Array.from({ length: 200 }, (_, i) => i), `${name} in order`);
      }
      assertTakesTurns(got.slice(0, 20).map((m) => m[0]));
      // Later messages reach the consumer too, and the replies came back.
      await dealers[0].send("late");
      await waitFor(() => got.includes("Alate"), 5000, "a message sent after consume()");
      let echoes = 0;
      while (echoes < 201) {
        await withTimeout(dealers[0].receive(), 5000, `echo ${echoes}`);
        echoes++;
      }
    } finally {
      close();
    }
  });

  test("consume(): receive() rejects, a second consumer is refused, a throw is contained", {
    timeout: 30_000,
  }, async () => {
    const router = new Router();
    const endpoint = await router.bind("tcp://127.0.0.1:0");
    const dealer = new Dealer({ routingId: "D" });
    const errors: unknown[] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => errors.push(args.join(" "));
    try {
      const got: string[] = [];
      router.consume(([, body]) => {
        got.push(text(body));
        if (text(body) === "boom") throw new Error("handler failed");
      });
      assert.throws(() => router.consume(() => {}), /already has a consumer/);
      await assert.rejects(router.receive(), /consumer/);
      await assert.rejects(router[Symbol.asyncIterator]().next(), /consumer/);
      dealer.connect(endpoint);
      for (const m of ["a", "boom", "b", "boom", "c"]) await dealer.send(m);
      await waitFor(() => got.length === 5, 5000, "every message despite the throws");
      assert.deepEqual(got, ["a", "boom", "b", "boom", "c"]);
      assert.equal(errors.length, 1, "reported once");
      assert.match(String(errors[0]), /consume callback threw.*handler failed/);
    } finally {
      console.error = consoleError;
      dealer.close();
      router.close();
    }
  });

  test("Dealer.trySend sends at once while a peer has room, else says no", {
    timeout: 30_000,
  }, async () => {
    const dealer = new Dealer({ routingId: "T", sendHighWaterMark: 4 });
    assert.equal(dealer.trySend("nobody"), false, "no peer yet");
    const router = new Router();
    const endpoint = await router.bind("tcp://127.0.0.1:0");
    try {
      dealer.connect(endpoint);
      await waitFor(() => dealer.peerCount === 1, 5000, "connected");
      const big = new Uint8Array(70_000).fill(1);
      assert.equal(dealer.trySend(["a", big]), true);
      big.fill(2); // copied: what was sent does not change
      const [id, a, body] = await withTimeout(router.receive(), 5000, "first");
      assert.equal(text(id), "T");
      assert.equal(text(a), "a");
      assert.ok(body.every((b) => b === 1));
      // Past the high-water mark within one turn, nothing has been written yet: no room.
      let accepted = 0;
      while (dealer.trySend("x") && accepted < 1000) accepted++;
      assert.ok(accepted >= 1 && accepted < 1000, `${accepted} accepted before the mark`);
      for (let i = 0; i < accepted; i++) await withTimeout(router.receive(), 5000, `x${i}`);
    } finally {
      dealer.close();
      router.close();
    }
    assert.throws(() => dealer.trySend("late"), SocketClosedError);
  });

  test("consume() is refused while a receive() waits", { timeout: 30_000 }, async () => {
    const router = new Router();
    await router.bind("tcp://127.0.0.1:0");
    const waiting = router.receive();
    try {
      assert.throws(() => router.consume(() => {}), /receive\(\) is waiting/);
    } finally {
      router.close();
      await assert.rejects(waiting, SocketClosedError);
    }
  });

  test("ROUTER with mandatory rejects unknown ids; without it drops them silently", {
    timeout: 30_000,
  }, async () => {
    const router = new Router({ mandatory: true });
    try {
      await assert.rejects(router.send(["nobody", "x"]), HostUnreachableError);
      router.mandatory = false;
      await router.send(["nobody", "x"]); // resolves: dropped as libzmq drops it
    } finally {
      router.close();
    }
  });

  test("a second peer claiming a live identity is refused; with handover it takes over", {
    timeout: 30_000,
  }, async () => {
    const events: SocketEvent[] = [];
    const router = new Router({ onEvent: (e) => events.push(e) });
    const endpoint = await router.bind("tcp://127.0.0.1:0");
    const first = new Dealer({ routingId: "same" });
    const second = new Dealer({ routingId: "same" });
    try {
      first.connect(endpoint);
      await waitFor(() => router.peerCount === 1, 5000, "first peer");
      second.connect(endpoint);
      await waitFor(() => events.some((e) => e.code === "duplicate-identity"), 5000, "refusal");
      await router.send(["same", "to the first"]);
      assert.equal(text((await withTimeout(first.receive(), 5000, "first"))[0]), "to the first");

      router.handover = true;
      const third = new Dealer({ routingId: "same" });
      try {
        third.connect(endpoint);
        await waitFor(
          () => events.filter((e) => e.type === "handshake").length >= 2,
          5000,
          "handover handshake",
        );
        await router.send(["same", "to the third"]);
        assert.equal(text((await withTimeout(third.receive(), 5000, "third"))[0]), "to the third");
      } finally {
        third.close();
      }
    } finally {
      first.close();
      second.close();
      router.close();
    }
  });

  test("a full queue makes send wait instead of growing memory", { timeout: 30_000 }, async () => {
    const router = new Router({ receiveHighWaterMark: 4 });
    const endpoint = await router.bind("tcp://127.0.0.1:0");
    const dealer = new Dealer({ sendHighWaterMark: 4 });
    try {
      dealer.connect(endpoint);
      const big = new Uint8Array(256 * 1024);
      let done = 0;
      const sends = Array.from({ length: 200 }, () => dealer.send(big).then(() => done++));
      await sleep(300);
      // 50 MB cannot fit in the queues and kernel buffers: most sends must still be waiting.
      assert.ok(done < 150, `${done} of 200 sends completed without a reader`);
      for (let i = 0; i < 200; i++) await withTimeout(router.receive(), 5000, `message ${i}`);
      await withTimeout(Promise.all(sends), 5000, "sends after draining");
      assert.equal(done, 200);
    } finally {
      dealer.close();
      router.close();
    }
  });

  test("a DEALER reconnects by itself when its peer comes back", { timeout: 30_000 }, async () => {
    const first = new Router();
    const endpoint = await first.bind("tcp://127.0.0.1:0");
    const dealer = new Dealer({ routingId: "r", reconnectInterval: 20, reconnectMaxInterval: 100 });
    let second: Router | undefined;
    try {
      dealer.connect(endpoint);
      await dealer.send("one");
      assert.equal(text((await withTimeout(first.receive(), 5000, "first"))[1]), "one");
      first.close();
      await sleep(100);
      second = new Router();
      await second.bind(endpoint);
      await dealer.send("two"); // waits for the new connection
      assert.equal(text((await withTimeout(second.receive(), 5000, "after restart"))[1]), "two");
    } finally {
      dealer.close();
      first.close();
      second?.close();
    }
  });

  test(
    "timeouts and closing give typed errors; iteration ends on close",
    { timeout: 30_000 },
    async () => {
      const dealer = new Dealer({ receiveTimeout: 50, sendTimeout: 50 });
      await assert.rejects(dealer.receive(), TimeoutError);
      await assert.rejects(dealer.send("nobody listens"), TimeoutError);
      const router = new Router();
      const pending = router.receive();
      const iteration = (async () => {
        let n = 0;
        for await (const _ of router) n++;
        return n;
      })();
      router.close();
      dealer.close();
      await assert.rejects(pending, SocketClosedError);
      assert.equal(await withTimeout(iteration, 1000, "iteration end"), 0);
      await assert.rejects(router.send(["x", "y"]), SocketClosedError);
      await assert.rejects(router.bind("tcp://127.0.0.1:0"), SocketClosedError);
    },
  );

  test("ipc endpoints work and a stale socket file is replaced", { timeout: 30_000 }, async () => {
    const c = new Cleanup();
    try {
      const router = new Router();
      c.add(() => router.close());
      const endpoint = await router.bind(ipcEndpoint(c, "stale"));
      router.close();
      const again = new Router();
      c.add(() => again.close());
      const dealer = new Dealer();
      c.add(() => dealer.close());
      assert.equal(await again.bind(endpoint), endpoint);
      dealer.connect(endpoint);
      await dealer.send("over ipc");
      assert.equal(text((await withTimeout(again.receive(), 5000, "ipc"))[1]), "over ipc");
    } finally {
      await c.run();
    }
  });
});

// Raw peers speak bytes written here by hand, not through our encoder.
const GREETING_NULL = new Uint8Array([
  0xff,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  0x7f,
  3,
  1,
  ...enc.encode("NULL"),
  ...new Uint8Array(16),
  0,
  ...new Uint8Array(31),
]);

function readyCommand(socketType: string): Uint8Array {
  const props = [
    0x0b,
    ...enc.encode("Socket-Type"),
    0,
    0,
    0,
    socketType.length,
    ...enc.encode(socketType),
    0x08,
    ...enc.encode("Identity"),
    0,
    0,
    0,
    0,
  ];
  const body = [0x05, ...enc.encode("READY"), ...props];
  return new Uint8Array([0x04, body.length, ...body]);
}

interface RawPeer {
  socket: Socket;
  received: () => Uint8Array;
  closed: Promise<void>;
}

function rawPeer(port: number): Promise<RawPeer> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    const socket = netConnect({ port, host: "127.0.0.1" }, () => {
      resolve({
        socket,
        received: () => {
          const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
          let at = 0;
          for (const c of chunks) {
            all.set(c, at);
            at += c.length;
          }
          return all;
        },
        closed,
      });
    });
    const closed = new Promise<void>((r) => socket.on("close", () => r()));
    socket.on("data", (d) => chunks.push(new Uint8Array(d)));
    socket.on("error", reject);
  });
}

describe("a Router facing bad peers", () => {
  async function withRouter(
    options: ConstructorParameters<typeof Router>[0],
    attack: (port: number, events: SocketEvent[]) => Promise<void>,
  ): Promise<void> {
    const events: SocketEvent[] = [];
    const router = new Router({ ...options, onEvent: (e) => events.push(e) });
    const endpoint = await router.bind("tcp://127.0.0.1:0");
    const good = new Dealer({ routingId: "good" });
    try {
      good.connect(endpoint);
      await attack(portOf(endpoint), events);
      // The good peer is still served.
      await good.send("still served");
      const [id, msg] = await withTimeout(router.receive(), 5000, "good peer after the attack");
      assert.equal(text(id), "good");
      assert.equal(text(msg), "still served");
    } finally {
      good.close();
      router.close();
    }
  }

  async function droppedWith(events: SocketEvent[], code: string): Promise<SocketEvent> {
    await waitFor(() => events.some((e) => e.code === code), 5000, `a drop with ${code}`);
    const event = events.find((e) => e.code === code)!;
    assert.ok(event.reason && event.reason.length > 0, "the drop carries a reason");
    return event;
  }

  test(
    "a wrong signature (an HTTP client) is dropped at its first byte",
    { timeout: 30_000 },
    async () => {
      await withRouter({}, async (port, events) => {
        const peer = await rawPeer(port);
        peer.socket.write("GET / HTTP/1.1\r\n\r\n");
        await withTimeout(peer.closed, 5000, "drop");
        await droppedWith(events, "bad-signature");
      });
    },
  );

  test("an unknown mechanism is refused", { timeout: 30_000 }, async () => {
    await withRouter({}, async (port, events) => {
      const peer = await rawPeer(port);
      const greeting = GREETING_NULL.slice();
      greeting.set(enc.encode("CURVE"), 12);
      peer.socket.write(greeting);
      await withTimeout(peer.closed, 5000, "drop");
      await droppedWith(events, "mechanism-mismatch");
    });
  });

  test("a ZMTP 2 peer (major version 1) is refused", { timeout: 30_000 }, async () => {
    await withRouter({}, async (port, events) => {
      const peer = await rawPeer(port);
      const greeting = GREETING_NULL.slice();
      greeting[10] = 1;
      peer.socket.write(greeting);
      await withTimeout(peer.closed, 5000, "drop");
      await droppedWith(events, "unsupported-version");
    });
  });

  test("a frame declaring more than maxMessageSize is refused before any allocation", {
    timeout: 30_000,
  }, async () => {
    await withRouter({ maxMessageSize: 1024 }, async (port, events) => {
      const peer = await rawPeer(port);
      // 2^62 bytes declared: allocating it would crash the process.
      peer.socket.write(
        new Uint8Array([
          ...GREETING_NULL,
          ...readyCommand("DEALER"),
          0x02,
          0x40,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
        ]),
      );
      await withTimeout(peer.closed, 5000, "drop");
      await droppedWith(events, "message-too-large");
    });
  });

  test("a malformed command is refused", { timeout: 30_000 }, async () => {
    await withRouter({}, async (port, events) => {
      const peer = await rawPeer(port);
      // READY whose property value length runs past the command.
      const body = [0x05, ...enc.encode("READY"), 0x0b, ...enc.encode("Socket-Type"), 0, 0, 0, 99];
      peer.socket.write(new Uint8Array([...GREETING_NULL, 0x04, body.length, ...body]));
      await withTimeout(peer.closed, 5000, "drop");
      await droppedWith(events, "malformed-command");
    });
  });

  test(
    "an incompatible socket type gets an ERROR command and is dropped",
    { timeout: 30_000 },
    async () => {
      await withRouter({}, async (port, events) => {
        const peer = await rawPeer(port);
        peer.socket.write(new Uint8Array([...GREETING_NULL, ...readyCommand("PUB")]));
        await withTimeout(peer.closed, 5000, "drop");
        await droppedWith(events, "socket-type-mismatch");
        const bytes = peer.received();
        assert.ok(text(bytes).includes("ERROR"), "the peer was told why");
      });
    },
  );

  test("a peer that never finishes the handshake is dropped after handshakeTimeout", {
    timeout: 30_000,
  }, async () => {
    await withRouter({ handshakeTimeout: 200 }, async (port, events) => {
      const peer = await rawPeer(port);
      await withTimeout(peer.closed, 5000, "drop");
      await droppedWith(events, "handshake-timeout");
    });
  });

  test("connections past maxConnections are refused at once", { timeout: 30_000 }, async () => {
    await withRouter({ maxConnections: 2 }, async (port, events) => {
      await waitFor(() => events.some((e) => e.type === "handshake"), 5000, "good peer");
      const a = await rawPeer(port);
      const b = await rawPeer(port);
      await withTimeout(b.closed, 5000, "refusal");
      await droppedWith(events, "too-many-connections");
      a.socket.destroy();
    });
  });

  test(
    "a message cut short by a dropped connection is never delivered",
    { timeout: 30_000 },
    async () => {
      await withRouter({}, async (port) => {
        const peer = await rawPeer(port);
        // First frame of two (MORE set), then the connection goes.
        peer.socket.write(
          new Uint8Array([
            ...GREETING_NULL,
            ...readyCommand("DEALER"),
            0x01,
            0x04,
            ...enc.encode("half"),
          ]),
        );
        await sleep(100);
        peer.socket.destroy();
        await sleep(100);
      });
    },
  );
});
