/**
 * ROUTER: addresses each peer by routing id; received messages start with the sender's id.
 *
 * @module
 */

import type { PeerInfo } from "../zmtp/connection.ts";
import { Deque } from "./deque.ts";
import { describeId, keyOf } from "./routing_id.ts";
import { HostUnreachableError, SocketClosedError, SocketError } from "./errors.ts";
import type { SocketOptions, TrySendOptions } from "./options.ts";
import type { Pipe } from "./pipe.ts";
import {
  failSends,
  framesNow,
  type Message,
  type PendingSend,
  SocketBase,
  toFrames,
} from "./socket_base.ts";

/** Options of a {@linkcode Router}. */
export interface RouterOptions extends SocketOptions {
  /**
   * Sending to a routing id no peer has rejects with {@linkcode HostUnreachableError} instead of
   * dropping the message silently (default false).
   */
  mandatory?: boolean;
  /**
   * A new peer announcing a routing id that a live peer already has takes it over, and the old
   * peer is disconnected (default false: the new peer is refused and the old one kept, as
   * libzmq does).
   */
  handover?: boolean;
}

/**
 * A ROUTER socket, shaped like zeromq.js v6's `Router`. Every received message starts with the
 * routing id of the peer that sent it; every sent message starts with the routing id of the peer
 * it goes to. A peer's id is the `Identity` it announced, else 5 bytes generated the way libzmq
 * makes them (0x00 and a 32-bit counter).
 *
 * @example
 * ```ts ignore
 * import { Router } from "./router.ts";
 * const router = new Router({ mandatory: true });
 * await router.bind("tcp://*:5555");
 * for await (const [id, ...frames] of router) await router.send([id, ...frames]); // echo
 * ```
 */
export class Router extends SocketBase {
  /** See {@linkcode RouterOptions.mandatory}. */
  mandatory: boolean;
  /** See {@linkcode RouterOptions.handover}. */
  handover: boolean;
  #byKey = new Map<string, Pipe>();
  /**
   * The same peers by the very routing-id bytes this socket hands out with their messages: a
   * reply that reuses them is routed without making a key of them (a string per message).
   */
  #byId = new WeakMap<Uint8Array, Pipe>();
  #waiting = new Map<Pipe, Deque<PendingSend>>();
  #nextId = (Math.random() * 0x1_0000_0000) >>> 0;

  /** Creates a ROUTER socket. */
  constructor(options: RouterOptions = {}) {
    const { mandatory = false, handover = false, ...rest } = options;
    super("ROUTER", rest);
    this.mandatory = mandatory;
    this.handover = handover;
  }

  /**
   * Sends `[routingId, ...frames]` to the peer with that id. Frames of 64 KiB and more are not
   * copied: leave them unchanged until the returned promise resolves.
   */
  send(message: Message): Promise<void> {
    if (this.closed) return Promise.reject(new SocketClosedError("send"));
    let frames: Uint8Array[];
    try {
      frames = routerFrames(message);
    } catch (error) {
      return Promise.reject(error);
    }
    const pipe = this.#peer(frames[0]);
    if (pipe === undefined) {
      return this.mandatory ? Promise.reject(new HostUnreachableError(frames[0])) : this.resolved;
    }
    const waiting = this.#waiting.get(pipe);
    if ((waiting === undefined || waiting.length === 0) && pipe.writable) {
      return pipe.send(frames, false, 1) ?? this.resolved;
    }
    frames.shift();
    let queue = waiting;
    if (queue === undefined) {
      queue = new Deque();
      this.#waiting.set(pipe, queue);
    }
    return this.waitToSend(frames, queue);
  }

  /**
   * Sends at once if the addressed peer is connected and has room, and never waits or queues:
   * returns false otherwise. For servers that must not buffer for a peer that stops reading.
   * The frames may be changed as soon as it returns: large ones are copied (see
   * {@linkcode TrySendOptions.copy}).
   */
  trySend(message: Message, options?: TrySendOptions): boolean {
    if (this.closed) throw new SocketClosedError("send");
    const frames = withRoutingId(framesNow(message));
    const pipe = this.#peer(frames[0]);
    if (pipe === undefined || !pipe.writable) return false;
    const waiting = this.#waiting.get(pipe);
    if (waiting !== undefined && waiting.length > 0) return false;
    pipe.send(frames, options?.copy ?? true, 1);
    return true;
  }

