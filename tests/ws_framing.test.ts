/**
 * Our WebSocket protocol core (RFC 6455), without a network: frames byte for byte, masking,
 * fragmentation, control frames and every framing error; the HTTP upgrade (RFC 6455's own
 * example key, refusals); and both sides' handshake drivers over a scripted byte stream,
 * including frames that arrive while the handshake answer is still being checked.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { ByteStream, MessageStream } from "../src/transport/runtime_types.ts";
import { acceptWebSocket, openWebSocket } from "../src/transport/ws_connection.ts";
import { WebSocketError } from "../src/transport/ws_errors.ts";
import { Opcode, unmask, WsFrameDecoder, WsOutBuffer } from "../src/transport/ws_frame.ts";
import {
  acceptKey,
  checkUpgradeRequest,
  checkUpgradeResponse,
  HandshakeRefusal,
  HEAD_MAX,
  HttpHeadReader,
} from "../src/transport/ws_http.ts";
import { bytewise, concat, pattern, prng, randomSplit, utf8 } from "./_wire_kit.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const latin1 = (b: Uint8Array) => new TextDecoder("latin1").decode(b);

/** A decoder recording what it decodes. */
function decoder(masked: boolean, maxMessageSize = 1 << 20) {
  const messages: Uint8Array[] = [];
  const controls: [number, Uint8Array][] = [];
  const d = new WsFrameDecoder({ masked, maxMessageSize }, {
    message: (p) => messages.push(p),
    control: (op, p) => controls.push([op, p.slice()]),
  });
  return { d, messages, controls };
}

/** A frame written by hand: FIN, opcode, optional mask, payload. */
function frame(
  opcode: number,
  payload: Uint8Array,
  options: { fin?: boolean; mask?: number[] } = {},
) {
  const fin = options.fin ?? true;
  const size = payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | opcode];
  const maskBit = options.mask ? 0x80 : 0;
  if (size < 126) head.push(maskBit | size);
  else if (size <= 0xffff) head.push(maskBit | 126, size >> 8, size & 0xff);
  else {
    head.push(
      maskBit | 127,
      0,
      0,
      0,
      0,
      size >>> 24,
      (size >>> 16) & 0xff,
      (size >>> 8) & 0xff,
      size & 0xff,
    );
  }
  let body = payload;
  if (options.mask) {
    head.push(...options.mask);
    body = payload.map((b, i) => b ^ options.mask![i & 3]);
  }
  return concat([Uint8Array.from(head), body]);
}

