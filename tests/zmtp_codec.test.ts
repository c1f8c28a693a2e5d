/**
 * Frame encoding (OutBuffer) and decoding (FrameDecoder) of the ZMTP core, checked against hand
 * written bytes and against the reference encoder of `_wire_kit.ts`.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import { FrameDecoder } from "../src/zmtp/frame_decoder.ts";
import { OutBuffer } from "../src/zmtp/out_buffer.ts";
import { ZmtpError } from "../src/zmtp/errors.ts";
import {
  assertBytes,
  bytewise,
  COMMAND,
  commandBody,
  concat,
  decode,
  drain,
  EAGER_ALLOCATION_BYTES,
  frame,
  fromHex,
  hex,
  longHeader,
  messageBytes,
  MORE,
  pattern,
  peerGreeting,
  prng,
  randomSplit,
  readLoop,
  readyFrame,
  recorded,
  ROOMY,
  sameMessages,
  split,
  throwsZmtp,
  utf8,
} from "./_wire_kit.ts";
import { messageArb } from "./_zmtp_properties.ts";

const MiB = 1024 * 1024;

/** Asserts that decoding ended with a ZmtpError of the given code. */
function failedWith(result: { error?: unknown }, code: string): void {
  assert.ok(result.error instanceof ZmtpError, `expected ZmtpError ${code}, got ${result.error}`);
  assert.equal(result.error.code, code);
}

function newDecoder(limits = ROOMY): {
  decoder: FrameDecoder;
  messages: Uint8Array[][];
  commands: Uint8Array[];
} {
  const messages: Uint8Array[][] = [];
  const commands: Uint8Array[] = [];
  const decoder = new FrameDecoder(limits, {
    message: (frames) => messages.push(frames),
    command: (body) => commands.push(body),
  });
  return { decoder, messages, commands };
}

describe("FrameDecoder: frame sizes", () => {
  for (const size of [0, 1, 255, 256, 65_536, MiB]) {
    test(`a ${size}-byte frame decodes, whole and split`, { timeout: 30_000 }, () => {
      const body = pattern(size, size);
      const bytes = frame(0, body);
      assert.equal(bytes.length, size + (size <= 255 ? 2 : 9), "reference encoder form");
      const whole = decode([bytes]);
      assert.equal(whole.error, undefined);
      assert.equal(whole.messages.length, 1);
      assert.equal(whole.messages[0].length, 1);
      assertBytes(whole.messages[0][0], body);
      const pieces = decode(randomSplit(bytes, prng(size), 4096));
      assert.equal(pieces.error, undefined);
      assert.equal(pieces.messages.length, 1);
      assertBytes(pieces.messages[0][0], body);
    });
  }

  test("the long form is accepted for a 5-byte body", { timeout: 30_000 }, () => {
    const bytes = fromHex("02 00 00 00 00 00 00 00 05 68 65 6c 6c 6f");
    const { messages, error } = decode([bytes]);
    assert.equal(error, undefined);
    assert.deepEqual(messages, [[utf8("hello")]]);
  });

  test("the long form is accepted for an empty frame and inside a multipart message", {
    timeout: 30_000,
  }, () => {
    const bytes = concat([
      fromHex("03 00 00 00 00 00 00 00 00"),
      fromHex("01 01 61"),
      fromHex("02 00 00 00 00 00 00 00 02 62 63"),
    ]);
    for (const chunks of [[bytes], bytewise(bytes)]) {
      const { messages, error } = decode(chunks);
      assert.equal(error, undefined);
      assert.deepEqual(messages, [[new Uint8Array(0), utf8("a"), utf8("bc")]]);
    }
  });

  for (
    const [label, size] of [
      ["2^32 + 1", 2n ** 32n + 1n],
      ["2^32", 2n ** 32n],
      ["2^53 + 1", 2n ** 53n + 1n],
      ["2^62", 2n ** 62n],
      ["2^63", 2n ** 63n],
      ["2^64 - 1", 2n ** 64n - 1n],
    ] as const
  ) {
    test(
      `a declared length of ${label} is refused on the header alone`,
      { timeout: 30_000 },
      () => {
        for (const flags of [0, MORE, COMMAND]) {
          const { decoder, messages } = newDecoder({
            maxMessageSize: 256 * MiB,
            maxFrames: 65_536,
          });
          const header = longHeader(flags, size);
          // The first 8 header bytes say nothing yet; the 9th completes the length.
          for (let i = 0; i < 8; i++) decoder.feed(header.subarray(i, i + 1));
          throwsZmtp(() => decoder.feed(header.subarray(8)), "message-too-large");
          assert.equal(messages.length, 0);
        }
      },
    );
  }

  test(
    "with the default limit (Connection's 256 MiB) 2^32 + 1 is refused",
    { timeout: 30_000 },
    () => {
      // Same limit the Connection applies by default; a 9-byte input cannot have paid for 4 GiB.
      const { decoder } = newDecoder({ maxMessageSize: 256 * MiB, maxFrames: 65_536 });
      throwsZmtp(() => decoder.feed(longHeader(0, 2n ** 32n + 1n)), "message-too-large");
    },
  );

  test("without a size limit, a huge declared frame costs only the bytes that arrive", {
    timeout: 30_000,
  }, () => {
    for (const size of [2n ** 30n, 2n ** 62n]) {
      const { decoder, messages } = newDecoder({
        maxMessageSize: Number.POSITIVE_INFINITY,
        maxFrames: 16,
      });
      const before = process.memoryUsage().external;
      decoder.feed(longHeader(0, size));
      decoder.feed(pattern(1000));
      const grown = process.memoryUsage().external - before;
      assert.ok(grown < 16 * MiB, `declared ${size} bytes, external memory grew by ${grown}`);
      assert.equal(messages.length, 0);
      assert.equal(decoder.idle, false);
    }
  });

  test("a frame at the limit passes, one byte more is refused", { timeout: 30_000 }, () => {
    const ok = decode([frame(0, pattern(100))], { maxMessageSize: 100, maxFrames: 4 });
    assert.equal(ok.error, undefined);
    assert.equal(ok.messages.length, 1);
    failedWith(
      decode([frame(0, pattern(101))], { maxMessageSize: 100, maxFrames: 4 }),
      "message-too-large",
    );
    // Refused on the header, before the body arrives.
    failedWith(
      decode([fromHex("00 65")], { maxMessageSize: 100, maxFrames: 4 }),
      "message-too-large",
    );
  });
});

