/**
 * Greeting, NULL handshake, commands and timers of the sans-IO Connection, against byte streams
 * written by hand the way libzmq writes them, and against another Connection.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Connection, type ConnectionOptions } from "../src/zmtp/connection.ts";
import {
  bytewise,
  COMMAND,
  commandFrame,
  concat,
  decode,
  drain,
  errorFrame,
  frame,
  fromHex,
  GREETING_BYTES,
  hex,
  LIBZMQ_SIGNATURE,
  messageBytes,
  pattern,
  peerGreeting,
  pingFrame,
  prng,
  propertyBytes,
  pump,
  randomSplit,
  readyFrame,
  recorded,
  sameMessages,
  throwsZmtp,
  utf8,
} from "./_wire_kit.ts";

const latin1 = new TextDecoder("latin1");

/** A decoded command frame we sent. */
interface SentCommand {
  name: string;
  data: Uint8Array;
  body: Uint8Array;
}

/** Decodes bytes we sent after our greeting: command frames only, none partial. */
function sentCommands(bytes: Uint8Array): SentCommand[] {
  const decoded = decode([bytes]);
  assert.equal(decoded.error, undefined);
  assert.equal(decoded.messages.length, 0, "no message frames expected");
  assert.ok(decoded.decoder.idle, "a partial frame was sent");
  return decoded.commands.map((body) => ({
    name: latin1.decode(body.subarray(1, 1 + body[0])),
    data: body.subarray(1 + body[0]),
    body,
  }));
}

/** Raw metadata properties, names exactly as written (not lower-cased). */
function rawProperties(data: Uint8Array): [string, Uint8Array][] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const list: [string, Uint8Array][] = [];
  let at = 0;
  while (at < data.length) {
    const nameLength = data[at++];
    const name = latin1.decode(data.subarray(at, at + nameLength));
    at += nameLength;
    const size = view.getUint32(at);
    at += 4;
    list.push([name, data.subarray(at, at + size)]);
    at += size;
  }
  return list;
}

/** A connection that has received a valid greeting and READY from a peer of type `peerType`. */
function readyConnection(
  options: ConnectionOptions,
  peerType = "ROUTER",
  peerMinor = 1,
  now = 0,
) {
  const r = recorded(options, now);
  r.conn.receive(
    concat([peerGreeting({ minor: peerMinor }), readyFrame([["Socket-Type", peerType]])]),
    now,
  );
  assert.equal(r.conn.state, "ready");
  drain(r.conn.out);
  return r;
}

