/**
 * Bad input on a `ws://` endpoint: text messages, messages over `maxMessageSize`, an unknown
 * subprotocol, a handshake that never finishes (at the WebSocket level and inside ZWS), an
 * `Origin` outside the allowlist, a peer that stops answering heartbeats. Each is closed with a
 * reason reported as a SocketEvent (code and text), while a good peer connected before keeps
 * being served. The hostile clients are the `ws` package's, driven by hand.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
// @ts-types="./_ws_package.d.ts"
import { WebSocket } from "ws";
import { Dealer, Router, type RouterOptions, type SocketEvent } from "../mod.ts";
import type { WebSocketBindOptions } from "../src/transport/runtime_types.ts";
import { waitFor, withTimeout } from "./_helpers.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);
const zws = (flags: number, body: Uint8Array | string) => {
  const b = typeof body === "string" ? bytes(body) : body;
  const out = new Uint8Array(b.length + 1);
  out[0] = flags;
  out.set(b, 1);
  return out;
};

/** A hand-driven WebSocket client and what happened to it. */
interface RawClient {
  ws: WebSocket;
  /** Resolves with the subprotocol once open, rejects when refused. */
  opened: Promise<string>;
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves with the HTTP status when the upgrade is refused. */
  refused: Promise<number>;
  received: Uint8Array[];
}