describe("FrameDecoder: messages", () => {
  test("the message size limit adds up the frames of one message", { timeout: 30_000 }, () => {
    const limits = { maxMessageSize: 10, maxFrames: 16 };
    // 6 + 4 = 10 fits.
    const fits = decode([messageBytes([pattern(6), pattern(4)])], limits);
    assert.equal(fits.error, undefined);
    assert.equal(fits.messages.length, 1);
    // 6 + 5 = 11 does not, although each frame alone would; refused on the second header.
    failedWith(decode([frame(MORE, pattern(6)), fromHex("00 05")], limits), "message-too-large");
    // Long frames count the same way.
    failedWith(
      decode([frame(MORE, pattern(3), true), frame(MORE, pattern(3)), longHeader(0, 5n)], limits),
      "message-too-large",
    );
    // The count starts again with each message.
    const again = decode(
      [messageBytes([pattern(6), pattern(4)]), messageBytes([pattern(10)])],
      limits,
    );
    assert.equal(again.error, undefined);
    assert.equal(again.messages.length, 2);
  });

  test("commands do not count towards the message being received", { timeout: 30_000 }, () => {
    const limits = { maxMessageSize: 10, maxFrames: 16 };
    const stream = concat([
      frame(MORE, pattern(6)),
      frame(COMMAND, commandBody("PING", fromHex("00 00"))),
      frame(0, pattern(4)),
    ]);
    const { messages, commands, error } = decode([stream], limits);
    assert.equal(error, undefined);
    assert.equal(messages.length, 1);
    assert.equal(commands.length, 1);
  });

  test("maxFrames: a message of maxFrames frames passes, one more frame is refused", {
    timeout: 30_000,
  }, () => {
    const limits = { maxMessageSize: 1000, maxFrames: 3 };
    const three = decode([messageBytes([utf8("a"), utf8("b"), utf8("c")])], limits);
    assert.equal(three.error, undefined);
    assert.equal(three.messages.length, 1);
    assert.equal(three.messages[0].length, 3);
    const four = decode([messageBytes([utf8("a"), utf8("b"), utf8("c"), utf8("d")])], limits);
    failedWith(four, "too-many-frames");
    assert.equal(four.messages.length, 0);
    // Refused by the time the 4th frame's header is in, not after the whole message.
    failedWith(
      decode([
        concat([frame(MORE, utf8("a")), frame(MORE, utf8("b")), frame(MORE, utf8("c"))]),
        fromHex("00"),
      ], limits),
      "too-many-frames",
    );
    // maxFrames 1: only single-frame messages.
    const one = { maxMessageSize: 1000, maxFrames: 1 };
    assert.equal(decode([frame(0, utf8("x"))], one).messages.length, 1);
    failedWith(decode([frame(MORE, utf8("x")), frame(0, utf8("y"))], one), "too-many-frames");
  });

  test("multipart: MORE on all frames but the last makes one message", { timeout: 30_000 }, () => {
    const bytes = fromHex("01 01 61 01 00 00 02 62 63");
    const { messages, error } = decode([bytes]);
    assert.equal(error, undefined);
    assert.deepEqual(messages, [[utf8("a"), new Uint8Array(0), utf8("bc")]]);
    // Without MORE the same frames are three messages.
    const single = decode([fromHex("00 01 61 00 00 00 02 62 63")]);
    assert.deepEqual(single.messages, [[utf8("a")], [new Uint8Array(0)], [utf8("bc")]]);
  });

  test("a 1000-frame message arrives once, frames in order", { timeout: 30_000 }, () => {
    const frames = Array.from({ length: 1000 }, (_, i) => pattern(i % 300, i));
    const bytes = messageBytes(frames);
    for (const chunks of [[bytes], randomSplit(bytes, prng(7), 97)]) {
      const { messages, error } = decode(chunks);
      assert.equal(error, undefined);
      assert.equal(messages.length, 1);
      assert.ok(sameMessages(messages, [frames]));
    }
  });

  test("a command frame with MORE is refused", { timeout: 30_000 }, () => {
    const body = commandBody("PING", fromHex("00 00"));
    failedWith(decode([frame(COMMAND | MORE, body)]), "malformed-command");
    failedWith(decode([frame(COMMAND | MORE, body, true)]), "malformed-command");
    const ok = decode([frame(COMMAND, body)]);
    assert.equal(ok.error, undefined);
    assert.deepEqual(ok.commands, [body]);
    assert.equal(ok.messages.length, 0);
  });

  test("a message is delivered only once its last frame is complete", { timeout: 30_000 }, () => {
    const frames = [utf8("first"), pattern(300), utf8("last")];
    const bytes = messageBytes(frames);
    for (let cut = 0; cut < bytes.length; cut++) {
      const { decoder, messages } = newDecoder();
      decoder.feed(bytes.subarray(0, cut));
      assert.equal(messages.length, 0, `delivered after ${cut} of ${bytes.length} bytes`);
      assert.equal(decoder.idle, cut === 0, `idle after ${cut} bytes`);
      decoder.feed(bytes.subarray(cut));
      assert.equal(messages.length, 1);
      assert.ok(sameMessages(messages, [frames]));
      assert.equal(decoder.idle, true);
    }
  });

  test(
    "delivered frames are copies: reusing the read buffer changes nothing",
    { timeout: 60_000 },
    () => {
      const buffer = concat([messageBytes([utf8("abc"), pattern(400)]), frame(0, utf8("xyz"))]);
      const { decoder, messages } = newDecoder();
      decoder.feed(buffer);
      buffer.fill(0xee);
      assert.deepEqual(messages, [[utf8("abc"), pattern(400)], [utf8("xyz")]]);
    },
  );

  test("short frames share blocks: never overlapping, 8-byte aligned, each its own copy", {
    timeout: 60_000,
  }, () => {
    // 600 frames of 0 to 255 bytes fill several 8 KiB blocks, in chunks cut anywhere.
    const sizes = Array.from({ length: 600 }, (_, i) => (i * 37) % 256);
    const sent = sizes.map((size, i) => new Uint8Array(size).fill(i & 0xff));
    const bytes = concat(sent.map((body) => frame(0, body)));
    const { decoder, messages } = newDecoder();
    for (const part of randomSplit(bytes, prng(7))) {
      const chunk = part.slice(); // a read buffer of its own, overwritten after the call
      decoder.feed(chunk);
      chunk.fill(0xee);
    }
    const got = messages.map((m) => m[0]);
    assert.equal(got.length, sent.length);
    got.forEach((body, i) => assert.deepEqual(body, sent[i], `frame ${i}`));
    for (const body of got) {
      if (body.byteLength > 0 && body.buffer.byteLength > body.byteLength) {
        assert.equal(body.byteOffset % 8, 0, "a pooled frame starts 8-byte aligned");
      }
    }
    // Writing into one frame changes no other.
    for (const body of got) body.fill(0x55);
    got.forEach((body) => assert.ok(body.every((b) => b === 0x55)));
    const pooled = new Set(
      got.filter((b) => b.buffer.byteLength > b.byteLength).map((b) => b.buffer),
    );
    assert.ok(pooled.size >= 2, "frames of 600 short messages are pooled in several blocks");
    assert.ok(
      [...pooled].every((buffer) => buffer.byteLength <= 8 * 1024),
      "a kept short frame keeps at most 8 KiB alive",
    );
  });
});