describe("greeting", () => {
  test("ours is 64 bytes: libzmq's signature, 3.1, NULL, as-server 0", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    const taken = conn.out.take();
    assert.ok(taken !== null);
    const greeting = concat(taken.chunks);
    assert.equal(greeting.length, GREETING_BYTES);
    const expected = new Uint8Array(64);
    expected.set(fromHex("ff 00 00 00 00 00 00 00 01 7f 03 01 4e 55 4c 4c"));
    assert.equal(hex(greeting), hex(expected));
    assert.equal(taken.messages, 0);
    assert.equal(conn.state, "greeting");
  });

  test(
    "greeting after-peer (the accepting side): signature and major at once, our mechanism only " +
      "once the peer's whole greeting arrived",
    { timeout: 30_000 },
    () => {
      const { conn } = recorded({ socketType: "ROUTER", greeting: "after-peer" });
      const first = drain(conn.out);
      assert.equal(hex(first), hex(fromHex("ff 00 00 00 00 00 00 00 01 7f 03")));
      const greeting = peerGreeting();
      conn.receive(greeting.subarray(0, 63), 0);
      assert.equal(drain(conn.out).length, 0, "nothing more before the peer's last byte");
      conn.receive(greeting.subarray(63), 0);
      assert.equal(conn.state, "handshake");
      const rest = drain(conn.out);
      const ours = concat([first, rest.subarray(0, GREETING_BYTES - first.length)]);
      assert.equal(hex(ours.subarray(10, 16)), hex(fromHex("03 01 4e 55 4c 4c")));
      const commands = sentCommands(rest.subarray(GREETING_BYTES - first.length));
      assert.deepEqual(commands.map((c) => c.name), ["READY"]);
    },
  );

  test(
    "greeting after-peer: a peer of another mechanism is named, and still told ours",
    { timeout: 30_000 },
    () => {
      const { conn } = recorded({ socketType: "ROUTER", greeting: "after-peer" });
      drain(conn.out);
      const error = throwsZmtp(
        () => conn.receive(peerGreeting({ mechanism: "CURVE" }), 0),
        "mechanism-mismatch",
      );
      assert.match(error.message, /security mechanisms differ: peer uses mechanism CURVE/);
      const rest = drain(conn.out);
      assert.equal(rest.length, GREETING_BYTES - 11);
      assert.equal(latin1.decode(rest.subarray(1, 5)), "NULL");
    },
  );

  test("the minor version we announce is an option", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER", minorVersion: 0 });
    const greeting = drain(conn.out);
    assert.equal(greeting[10], 3);
    assert.equal(greeting[11], 0);
  });

  test(
    "a libzmq greeting arriving as signature, then version, then the rest",
    { timeout: 30_000 },
    () => {
      const { conn } = recorded({ socketType: "DEALER" });
      drain(conn.out);
      const greeting = peerGreeting();
      conn.receive(greeting.subarray(0, 10), 0);
      assert.equal(conn.state, "greeting");
      assert.equal(drain(conn.out).length, 0, "nothing more to say before the peer's greeting");
      conn.receive(greeting.subarray(10, 11), 0);
      assert.equal(conn.state, "greeting");
      conn.receive(greeting.subarray(11), 0);
      assert.equal(conn.state, "handshake");
      const commands = sentCommands(drain(conn.out));
      assert.deepEqual(commands.map((c) => c.name), ["READY"]);
    },
  );

  test(
    "a greeting byte by byte, and greeting + READY + message in one chunk",
    { timeout: 30_000 },
    () => {
      const stream = concat([
        peerGreeting(),
        readyFrame([["Socket-Type", "ROUTER"]]),
        messageBytes([utf8("hi")]),
      ]);
      for (const chunks of [bytewise(stream), [stream]]) {
        const { conn, peers, messages } = recorded({ socketType: "DEALER" });
        for (const chunk of chunks) conn.receive(chunk, 0);
        assert.equal(conn.state, "ready");
        assert.equal(peers.length, 1);
        assert.deepEqual(messages, [[utf8("hi")]]);
      }
    },
  );

  test("bytes 1..8 of the signature may hold anything", { timeout: 30_000 }, () => {
    const signature = fromHex("ff 12 34 56 78 9a bc de f0 7f");
    const { conn } = recorded({ socketType: "DEALER" });
    conn.receive(peerGreeting({ signature }), 0);
    assert.equal(conn.state, "handshake");
  });

  test("byte 0 not 0xff: bad-signature on the very first byte", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    throwsZmtp(() => conn.receive(utf8("G"), 0), "bad-signature");
    assert.equal(conn.state, "closed");
    // Closed connections ignore what follows.
    conn.receive(utf8("ET / HTTP/1.1\r\n"), 0);
    assert.equal(conn.state, "closed");
  });

  test("byte 9 not 0x7f: bad-signature when byte 9 arrives", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    const signature = LIBZMQ_SIGNATURE.slice();
    signature[9] = 0x01;
    for (let i = 0; i < 9; i++) conn.receive(signature.subarray(i, i + 1), 0);
    assert.equal(conn.state, "greeting");
    throwsZmtp(() => conn.receive(signature.subarray(9), 0), "bad-signature");
  });

  test("major version 2: unsupported-version when byte 10 arrives", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    const greeting = peerGreeting({ major: 2 });
    conn.receive(greeting.subarray(0, 10), 0);
    throwsZmtp(() => conn.receive(greeting.subarray(10, 11), 0), "unsupported-version");
  });

  test("major version 4 is accepted", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    conn.receive(concat([peerGreeting({ major: 4, minor: 0 })]), 0);
    assert.equal(conn.state, "handshake");
  });

  test("mechanism PLAIN against our NULL: mechanism-mismatch", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    throwsZmtp(() => conn.receive(peerGreeting({ mechanism: "PLAIN" }), 0), "mechanism-mismatch");
  });

  test(
    "a mechanism name with bytes after its zero padding is not NULL",
    { timeout: 30_000 },
    () => {
      const name = new Uint8Array(20);
      name.set(utf8("NULL"));
      name[19] = 0x41;
      const { conn } = recorded({ socketType: "DEALER" });
      throwsZmtp(() => conn.receive(peerGreeting({ mechanism: name }), 0), "mechanism-mismatch");
    },
  );
});

