/**
 * CURVE and PLAIN in the sans-IO core: handshakes, sealed frames, and each bad input refused
 * with its reason (the negative cases of libzmq's test_security_curve, test_security_plain and
 * test_security_zap, ported to bytes fed to our connections).
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { curveClient, curveServer, HELLO_SIZE } from "../src/zmtp/curve_mechanism.ts";
import { generateKeyPair } from "../src/zmtp/curve_crypto.ts";
import { plainClient, plainServer } from "../src/zmtp/plain_mechanism.ts";
import { toAuthOutcome } from "../src/zmtp/mechanism.ts";
import { z85Encode } from "../src/zmtp/z85.ts";
import {
  answer,
  COMMAND,
  commandName,
  concat,
  curvePair,
  frame,
  freshKeys,
  HandClient,
  peerGreeting,
  secured,
  sent,
  utf8,
  welcomeFrom,
} from "./_security_cases.ts";
import { drain, pump, readyFrame, throwsZmtp } from "./_wire_kit.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const keys = freshKeys();

function readyPair(options: Parameters<typeof curvePair>[1] = {}) {
  const pair = curvePair(keys, options);
  pump(pair.client.conn, pair.server.conn, 0);
  assert.equal(pair.client.conn.state, "ready");
  assert.equal(pair.server.conn.state, "ready");
  return pair;
}

/** Our CURVE server, and a hand client that got as far as its INITIATE. */
function serverAwaitingInitiate(
  clientKeys = { ...keys.client, serverKey: keys.server.publicKey },
  authenticate = false,
) {
  const server = secured("ROUTER", curveServer({ ...keys.server, authenticate }));
  const hand = new HandClient(clientKeys);
  const welcome = welcomeFrom(server, hand.hello());
  return { server, initiate: hand.initiate(welcome) };
}

describe("CURVE handshake", () => {
  test("client and server finish it and carry messages both ways, metadata inside the boxes", {
    timeout: 60_000,
  }, () => {
    const { client, server } = readyPair();
    const [peer] = server.peers;
    assert.equal(peer.mechanism, "CURVE");
    assert.equal(peer.socketType, "DEALER");
    assert.equal(text(peer.routingId), "client-1", "Identity travelled in INITIATE's box");
    assert.equal(z85Encode(peer.publicKey!), z85Encode(keys.client.publicKey));
    assert.equal(client.peers[0].socketType, "ROUTER", "Socket-Type travelled in READY's box");
    client.conn.send([utf8("hello"), new Uint8Array(0), new Uint8Array(70_000).fill(7)]);
    server.conn.send([utf8("back")]);
    pump(client.conn, server.conn, 1);
    assert.deepEqual(server.messages.map((m) => m.map((f) => f.length)), [[5, 0, 70_000]]);
    assert.equal(text(server.messages[0][0]), "hello");
    assert.ok(server.messages[0][2].every((b) => b === 7));
    assert.equal(text(client.messages[0][0]), "back");
  });

  test("HELLO is 200 bytes: version 1.0, 72 zero bytes, C', nonce 1, signature box", {
    timeout: 60_000,
  }, () => {
    const hello = new HandClient({ ...keys.client, serverKey: keys.server.publicKey }).hello();
    assert.equal(hello.length, HELLO_SIZE);
    assert.equal(commandName(hello), "HELLO");
    assert.deepEqual([...hello.subarray(6, 8)], [1, 0]);
    assert.ok(hello.subarray(8, 80).every((b) => b === 0));
    assert.deepEqual([...hello.subarray(112, 120)], [0, 0, 0, 0, 0, 0, 0, 1]);
  });

  test("after the handshake only MESSAGE boxes go out; heartbeats are sealed and answered", {
    timeout: 60_000,
  }, () => {
    const { client, server } = readyPair({ heartbeat: 10 });
    client.conn.tick(20); // a PING, sealed
    const wire = sent(client.conn);
    assert.equal(wire.commands.length, 0, "no unsealed command frame");
    assert.equal(wire.messages.length, 1);
    assert.equal(commandName(wire.messages[0][0]), "MESSAGE");
    server.conn.receive(wire.bytes, 20);
    const reply = sent(server.conn); // a sealed PONG
    assert.equal(reply.commands.length, 0);
    assert.equal(commandName(reply.messages[0][0]), "MESSAGE");
    client.conn.receive(reply.bytes, 21);
    client.conn.tick(35); // the PONG counted as traffic: no heartbeat timeout
    assert.equal(client.conn.state, "ready");
    assert.equal(server.messages.length, 0, "a sealed command is not delivered as a message");
  });

  test("a MESSAGE box sent as a command frame is accepted as well (libzmq sends it as data)", {
    timeout: 60_000,
  }, () => {
    const { client, server } = readyPair();
    client.conn.send([utf8("as command")]);
    const bytes = drain(client.conn.out);
    assert.equal(bytes[0], 0x00, "we send MESSAGE without the command flag, as libzmq");
    bytes[0] = 0x04;
    server.conn.receive(bytes, 1);
    assert.equal(text(server.messages[0][0]), "as command");
  });
});

