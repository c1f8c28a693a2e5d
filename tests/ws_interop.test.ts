/**
 * Our Dealer and Router over `ws://` (ZWS 2.0) against real peers nobody here wrote: jszmq
 * (bare `ZWS2.0`, the only ZeroMQ that runs in browsers) and libzmq's draft `ws_engine` through
 * zeromq.js 6 (whose prebuilt libzmq has drafts and ws on), which offers `ZWS2.0/NULL`. Both
 * roles, multipart messages, frames from 0 B to 10 MiB, a restart of the bound side, heartbeats.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Dealer, Router, type SocketEvent } from "../mod.ts";
import { b64, type Peer, type PeerKind, peerMissing, startPeer } from "./_peer.ts";
import { withTimeout } from "./_helpers.ts";

const MiB = 1024 * 1024;
const SIZES = [0, 1, 125, 126, 65_535, 65_536, MiB, 10 * MiB];
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);
const fill = (size: number, byte: number) => new Uint8Array(size).fill(byte);
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function allEqual(frame: Uint8Array, byte: number): boolean {
  for (let i = 0; i < frame.length; i++) if (frame[i] !== byte) return false;
  return true;
}

/** The subprotocol each peer ends up speaking with us. */
const PROTOCOL: Record<string, { theirsBound: string; oursBound: string }> = {
  // jszmq offers only ZWS2.0; its server takes the first one we offer, ZWS2.0.
  jszmq: { theirsBound: "ZWS2.0", oursBound: "ZWS2.0" },
  // libzmq's client offers "ZWS2.0/NULL,ZWS2.0" and we pick the handshake; its server takes
  // the first of ours it knows ("ZWS2.0+NULL" is ours only).
  "zeromq.js": { theirsBound: "ZWS2.0", oursBound: "ZWS2.0/NULL" },
};

function portOf(endpoint: string): number {
  return Number(/:(\d+)(\/|$)/.exec(endpoint)![1]);
}

for (const kind of ["jszmq", "zeromq.js"] as PeerKind[]) {
  const skip = peerMissing(kind);
  const name = kind === "jszmq" ? "jszmq" : "libzmq ws_engine (zeromq.js)";
  describe(`${name} over ws://`, () => {
    test(`${kind} DEALER connects to our ROUTER; frames 0 B to 10 MiB both ways; multipart`, {
      skip: skip,
      timeout: 120_000,
    }, async () => {
      const events: SocketEvent[] = [];
      const router = new Router({ onEvent: (e) => events.push(e) });
      const endpoint = await router.bind("ws://127.0.0.1:0");
      const peer = await startPeer(kind, [
        "--type=dealer",
        `--connect=${endpoint}`,
        "--routing-id=peer-1",
      ]);
      try {
        for (const [i, size] of SIZES.entries()) {
          assert.deepEqual(await peer.op({ op: "send_fill", frames: [{ size, byte: i + 1 }] }), {
            ok: true,
          });
          const [id, frame] = await withTimeout(router.receive(), 15_000, `receive ${size} B`);
          assert.equal(text(id), "peer-1");
          assert.equal(frame.length, size);
          assert.ok(allEqual(frame, i + 1), `content of the ${size}-byte frame`);
          const reply = fill(size, 0xa0 + i);
          await router.send([id, reply]);
          const summary = await peer.op({ op: "recv_summary", timeout: 15_000 });
          assert.deepEqual(summary, { sizes: [size], sha256: [sha256(reply)] });
        }
        await peer.op({
          op: "send_fill",
          frames: SIZES.slice(0, 6).map((size, i) => ({ size, byte: i })),
        });
        const [, ...frames] = await withTimeout(router.receive(), 10_000, "multipart");
        assert.deepEqual(frames.map((f) => f.length), SIZES.slice(0, 6));
        await router.send([bytes("peer-1"), "a", "", "ccc"]);
        const back = await peer.op({ op: "recv_summary", timeout: 5000 });
        assert.deepEqual(back.sizes, [1, 0, 3]);
        const accepted = events.find((e) => e.type === "accept");
        assert.equal(accepted?.protocol, PROTOCOL[kind].oursBound);
        assert.equal(events.filter((e) => e.type === "handshake").length, 1);
      } finally {
        await peer.close();
        router.close();
      }
    });

    test(`our DEALER connects to a ${kind} ROUTER; frames 0 B to 10 MiB; 500-frame messages`, {
      skip: skip,
      timeout: 120_000,
    }, async () => {
      const peer = await startPeer(kind, ["--type=router", "--bind=ws://127.0.0.1:0", "--echo"]);
      const events: SocketEvent[] = [];
      const dealer = new Dealer({ routingId: "ours", onEvent: (e) => events.push(e) });
      try {
        dealer.connect(peer.endpoint);
        for (const [i, size] of SIZES.entries()) {
          await dealer.send(["", fill(size, i + 1)]);
          const [empty, back] = await withTimeout(dealer.receive(), 15_000, `echo of ${size} B`);
          assert.equal(empty.length, 0);
          assert.equal(back.length, size);
          assert.ok(allEqual(back, i + 1));
        }
        const many = Array.from({ length: 500 }, (_, i) => bytes(`f${i}`));
        await dealer.send(many);
        const echoed = await withTimeout(dealer.receive(), 10_000, "500-frame echo");
        assert.deepEqual(echoed.map(text), many.map(text));
        const connected = events.find((e) => e.type === "connect");
        assert.equal(connected?.protocol, PROTOCOL[kind].theirsBound);
      } finally {
        dealer.close();
        await peer.close();
      }
    });

    test(
      `a ${kind} DEALER reconnects after our ROUTER restarts on the same port`,
      { skip: skip, timeout: 120_000 },
      async () => {
        let router = new Router();
        const endpoint = await router.bind("ws://127.0.0.1:0");
        const peer = await startPeer(kind, ["--type=dealer", `--connect=${endpoint}`, "--monitor"]);
        try {
          await peer.op({ op: "send", frames: [b64(bytes("before"))] });
          const [, before] = await withTimeout(router.receive(), 5000, "before the restart");
          assert.equal(text(before), "before");
          router.close();
          await router.whenClosed();
          // A message sent before the peer saw the connection go would be lost with it.
          await withTimeout(
            (async () => {
              while (!peer.events.some((e) => e.event === "disconnect")) await sleep(20);
            })(),
            5000,
            "the peer sees our ROUTER go",
          );
          // Sent while it retries: both peers queue it until they are connected again.
          await peer.op({ op: "send", frames: [b64(bytes("after"))] });
          router = new Router();
          assert.equal(await router.bind(endpoint), endpoint);
          const [id, after] = await withTimeout(router.receive(), 10_000, "after the restart");
          assert.equal(text(after), "after");
          await router.send([id, "welcome back"]);
          const got = await peer.op({ op: "recv_summary", timeout: 5000 });
          assert.deepEqual(got.sizes, [12]);
        } finally {
          await peer.close();
          router.close();
        }
      },
    );

    test(
      `our DEALER reconnects after a ${kind} ROUTER restarts on the same port`,
      { skip: skip, timeout: 120_000 },
      async () => {
        let peer: Peer = await startPeer(kind, [
          "--type=router",
          "--bind=ws://127.0.0.1:0",
          "--echo",
        ]);
        const port = portOf(peer.endpoint);
        const events: SocketEvent[] = [];
        const dealer = new Dealer({ routingId: "comeback", onEvent: (e) => events.push(e) });
        try {
          dealer.connect(peer.endpoint);
          await dealer.send("one");
          assert.equal(text((await withTimeout(dealer.receive(), 5000, "first echo"))[0]), "one");
          await peer.close();
          await withTimeout(
            (async () => {
              while (!events.some((e) => e.type === "disconnect")) await sleep(20);
            })(),
            5000,
            "our DEALER sees the ROUTER go",
          );
          peer = await startPeer(kind, [
            "--type=router",
            `--bind=ws://127.0.0.1:${port}`,
            "--echo",
          ]);
          await dealer.send("two");
          assert.equal(text((await withTimeout(dealer.receive(), 10_000, "echo after"))[0]), "two");
          assert.equal(events.filter((e) => e.type === "handshake").length, 2);
        } finally {
          dealer.close();
          await peer.close();
        }
      },
    );
  });
}