describe("READY", () => {
  test("property names are sent exactly as Socket-Type and Identity", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER", routingId: fromHex("00 01 02 ff") });
    conn.receive(peerGreeting(), 0);
    const sent = drain(conn.out);
    const expected = concat([
      fromHex("04 2d 05"),
      utf8("READY"),
      fromHex("0b"),
      utf8("Socket-Type"),
      fromHex("00 00 00 06"),
      utf8("DEALER"),
      fromHex("08"),
      utf8("Identity"),
      fromHex("00 00 00 04 00 01 02 ff"),
    ]);
    assert.equal(hex(sent.subarray(GREETING_BYTES)), hex(expected));
    const [ready] = sentCommands(sent.subarray(GREETING_BYTES));
    assert.equal(ready.name, "READY");
    const properties = rawProperties(ready.data);
    assert.deepEqual(properties.map(([name]) => name), ["Socket-Type", "Identity"]);
    assert.deepEqual(properties[0][1], utf8("DEALER"));
    assert.deepEqual(properties[1][1], fromHex("00 01 02 ff"));
  });

  test("a DEALER without a routing id announces an empty Identity", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    conn.receive(peerGreeting(), 0);
    const [ready] = sentCommands(drain(conn.out).subarray(GREETING_BYTES));
    assert.deepEqual(rawProperties(ready.data), [
      ["Socket-Type", utf8("DEALER")],
      ["Identity", new Uint8Array(0)],
    ]);
  });

  test("peer properties are read case-insensitively", { timeout: 30_000 }, () => {
    for (
      const [typeName, idName] of [
        ["socket-type", "identity"],
        ["SOCKET-TYPE", "IDENTITY"],
        ["SoCkEt-TyPe", "iDeNtItY"],
      ]
    ) {
      const { conn, peers } = recorded({ socketType: "DEALER" });
      conn.receive(
        concat([
          peerGreeting(),
          readyFrame([[typeName, "ROUTER"], [idName, fromHex("00 de ad")], ["X-Other", "v"]]),
        ]),
        0,
      );
      assert.equal(conn.state, "ready", `${typeName}/${idName}`);
      assert.equal(peers.length, 1);
      assert.equal(peers[0].socketType, "ROUTER");
      assert.deepEqual(peers[0].routingId, fromHex("00 de ad"));
      assert.deepEqual(peers[0].properties.get("x-other"), utf8("v"));
      assert.deepEqual(peers[0].version, { major: 3, minor: 1 });
    }
  });

  test("a peer without Identity has an empty routing id", { timeout: 30_000 }, () => {
    const { peers } = readyConnection({ socketType: "ROUTER" }, "DEALER");
    assert.deepEqual(peers[0].routingId, new Uint8Array(0));
  });
});