describe("CURVE server refuses bad input", () => {
  test("a NULL client: mechanism-mismatch", { timeout: 60_000 }, () => {
    const server = secured("ROUTER", curveServer({ ...keys.server, authenticate: false }));
    throwsZmtp(
      () => server.conn.receive(peerGreeting({ mechanism: "NULL" }), 0),
      "mechanism-mismatch",
    );
  });

  test("a PLAIN client: mechanism-mismatch", { timeout: 60_000 }, () => {
    const server = secured("ROUTER", curveServer({ ...keys.server, authenticate: false }));
    throwsZmtp(
      () => server.conn.receive(peerGreeting({ mechanism: "PLAIN" }), 0),
      "mechanism-mismatch",
    );
  });

  test("another CURVE server (as-server 1): handshake-failed", { timeout: 60_000 }, () => {
    const server = secured("ROUTER", curveServer({ ...keys.server, authenticate: false }));
    const error = throwsZmtp(
      () => server.conn.receive(peerGreeting({ mechanism: "CURVE", asServer: true }), 0),
      "handshake-failed",
    );
    assert.match(error.message, /both sides are CURVE servers/);
  });

  test("a short HELLO (libzmq's 6-byte one): malformed-command", { timeout: 60_000 }, () => {
    const server = secured("ROUTER", curveServer({ ...keys.server, authenticate: false }));
    server.conn.receive(peerGreeting({ mechanism: "CURVE" }), 0);
    const error = throwsZmtp(
      () => server.conn.receive(frame(COMMAND, utf8("\x05HELLO")), 0),
      "malformed-command",
    );
    assert.match(error.message, /HELLO of 6 bytes, it must be exactly 200/);
  });

  test("a long HELLO (201 bytes): malformed-command", { timeout: 60_000 }, () => {
    const server = secured("ROUTER", curveServer({ ...keys.server, authenticate: false }));
    const hello = new HandClient({ ...keys.client, serverKey: keys.server.publicKey }).hello();
    server.conn.receive(peerGreeting({ mechanism: "CURVE" }), 0);
    throwsZmtp(
      () => server.conn.receive(frame(COMMAND, concat([hello, Uint8Array.of(0)])), 0),
      "malformed-command",
    );
  });

  test("a HELLO of another version: malformed-command", { timeout: 60_000 }, () => {
    const server = secured("ROUTER", curveServer({ ...keys.server, authenticate: false }));
    const hello = new HandClient({ ...keys.client, serverKey: keys.server.publicKey }).hello();
    hello[6] = 2;
    server.conn.receive(peerGreeting({ mechanism: "CURVE" }), 0);
    throwsZmtp(() => server.conn.receive(frame(COMMAND, hello), 0), "malformed-command");
  });

  test("a HELLO made for another server key: decryption-failed, and no WELCOME goes out", {
    timeout: 60_000,
  }, () => {
    const server = secured("ROUTER", curveServer({ ...keys.server, authenticate: false }));
    const other = generateKeyPair();
    const hello = new HandClient({ ...keys.client, serverKey: other.publicKey }).hello();
    server.conn.receive(peerGreeting({ mechanism: "CURVE" }), 0);
    drain(server.conn.out);
    const error = throwsZmtp(
      () => server.conn.receive(frame(COMMAND, hello), 0),
      "decryption-failed",
    );
    assert.match(error.message, /another server key/);
    assert.equal(drain(server.conn.out).length, 0, "a HELLO that does not open draws no answer");
  });

  test("a HELLO whose transient key is a low-order point (a garbage key): key-exchange-failed", {
    timeout: 60_000,
  }, () => {
    const server = secured("ROUTER", curveServer({ ...keys.server, authenticate: false }));
    const hello = new HandClient({ ...keys.client, serverKey: keys.server.publicKey }).hello();
    hello.fill(0, 80, 112); // C' = 0
    server.conn.receive(peerGreeting({ mechanism: "CURVE" }), 0);
    throwsZmtp(() => server.conn.receive(frame(COMMAND, hello), 0), "key-exchange-failed");
  });

  test("an INITIATE shorter than 257 bytes: malformed-command", { timeout: 60_000 }, () => {
    const { server } = serverAwaitingInitiate();
    throwsZmtp(
      () => server.conn.receive(frame(COMMAND, utf8("\x08INITIATE")), 0),
      "malformed-command",
    );
  });

  test("an INITIATE under another command name: handshake-failed", { timeout: 60_000 }, () => {
    const { server, initiate } = serverAwaitingInitiate();
    initiate[5] = "X".charCodeAt(0);
    throwsZmtp(() => server.conn.receive(frame(COMMAND, initiate), 0), "handshake-failed");
  });

  test("an INITIATE with a tampered cookie: decryption-failed", { timeout: 60_000 }, () => {
    const { server, initiate } = serverAwaitingInitiate();
    initiate[30] ^= 1;
    const error = throwsZmtp(
      () => server.conn.receive(frame(COMMAND, initiate), 0),
      "decryption-failed",
    );
    assert.match(error.message, /cookie/);
  });

  test("an INITIATE with tampered content: decryption-failed", { timeout: 60_000 }, () => {
    const { server, initiate } = serverAwaitingInitiate();
    initiate[150] ^= 1;
    const error = throwsZmtp(
      () => server.conn.receive(frame(COMMAND, initiate), 0),
      "decryption-failed",
    );
    assert.match(error.message, /INITIATE box/);
  });

  test("an INITIATE whose short nonce is not above HELLO's (a replay): bad-nonce", {
    timeout: 60_000,
  }, () => {
    const { server, initiate } = serverAwaitingInitiate();
    initiate.set([0, 0, 0, 0, 0, 0, 0, 1], 105); // HELLO's nonce again
    throwsZmtp(() => server.conn.receive(frame(COMMAND, initiate), 0), "bad-nonce");
  });

  test("a client whose public key is all zeros (a null key): key-exchange-failed", {
    timeout: 60_000,
  }, () => {
    const { server, initiate } = serverAwaitingInitiate({
      publicKey: new Uint8Array(32),
      secretKey: keys.client.secretKey,
      serverKey: keys.server.publicKey,
    });
    throwsZmtp(() => server.conn.receive(frame(COMMAND, initiate), 0), "key-exchange-failed");
  });

  test("a client whose public key is not its secret key's: the vouch does not open", {
    timeout: 60_000,
  }, () => {
    const { server, initiate } = serverAwaitingInitiate({
      publicKey: generateKeyPair().publicKey,
      secretKey: keys.client.secretKey,
      serverKey: keys.server.publicKey,
    });
    const error = throwsZmtp(
      () => server.conn.receive(frame(COMMAND, initiate), 0),
      "decryption-failed",
    );
    assert.match(error.message, /vouch/);
  });

  test("a message before the handshake (libzmq's 'sneaky' one): refused, nothing delivered", {
    timeout: 60_000,
  }, () => {
    const server = secured("ROUTER", curveServer({ ...keys.server, authenticate: false }));
    server.conn.receive(peerGreeting({ mechanism: "CURVE" }), 0);
    throwsZmtp(() => server.conn.receive(frame(0, utf8("sneaky")), 0), "unexpected-frame");
    assert.equal(server.messages.length, 0);
  });

  test("a tampered MESSAGE box: decryption-failed, nothing delivered", { timeout: 60_000 }, () => {
    const { client, server } = readyPair();
    client.conn.send([utf8("pay 10 to alice")]);
    const bytes = drain(client.conn.out);
    bytes[bytes.length - 3] ^= 0x20;
    throwsZmtp(() => server.conn.receive(bytes, 1), "decryption-failed");
    assert.equal(server.messages.length, 0);
  });

  test("a replayed MESSAGE: bad-nonce", { timeout: 60_000 }, () => {
    const { client, server } = readyPair();
    client.conn.send([utf8("once")]);
    const bytes = drain(client.conn.out);
    server.conn.receive(bytes, 1);
    assert.equal(server.messages.length, 1);
    const error = throwsZmtp(() => server.conn.receive(bytes, 2), "bad-nonce");
    assert.match(error.message, /replayed or reordered/);
    assert.equal(server.messages.length, 1);
  });

  test("an older MESSAGE after a newer one (a non-increasing nonce): bad-nonce", {
    timeout: 60_000,
  }, () => {
    const { client, server } = readyPair();
    client.conn.send([utf8("first")]);
    const first = drain(client.conn.out);
    client.conn.send([utf8("second")]);
    const second = drain(client.conn.out);
    server.conn.receive(second, 1);
    throwsZmtp(() => server.conn.receive(first, 2), "bad-nonce");
    assert.deepEqual(server.messages.map((m) => text(m[0])), ["second"]);
  });

  test(
    "an unsealed message or command after the handshake: malformed-command",
    { timeout: 60_000 },
    () => {
      const { server } = readyPair();
      throwsZmtp(() => server.conn.receive(frame(0, utf8("plaintext")), 1), "malformed-command");
      const again = readyPair();
      throwsZmtp(
        () => again.server.conn.receive(readyFrame([["Socket-Type", "DEALER"]]), 1),
        "malformed-command",
      );
    },
  );
});