describe("heartbeats over ws://", () => {
  test(
    "a libzmq DEALER with WebSocket heartbeats on stays connected to our idle ROUTER",
    { skip: peerMissing("zeromq.js"), timeout: 120_000 },
    async () => {
      const events: SocketEvent[] = [];
      // Our heartbeats on as well: toward libzmq's ws_engine they are left out (it drops
      // ZMTP PINGs), so its own heartbeat is what keeps the link checked.
      const router = new Router({ heartbeatInterval: 100, onEvent: (e) => events.push(e) });
      const endpoint = await router.bind("ws://127.0.0.1:0");
      const peer = await startPeer("zeromq.js", [
        "--type=dealer",
        `--connect=${endpoint}`,
        "--routing-id=beating",
        "--heartbeat-ivl=100",
        "--heartbeat-timeout=600",
        "--monitor",
      ]);
      try {
        await peer.op({ op: "send", frames: [b64(bytes("hello"))] });
        await withTimeout(router.receive(), 5000, "first message");
        await sleep(2000); // several heartbeat timeouts, idle: only our answers keep it up
        assert.equal(peer.events.filter((e) => e.event === "disconnect").length, 0);
        assert.equal(events.filter((e) => e.type === "disconnect").length, 0);
        await peer.op({ op: "send", frames: [b64(bytes("still here"))] });
        const [id, still] = await withTimeout(router.receive(), 5000, "after idle");
        assert.equal(text(id), "beating");
        assert.equal(text(still), "still here");
      } finally {
        await peer.close();
        router.close();
      }
    },
  );

  test(
    "our ROUTER with heartbeats on never sends jszmq a command (it would take it for data)",
    { skip: peerMissing("jszmq"), timeout: 120_000 },
    async () => {
      const events: SocketEvent[] = [];
      const router = new Router({
        heartbeatInterval: 50,
        heartbeatTimeout: 200,
        onEvent: (e) => events.push(e),
      });
      const endpoint = await router.bind("ws://127.0.0.1:0");
      const peer = await startPeer("jszmq", ["--type=dealer", `--connect=${endpoint}`]);
      try {
        await peer.op({ op: "send", frames: [b64(bytes("hi"))] });
        const [id] = await withTimeout(router.receive(), 5000, "hi");
        // Many heartbeat intervals pass: no PING reaches jszmq, and its silence (it has no
        // heartbeat) does not get it dropped.
        assert.deepEqual(await peer.op({ op: "recv", timeout: 1000 }), { error: "timeout" });
        await router.send([id, "only this"]);
        const got = await peer.op({ op: "recv", timeout: 5000 });
        assert.deepEqual(got.frames, [b64(bytes("only this"))]);
        assert.equal(events.filter((e) => e.type === "disconnect").length, 0);
      } finally {
        await peer.close();
        router.close();
      }
    },
  );
});
