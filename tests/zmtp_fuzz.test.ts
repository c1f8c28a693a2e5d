/**
 * A bounded slice (about 3 s in all) of the generative fuzzing that `scripts/fuzz.ts` runs at
 * length. Each property runs for a fixed time; a failure reports fast-check's seed and path so
 * that `deno run scripts/fuzz.ts --property NAME --seed S --path P` replays it.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import { FrameDecoder } from "../src/zmtp/frame_decoder.ts";
import { ZmtpError } from "../src/zmtp/errors.ts";
import {
  concat,
  longHeader,
  pattern,
  peerGreeting,
  readyFrame,
  recorded,
  retainedBytes,
} from "./_wire_kit.ts";
import { PROPERTIES } from "./_zmtp_properties.ts";

/** Time each property may run beyond its first MIN_CASES cases, in ms. */
const SLICE_MS = 700;
/**
 * Cases each property runs whatever the time (a loaded machine runs fewer in SLICE_MS: 16 were
 * seen under the parallel suite on 2 busy cores); a hang shows up as the test's timeout.
 */
const MIN_CASES = 50;
/** Longest a single case may take, in ms: far above normal, far below a hang. */
const SLOW_CASE_MS = 2000;
const MiB = 1024 * 1024;

describe("fuzz slice", () => {
  for (const [name, make] of Object.entries(PROPERTIES)) {
    test(name, { timeout: 60_000 }, () => {
      let started = 0;
      let slowest = 0;
      let ran = 0;
      const property = () =>
        make().beforeEach((previous) => {
          previous();
          started = performance.now();
        }).afterEach((previous) => {
          previous();
          slowest = Math.max(slowest, performance.now() - started);
        });
      // First MIN_CASES cases in full, then as many more as SLICE_MS allows.
      for (
        const options of [
          { numRuns: MIN_CASES },
          { numRuns: 1_000_000, interruptAfterTimeLimit: SLICE_MS, markInterruptAsFailure: false },
        ]
      ) {
        const details = fc.check(property(), options);
        if (details.failed) {
          throw new Error(
            `${name}: ${fc.defaultReportMessage(details)}\n${details.errorInstance}\n` +
              `replay: deno run -A scripts/fuzz.ts --property ${name} --seed ${details.seed}` +
              ` --path ${details.counterexamplePath}`,
          );
        }
        ran += details.numRuns;
      }
      assert.ok(ran >= MIN_CASES, `${name}: only ${ran} cases ran`);
      assert.ok(slowest < SLOW_CASE_MS, `${name}: a case took ${Math.round(slowest)} ms`);
    });
  }
});

describe("fixed cases the fuzzer must cover", () => {
  test("a 2^62-byte frame after READY, then a few bytes: refused, nothing allocated", {
    timeout: 120_000,
  }, () => {
    const { conn, messages } = recorded({ socketType: "DEALER" });
    conn.receive(concat([peerGreeting(), readyFrame([["Socket-Type", "ROUTER"]])]), 0);
    const before = process.memoryUsage().external;
    let caught: unknown;
    try {
      conn.receive(concat([longHeader(0, 2n ** 62n), pattern(16)]), 1);
    } catch (error) {
      caught = error;
    }
    const grown = process.memoryUsage().external - before;
    assert.ok(caught instanceof ZmtpError);
    assert.equal(caught.code, "message-too-large");
    assert.ok(grown < 1024 * 1024, `external memory grew by ${grown}`);
    assert.equal(messages.length, 0);
  });

  test("the same with no size limit at all: accepted, memory follows the bytes received", {
    timeout: 120_000,
  }, () => {
    const { conn, messages } = recorded({
      socketType: "DEALER",
      maxMessageSize: Number.POSITIVE_INFINITY,
    });
    conn.receive(concat([peerGreeting(), readyFrame([["Socket-Type", "ROUTER"]])]), 0);
    const before = process.memoryUsage().external;
    conn.receive(longHeader(0, 2n ** 62n), 1);
    for (let i = 0; i < 100; i++) conn.receive(pattern(1000, i), 2);
    const grown = process.memoryUsage().external - before;
    assert.ok(grown < 4 * MiB, `external memory grew by ${grown} for 100 kB received`);
    assert.equal(messages.length, 0);
    assert.equal(conn.idle, false);
  });

  test("a large frame trickled in 1-byte reads costs about the bytes received", {
    timeout: 120_000,
  }, () => {
    // Bodies past 4 MiB are collected as they arrive "so a peer that lies about a length costs
    // only the bytes it really sends" (frame_decoder.ts). A peer can choose to send its bytes
    // one per TCP segment; measured after a full GC, with the decoder still alive.
    const received = 300_000;
    const decoder = new FrameDecoder({ maxMessageSize: 256 * MiB, maxFrames: 4 }, {
      message: () => assert.fail("no message can be complete"),
      command: () => assert.fail("no command was sent"),
    });
    decoder.feed(longHeader(0, BigInt(64 * MiB)));
    const one = Uint8Array.of(0x42);
    const before = retainedBytes();
    for (let i = 0; i < received; i++) decoder.feed(one);
    const grown = retainedBytes() - before;
    assert.equal(decoder.idle, false);
    assert.ok(
      grown < 8 * received + MiB,
      `${received} bytes received one at a time keep ${grown} bytes alive ` +
        `(${Math.round(grown / received)} per byte received)`,
    );
  });

  test("the same bytes in 64 KiB reads cost about the bytes received", { timeout: 120_000 }, () => {
    const received = 300 * 65_536;
    const decoder = new FrameDecoder({ maxMessageSize: 256 * MiB, maxFrames: 4 }, {
      message: () => assert.fail("no message can be complete"),
      command: () => assert.fail("no command was sent"),
    });
    decoder.feed(longHeader(0, BigInt(64 * MiB)));
    const read = pattern(65_536);
    const before = retainedBytes();
    for (let at = 0; at < received; at += read.length) decoder.feed(read);
    const grown = retainedBytes() - before;
    assert.ok(grown < 2 * received + MiB, `${received} bytes received keep ${grown} alive`);
  });

  test("a lying 4 MiB frame costs at most the eager-allocation size", { timeout: 120_000 }, () => {
    const decoder = new FrameDecoder({ maxMessageSize: 1 << 30, maxFrames: 4 }, {
      message: () => assert.fail("no message can be complete"),
      command: () => assert.fail("no command was sent"),
    });
    const before = process.memoryUsage().external;
    decoder.feed(longHeader(0, BigInt(4 * 1024 * 1024)));
    decoder.feed(pattern(10));
    const grown = process.memoryUsage().external - before;
    assert.ok(grown <= 4 * 1024 * 1024 + 65_536, `external memory grew by ${grown}`);
  });
});
