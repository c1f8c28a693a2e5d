/**
 * Our Dealer and Router against real libzmq peers (pyzmq and zeromq.js), over tcp and ipc, in
 * both roles, with heartbeats on.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Dealer, Router, type SocketEvent } from "../mod.ts";
import { Cleanup, ipcEndpoint, sleep, withTimeout } from "./_helpers.ts";
import { b64, type Peer, type PeerKind, peerMissing, startPeer, unb64 } from "./_peer.ts";

const MiB = 1024 * 1024;
const SIZES = [0, 1, 255, 256, 65_536, MiB, 10 * MiB];
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const fill = (size: number, byte: number) => new Uint8Array(size).fill(byte);
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A fresh endpoint to bind; an ipc one's socket file is removed by `c`. */
function endpointFor(c: Cleanup, transport: "tcp" | "ipc"): string {
  return transport === "tcp" ? "tcp://127.0.0.1:0" : ipcEndpoint(c, "interop");
}

/**
 * Our ROUTER, bound, with a libzmq DEALER (heartbeats on, monitored) connected to it under
 * `routingId`; `heartbeatTimeout` is the peer's, in ms.
 */
async function routerWithLibzmqDealer(
  c: Cleanup,
  kind: PeerKind,
  transport: "tcp" | "ipc",
  routingId: string,
  heartbeatTimeout: number,
): Promise<{ router: Router; events: SocketEvent[]; peer: Peer }> {
  const events: SocketEvent[] = [];
  const bindTo = endpointFor(c, transport); // first: its file goes after the sockets close
  const router = new Router({ onEvent: (e) => events.push(e) });
  c.add(() => router.close());
  const endpoint = await router.bind(bindTo);
  const peer = await startPeer(kind, [
    "--type=dealer",
    `--connect=${endpoint}`,
    `--routing-id=${routingId}`,
    "--heartbeat-ivl=100",
    `--heartbeat-timeout=${heartbeatTimeout}`,
    "--monitor",
  ]);
  c.add(() => peer.close());
  return { router, events, peer };
}

function allEqual(frame: Uint8Array, byte: number): boolean {
  for (let i = 0; i < frame.length; i++) if (frame[i] !== byte) return false;
  return true;
}