describe("FrameDecoder: any split gives the same result", () => {
  const stream = concat([
    messageBytes([utf8("hello"), new Uint8Array(0), pattern(255), pattern(256)]),
    frame(COMMAND, commandBody("PING", fromHex("00 0a 01 02"))),
    frame(0, pattern(5), true),
    messageBytes([pattern(70_000, 3)]),
    frame(COMMAND, commandBody("READY", new Uint8Array(300)), true),
    messageBytes([utf8("tail")]),
  ]);
  const reference = decode([stream]);

  test("the reference decode is as encoded", { timeout: 30_000 }, () => {
    assert.equal(reference.error, undefined);
    assert.equal(reference.messages.length, 4);
    assert.equal(reference.commands.length, 2);
    assertBytes(reference.messages[0][3], pattern(256));
  });

  test("byte by byte", { timeout: 30_000 }, () => {
    const result = decode(bytewise(stream));
    assert.equal(result.error, undefined);
    assert.ok(sameMessages(result.messages, reference.messages));
    assert.deepEqual(result.commands, reference.commands);
  });

  test("cut in two at every position", { timeout: 30_000 }, () => {
    for (
      let cut = 0;
      cut <= stream.length;
      cut += cut < 1200 || cut > stream.length - 400 ? 1 : 97
    ) {
      const result = decode([stream.subarray(0, cut), stream.subarray(cut)]);
      assert.equal(result.error, undefined);
      assert.ok(sameMessages(result.messages, reference.messages), `cut at ${cut}`);
      assert.deepEqual(result.commands, reference.commands, `cut at ${cut}`);
    }
  });

  test("random splits", { timeout: 30_000 }, () => {
    for (let seed = 1; seed <= 50; seed++) {
      const result = decode(randomSplit(stream, prng(seed), 1 + seed * 40));
      assert.equal(result.error, undefined);
      assert.ok(sameMessages(result.messages, reference.messages), `seed ${seed}`);
      assert.deepEqual(result.commands, reference.commands, `seed ${seed}`);
    }
  });
});

