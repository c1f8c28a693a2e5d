/**
 * The sans-IO side of ZWS 2.0 (RFC 45) and the WebSocket handshake decisions: the ZWS decoder
 * and output buffer byte for byte, a Connection in ZWS mode (the `ZWS2.0/NULL` handshake as
 * libzmq's ws_engine writes it), the bare `ZWS2.0` connection (as jszmq speaks it), subprotocol
 * choice, origin checks and ws:// endpoints. No network.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { formatEndpoint, parseEndpoint, webSocketUrl } from "../src/transport/endpoint.ts";
import { chooseProtocol, originAllowed } from "../src/transport/ws_handshake.ts";
import { Connection, type PeerInfo } from "../src/zmtp/connection.ts";
import {
  ZWS_BARE,
  ZWS_NULL,
  ZWS_NULL_TOKEN,
  zwsClientProtocols,
  ZwsDecoder,
  ZwsOutBuffer,
  zwsServerProtocols,
} from "../src/zmtp/zws.ts";
import { BareZwsConnection } from "../src/zmtp/zws_bare.ts";
import { concat, propertyBytes, throwsZmtp, utf8 } from "./_wire_kit.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const latin1 = new TextDecoder("latin1");

/** A command body: name length, name, data. */
function commandBody(name: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concat([Uint8Array.of(name.length), utf8(name), data]);
}

/** One ZWS message: the flags byte, then the body. */
function zws(flags: number, body: Uint8Array | string): Uint8Array {
  return concat([Uint8Array.of(flags), typeof body === "string" ? utf8(body) : body]);
}

/** A decoder that records what it decodes. */
function recordingDecoder(maxMessageSize = 1024, maxFrames = 8) {
  const messages: Uint8Array[][] = [];
  const commands: Uint8Array[] = [];
  let heartbeats = 0;
  const decoder = new ZwsDecoder({ maxMessageSize, maxFrames }, {
    message: (frames) => messages.push(frames),
    command: (body) => commands.push(body),
  }, () => heartbeats++);
  return { decoder, messages, commands, heartbeats: () => heartbeats };
}

/** Chunks taken from an output, each one WebSocket message. */
function taken(out: { take(): { chunks: Uint8Array[]; messages: number } | null }) {
  return out.take()?.chunks.map((c) => Uint8Array.from(c)) ?? [];
}

describe("ZWS decoder", () => {
  test("one frame per message: MORE joins frames, a final frame ends the message", {
    timeout: 60_000,
  }, () => {
    const d = recordingDecoder();
    d.decoder.feed(zws(0x01, "id"));
    assert.equal(d.messages.length, 0);
    assert.equal(d.decoder.idle, false);
    d.decoder.feed(zws(0x01, ""));
    d.decoder.feed(zws(0x00, "payload"));
    assert.deepEqual(d.messages.map((m) => m.map(text)), [["id", "", "payload"]]);
    assert.ok(d.decoder.idle);
  });

  test("a command frame goes to the command sink; an empty one is libzmq's heartbeat", {
    timeout: 60_000,
  }, () => {
    const d = recordingDecoder();
    d.decoder.feed(zws(0x02, commandBody("PING", Uint8Array.of(0, 10))));
    d.decoder.feed(Uint8Array.of(0x02));
    assert.equal(d.commands.length, 1);
    assert.equal(latin1.decode(d.commands[0].subarray(1, 5)), "PING");
    assert.equal(d.heartbeats(), 1);
    assert.equal(d.messages.length, 0);
  });

  test("framing errors and limits", { timeout: 60_000 }, () => {
    throwsZmtp(() => recordingDecoder().decoder.feed(new Uint8Array(0)), "unexpected-frame");
    throwsZmtp(
      () => recordingDecoder().decoder.feed(zws(0x03, commandBody("PING"))),
      "malformed-command",
    );
    throwsZmtp(
      () => recordingDecoder(100).decoder.feed(zws(0x00, new Uint8Array(101))),
      "message-too-large",
    );
    const sum = recordingDecoder(100);
    sum.decoder.feed(zws(0x01, new Uint8Array(60)));
    throwsZmtp(() => sum.decoder.feed(zws(0x00, new Uint8Array(41))), "message-too-large");
    const frames = recordingDecoder(1024, 3);
    frames.decoder.feed(zws(0x01, "a"));
    frames.decoder.feed(zws(0x01, "b"));
    throwsZmtp(() => frames.decoder.feed(zws(0x01, "c")), "too-many-frames");
    // Exactly at the limit is fine.
    const exact = recordingDecoder(100);
    exact.decoder.feed(zws(0x00, new Uint8Array(100)));
    assert.equal(exact.messages[0][0].length, 100);
  });

  test(
    "frame bodies are views of the message the receiver owns: no copy",
    { timeout: 60_000 },
    () => {
      const d = recordingDecoder(1 << 20);
      const small = zws(0x00, "small");
      d.decoder.feed(small);
      assert.equal(d.messages[0][0].buffer, small.buffer);
      assert.equal(d.messages[0][0].byteOffset, small.byteOffset + 1);
      assert.equal(text(d.messages[0][0]), "small");
      const large = zws(0x00, new Uint8Array(64 * 1024).fill(1));
      d.decoder.feed(large);
      assert.equal(d.messages[1][0].buffer, large.buffer);
      assert.equal(d.messages[1][0].length, 64 * 1024);
    },
  );
});