describe("CURVE client refuses bad input", () => {
  test(
    "another CURVE client answering HELLO with HELLO: handshake-failed",
    { timeout: 60_000 },
    () => {
      const { client } = curvePair(keys);
      const hello = new HandClient({ ...keys.client, serverKey: keys.server.publicKey }).hello();
      client.conn.receive(peerGreeting({ mechanism: "CURVE" }), 0);
      const error = throwsZmtp(
        () => client.conn.receive(frame(COMMAND, hello), 0),
        "handshake-failed",
      );
      assert.match(error.message, /CURVE client too/);
    },
  );

  test("a server that closes after our HELLO: the reason points at curveServerKey", {
    timeout: 60_000,
  }, () => {
    const { client } = curvePair(keys);
    client.conn.receive(peerGreeting({ mechanism: "CURVE", asServer: true }), 0);
    assert.match(client.conn.closedReason()!.message, /curveServerKey/);
  });

  test("a WELCOME from a server with another key: decryption-failed", { timeout: 60_000 }, () => {
    const { client } = curvePair({ ...keys, server: generateKeyPair() });
    const server = secured("ROUTER", curveServer({ ...keys.server, authenticate: false }));
    // The client boxed its HELLO for another key: let our server answer a good HELLO instead.
    const welcome = welcomeFrom(
      server,
      new HandClient({ ...keys.client, serverKey: keys.server.publicKey }).hello(),
    );
    client.conn.receive(peerGreeting({ mechanism: "CURVE", asServer: true }), 0);
    throwsZmtp(() => client.conn.receive(frame(COMMAND, welcome), 0), "decryption-failed");
  });

  test("an ERROR 400 from the server: auth-failed, spelled out", { timeout: 60_000 }, () => {
    const { client } = curvePair(keys);
    client.conn.receive(peerGreeting({ mechanism: "CURVE", asServer: true }), 0);
    const error = throwsZmtp(
      () => client.conn.receive(frame(COMMAND, utf8("\x05ERROR\x03400")), 0),
      "auth-failed",
    );
    assert.match(error.message, /refused our credentials \(ZAP status 400\)/);
  });
});