describe("OutBuffer: exact bytes", () => {
  test("a short frame: 00 02 68 69", { timeout: 30_000 }, () => {
    const out = new OutBuffer();
    out.message([utf8("hi")]);
    assert.equal(hex(drain(out)), "00 02 68 69");
  });

  test("an empty frame: 00 00", { timeout: 30_000 }, () => {
    const out = new OutBuffer();
    out.message([new Uint8Array(0)]);
    assert.equal(hex(drain(out)), "00 00");
  });

  test("255 bytes use the short form, 256 the long form", { timeout: 30_000 }, () => {
    const out = new OutBuffer();
    out.message([pattern(255)]);
    const short = drain(out);
    assert.equal(short.length, 257);
    assert.equal(hex(short.subarray(0, 2)), "00 ff");
    out.message([pattern(256)]);
    const long = drain(out);
    assert.equal(long.length, 265);
    assert.equal(hex(long.subarray(0, 9)), "02 00 00 00 00 00 00 01 00");
    assertBytes(long.subarray(9), pattern(256));
  });

  test("64 KiB and 1 MiB headers", { timeout: 30_000 }, () => {
    const out = new OutBuffer();
    out.message([pattern(65_536)]);
    const a = drain(out);
    assert.equal(hex(a.subarray(0, 9)), "02 00 00 00 00 00 01 00 00");
    assertBytes(a.subarray(9), pattern(65_536));
    out.message([pattern(MiB)]);
    const b = drain(out);
    assert.equal(hex(b.subarray(0, 9)), "02 00 00 00 00 00 10 00 00");
    assert.equal(b.length, MiB + 9);
    assertBytes(b.subarray(9), pattern(MiB));
  });

  test("multipart: MORE (01) on all but the last frame", { timeout: 30_000 }, () => {
    const out = new OutBuffer();
    out.message([utf8("a"), new Uint8Array(0), utf8("b")]);
    assert.equal(hex(drain(out)), "01 01 61 01 00 00 01 62");
    out.message([utf8("x"), pattern(256)]);
    const bytes = drain(out);
    assert.equal(hex(bytes.subarray(0, 12)), "01 01 78 02 00 00 00 00 00 00 01 00");
  });

  test("commands: flag 04, long commands 06", { timeout: 30_000 }, () => {
    const out = new OutBuffer();
    out.command(commandBody("PING", fromHex("00 0a")));
    assert.equal(hex(drain(out)), "04 07 04 50 49 4e 47 00 0a");
    const body = commandBody("READY", new Uint8Array(300));
    out.command(body);
    const bytes = drain(out);
    assert.equal(hex(bytes.subarray(0, 9)), "06 00 00 00 00 00 00 01 32");
    assertBytes(bytes.subarray(9), body);
  });

  test("raw bytes pass through unchanged, before what follows", { timeout: 30_000 }, () => {
    const out = new OutBuffer();
    out.raw(fromHex("ff 00 7f"));
    out.message([utf8("hi")]);
    assert.equal(hex(drain(out)), "ff 00 7f 00 02 68 69");
  });

  test("counts and take()", { timeout: 30_000 }, () => {
    const out = new OutBuffer();
    assert.equal(out.take(), null);
    out.message([utf8("hi")]);
    out.message([utf8("a"), utf8("b")]);
    out.command(commandBody("PONG"));
    assert.equal(out.messages, 2);
    assert.equal(out.bytes, 4 + 6 + 7);
    const taken = out.take();
    assert.ok(taken !== null);
    assert.equal(taken.messages, 2);
    assert.equal(concat(taken.chunks).length, 17);
    assert.equal(out.bytes, 0);
    assert.equal(out.messages, 0);
    assert.equal(out.take(), null);
  });

  test(
    "bodies under 64 KiB are copied: the caller may reuse them at once",
    { timeout: 30_000 },
    () => {
      const out = new OutBuffer();
      const small = utf8("hello");
      const large = pattern(65_535);
      assert.equal(out.message([small, large]), false, "nothing referred to");
      small.fill(0);
      large.fill(0);
      const bytes = drain(out);
      assert.deepEqual(bytes.subarray(2, 7), utf8("hello"));
      assertBytes(bytes.subarray(16), pattern(65_535));
    },
  );

  test(
    "bodies of 64 KiB or more are referred to, and message() says so",
    { timeout: 30_000 },
    () => {
      const out = new OutBuffer();
      const big = pattern(65_536, 1);
      assert.equal(out.message([utf8("id"), big]), true);
      assert.equal(out.message([utf8("small")]), false);
      const bytes = drain(out);
      assertBytes(
        bytes,
        concat([messageBytes([utf8("id"), pattern(65_536, 1)]), messageBytes([utf8("small")])]),
      );
    },
  );

  test("chunks already taken are never written to again", { timeout: 30_000 }, () => {
    const out = new OutBuffer();
    out.message([utf8("one")]);
    const first = out.take()!.chunks;
    const snapshot = first.map((c) => c.slice());
    for (let i = 0; i < 5000; i++) out.message([pattern(100, i)]);
    out.message([pattern(50_000)]);
    drain(out);
    assert.equal(first.length, snapshot.length);
    first.forEach((chunk, i) => assertBytes(chunk, snapshot[i]));
  });

  test("many small messages across segment boundaries round-trip", { timeout: 30_000 }, () => {
    const out = new OutBuffer();
    const sent = Array.from({ length: 3000 }, (_, i) => [pattern(i % 200, i), pattern(i % 7, -i)]);
    for (const m of sent) out.message(m);
    const taken = out.take()!;
    assert.equal(taken.messages, 3000);
    const result = decode(taken.chunks);
    assert.equal(result.error, undefined);
    assert.ok(sameMessages(result.messages, sent));
  });
});