describe("ZWS output buffer", () => {
  test(
    "exact bytes: one WebSocket message per frame, the flags byte first",
    { timeout: 60_000 },
    () => {
      const out = new ZwsOutBuffer();
      assert.equal(out.message([utf8("id"), new Uint8Array(0), utf8("hi")]), false);
      out.command(commandBody("PONG"));
      out.routingId(utf8("me"));
      assert.equal(out.messages, 1, "commands and the routing id are not messages");
      assert.deepEqual(taken(out), [
        zws(0x01, "id"),
        Uint8Array.of(0x01),
        zws(0x00, "hi"),
        zws(0x02, commandBody("PONG")),
        zws(0x00, "me"),
      ]);
      assert.equal(out.take(), null);
    },
  );

  test(
    "chunks already taken are never written again; large bodies are copied",
    { timeout: 60_000 },
    () => {
      const out = new ZwsOutBuffer();
      out.message([utf8("first")]);
      const first = out.take()!.chunks[0];
      for (let i = 0; i < 500; i++) out.message([new Uint8Array(100).fill(i & 0xff)]);
      assert.deepEqual(first, zws(0x00, "first"));
      const body = new Uint8Array(100_000).fill(9);
      out.message([body]);
      const chunks = out.take()!.chunks;
      const big = chunks[chunks.length - 1];
      body.fill(0); // the caller reuses its bytes at once
      assert.equal(big.length, 100_001);
      assert.equal(big[0], 0);
      assert.equal(big[50_000], 9);
    },
  );

  test("no raw bytes in ZWS", { timeout: 60_000 }, () => {
    assert.throws(() => new ZwsOutBuffer().raw(new Uint8Array(1)), /no greeting/);
  });
});