describe("two Connections in memory", () => {
  test("DEALER ↔ ROUTER: handshake, then messages both ways", { timeout: 30_000 }, () => {
    const dealer = recorded({ socketType: "DEALER", routingId: utf8("worker-1") });
    const router = recorded({ socketType: "ROUTER" });
    pump(dealer.conn, router.conn, 0);
    assert.equal(dealer.conn.state, "ready");
    assert.equal(router.conn.state, "ready");
    assert.equal(dealer.peers[0].socketType, "ROUTER");
    assert.equal(router.peers[0].socketType, "DEALER");
    assert.deepEqual(router.peers[0].routingId, utf8("worker-1"));

    const up = [[new Uint8Array(0)], [new Uint8Array(0), pattern(300)], [pattern(1024 * 1024)]];
    const down = [[new Uint8Array(0), new Uint8Array(0)], [utf8("a"), utf8("b"), utf8("c")]];
    for (const m of up) dealer.conn.send(m);
    for (const m of down) router.conn.send(m);
    pump(dealer.conn, router.conn, 0);
    assert.ok(sameMessages(router.messages, up));
    assert.ok(sameMessages(dealer.messages, down));
  });

  test("the same, with every byte stream cut in random pieces", { timeout: 30_000 }, () => {
    for (let seed = 1; seed <= 20; seed++) {
      const random = prng(seed);
      const cut = (data: Uint8Array) => randomSplit(data, random, seed);
      const dealer = recorded({ socketType: "DEALER", routingId: utf8("w") });
      const router = recorded({ socketType: "ROUTER" });
      pump(dealer.conn, router.conn, 0, cut);
      const sent = [[utf8("x")], [pattern(257, seed), new Uint8Array(0)]];
      for (const m of sent) dealer.conn.send(m);
      pump(dealer.conn, router.conn, 0, cut);
      assert.ok(sameMessages(router.messages, sent), `seed ${seed}`);
    }
  });

  test("send() before the handshake is refused", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    assert.throws(() => conn.send([utf8("early")]));
  });

  test("DEALER ↔ PUB: the DEALER sends ERROR and fails with socket-type-mismatch", {
    timeout: 30_000,
  }, () => {
    const { conn, peers } = recorded({ socketType: "DEALER" });
    drain(conn.out);
    throwsZmtp(
      () => conn.receive(concat([peerGreeting(), readyFrame([["Socket-Type", "PUB"]])]), 0),
      "socket-type-mismatch",
    );
    assert.equal(conn.state, "closed");
    assert.equal(peers.length, 0);
    const commands = sentCommands(drain(conn.out));
    assert.deepEqual(commands.map((c) => c.name), ["READY", "ERROR"]);
    const reason = latin1.decode(commands[1].data.subarray(1, 1 + commands[1].data[0]));
    assert.equal(commands[1].data.length, 1 + commands[1].data[0]);
    assert.match(reason, /PUB/);
  });

  test(
    "the ERROR we send is understood by a peer: peer-error with our reason",
    { timeout: 30_000 },
    () => {
      const dealer = recorded({ socketType: "DEALER" });
      throwsZmtp(
        () =>
          dealer.conn.receive(concat([peerGreeting(), readyFrame([["Socket-Type", "PUB"]])]), 0),
        "socket-type-mismatch",
      );
      // Greeting, READY, ERROR: a ROUTER accepts the READY, then takes the ERROR.
      const router = recorded({ socketType: "ROUTER" });
      const error = throwsZmtp(() => router.conn.receive(drain(dealer.conn.out), 0), "peer-error");
      assert.equal(router.peers.length, 1);
      assert.match(error.message, /DEALER cannot talk to PUB/);
    },
  );

  test("a READY without Socket-Type is a mismatch", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    throwsZmtp(
      () => conn.receive(concat([peerGreeting(), readyFrame([["Identity", "x"]])]), 0),
      "socket-type-mismatch",
    );
  });
});