describe("CURVE server with an authenticator", () => {
  test(
    "asks with the client's key and routing id, admits with a user id",
    { timeout: 60_000 },
    () => {
      const { client, server } = curvePair(keys, { authenticate: true });
      pump(client.conn, server.conn, 0);
      assert.equal(server.requests.length, 1);
      const [request] = server.requests;
      assert.equal(request.mechanism, "CURVE");
      assert.equal(request.publicKeyZ85, z85Encode(keys.client.publicKey));
      assert.equal(text(request.routingId), "client-1");
      assert.equal(server.conn.state, "handshake", "READY waits for the decision");
      answer(server.conn, { allow: true, userId: "worker-7" });
      pump(client.conn, server.conn, 0);
      assert.equal(client.conn.state, "ready");
      assert.equal(server.peers[0].userId, "worker-7");
    },
  );

  test("a refused client gets ERROR 400 in clear, the server's reason names its key", {
    timeout: 60_000,
  }, () => {
    const { client, server } = curvePair(keys, { authenticate: true });
    pump(client.conn, server.conn, 0);
    const error = throwsZmtp(
      () => answer(server.conn, { allow: false, reason: "not on the list" }),
      "auth-failed",
    );
    assert.match(
      error.message,
      new RegExp(z85Encode(keys.client.publicKey).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")),
    );
    assert.match(error.message, /not on the list/);
    const { commands } = sent(server.conn);
    assert.equal(text(commands[0]), "\x05ERROR\x03400");
    throwsZmtp(
      () => client.conn.receive(frame(COMMAND, commands[0]), 0),
      "auth-failed",
    );
    assert.equal(client.conn.state, "closed");
  });

  test("an authenticator that throws: refused with status 500", { timeout: 60_000 }, () => {
    const { client, server } = curvePair(keys, { authenticate: true });
    pump(client.conn, server.conn, 0);
    const outcome = toAuthOutcome(undefined, new Error("database down"));
    const error = throwsZmtp(() => server.conn.authenticated(outcome, 0), "auth-failed");
    assert.match(error.message, /the authenticator failed: database down/);
    assert.equal(text(sent(server.conn).commands[0]), "\x05ERROR\x03500");
  });

  test("an authenticator answering nonsense: refused with status 500", { timeout: 60_000 }, () => {
    assert.deepEqual(toAuthOutcome("yes" as never).status, 500);
    assert.deepEqual(toAuthOutcome({ allow: false, status: 300 }).status, 300);
    assert.equal(toAuthOutcome(true).allow, true);
  });

  test("a command while the authenticator decides: handshake-failed", { timeout: 60_000 }, () => {
    const { client, server } = curvePair(keys, { authenticate: true });
    pump(client.conn, server.conn, 0);
    throwsZmtp(
      () => server.conn.receive(frame(COMMAND, utf8("\x05HELLO")), 0),
      "handshake-failed",
    );
  });
});

describe("PLAIN", () => {
  function plainPair(password: string, authenticate = true) {
    const client = secured("DEALER", plainClient({ username: "admin", password }));
    const server = secured("ROUTER", plainServer({ authenticate }));
    return { client, server };
  }

  test("with an authenticator: user name, password and routing id asked about; user id kept", {
    timeout: 60_000,
  }, () => {
    const { client, server } = plainPair("secret");
    pump(client.conn, server.conn, 0);
    assert.deepEqual(
      { ...server.requests[0], routingId: text(server.requests[0].routingId) },
      {
        mechanism: "PLAIN",
        address: "",
        domain: "",
        routingId: "client-1",
        username: "admin",
        password: "secret",
      },
    );
    answer(server.conn, { allow: true, userId: "the admin" });
    pump(client.conn, server.conn, 0);
    assert.equal(client.conn.state, "ready");
    assert.equal(server.peers[0].userId, "the admin");
    assert.equal(server.peers[0].mechanism, "PLAIN");
  });

  test("a wrong password: ERROR 400, auth-failed on both sides", { timeout: 60_000 }, () => {
    const { client, server } = plainPair("wrong");
    pump(client.conn, server.conn, 0);
    throwsZmtp(
      () => answer(server.conn, { allow: false, reason: "wrong password" }),
      "auth-failed",
    );
    const error = throwsZmtp(
      () => client.conn.receive(drain(server.conn.out), 0),
      "auth-failed",
    );
    assert.match(error.message, /ZAP status 400/);
  });

  test("a server without an authenticator refuses everyone, as libzmq", { timeout: 60_000 }, () => {
    const { client, server } = plainPair("secret", false);
    let error: unknown;
    try {
      pump(client.conn, server.conn, 0);
    } catch (e) {
      error = e;
    }
    assert.match(String(error), /auth-failed: .*without an authenticator/);
    assert.equal(server.requests.length, 0);
  });

  test("a malformed HELLO: malformed-command", { timeout: 60_000 }, () => {
    const server = secured("ROUTER", plainServer({ authenticate: true }));
    server.conn.receive(peerGreeting({ mechanism: "PLAIN" }), 0);
    throwsZmtp(
      () => server.conn.receive(frame(COMMAND, utf8("\x05HELLO\x05adm")), 0),
      "malformed-command",
    );
  });

  test("another PLAIN server: handshake-failed", { timeout: 60_000 }, () => {
    const server = secured("ROUTER", plainServer({ authenticate: true }));
    throwsZmtp(
      () => server.conn.receive(peerGreeting({ mechanism: "PLAIN", asServer: true }), 0),
      "handshake-failed",
    );
  });

  test("a CURVE client to a PLAIN server: mechanism-mismatch", { timeout: 60_000 }, () => {
    const server = secured("ROUTER", plainServer({ authenticate: true }));
    throwsZmtp(
      () => server.conn.receive(peerGreeting({ mechanism: "CURVE" }), 0),
      "mechanism-mismatch",
    );
    const client = secured(
      "DEALER",
      curveClient({ ...keys.client, serverKey: keys.server.publicKey }),
    );
    throwsZmtp(
      () => client.conn.receive(peerGreeting({ mechanism: "PLAIN", asServer: true }), 0),
      "mechanism-mismatch",
    );
  });
});