describe("Connection in ZWS mode (ZWS2.0/NULL, ZWS2.0+NULL)", () => {
  test(
    "no greeting: READY is the first message, a command (flags 0x02)",
    { timeout: 60_000 },
    () => {
      const conn = new Connection(
        { socketType: "DEALER", routingId: utf8("w1"), framing: "zws" },
        { ready: () => {}, message: () => {} },
        0,
      );
      assert.equal(conn.state, "handshake");
      const [ready, ...rest] = taken(conn.out);
      assert.equal(rest.length, 0);
      assert.deepEqual(
        ready,
        zws(
          0x02,
          commandBody("READY", propertyBytes([["Socket-Type", "DEALER"], ["Identity", "w1"]])),
        ),
      );
    },
  );

  test("the handshake and messages as libzmq's ws_engine writes them", { timeout: 60_000 }, () => {
    const peers: PeerInfo[] = [];
    const got: Uint8Array[][] = [];
    const conn = new Connection(
      { socketType: "ROUTER", framing: "zws" },
      { ready: (p) => peers.push(p), message: (m) => got.push(m) },
      0,
    );
    taken(conn.out);
    // libzmq's READY, then a two-frame message, then its WebSocket heartbeat.
    const props = propertyBytes([["Socket-Type", "DEALER"], ["Identity", "lz"]]);
    conn.receive(zws(0x02, commandBody("READY", props)), 1);
    assert.equal(conn.state, "ready");
    assert.equal(text(peers[0].routingId), "lz");
    assert.equal(peers[0].socketType, "DEALER");
    conn.receive(zws(0x01, "a"), 2);
    conn.receive(zws(0x00, "b"), 2);
    assert.deepEqual(got.map((m) => m.map(text)), [["a", "b"]]);
    conn.receive(Uint8Array.of(0x02), 3);
    assert.deepEqual(taken(conn.out), [Uint8Array.of(0x02)], "the heartbeat is answered");
    conn.send([utf8("x"), utf8("yz")]);
    assert.deepEqual(taken(conn.out), [zws(0x01, "x"), zws(0x00, "yz")]);
  });

  test("two connections in ZWS mode: handshake, messages, PING answered with PONG", {
    timeout: 60_000,
  }, () => {
    const log: string[] = [];
    const make = (type: "DEALER" | "ROUTER", id?: string) =>
      new Connection(
        {
          socketType: type,
          routingId: id === undefined ? undefined : utf8(id),
          framing: "zws",
          heartbeatInterval: 100,
        },
        {
          ready: (p) => log.push(`${type} ready ${text(p.routingId)}`),
          message: (m) => log.push(`${type} got ${m.map(text).join("|")}`),
        },
        0,
      );
    const dealer = make("DEALER", "d1");
    const router = make("ROUTER");
    const pump = (now: number) => {
      for (let moved = true; moved;) {
        moved = false;
        for (const [from, to] of [[dealer, router], [router, dealer]]) {
          for (const chunk of taken(from.out)) {
            to.receive(chunk, now);
            moved = true;
          }
        }
      }
    };
    pump(0);
    assert.deepEqual(log.sort(), ["DEALER ready ", "ROUTER ready d1"]);
    dealer.send([utf8("hello"), utf8("there")]);
    pump(1);
    assert.equal(log.at(-1), "ROUTER got hello|there");
    dealer.tick(150); // a PING goes out
    const [ping] = taken(dealer.out);
    assert.equal(ping[0], 0x02);
    assert.equal(latin1.decode(ping.subarray(2, 6)), "PING");
    router.receive(ping, 150);
    const [pong] = taken(router.out);
    assert.equal(latin1.decode(pong.subarray(2, 6)), "PONG");
    dealer.receive(pong, 160);
    dealer.tick(500); // answered: no heartbeat timeout
    assert.equal(dealer.state, "ready");
  });

  test("a data frame before READY is refused", { timeout: 60_000 }, () => {
    const conn = new Connection({ socketType: "ROUTER", framing: "zws" }, {
      ready: () => {},
      message: () => {},
    }, 0);
    throwsZmtp(() => conn.receive(zws(0x00, "too early"), 0), "unexpected-frame");
  });

  test(
    "a peer that never sends READY is dropped at the handshake timeout",
    { timeout: 60_000 },
    () => {
      const conn = new Connection(
        { socketType: "ROUTER", framing: "zws", handshakeTimeout: 300 },
        { ready: () => {}, message: () => {} },
        0,
      );
      conn.tick(299);
      throwsZmtp(() => conn.tick(300), "handshake-timeout");
    },
  );
});