describe("OutBuffer → FrameDecoder", () => {
  test("random messages round-trip through any split", { timeout: 30_000 }, () => {
    fc.assert(
      fc.property(
        fc.array(messageArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (messages, cuts) => {
          const out = new OutBuffer();
          for (const m of messages) out.message(m);
          const bytes = drain(out);
          assertBytes(bytes, concat(messages.map(messageBytes)));
          const result = decode(split(bytes, cuts));
          assert.equal(result.error, undefined);
          assert.ok(sameMessages(result.messages, messages));
        },
      ),
      { numRuns: 200 },
    );
  });

  test(
    "a frame just past 4 MiB, read through one reused buffer, round-trips",
    { timeout: 30_000 },
    () => {
      const body = pattern(EAGER_ALLOCATION_BYTES + 10, 9);
      const out = new OutBuffer();
      out.message([body]);
      const bytes = drain(out);
      // decode() passes every piece through one reused, then overwritten, buffer.
      const result = decode(randomSplit(bytes, prng(3), 300_000), {
        maxMessageSize: 64 * MiB,
        maxFrames: 4,
      });
      assert.equal(result.error, undefined);
      assert.equal(result.messages.length, 1);
      assertBytes(result.messages[0][0], body);
      // And the way the driver reads, offering readTarget() first.
      const { decoder, messages } = newDecoder({ maxMessageSize: 64 * MiB, maxFrames: 4 });
      readLoop(bytes, () => decoder.readTarget(), (c) => decoder.feed(c), 65_536);
      assert.equal(messages.length, 1);
      assertBytes(messages[0][0], body);
    },
  );
});

describe("FrameDecoder.readTarget: reading large bodies in place", () => {
  const stream = concat([
    messageBytes([utf8("id"), pattern(200_000, 1)]),
    messageBytes([utf8("small")]),
    messageBytes([pattern(100_000, 2), pattern(70_000, 3), pattern(65_535, 4)]),
    frame(COMMAND, commandBody("PING", fromHex("00 00"))),
    messageBytes([pattern(65_536, 5)]),
    messageBytes([utf8("tail")]),
  ]);
  const reference = decode([stream]);

  test("nothing to offer while no large body is being received", { timeout: 30_000 }, () => {
    const { decoder } = newDecoder();
    assert.equal(decoder.readTarget(), null);
    decoder.feed(messageBytes([utf8("abc"), pattern(1000)]));
    assert.equal(decoder.readTarget(), null);
    decoder.feed(fromHex("00 10 01 02"));
    assert.equal(decoder.readTarget(), null, "small body under way");
  });

  test(
    "bytes read into the offered buffers arrive intact, for any read size",
    { timeout: 30_000 },
    () => {
      assert.equal(reference.error, undefined);
      assert.equal(reference.messages.length, 5);
      for (const maxRead of [1, 7, 16, 1000, 65_536, 100_000, 1 << 20]) {
        const { decoder, messages, commands } = newDecoder();
        const direct = readLoop(
          stream,
          () => decoder.readTarget(),
          (c) => decoder.feed(c),
          maxRead,
        );
        assert.ok(sameMessages(messages, reference.messages), `maxRead ${maxRead}`);
        assert.deepEqual(commands, reference.commands);
        if (maxRead >= 1000) {
          assert.ok(direct > 0, `maxRead ${maxRead}: no read went in place`);
        }
      }
    },
  );

  test("frames delivered from in-place reads are not overwritten by later reads", {
    timeout: 30_000,
  }, () => {
    const { decoder, messages } = newDecoder();
    readLoop(stream, () => decoder.readTarget(), (c) => decoder.feed(c), 65_536);
    const first = messages[0][1];
    assertBytes(first, pattern(200_000, 1));
    // Everything after was read into other buffers; the delivered frame kept its bytes.
    assertBytes(messages[2][2], pattern(65_535, 4));
  });

  test("Connection.readTarget: nothing before the handshake, large bodies after it", {
    timeout: 30_000,
  }, () => {
    const { conn, messages } = recorded({ socketType: "DEALER" });
    assert.equal(conn.readTarget(), null);
    const handshake = concat([peerGreeting(), readyFrame([["Socket-Type", "ROUTER"]])]);
    readLoop(handshake, () => conn.readTarget(), (c) => conn.receive(c, 0), 3);
    assert.equal(conn.state, "ready");
    const direct = readLoop(stream, () => conn.readTarget(), (c) => conn.receive(c, 0), 65_536);
    assert.ok(direct > 0);
    assert.ok(sameMessages(messages, reference.messages));
  });
});