describe("PING and PONG", () => {
  for (const minor of [1, 0]) {
    test(`PING is answered with PONG and the same context (peer announced 3.${minor})`, {
      timeout: 30_000,
    }, () => {
      const { conn } = readyConnection({ socketType: "DEALER" }, "ROUTER", minor);
      const context = fromHex("01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10");
      conn.receive(pingFrame(10, context), 5);
      const sent = drain(conn.out);
      assert.equal(hex(sent), hex(concat([fromHex("04 15 04"), utf8("PONG"), context])));
      conn.receive(pingFrame(0), 6);
      assert.equal(hex(drain(conn.out)), "04 05 04 50 4f 4e 47");
    });
  }

  test("a PONG or an unknown command after the handshake is ignored", { timeout: 30_000 }, () => {
    const { conn, messages } = readyConnection({ socketType: "DEALER" });
    conn.receive(
      concat([
        commandFrame("PONG", fromHex("01")),
        commandFrame("SUBSCRIBE", utf8("topic")),
        messageBytes([utf8("m")]),
      ]),
      1,
    );
    assert.equal(conn.state, "ready");
    assert.equal(drain(conn.out).length, 0);
    assert.deepEqual(messages, [[utf8("m")]]);
  });

  test("with heartbeatInterval set, tick() sends PING and times out without input", {
    timeout: 30_000,
  }, () => {
    const { conn } = readyConnection({ socketType: "DEALER", heartbeatInterval: 1000 });
    conn.tick(999);
    assert.equal(drain(conn.out).length, 0, "no PING before the interval");
    conn.tick(1000);
    assert.equal(hex(drain(conn.out)), "04 07 04 50 49 4e 47 00 00");
    conn.tick(1999);
    assert.equal(conn.state, "ready");
    throwsZmtp(() => conn.tick(2000), "heartbeat-timeout");
    assert.equal(conn.state, "closed");
  });

  test("input after our PING prevents the timeout", { timeout: 30_000 }, () => {
    const { conn } = readyConnection({
      socketType: "DEALER",
      heartbeatInterval: 1000,
      heartbeatTimeout: 1500,
    });
    conn.tick(1000);
    assert.equal(sentCommands(drain(conn.out))[0].name, "PING");
    conn.receive(commandFrame("PONG"), 2400);
    conn.tick(2600); // 1600 ms after the PING, but input came 200 ms ago
    assert.equal(conn.state, "ready");
    assert.equal(drain(conn.out).length, 0, "no PING while the peer was heard within the interval");
    conn.tick(3400);
    assert.equal(sentCommands(drain(conn.out))[0].name, "PING", "a PING after a quiet interval");
    conn.tick(4899);
    assert.equal(conn.state, "ready");
    throwsZmtp(() => conn.tick(4900), "heartbeat-timeout");
  });

  test(
    "traffic from the peer replaces our PINGs, unless we announced a TTL",
    { timeout: 60_000 },
    () => {
      const pings = (heartbeatTtl: number) => {
        const { conn } = readyConnection({
          socketType: "DEALER",
          heartbeatInterval: 1000,
          heartbeatTtl,
        });
        let sent = 0;
        // A message from the peer every 300 ms for 10 s, a tick every 100 ms.
        for (let now = 0; now <= 10_000; now += 100) {
          if (now % 300 === 0) conn.receive(messageBytes([utf8("busy")]), now);
          conn.tick(now);
          sent += sentCommands(drain(conn.out)).filter((c) => c.name === "PING").length;
        }
        assert.equal(conn.state, "ready");
        return sent;
      };
      assert.equal(pings(0), 0, "a busy peer is not pinged");
      // Our TTL asks the peer to drop us after that much silence from us: keep pinging.
      assert.equal(pings(3000), 10);
    },
  );

  test(
    "our PING carries heartbeatTtl in tenths of a second, capped at 655",
    { timeout: 30_000 },
    () => {
      const a = readyConnection({
        socketType: "DEALER",
        heartbeatInterval: 10,
        heartbeatTtl: 3000,
      });
      a.conn.tick(10);
      assert.equal(hex(drain(a.conn.out)), "04 07 04 50 49 4e 47 00 1e");
      const b = readyConnection({
        socketType: "DEALER",
        heartbeatInterval: 10,
        heartbeatTtl: 1_000_000,
      });
      b.conn.tick(10);
      assert.equal(hex(drain(b.conn.out)), "04 07 04 50 49 4e 47 02 8f");
    },
  );

  test(
    "a PING with TTL 10 followed by 1 s of silence is a heartbeat-timeout",
    { timeout: 30_000 },
    () => {
      const { conn } = readyConnection({ socketType: "DEALER" });
      conn.receive(pingFrame(10), 100);
      conn.tick(1099);
      assert.equal(conn.state, "ready");
      throwsZmtp(() => conn.tick(1100), "heartbeat-timeout");
    },
  );

  test("input within the peer's TTL keeps the connection", { timeout: 30_000 }, () => {
    const { conn, messages } = readyConnection({ socketType: "DEALER" });
    conn.receive(pingFrame(10), 100);
    conn.receive(messageBytes([utf8("alive")]), 1000);
    conn.tick(1999);
    assert.equal(conn.state, "ready");
    assert.equal(messages.length, 1);
    throwsZmtp(() => conn.tick(2000), "heartbeat-timeout");
  });

  test("no PING is sent to a peer that announced ZMTP 3.0", { timeout: 30_000 }, () => {
    const { conn } = readyConnection({ socketType: "DEALER", heartbeatInterval: 100 }, "ROUTER", 0);
    for (let now = 0; now <= 10_000; now += 50) conn.tick(now);
    assert.equal(conn.state, "ready");
    assert.equal(drain(conn.out).length, 0);
  });

  test("no timer fires without heartbeat options", { timeout: 30_000 }, () => {
    const { conn } = readyConnection({ socketType: "DEALER" });
    conn.tick(1e12);
    assert.equal(conn.state, "ready");
    assert.equal(drain(conn.out).length, 0);
  });
});

