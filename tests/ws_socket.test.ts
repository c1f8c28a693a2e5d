/**
 * Our Dealer and Router with each other over `ws://` and `wss://`: the subprotocol they agree
 * on (ZWS2.0+NULL: a ZMTP handshake inside), routing ids from READY, order and sizes, heartbeats
 * over WebSocket, TLS with a certificate and key on bind and a CA on connect, and one socket
 * bound on tcp and ws at once.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { curveKeyPair, Dealer, Router, type SocketEvent } from "../mod.ts";
import { sleep, waitFor, withTimeout } from "./_helpers.ts";

const TLS = fileURLToPath(new URL("./fixtures/tls/", import.meta.url));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("our sockets over ws://", () => {
  test(
    "DEALER and ROUTER agree on ZWS2.0+NULL; ids from READY; order; 10 MiB",
    { timeout: 60_000 },
    async () => {
      const routerEvents: SocketEvent[] = [];
      const dealerEvents: SocketEvent[] = [];
      const router = new Router({ onEvent: (e) => routerEvents.push(e) });
      const dealer = new Dealer({ routingId: "w1", onEvent: (e) => dealerEvents.push(e) });
      try {
        const endpoint = await router.bind("ws://127.0.0.1:0");
        assert.match(endpoint, /^ws:\/\/127\.0\.0\.1:\d+$/);
        dealer.connect(endpoint);
        const count = 5000;
        for (let i = 0; i < count; i++) dealer.send(["", `m${i}`]).catch(() => {});
        for (let i = 0; i < count; i++) {
          const [id, empty, body] = await withTimeout(router.receive(), 10_000, `message ${i}`);
          assert.equal(text(id), "w1");
          assert.equal(empty.length, 0);
          assert.equal(text(body), `m${i}`);
        }
        const big = new Uint8Array(10 * 1024 * 1024).map((_, i) => i & 0xff);
        await router.send(["w1", big, "tail"]);
        const [back, tail] = await withTimeout(dealer.receive(), 10_000, "10 MiB");
        assert.equal(back.length, big.length);
        assert.equal(back[123_457], 123_457 & 0xff);
        assert.equal(text(tail), "tail");
        assert.equal(dealerEvents.find((e) => e.type === "connect")?.protocol, "ZWS2.0+NULL");
        assert.equal(routerEvents.find((e) => e.type === "accept")?.protocol, "ZWS2.0+NULL");
      } finally {
        dealer.close();
        router.close();
      }
    },
  );

  test(
    "heartbeats (ZMTP PING/PONG inside ZWS) keep an idle connection up",
    { timeout: 60_000 },
    async () => {
      const events: SocketEvent[] = [];
      const router = new Router({
        heartbeatInterval: 50,
        heartbeatTimeout: 300,
        onEvent: (e) => events.push(e),
      });
      const dealer = new Dealer({
        routingId: "idle",
        heartbeatInterval: 50,
        heartbeatTimeout: 300,
      });
      try {
        dealer.connect(await router.bind("ws://127.0.0.1:0"));
        await dealer.send("hi");
        await withTimeout(router.receive(), 5000, "hi");
        await sleep(1500); // many heartbeat timeouts: only PONGs keep it up
        assert.equal(events.filter((e) => e.type === "disconnect").length, 0);
        await router.send(["idle", "still here"]);
        assert.equal(
          text((await withTimeout(dealer.receive(), 5000, "after idle"))[0]),
          "still here",
        );
      } finally {
        dealer.close();
        router.close();
      }
    },
  );

  test(
    "one ROUTER bound on tcp and ws at once serves peers of both",
    { timeout: 60_000 },
    async () => {
      const router = new Router();
      const tcpDealer = new Dealer({ routingId: "over-tcp" });
      const wsDealer = new Dealer({ routingId: "over-ws" });
      try {
        const tcp = await router.bind("tcp://127.0.0.1:0");
        const ws = await router.bind("ws://127.0.0.1:0");
        tcpDealer.connect(tcp);
        wsDealer.connect(ws);
        await tcpDealer.send("a");
        await wsDealer.send("b");
        const seen = new Set<string>();
        for (let i = 0; i < 2; i++) {
          const [id, body] = await withTimeout(router.receive(), 5000, "from both");
          seen.add(`${text(id)}:${text(body)}`);
          await router.send([id, `to ${text(id)}`]);
        }
        assert.deepEqual([...seen].sort(), ["over-tcp:a", "over-ws:b"]);
        assert.equal(text((await withTimeout(tcpDealer.receive(), 5000, "tcp"))[0]), "to over-tcp");
        assert.equal(text((await withTimeout(wsDealer.receive(), 5000, "ws"))[0]), "to over-ws");
      } finally {
        tcpDealer.close();
        wsDealer.close();
        router.close();
      }
    },
  );

  test("a DEALER on ws reconnects when the ROUTER comes back, and what it queued arrives", {
    timeout: 60_000,
  }, async () => {
    let router = new Router();
    const events: SocketEvent[] = [];
    const dealer = new Dealer({ routingId: "back", onEvent: (e) => events.push(e) });
    try {
      const endpoint = await router.bind("ws://127.0.0.1:0");
      dealer.connect(endpoint);
      await dealer.send("one");
      await withTimeout(router.receive(), 5000, "one");
      router.close();
      await router.whenClosed();
      await waitFor(() => events.some((e) => e.type === "disconnect"), 5000, "disconnect");
      const queued = dealer.send("two"); // no peer: waits in the socket
      router = new Router();
      await router.bind(endpoint);
      await withTimeout(queued, 10_000, "the queued send");
      const [id, two] = await withTimeout(router.receive(), 10_000, "two");
      assert.equal(text(id), "back");
      assert.equal(text(two), "two");
    } finally {
      dealer.close();
      router.close();
    }
  });
});

describe("our sockets over wss://", () => {
  test("certificate and key on bind; a client trusting the CA connects, others are refused", {
    timeout: 60_000,
  }, async () => {
    const router = new Router();
    const trusting = new Dealer({ routingId: "tls" });
    const failures: SocketEvent[] = [];
    const untrusting = new Dealer({
      onEvent: (e) => e.type === "connect:retry" && failures.push(e),
    });
    try {
      const endpoint = await router.bind("wss://127.0.0.1:0", {
        certFile: `${TLS}cert.pem`,
        keyFile: `${TLS}key.pem`,
      });
      assert.match(endpoint, /^wss:\/\/127\.0\.0\.1:\d+$/);
      // The certificate names localhost and 127.0.0.1: both check out.
      trusting.connect(endpoint.replace("127.0.0.1", "localhost"), { caFile: `${TLS}ca.pem` });
      await trusting.send(["", "over tls"]);
      const [id, , body] = await withTimeout(router.receive(), 10_000, "over tls");
      assert.equal(text(id), "tls");
      assert.equal(text(body), "over tls");
      await router.send([id, "", "back over tls"]);
      assert.equal(
        text((await withTimeout(trusting.receive(), 5000, "reply"))[1]),
        "back over tls",
      );

      untrusting.connect(endpoint);
      await waitFor(() => failures.length > 0, 10_000, "a refused connection");
      assert.match(failures[0].reason!, /certificate|issuer|verify/i);
      assert.equal(router.peerCount, 1);
    } finally {
      trusting.close();
      untrusting.close();
      router.close();
    }
  });

  test(
    "binding wss:// without a certificate fails with a clear error",
    { timeout: 60_000 },
    async () => {
      const router = new Router();
      try {
        await assert.rejects(router.bind("wss://127.0.0.1:0"), /needs certFile and keyFile/);
      } finally {
        router.close();
      }
    },
  );
});

describe("CURVE over ws://", () => {
  test("ZWS2.0+CURVE: sealed messages both ways, 0 B to 1 MiB, sealed heartbeats", {
    timeout: 60_000,
  }, async () => {
    const server = curveKeyPair();
    const events: SocketEvent[] = [];
    const router = new Router({
      curveServer: true,
      curveSecretKey: server.secretKey,
      heartbeatInterval: 50,
      onEvent: (e) => events.push(e),
    });
    const dealer = new Dealer({
      curveServerKey: server.publicKey,
      curveSecretKey: curveKeyPair().secretKey,
      routingId: "sealed",
      heartbeatInterval: 50,
    });
    try {
      dealer.connect(await router.bind("ws://127.0.0.1:0"));
      for (const size of [0, 1, 300, 70_000, 1 << 20]) {
        await dealer.send(["x", new Uint8Array(size).fill(size % 251)]);
        const [id, x, got] = await withTimeout(router.receive(), 10_000, `receive ${size}`);
        assert.equal(text(id), "sealed");
        assert.equal(text(x), "x");
        assert.equal(got.length, size);
        assert.ok(got.every((b) => b === size % 251));
        await router.send([id, got]);
        assert.equal(
          (await withTimeout(dealer.receive(), 10_000, `reply ${size}`))[0].length,
          size,
        );
      }
      await sleep(300); // sealed PINGs and PONGs each way
      assert.equal(events.find((e) => e.type === "accept")?.protocol, "ZWS2.0+CURVE");
      assert.equal(events.filter((e) => e.type === "disconnect").length, 0);
    } finally {
      dealer.close();
      router.close();
    }
  });

  test("a client that has the wrong server key is refused", { timeout: 60_000 }, async () => {
    const events: SocketEvent[] = [];
    const router = new Router({
      curveServer: true,
      curveSecretKey: curveKeyPair().secretKey,
      onEvent: (e) => events.push(e),
    });
    const dealer = new Dealer({
      curveServerKey: curveKeyPair().publicKey, // not the server's
      curveSecretKey: curveKeyPair().secretKey,
      reconnectInterval: 50,
    });
    try {
      dealer.connect(await router.bind("ws://127.0.0.1:0"));
      await waitFor(
        () => events.some((e) => e.type.startsWith("handshake:error")),
        10_000,
        "the refusal",
      );
      assert.equal(router.peerCount, 0);
    } finally {
      dealer.close();
      router.close();
    }
  });
});