function throwsWs(fn: () => unknown, code: string): WebSocketError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof WebSocketError, `expected WebSocketError ${code}, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

describe("WebSocket frames", () => {
  test(
    "server frames (unmasked), byte for byte, at every length boundary",
    { timeout: 60_000 },
    () => {
      for (const size of [0, 1, 125, 126, 65_535, 65_536, 70_000]) {
        const out = new WsOutBuffer({ mask: false });
        const payload = pattern(size, size);
        out.message(payload);
        assert.deepEqual(concat(out.take()!), frame(Opcode.binary, payload), `${size} bytes`);
      }
      const out = new WsOutBuffer({ mask: false });
      out.control(Opcode.pong, utf8("ctx"));
      out.control(Opcode.close, Uint8Array.of(0x03, 0xe8));
      assert.deepEqual(
        concat(out.take()!),
        concat([frame(Opcode.pong, utf8("ctx")), frame(Opcode.close, Uint8Array.of(3, 0xe8))]),
      );
      assert.throws(() => out.control(Opcode.ping, new Uint8Array(126)), /125/);
    },
  );

  test("client frames are masked with fresh keys and decode back, in any split", {
    timeout: 60_000,
  }, () => {
    const random = prng(7);
    const sizes = [0, 1, 3, 4, 5, 125, 126, 1000, 65_535, 65_536, 200_000];
    const out = new WsOutBuffer({ mask: true });
    const sent = sizes.map((size, i) => pattern(size, i));
    for (const payload of sent) out.message(payload.slice()); // the stream may mask in place
    const wire = concat(out.take()!);
    assert.equal(wire[1] & 0x80, 0x80, "mask bit set");
    const keys = new Set<string>();
    const { d, messages } = decoder(true);
    // Read into a buffer reused between reads: the decoder must keep nothing of it.
    const scratch = new Uint8Array(64 * 1024);
    for (const piece of randomSplit(wire, random, 3000)) {
      const view = scratch.subarray(0, piece.length);
      view.set(piece);
      d.feed(view);
      view.fill(0xee);
    }
    assert.deepEqual(messages.map((m) => m.length), sizes);
    for (let i = 0; i < sizes.length; i++) assert.deepEqual(messages[i], sent[i], `message ${i}`);
    assert.ok(d.idle);
    // Two frames never share a mask key.
    const again = new WsOutBuffer({ mask: true });
    for (let i = 0; i < 100; i++) again.message(new Uint8Array(1));
    const bytes = concat(again.take()!);
    for (let i = 0; i < 100; i++) keys.add(latin1(bytes.subarray(i * 7 + 2, i * 7 + 6)));
    assert.ok(keys.size >= 99, `only ${keys.size} distinct keys in 100 frames`);
  });

  test(
    "fragments make one message; control frames may come between them",
    { timeout: 60_000 },
    () => {
      const { d, messages, controls } = decoder(false);
      d.feed(frame(Opcode.binary, utf8("ab"), { fin: false }));
      d.feed(frame(Opcode.ping, utf8("hi")));
      d.feed(frame(Opcode.continuation, utf8("cd"), { fin: false }));
      assert.equal(messages.length, 0);
      assert.ok(!d.idle);
      d.feed(frame(Opcode.continuation, utf8("ef")));
      assert.deepEqual(messages.map(text), ["abcdef"]);
      assert.deepEqual(controls.map(([op, p]) => [op, text(p)]), [[Opcode.ping, "hi"]]);
    },
  );

  test("framing errors", { timeout: 60_000 }, () => {
    const server = () => decoder(true).d;
    const client = () => decoder(false).d;
    const mask = [1, 2, 3, 4];
    throwsWs(() => client().feed(Uint8Array.of(0xc2, 0x00)), "websocket-protocol"); // RSV1
    throwsWs(() => client().feed(Uint8Array.of(0x83, 0x00)), "websocket-protocol"); // opcode 3
    throwsWs(() => client().feed(Uint8Array.of(0x8b, 0x00)), "websocket-protocol"); // opcode 11
    throwsWs(() => client().feed(frame(Opcode.text, utf8("hi"))), "text-frame");
    throwsWs(() => server().feed(frame(Opcode.binary, utf8("hi"))), "websocket-protocol");
    throwsWs(() => client().feed(frame(Opcode.binary, utf8("hi"), { mask })), "websocket-protocol");
    throwsWs(() => client().feed(frame(Opcode.ping, new Uint8Array(126))), "websocket-protocol");
    throwsWs(
      () => client().feed(frame(Opcode.ping, utf8("x"), { fin: false })),
      "websocket-protocol",
    );
    throwsWs(() => client().feed(frame(Opcode.continuation, utf8("x"))), "websocket-protocol");
    const twice = client();
    twice.feed(frame(Opcode.binary, utf8("a"), { fin: false }));
    throwsWs(() => twice.feed(frame(Opcode.binary, utf8("b"))), "websocket-protocol");
    // A 64-bit length with its top bit set.
    throwsWs(
      () => client().feed(Uint8Array.of(0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1)),
      "websocket-protocol",
    );
  });

  test("a message over the limit is refused from its header, before any allocation", {
    timeout: 60_000,
  }, () => {
    const d = decoder(false, 1000).d;
    // Declares 2^40 bytes: refused at once, nothing allocated for it.
    throwsWs(() => d.feed(Uint8Array.of(0x82, 127, 0, 0, 1, 0, 0, 0, 0, 0)), "message-too-large");
    const fragments = decoder(false, 1000).d;
    fragments.feed(frame(Opcode.binary, new Uint8Array(600), { fin: false }));
    throwsWs(
      () => fragments.feed(frame(Opcode.continuation, new Uint8Array(401))),
      "message-too-large",
    );
    const exact = decoder(false, 1000);
    exact.d.feed(frame(Opcode.binary, new Uint8Array(1000)));
    assert.equal(exact.messages[0].length, 1000);
  });

  test(
    "a large payload can be read straight into the decoder's buffer",
    { timeout: 60_000 },
    () => {
      const { d, messages } = decoder(true);
      const payload = pattern(300_000, 3);
      const wire = frame(Opcode.binary, payload, { mask: [9, 8, 7, 6] });
      d.feed(wire.subarray(0, 1000));
      let at = 1000;
      let inPlace = 0;
      while (at < wire.length) {
        const target = d.readTarget();
        if (target === null) {
          const n = Math.min(1000, wire.length - at);
          d.feed(wire.subarray(at, at + n));
          at += n;
          continue;
        }
        const n = Math.min(target.length, wire.length - at, 50_000);
        target.set(wire.subarray(at, at + n));
        d.feed(target.subarray(0, n));
        at += n;
        inPlace += n;
      }
      assert.ok(inPlace > 200_000, `only ${inPlace} bytes read in place`);
      assert.deepEqual(messages[0], payload);
    },
  );

  test("unmask matches the byte-by-byte definition at every alignment and offset", {
    timeout: 60_000,
  }, () => {
    const mask = Uint8Array.of(0x12, 0x34, 0x56, 0x78);
    const buffer = new ArrayBuffer(2048);
    for (const start of [0, 1, 2, 3, 5]) {
      for (const len of [0, 1, 3, 255, 256, 257, 1000]) {
        for (const offset of [0, 1, 2, 3, 6]) {
          const bytes = new Uint8Array(buffer, start, len);
          bytes.set(pattern(len, start + len));
          const expected = bytes.map((b, i) => b ^ mask[(offset + i) & 3]);
          unmask(bytes, mask, offset);
          assert.deepEqual(bytes, expected, `start ${start} len ${len} offset ${offset}`);
        }
      }
    }
  });
});

const REQUEST = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n" +
  "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Origin: http://example.com\r\nSec-WebSocket-Protocol: ZWS2.0/NULL,ZWS2.0\r\n" +
  "Sec-WebSocket-Version: 13\r\n\r\n";

describe("the HTTP upgrade", () => {
  test("RFC 6455's example key gives its example accept value", { timeout: 60_000 }, async () => {
    assert.equal(await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  });

  test("a head arrives in any split; the bytes after it are kept", { timeout: 60_000 }, () => {
    const reader = new HttpHeadReader();
    let got = null;
    for (const byte of bytewise(concat([utf8(REQUEST), Uint8Array.of(0x82, 0)]))) {
      got ??= reader.feed(byte);
    }
    assert.ok(got);
    const request = checkUpgradeRequest(got.head);
    assert.deepEqual(request, {
      path: "/chat",
      key: "dGhlIHNhbXBsZSBub25jZQ==",
      origin: "http://example.com",
      host: "server.example.com",
      protocols: "ZWS2.0/NULL,ZWS2.0",
    });
  });

  test("a head over the limit, or malformed, is refused", { timeout: 60_000 }, () => {
    const reader = new HttpHeadReader();
    throwsWs(() => reader.feed(new Uint8Array(HEAD_MAX + 10).fill(0x41)), "bad-request");
    throwsWs(() => new HttpHeadReader().feed(utf8("GET\r\n\r\n")), "bad-request");
    throwsWs(
      () => new HttpHeadReader().feed(utf8("GET / HTTP/1.1\r\n folded\r\n\r\n")),
      "bad-request",
    );
  });

  test("refusals: the status each bad request gets", { timeout: 60_000 }, () => {
    const refusal = (request: string) => {
      const got = new HttpHeadReader().feed(utf8(request))!;
      try {
        checkUpgradeRequest(got.head);
      } catch (error) {
        assert.ok(error instanceof HandshakeRefusal);
        return error.status;
      }
      return 101;
    };
    const edit = (from: string, to: string) => REQUEST.replace(from, to);
    assert.equal(refusal(REQUEST), 101);
    assert.equal(refusal("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 426); // plain HTTP
    assert.equal(refusal(edit("GET /chat", "POST /chat")), 405);
    assert.equal(refusal(edit("HTTP/1.1", "HTTP/1.0")), 400);
    assert.equal(refusal(edit("keep-alive, Upgrade", "keep-alive")), 400);
    assert.equal(refusal(edit("Version: 13", "Version: 8")), 426);
    assert.equal(refusal(edit("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")), 400);
    assert.equal(refusal(edit("Host: server.example.com\r\n", "")), 400);
  });

  test(
    "the client checks the answer: status, accept value, subprotocol",
    { timeout: 60_000 },
    async () => {
      const key = "dGhlIHNhbXBsZSBub25jZQ==";
      const answer = (status: string, accept: string, protocol: string) =>
        new HttpHeadReader().feed(
          utf8(
            `HTTP/1.1 ${status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
              `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
          ),
        )!.head;
      const good = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
      const offered = ["ZWS2.0", "ZWS2.0+NULL"];
      assert.equal(
        await checkUpgradeResponse(answer("101 Switching", good, "ZWS2.0"), key, offered),
        "ZWS2.0",
      );
      await assert.rejects(
        checkUpgradeResponse(answer("403 Forbidden", good, "ZWS2.0"), key, offered),
        /answered 403/,
      );
      await assert.rejects(
        checkUpgradeResponse(answer("101 Switching", "AAAA", "ZWS2.0"), key, offered),
        /wrong Sec-WebSocket-Accept/,
      );
      await assert.rejects(
        checkUpgradeResponse(answer("101 Switching", good, "chat"), key, offered),
        /chose subprotocol "chat"/,
      );
    },
  );
});

/** A byte stream driven by the test: what was written, and data or an end pushed in. */
class ScriptedStream implements ByteStream {
  readonly kind = "bytes" as const;
  readonly remote = "test:1";
  written: Uint8Array[] = [];
  closed = false;
  paused = false;
  #onData: (chunk: Uint8Array) => void = () => {};
  #onEnd: (error?: Error) => void = () => {};
  start(onData: (chunk: Uint8Array) => void, onEnd: (error?: Error) => void): void {
    this.#onData = onData;
    this.#onEnd = onEnd;
  }
  push(chunk: Uint8Array): void {
    this.#onData(chunk);
  }
  end(error?: Error): void {
    this.#onEnd(error);
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  write(chunks: Uint8Array[]): Promise<void> {
    this.written.push(concat(chunks));
    return Promise.resolve();
  }
  close(): void {
    this.closed = true;
  }
  /** Everything written so far, as text (latin1). */
  text(): string {
    return latin1(concat(this.written));
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const rejected: [string, string, string][] = [];
const acceptOptions = {
  path: "/chat",
  protocols: ["ZWS2.0/NULL", "ZWS2.0"],
  chooseProtocol: (offered: string | undefined) => offered?.includes("ZWS2.0") ? "ZWS2.0" : null,
  originAllowed: (origin: string | undefined) => origin !== "http://evil.example",
  maxMessageSize: 1 << 20,
  handshakeTimeout: 0,
  onRejected: (remote: string, code: string, reason: string) =>
    rejected.push([remote, code, reason]),
};

/** Waits until `fn` is true (a few ticks), or fails. */
async function eventually(fn: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100 && !fn(); i++) await tick();
  assert.ok(fn(), what);
}

describe("handshake drivers", () => {
  test("server: a frame sent right behind the request is not lost while the answer is made", {
    timeout: 60_000,
  }, async () => {
    const bytes = new ScriptedStream();
    let stream: MessageStream | undefined;
    acceptWebSocket(bytes, acceptOptions, (s) => (stream = s));
    const mask = [1, 2, 3, 4];
    bytes.push(utf8(REQUEST));
    // Arrives while the accept key (an async digest) is being computed.
    bytes.push(frame(Opcode.binary, utf8("early"), { mask }));
    await eventually(() => stream !== undefined, "the upgrade");
    assert.match(bytes.text(), /^HTTP\/1.1 101 Switching Protocols\r\n/);
    assert.match(bytes.text(), /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
    assert.match(bytes.text(), /Sec-WebSocket-Protocol: ZWS2.0\r\n/);
    const got: string[] = [];
    stream!.start((m) => got.push(text(m)), () => {});
    bytes.push(frame(Opcode.binary, utf8("later"), { mask }));
    assert.deepEqual(got, ["early", "later"]);
    assert.equal(bytes.paused, false, "reading resumed once someone listens");
  });

  test("client: the server's first frame, read while the 101 is checked, is not lost", {
    timeout: 60_000,
  }, async () => {
    const bytes = new ScriptedStream();
    const opened = openWebSocket(bytes, {
      host: "hub:5020",
      path: "/",
      protocols: ["ZWS2.0"],
      maxMessageSize: 1 << 20,
      handshakeTimeout: 0,
    });
    const request = bytes.text();
    assert.match(request, /^GET \/ HTTP\/1.1\r\nHost: hub:5020\r\n/);
    assert.match(request, /Sec-WebSocket-Protocol: ZWS2.0\r\n/);
    const key = /Sec-WebSocket-Key: (\S+)\r\n/.exec(request)![1];
    bytes.push(
      utf8(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\nSec-WebSocket-Protocol: ZWS2.0\r\n\r\n`,
      ),
    );
    bytes.push(frame(Opcode.binary, Uint8Array.of(0x00))); // a routing id message, at once
    const stream = await opened;
    assert.equal(stream.protocol, "ZWS2.0");
    const got: Uint8Array[] = [];
    stream.start((m) => got.push(m), () => {});
    assert.deepEqual(got, [Uint8Array.of(0x00)]);
    // What we send is masked (a client), and decodes back.
    await stream.write([utf8("hi")]);
    const { d, messages } = decoder(true);
    d.feed(bytes.written.at(-1)!);
    assert.deepEqual(messages.map(text), ["hi"]);
  });

  test("server refusals are answered in HTTP and reported", { timeout: 60_000 }, async () => {
    const cases: [string, number, string][] = [
      [REQUEST.replace("/chat", "/other"), 404, "unknown-path"],
      [REQUEST.replace("http://example.com", "http://evil.example"), 403, "origin-not-allowed"],
      [REQUEST.replace("ZWS2.0/NULL,ZWS2.0", "chat"), 400, "unknown-subprotocol"],
      [REQUEST.replace("Version: 13", "Version: 7"), 426, "bad-request"],
      ["GET / HTTP/1.1\r\nHost: a\r\n\r\n", 426, ""],
    ];
    for (const [request, status, code] of cases) {
      rejected.length = 0;
      const bytes = new ScriptedStream();
      acceptWebSocket(bytes, acceptOptions, () => assert.fail("upgraded"));
      bytes.push(utf8(request));
      await eventually(() => bytes.closed, `closed after ${status}`);
      assert.match(bytes.text(), new RegExp(`^HTTP/1.1 ${status} `), bytes.text());
      assert.deepEqual(rejected.map(([, c]) => c), code === "" ? [] : [code]);
    }
  });

  test("server: an upgrade request not complete in time gets 408 and is reported", {
    timeout: 60_000,
  }, async () => {
    rejected.length = 0;
    const bytes = new ScriptedStream();
    acceptWebSocket(
      bytes,
      { ...acceptOptions, handshakeTimeout: 30 },
      () => assert.fail("upgraded"),
    );
    bytes.push(utf8("GET /chat HTTP/1.1\r\nHost: a\r\n"));
    await new Promise((resolve) => setTimeout(resolve, 80));
    await eventually(() => bytes.closed, "closed");
    assert.match(bytes.text(), /^HTTP\/1.1 408 /);
    assert.deepEqual(rejected.map(([, code]) => code), ["handshake-timeout"]);
  });

  test(
    "open: ping answered with pong; the peer's close answered in kind; errors closed with their code",
    { timeout: 60_000 },
    async () => {
      const open = async () => {
        const bytes = new ScriptedStream();
        let stream: MessageStream | undefined;
        acceptWebSocket(bytes, acceptOptions, (s) => (stream = s));
        bytes.push(utf8(REQUEST));
        await eventually(() => stream !== undefined, "the upgrade");
        let ended: { error?: Error } | undefined;
        stream!.start(() => {}, (error) => (ended = { error }));
        bytes.written = [];
        return { bytes, stream: stream!, ended: () => ended };
      };
      const mask = [5, 6, 7, 8];
      const a = await open();
      a.bytes.push(frame(Opcode.ping, utf8("p1"), { mask }));
      await eventually(() => a.bytes.written.length > 0, "a pong");
      assert.deepEqual(a.bytes.written[0], frame(Opcode.pong, utf8("p1")));
      a.bytes.push(frame(Opcode.close, Uint8Array.of(0x03, 0xe8), { mask }));
      await eventually(() => a.bytes.closed, "closed");
      assert.deepEqual(a.bytes.written.at(-1), frame(Opcode.close, Uint8Array.of(0x03, 0xe8)));
      assert.deepEqual(a.ended(), { error: undefined }, "an orderly close is no error");

      const b = await open();
      b.bytes.push(frame(Opcode.text, utf8("{}"), { mask }));
      await eventually(() => b.bytes.closed, "closed");
      assert.deepEqual(b.bytes.written.at(-1), frame(Opcode.close, Uint8Array.of(0x03, 0xeb)));
      assert.equal((b.ended()?.error as WebSocketError).code, "text-frame");

      const c = await open();
      c.bytes.push(frame(Opcode.binary, utf8("unmasked")));
      await eventually(() => c.bytes.closed, "closed");
      assert.deepEqual(c.bytes.written.at(-1), frame(Opcode.close, Uint8Array.of(0x03, 0xea)));

      const d = await open();
      d.stream.close();
      assert.deepEqual(d.ended(), { error: undefined });
      await eventually(() => d.bytes.closed, "closed after its close frame");
      assert.deepEqual(d.bytes.written.at(-1), frame(Opcode.close, Uint8Array.of(0x03, 0xe8)));
      await assert.rejects(d.stream.write([utf8("late")]), /closed/);
    },
  );
});

describe("WebSocket decoder, generative", () => {
  test("random input: decoded or refused with a WebSocketError, never anything else", {
    timeout: 60_000,
  }, () => {
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 600 }), (masked, input) => {
        const { d } = decoder(masked, 4096);
        try {
          d.feed(input);
        } catch (error) {
          if (!(error instanceof WebSocketError)) throw error;
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("any messages, masked, in any split, decode to themselves", { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 70_000 }), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (sent, cuts) => {
          const out = new WsOutBuffer({ mask: true });
          for (const payload of sent) out.message(payload.slice());
          const wire = concat(out.take() ?? []);
          const { d, messages } = decoder(true);
          const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
          let at = 0;
          for (const point of [...points, wire.length]) {
            if (point > at) d.feed(wire.slice(at, point));
            at = Math.max(at, point);
          }
          assert.equal(messages.length, sent.length);
          for (let i = 0; i < sent.length; i++) assert.deepEqual(messages[i], sent[i]);
        },
      ),
      { numRuns: 200 },
    );
  });
});