describe("handshake timeout", () => {
  test("no greeting within handshakeTimeout", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER", handshakeTimeout: 1000 }, 500);
    conn.tick(1499);
    assert.equal(conn.state, "greeting");
    throwsZmtp(() => conn.tick(1500), "handshake-timeout");
    assert.equal(conn.state, "closed");
  });

  test("a greeting but no READY within handshakeTimeout", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER", handshakeTimeout: 1000 }, 0);
    conn.receive(peerGreeting(), 10);
    conn.tick(999);
    throwsZmtp(() => conn.tick(1000), "handshake-timeout");
  });

  test("a finished handshake stops the handshake timer", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER", handshakeTimeout: 1000 }, 0);
    conn.receive(concat([peerGreeting(), readyFrame([["Socket-Type", "ROUTER"]])]), 999);
    conn.tick(5000);
    assert.equal(conn.state, "ready");
  });
});

describe("errors from the peer", () => {
  test("ERROR during the handshake: peer-error with its reason", { timeout: 30_000 }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    const error = throwsZmtp(
      () => conn.receive(concat([peerGreeting(), errorFrame("Invalid socket type")]), 0),
      "peer-error",
    );
    assert.match(error.message, /Invalid socket type/);
    assert.equal(conn.state, "closed");
  });

  test("ERROR after the handshake: peer-error with its reason", { timeout: 30_000 }, () => {
    const { conn } = readyConnection({ socketType: "DEALER" });
    const error = throwsZmtp(() => conn.receive(errorFrame("going away"), 1), "peer-error");
    assert.match(error.message, /going away/);
  });

  test("a message frame before the handshake: unexpected-frame", { timeout: 30_000 }, () => {
    const { conn, messages } = recorded({ socketType: "DEALER" });
    throwsZmtp(
      () => conn.receive(concat([peerGreeting(), messageBytes([utf8("too early")])]), 0),
      "unexpected-frame",
    );
    assert.equal(messages.length, 0);
  });

  test("another command than READY during the NULL handshake: handshake-failed", {
    timeout: 30_000,
  }, () => {
    const { conn } = recorded({ socketType: "DEALER" });
    throwsZmtp(() => conn.receive(concat([peerGreeting(), pingFrame(0)]), 0), "handshake-failed");
  });

  test("a message larger than maxMessageSize: message-too-large", { timeout: 30_000 }, () => {
    const { conn, messages } = readyConnection({ socketType: "DEALER", maxMessageSize: 100 });
    conn.receive(messageBytes([pattern(60), pattern(40)]), 1);
    assert.equal(messages.length, 1);
    throwsZmtp(
      () => conn.receive(messageBytes([pattern(60), pattern(41)]), 2),
      "message-too-large",
    );
  });

  test("too many frames: too-many-frames", { timeout: 30_000 }, () => {
    const { conn } = readyConnection({ socketType: "DEALER", maxFrames: 2 });
    conn.receive(messageBytes([utf8("a"), utf8("b")]), 1);
    throwsZmtp(
      () => conn.receive(messageBytes([utf8("a"), utf8("b"), utf8("c")]), 2),
      "too-many-frames",
    );
  });
});