describe("bare ZWS2.0 (no mechanism), as jszmq speaks it", () => {
  test("our routing id goes first, the peer's first message is its id, then data", {
    timeout: 60_000,
  }, () => {
    const peers: PeerInfo[] = [];
    const got: Uint8Array[][] = [];
    const conn = new BareZwsConnection(
      { socketType: "DEALER", routingId: utf8("me") },
      { ready: (p) => peers.push(p), message: (m) => got.push(m) },
      0,
    );
    assert.deepEqual(taken(conn.out), [zws(0x00, "me")]);
    assert.throws(() => conn.send([utf8("early")]), /state "handshake"/);
    conn.receive(Uint8Array.of(0x00), 1); // jszmq's default: an empty id
    assert.equal(conn.state, "ready");
    assert.equal(peers[0].routingId.length, 0);
    assert.equal(peers[0].socketType, "");
    conn.receive(zws(0x01, "a"), 2);
    conn.receive(zws(0x00, "b"), 2);
    assert.deepEqual(got.map((m) => m.map(text)), [["a", "b"]]);
    conn.send([utf8("x"), utf8("y")]);
    assert.deepEqual(taken(conn.out), [zws(0x01, "x"), zws(0x00, "y")]);
  });

  test("never starts a command (jszmq would take it for data); answers libzmq's heartbeat", {
    timeout: 60_000,
  }, () => {
    const conn = new BareZwsConnection(
      { socketType: "ROUTER", heartbeatInterval: 10, handshakeTimeout: 100 },
      { ready: () => {}, message: () => {} },
      0,
    );
    taken(conn.out);
    conn.receive(zws(0x00, "peer"), 0);
    for (let now = 0; now < 10_000; now += 10) conn.tick(now);
    assert.deepEqual(taken(conn.out), []);
    conn.receive(Uint8Array.of(0x02), 10_000);
    assert.deepEqual(taken(conn.out), [Uint8Array.of(0x02)]);
  });

  test("a first message that is no routing id, or one too long, fails the handshake", {
    timeout: 60_000,
  }, () => {
    const make = () =>
      new BareZwsConnection({ socketType: "ROUTER" }, { ready: () => {}, message: () => {} }, 0);
    throwsZmtp(() => make().receive(zws(0x01, "id"), 0), "handshake-failed");
    throwsZmtp(() => make().receive(zws(0x02, commandBody("READY")), 0), "handshake-failed");
    throwsZmtp(() => make().receive(zws(0x00, new Uint8Array(256)), 0), "handshake-failed");
    throwsZmtp(() => make().receive(new Uint8Array(0), 0), "unexpected-frame");
    make().receive(zws(0x00, new Uint8Array(255)), 0); // 255 bytes is the longest allowed
  });

  test("a peer that never sends its routing id is dropped at the handshake timeout", {
    timeout: 60_000,
  }, () => {
    const conn = new BareZwsConnection(
      { socketType: "ROUTER", handshakeTimeout: 300 },
      { ready: () => {}, message: () => {} },
      0,
    );
    conn.tick(299);
    throwsZmtp(() => conn.tick(300), "handshake-timeout");
  });

  test("limits hold after the handshake", { timeout: 60_000 }, () => {
    const conn = new BareZwsConnection(
      { socketType: "ROUTER", maxMessageSize: 10 },
      { ready: () => {}, message: () => {} },
      0,
    );
    conn.receive(Uint8Array.of(0x00), 0);
    throwsZmtp(() => conn.receive(zws(0x00, new Uint8Array(11)), 0), "message-too-large");
  });
});