for (const kind of ["pyzmq", "zeromq.js"] as PeerKind[]) {
  // On each test rather than on the describe, so that a skip counts once per test.
  const skip = peerMissing(kind);
  for (const transport of ["tcp", "ipc"] as const) {
    describe(`${kind} over ${transport}`, () => {
      test(
        "libzmq DEALER connects to our ROUTER; frames 0 B to 10 MiB",
        { skip, timeout: 120_000 },
        async () => {
          const c = new Cleanup();
          try {
            // libzmq counts only whole messages as traffic: on a loaded machine moving 10 MiB
            // can outlast a short heartbeat timeout. The heartbeat test below uses small ones.
            const { router, events, peer } = await routerWithLibzmqDealer(
              c,
              kind,
              transport,
              "peer-1",
              10_000,
            );
            for (const [i, size] of SIZES.entries()) {
              const sent = await peer.op({ op: "send_fill", frames: [{ size, byte: i + 1 }] });
              assert.deepEqual(sent, { ok: true });
              const [id, frame] = await withTimeout(router.receive(), 10_000, `receive ${size} B`);
              assert.equal(text(id), "peer-1");
              assert.equal(frame.length, size);
              assert.ok(allEqual(frame, i + 1), `content of the ${size}-byte frame`);
              const reply = fill(size, 0xa0 + i);
              await router.send([id, reply]);
              const summary = await peer.op({ op: "recv_summary", timeout: 10_000 });
              assert.deepEqual(summary, { sizes: [size], sha256: [sha256(reply)] });
            }
            // A multipart message, frames of every size at once.
            await peer.op({
              op: "send_fill",
              frames: SIZES.slice(0, 6).map((size, i) => ({ size, byte: i })),
            });
            const [, ...frames] = await withTimeout(router.receive(), 10_000, "multipart");
            assert.deepEqual(frames.map((f) => f.length), SIZES.slice(0, 6));
            assert.equal(events.filter((e) => e.type === "handshake").length, 1);
          } finally {
            await c.run();
          }
        },
      );

      test(
        "a libzmq DEALER with heartbeats on stays connected to our idle ROUTER",
        { skip, timeout: 60_000 },
        async () => {
          const c = new Cleanup();
          try {
            // A 1.2 s heartbeat timeout, idle for 3 s: without our PONGs libzmq would have
            // dropped the connection twice over; a loaded machine's pauses stay well below it.
            const { router, events, peer } = await routerWithLibzmqDealer(
              c,
              kind,
              transport,
              "beating",
              1200,
            );
            await peer.op({ op: "send", frames: [b64(new TextEncoder().encode("hello"))] });
            await withTimeout(router.receive(), 5000, "first message");
            await sleep(3000);
            assert.equal(peer.events.filter((e) => e.event === "disconnect").length, 0);
            assert.equal(events.filter((e) => e.type === "disconnect").length, 0);
            assert.equal(events.filter((e) => e.type === "handshake").length, 1);
            await peer.op({ op: "send", frames: [b64(new TextEncoder().encode("still here"))] });
            const [id, still] = await withTimeout(router.receive(), 5000, "after idle");
            assert.equal(text(id), "beating");
            assert.equal(text(still), "still here");
          } finally {
            await c.run();
          }
        },
      );

      test(
        "our DEALER connects to a libzmq ROUTER; 10 MiB and 1000-frame messages; our heartbeats",
        { skip, timeout: 120_000 },
        async () => {
          const c = new Cleanup();
          try {
            const peer = await startPeer(kind, [
              "--type=router",
              `--bind=${endpointFor(c, transport)}`,
              "--echo",
              "--monitor",
            ]);
            c.add(() => peer.close());
            const events: SocketEvent[] = [];
            const dealer = new Dealer({
              routingId: "ours",
              heartbeatInterval: 100,
              heartbeatTimeout: 1500,
              onEvent: (e) => events.push(e),
            });
            c.add(() => dealer.close());
            dealer.connect(peer.endpoint);
            for (const [i, size] of SIZES.entries()) {
              const frame = fill(size, i + 1);
              await dealer.send(["", frame]);
              const [empty, back] = await withTimeout(
                dealer.receive(),
                10_000,
                `echo of ${size} B`,
              );
              assert.equal(empty.length, 0);
              assert.equal(back.length, size);
              assert.ok(allEqual(back, i + 1));
            }
            const many = Array.from({ length: 1000 }, (_, i) => new TextEncoder().encode(`f${i}`));
            await dealer.send(many);
            const echoed = await withTimeout(dealer.receive(), 10_000, "1000-frame echo");
            assert.equal(echoed.length, 1000);
            assert.deepEqual(echoed.map(text), many.map(text));

            await sleep(3000); // libzmq answers our PINGs; no heartbeat timeout on our side
            assert.equal(events.filter((e) => e.type === "disconnect").length, 0);
            await dealer.send("ping?");
            const [after] = await withTimeout(dealer.receive(), 5000, "after idle");
            assert.equal(text(after), "ping?");
          } finally {
            await c.run();
          }
        },
      );

      test(
        "libzmq ROUTER connects to our bound DEALER, heartbeats on both sides",
        { skip, timeout: 60_000 },
        async () => {
          const c = new Cleanup();
          try {
            const bindTo = endpointFor(c, transport);
            const dealer = new Dealer({ routingId: "bound-dealer", heartbeatInterval: 100 });
            c.add(() => dealer.close());
            const endpoint = await dealer.bind(bindTo);
            const peer = await startPeer(kind, [
              "--type=router",
              `--connect=${endpoint}`,
              "--heartbeat-ivl=100",
              "--heartbeat-timeout=1500",
            ]);
            c.add(() => peer.close());
            await dealer.send(["hello", "router"]);
            const got = await peer.op({ op: "recv", timeout: 5000 });
            const frames = (got.frames as string[]).map((f) => text(unb64(f)));
            assert.deepEqual(frames, ["bound-dealer", "hello", "router"]);
            const back = ["bound-dealer", "hi", "dealer"].map((s) =>
              b64(new TextEncoder().encode(s))
            );
            assert.deepEqual(await peer.op({ op: "send", frames: back }), { ok: true });
            const reply = await withTimeout(dealer.receive(), 5000, "reply");
            assert.deepEqual(reply.map(text), ["hi", "dealer"]);
          } finally {
            await c.run();
          }
        },
      );

      test(
        "our ROUTER connects to a bound libzmq DEALER without an identity, heartbeats on",
        { skip, timeout: 60_000 },
        async () => {
          const c = new Cleanup();
          try {
            const peer = await startPeer(kind, [
              "--type=dealer",
              `--bind=${endpointFor(c, transport)}`,
              "--heartbeat-ivl=100",
              "--heartbeat-timeout=1500",
            ]);
            c.add(() => peer.close());
            const router = new Router({ heartbeatInterval: 100 });
            c.add(() => router.close());
            router.connect(peer.endpoint);
            const hello = b64(new TextEncoder().encode("hello"));
            await peer.op({ op: "send", frames: [hello] });
            const [id, frame] = await withTimeout(router.receive(), 5000, "receive");
            // libzmq sent an empty Identity: we generated 0x00 + 32-bit counter, as libzmq does.
            assert.equal(id.length, 5);
            assert.equal(id[0], 0);
            assert.equal(text(frame), "hello");
            await router.send([id, "back"]);
            const got = await peer.op({ op: "recv", timeout: 5000 });
            assert.deepEqual((got.frames as string[]).map((f) => text(unb64(f))), ["back"]);
          } finally {
            await c.run();
          }
        },
      );
    });
  }
}