describe("malformed commands", () => {
  const cases: [string, Uint8Array, boolean][] = [
    // [label, command frame, sent after the handshake?]
    ["name length past the frame", frame(COMMAND, fromHex("09 52 45 41 44 59")), false],
    ["name length past the frame (after READY)", frame(COMMAND, fromHex("05 50 49 4e 47")), true],
    ["zero-length name", frame(COMMAND, fromHex("00 01 02")), true],
    ["empty command frame", frame(COMMAND, new Uint8Array(0)), true],
    [
      "property value length past the command",
      commandFrame(
        "READY",
        concat([
          propertyBytes([["Socket-Type", "ROUTER"]]),
          fromHex("08"),
          utf8("Identity"),
          fromHex("00 00 03 e8 01 02 03"),
        ]),
      ),
      false,
    ],
    [
      "property name length past the command",
      commandFrame(
        "READY",
        concat([propertyBytes([["Socket-Type", "ROUTER"]]), fromHex("40 41 42")]),
      ),
      false,
    ],
    ["zero-length property name", commandFrame("READY", fromHex("00 00 00 00 00")), false],
    ["PING with 20 bytes of data", commandFrame("PING", pattern(20)), true],
    ["PING with 1 byte of data", commandFrame("PING", fromHex("00")), true],
    ["PING with no data", commandFrame("PING"), true],
  ];
  for (const [label, bytes, afterReady] of cases) {
    test(`${label}: malformed-command`, { timeout: 30_000 }, () => {
      const { conn } = afterReady
        ? readyConnection({ socketType: "DEALER" })
        : recorded({ socketType: "DEALER" });
      const stream = afterReady ? bytes : concat([peerGreeting(), bytes]);
      throwsZmtp(() => conn.receive(stream, 1), "malformed-command");
      assert.equal(conn.state, "closed");
    });
  }

  test("PING with 18 bytes of data (16 of context) is fine", { timeout: 30_000 }, () => {
    const { conn } = readyConnection({ socketType: "DEALER" });
    conn.receive(commandFrame("PING", pattern(18)), 1);
    const [pong] = sentCommands(drain(conn.out));
    assert.equal(pong.name, "PONG");
    assert.deepEqual(pong.data, pattern(18).subarray(2));
  });
});

describe("after an error", () => {
  test("the connection is closed and ignores input and ticks", { timeout: 30_000 }, () => {
    const conn = new Connection({ socketType: "DEALER", handshakeTimeout: 10 }, {
      ready: () => assert.fail("ready after an error"),
      message: () => assert.fail("message after an error"),
    }, 0);
    throwsZmtp(() => conn.receive(fromHex("00"), 0), "bad-signature");
    conn.receive(concat([peerGreeting(), readyFrame([["Socket-Type", "ROUTER"]])]), 1);
    conn.tick(100);
    assert.equal(conn.state, "closed");
  });
});