  /** True when a peer with this routing id is connected. */
  hasPeer(routingId: Uint8Array | string): boolean {
    const id = typeof routingId === "string" ? new TextEncoder().encode(routingId) : routingId;
    return this.#byKey.has(keyOf(id));
  }

  /** @ignore */
  protected attach(pipe: Pipe, peer: PeerInfo): boolean {
    let id = peer.routingId;
    if (id.length === 0) id = this.#generateId();
    const key = keyOf(id);
    const existing = this.#byKey.get(key);
    if (existing !== undefined) {
      if (!this.handover) {
        this.reject(
          pipe,
          "duplicate-identity",
          `routing id ${describeId(id)} is already in use by a live peer`,
        );
        return false;
      }
      existing.close();
    }
    pipe.routingId = id;
    pipe.routingKey = key;
    this.#byKey.set(key, pipe);
    this.#byId.set(id, pipe);
    return true;
  }

  /** @ignore */
  protected override failWaitingSends(error: Error): void {
    super.failWaitingSends(error);
    for (const queue of this.#waiting.values()) failSends(queue, error);
    this.#waiting.clear();
  }

  /** @ignore */
  protected override sendQueueCount(): number {
    return 1 + this.#waiting.size;
  }

  /** @ignore */
  protected detach(pipe: Pipe): void {
    if (this.#byKey.get(pipe.routingKey) === pipe) this.#byKey.delete(pipe.routingKey);
    this.#byId.delete(pipe.routingId);
    const waiting = this.#waiting.get(pipe);
    if (waiting === undefined) return;
    this.#waiting.delete(pipe);
    for (const pending of waiting.drain()) {
      if (pending.timer) clearTimeout(pending.timer);
      // libzmq drops what it cannot deliver; with mandatory the caller hears of it.
      if (this.mandatory) pending.reject(new HostUnreachableError(pipe.routingId));
      else pending.resolve();
    }
  }

  /** @ignore */
  protected deliver(pipe: Pipe, frames: Uint8Array[]): Uint8Array[] {
    // A literal for the common shapes is cheaper than moving the frames along (unshift).
    if (frames.length === 1) return [pipe.routingId, frames[0]];
    if (frames.length === 2) return [pipe.routingId, frames[0], frames[1]];
    frames.unshift(pipe.routingId);
    return frames;
  }

  /** @ignore */
  protected retrySends(pipe: Pipe): void {
    const waiting = this.#waiting.get(pipe);
    if (waiting === undefined) return;
    while (waiting.length > 0 && pipe.writable) this.completeSend(waiting.shift()!, pipe);
    if (waiting.length === 0) this.#waiting.delete(pipe);
  }

  /** The live peer with routing id `id`, if any. */
  #peer(id: Uint8Array): Pipe | undefined {
    return this.#byId.get(id) ?? this.#byKey.get(keyOf(id));
  }

  #generateId(): Uint8Array {
    while (true) {
      const id = new Uint8Array(5);
      const n = this.#nextId;
      this.#nextId = (n + 1) >>> 0;
      id[1] = n >>> 24;
      id[2] = (n >>> 16) & 0xff;
      id[3] = (n >>> 8) & 0xff;
      id[4] = n & 0xff;
      if (!this.#byKey.has(keyOf(id))) return id;
    }
  }
}

function routerFrames(message: Message): Uint8Array[] {
  return withRoutingId(toFrames(message));
}

/** `frames`, checked to hold a routing id and at least one frame. */
function withRoutingId(frames: Uint8Array[]): Uint8Array[] {
  if (frames.length < 2) {
    throw new SocketError("EINVAL", "A ROUTER message needs a routing id and at least one frame");
  }
  return frames;
}