function rawClient(url: string, protocols: string[], origin?: string): RawClient {
  const ws = new WebSocket(url, protocols, { origin });
  const received: Uint8Array[] = [];
  ws.on("message", (data: Buffer) => received.push(Uint8Array.from(data)));
  let refuse: (status: number) => void = () => {};
  const refused = new Promise<number>((resolve) => (refuse = resolve));
  ws.on("unexpected-response", (_request, response) => {
    refuse(response.statusCode ?? 0);
    (response as unknown as { resume(): void }).resume();
    ws.terminate();
  });
  const opened = new Promise<string>((resolve, reject) => {
    ws.once("open", () => resolve(ws.protocol));
    ws.once("error", reject);
  });
  opened.catch(() => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  return { ws, opened, closed, refused, received };
}

/** A router on ws:// with its events, and a good peer already talking to it. */
async function setup(options: RouterOptions = {}, bind?: WebSocketBindOptions) {
  const events: SocketEvent[] = [];
  const router = new Router({ ...options, onEvent: (e) => events.push(e) });
  const endpoint = await router.bind("ws://127.0.0.1:0", bind);
  const good = new Dealer({ routingId: "good" });
  good.connect(endpoint);
  await good.send("hello");
  const [id] = await withTimeout(router.receive(), 5000, "the good peer's hello");
  assert.equal(text(id), "good");
  /** The good peer is still served: a round trip through the router. */
  const stillServed = async () => {
    await good.send("still there?");
    const [from, what] = await withTimeout(router.receive(), 5000, "the good peer, after");
    assert.equal(text(from), "good");
    assert.equal(text(what), "still there?");
    await router.send([from, "yes"]);
    assert.equal(text((await withTimeout(good.receive(), 5000, "reply"))[0]), "yes");
    assert.equal(
      events.filter((e) => e.type === "disconnect" && e.routingId && text(e.routingId) === "good")
        .length,
      0,
    );
  };
  const close = () => {
    good.close();
    router.close();
  };
  return { router, endpoint, events, stillServed, close };
}

/** The one event of `type` with `code`, once it came. */
async function eventWith(events: SocketEvent[], code: string, type: string): Promise<SocketEvent> {
  const matches = (e: SocketEvent) => e.code === code && e.type === type;
  await waitFor(() => events.some(matches), 5000, `a ${type} event with code ${code}`);
  const found = events.filter(matches);
  assert.equal(found.length, 1, `one ${type} ${code} event`);
  assert.ok(found[0].reason && found[0].reason.length > 0, "with a reason in words");
  return found[0];
}

describe("hostile ws:// peers", () => {
  test(
    "a text message: dropped with text-frame (close 1003), others served",
    { timeout: 60_000 },
    async () => {
      const s = await setup();
      try {
        const bad = rawClient(s.endpoint, ["ZWS2.0"]);
        assert.equal(await withTimeout(bad.opened, 5000, "open"), "ZWS2.0");
        bad.ws.send(zws(0, "")); // its routing id, as it should
        bad.ws.send("a text message");
        const event = await eventWith(s.events, "text-frame", "disconnect");
        assert.match(event.reason!, /text/);
        assert.equal((await withTimeout(bad.closed, 5000, "close")).code, 1003);
        await s.stillServed();
      } finally {
        s.close();
      }
    },
  );

  test("a frame over maxMessageSize: dropped with message-too-large, others served", {
    timeout: 60_000,
  }, async () => {
    const s = await setup({ maxMessageSize: 1000 });
    try {
      const bad = rawClient(s.endpoint, ["ZWS2.0"]);
      await withTimeout(bad.opened, 5000, "open");
      bad.ws.send(zws(0, ""));
      bad.ws.send(zws(0, new Uint8Array(1000))); // exactly at the limit: fine
      await waitFor(() => s.events.some((e) => e.type === "handshake"), 5000, "its handshake");
      const [, ok] = await withTimeout(s.router.receive(), 5000, "the 1000-byte message");
      assert.equal(ok.length, 1000);
      bad.ws.send(zws(0, new Uint8Array(5000)));
      await eventWith(s.events, "message-too-large", "disconnect");
      await withTimeout(bad.closed, 5000, "close");
      await s.stillServed();
    } finally {
      s.close();
    }
  });

  test(
    "a multipart message whose frames add up past maxMessageSize: dropped",
    { timeout: 60_000 },
    async () => {
      const s = await setup({ maxMessageSize: 1000 });
      try {
        const bad = rawClient(s.endpoint, ["ZWS2.0"]);
        await withTimeout(bad.opened, 5000, "open");
        bad.ws.send(zws(0, ""));
        bad.ws.send(zws(1, new Uint8Array(600)));
        bad.ws.send(zws(0, new Uint8Array(600)));
        const event = await eventWith(s.events, "message-too-large", "disconnect");
        assert.match(event.reason!, /1200 bytes, limit is 1000/);
        await s.stillServed();
      } finally {
        s.close();
      }
    },
  );

  test(
    "an unknown subprotocol: refused with HTTP 400, unknown-subprotocol",
    { timeout: 60_000 },
    async () => {
      const s = await setup();
      try {
        const bad = rawClient(s.endpoint, ["chat", "ZWS1.0"]);
        assert.equal(await withTimeout(bad.refused, 5000, "refusal"), 400);
        const event = await eventWith(s.events, "unknown-subprotocol", "accept:error");
        assert.match(event.reason!, /"chat, ?ZWS1\.0"/);
        await s.stillServed();
      } finally {
        s.close();
      }
    },
  );

  test("no routing id (bare ZWS2.0) within the handshake timeout: handshake-timeout", {
    timeout: 60_000,
  }, async () => {
    const s = await setup({ handshakeTimeout: 300 });
    try {
      const bad = rawClient(s.endpoint, ["ZWS2.0"]);
      await withTimeout(bad.opened, 5000, "open");
      await eventWith(s.events, "handshake-timeout", "handshake:error:other");
      await withTimeout(bad.closed, 5000, "close");
      await s.stillServed();
    } finally {
      s.close();
    }
  });

  test("no READY (ZWS2.0+NULL) within the handshake timeout: handshake-timeout", {
    timeout: 60_000,
  }, async () => {
    const s = await setup({ handshakeTimeout: 300 });
    try {
      const bad = rawClient(s.endpoint, ["ZWS2.0+NULL"]);
      assert.equal(await withTimeout(bad.opened, 5000, "open"), "ZWS2.0+NULL");
      await eventWith(s.events, "handshake-timeout", "handshake:error:other");
      // Our READY was sent at once: a command (flags 0x02) naming our socket type.
      assert.equal(bad.received[0][0], 0x02);
      assert.match(
        new TextDecoder("latin1").decode(bad.received[0]),
        /READY.*Socket-Type.*ROUTER/s,
      );
      await s.stillServed();
    } finally {
      s.close();
    }
  });

  test(
    "an HTTP upgrade request never completed: dropped at the handshake timeout",
    { timeout: 60_000 },
    async () => {
      const s = await setup({ handshakeTimeout: 300 });
      try {
        const port = Number(s.endpoint.slice(s.endpoint.lastIndexOf(":") + 1));
        const socket = netConnect(port, "127.0.0.1");
        const ended = new Promise<string>((resolve) => {
          let answer = "";
          socket.on("data", (chunk) => (answer += chunk));
          socket.on("close", () => resolve(answer));
        });
        socket.on("error", () => {});
        socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n");
        assert.match(await withTimeout(ended, 5000, "the server drops it"), /^HTTP\/1.1 408/);
        await eventWith(s.events, "handshake-timeout", "accept:error");
        await s.stillServed();
      } finally {
        s.close();
      }
    },
  );

  test(
    "an Origin of another host: refused with HTTP 403 by default",
    { timeout: 60_000 },
    async () => {
      const s = await setup();
      try {
        const bad = rawClient(s.endpoint, ["ZWS2.0"], "https://evil.example");
        assert.equal(await withTimeout(bad.refused, 5000, "refusal"), 403);
        const event = await eventWith(s.events, "origin-not-allowed", "accept:error");
        assert.match(event.reason!, /evil\.example/);
        // A page of the same host (any port) is let in.
        const page = rawClient(s.endpoint, ["ZWS2.0"], "http://127.0.0.1:8080");
        assert.equal(await withTimeout(page.opened, 5000, "same-host page"), "ZWS2.0");
        page.ws.close();
        await s.stillServed();
      } finally {
        s.close();
      }
    },
  );

  test(
    "an Origin outside an allowlist: refused, even from the same host",
    { timeout: 60_000 },
    async () => {
      const s = await setup({}, { origins: ["https://app.example"] });
      try {
        const sameHost = rawClient(s.endpoint, ["ZWS2.0"], "http://127.0.0.1:8080");
        assert.equal(await withTimeout(sameHost.refused, 5000, "refusal"), 403);
        await eventWith(s.events, "origin-not-allowed", "accept:error");
        const listed = rawClient(s.endpoint, ["ZWS2.0"], "https://app.example");
        assert.equal(await withTimeout(listed.opened, 5000, "listed origin"), "ZWS2.0");
        listed.ws.close();
        await s.stillServed();
      } finally {
        s.close();
      }
    },
  );

  test(
    "a ZWS2.0+NULL peer that stops answering PINGs: heartbeat-timeout",
    { timeout: 60_000 },
    async () => {
      const s = await setup({ heartbeatInterval: 100, heartbeatTimeout: 400 });
      try {
        const bad = rawClient(s.endpoint, ["ZWS2.0+NULL"]);
        await withTimeout(bad.opened, 5000, "open");
        // A valid READY, then silence.
        const props = new Uint8Array([
          11,
          ...bytes("Socket-Type"),
          0,
          0,
          0,
          6,
          ...bytes("DEALER"),
        ]);
        bad.ws.send(zws(0x02, new Uint8Array([5, ...bytes("READY"), ...props])));
        await eventWith(s.events, "heartbeat-timeout", "disconnect");
        // It was sent PINGs before that: commands after our READY.
        assert.ok(bad.received.slice(1).some((m) => m[0] === 0x02), "PINGs were sent");
        await s.stillServed();
      } finally {
        s.close();
      }
    },
  );

  test(
    "a request for another path: 404, unknown-path; plain HTTP: 426",
    { timeout: 60_000 },
    async () => {
      const s = await setup();
      try {
        const wrong = rawClient(`${s.endpoint}/other`, ["ZWS2.0"]);
        assert.equal(await withTimeout(wrong.refused, 5000, "refusal"), 404);
        await eventWith(s.events, "unknown-path", "accept:error");
        const response = await fetch(s.endpoint.replace("ws:", "http:"));
        assert.equal(response.status, 426);
        await response.body?.cancel();
        await s.stillServed();
      } finally {
        s.close();
      }
    },
  );
});