describe("subprotocols, origins and ws:// endpoints", () => {
  test(
    "the server picks the best subprotocol offered, whatever the order",
    { timeout: 60_000 },
    () => {
      const ours = zwsServerProtocols("NULL");
      assert.deepEqual(ours, [ZWS_NULL_TOKEN, ZWS_NULL, ZWS_BARE]);
      assert.equal(chooseProtocol("ZWS2.0/NULL,ZWS2.0", ours), ZWS_NULL); // libzmq's offer
      assert.equal(chooseProtocol("ZWS2.0", ours), ZWS_BARE); // jszmq's
      assert.equal(chooseProtocol(zwsClientProtocols("NULL").join(", "), ours), ZWS_NULL_TOKEN);
      assert.equal(chooseProtocol(" ZWS2.0 ,  ZWS2.0+NULL ", ours), ZWS_NULL_TOKEN);
      assert.equal(chooseProtocol("chat, superchat", ours), null);
      assert.equal(chooseProtocol("", ours), null);
      assert.equal(chooseProtocol(null, ours), null);
      assert.equal(chooseProtocol("ZWS2.0/NULLX", ours), null);
    },
  );

  test("clients offer bare ZWS2.0 first (for servers that take the first offer)", {
    timeout: 60_000,
  }, () => {
    assert.deepEqual(zwsClientProtocols("NULL"), ["ZWS2.0", "ZWS2.0+NULL"]);
    // Every name a client offers is an HTTP token, as WebSocket clients require.
    for (const name of zwsClientProtocols("NULL")) {
      assert.match(name, /^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$/);
    }
  });

  test("origins: no Origin (not a browser) is let in; by default the same host only", {
    timeout: 60_000,
  }, () => {
    assert.ok(originAllowed(undefined, "hub:5020"));
    assert.ok(originAllowed("http://127.0.0.1:8080", "127.0.0.1:5020"));
    assert.ok(originAllowed("https://HUB.example", "hub.example:443"));
    assert.ok(originAllowed("http://[::1]:8080", "[::1]:5020"));
    assert.ok(!originAllowed("http://localhost:8080", "127.0.0.1:5020"));
    assert.ok(!originAllowed("https://evil.example", "hub.example:5020"));
    assert.ok(!originAllowed("null", "hub.example:5020"));
    assert.ok(!originAllowed("http://hub.example", undefined));
  });

  test(
    "origins: an allowlist replaces the default; * lets any page in",
    { timeout: 60_000 },
    () => {
      const list = ["https://app.example"];
      assert.ok(originAllowed("https://app.example", "hub:5020", list));
      assert.ok(originAllowed("HTTPS://APP.EXAMPLE", "hub:5020", list));
      assert.ok(!originAllowed("https://hub", "hub:5020", list));
      assert.ok(!originAllowed("https://app.example:8443", "hub:5020", list));
      assert.ok(originAllowed("https://anything", "hub:5020", ["*"]));
    },
  );

  test(
    "ws:// and wss:// endpoints parse, keep host names, and format back",
    { timeout: 60_000 },
    () => {
      assert.deepEqual(parseEndpoint("ws://localhost:5020"), {
        transport: "ws",
        host: "localhost",
        port: 5020,
        path: "/",
      });
      assert.deepEqual(parseEndpoint("wss://hub.example:443/zmq/a"), {
        transport: "wss",
        host: "hub.example",
        port: 443,
        path: "/zmq/a",
      });
      assert.deepEqual(parseEndpoint("ws://*:0"), {
        transport: "ws",
        host: "0.0.0.0",
        port: 0,
        path: "/",
      });
      const v6 = parseEndpoint("ws://[::1]:5020/x");
      assert.equal(formatEndpoint(v6), "ws://[::1]:5020/x");
      assert.equal(formatEndpoint(parseEndpoint("ws://127.0.0.1:5020/")), "ws://127.0.0.1:5020");
      assert.equal(
        webSocketUrl(parseEndpoint("ws://127.0.0.1:5020") as never),
        "ws://127.0.0.1:5020/",
      );
      for (
        const bad of ["ws://hub", "ws://:5020", "ws://hub:99999", "ws://hub:1/a?b", "wx://a:1"]
      ) {
        assert.throws(() => parseEndpoint(bad), /Invalid endpoint/, bad);
      }
    },
  );
});
