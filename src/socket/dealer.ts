/**
 * DEALER: sends round-robin to its peers, receives fair-queued from them.
 *
 * @module
 */

import type { PeerInfo } from "../zmtp/connection.ts";
import { SocketClosedError } from "./errors.ts";
import type { Pipe } from "./pipe.ts";
import type { SocketOptions, TrySendOptions } from "./options.ts";
import { framesNow, type Message, SocketBase, toFrames } from "./socket_base.ts";

/**
 * A DEALER socket, shaped like zeromq.js v6's `Dealer`. `send` waits while no peer has room
 * (up to `sendTimeout`); `receive` takes messages from all peers in turn.
 *
 * @example
 * ```ts ignore
 * import { Dealer } from "./dealer.ts";
 * const dealer = new Dealer({ routingId: "worker-1" });
 * dealer.connect("tcp://127.0.0.1:5555");
 * await dealer.send(["", "hello"]);
 * const [empty, reply] = await dealer.receive();
 * dealer.close();
 * ```
 */
export class Dealer extends SocketBase {
  #next = 0;

  /** Creates a DEALER socket. */
  constructor(options: SocketOptions = {}) {
    super("DEALER", options);
  }

  /** Sends a message to the next peer in turn that has room. */
  send(message: Message): Promise<void> {
    if (this.closed) return Promise.reject(new SocketClosedError("send"));
    let frames: Uint8Array[];
    try {
      frames = toFrames(message);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.pendingSends.length === 0) {
      const pipe = this.#pick();
      if (pipe !== undefined) return pipe.send(frames) ?? this.resolved;
    }
    return this.waitToSend(frames);
  }

  /**
   * Sends at once to the next peer in turn that has room, and never waits or queues: returns
   * false when no peer has room (or messages are already waiting for it), and `send()` would
   * have waited. The synchronous fast path for a sender of many small messages: no promise
   * per message. Large frames are copied (see {@linkcode TrySendOptions.copy}).
   *
   * @example
   * ```ts ignore
   * for (const message of messages) {
   *   if (!dealer.trySend(message)) await dealer.send(message); // waits for room
   * }
   * ```
   */
  trySend(message: Message, options?: TrySendOptions): boolean {
    if (this.closed) throw new SocketClosedError("send");
    if (this.pendingSends.length > 0) return false;
    const pipe = this.#pick();
    if (pipe === undefined) return false;
    pipe.send(framesNow(message), options?.copy ?? true);
    return true;
  }

  #pick(): Pipe | undefined {
    const pipes = this.pipes;
    const n = pipes.length;
    for (let i = 0; i < n; i++) {
      const index = (this.#next + i) % n;
      const pipe = pipes[index];
      if (pipe.writable) {
        this.#next = (index + 1) % n;
        return pipe;
      }
    }
    return undefined;
  }

  /** @ignore */
  protected attach(_pipe: Pipe, _peer: PeerInfo): boolean {
    return true;
  }

  /** @ignore */
  protected detach(_pipe: Pipe): void {}

  /** @ignore */
  protected deliver(_pipe: Pipe, frames: Uint8Array[]): Uint8Array[] {
    return frames;
  }

  /** @ignore */
  protected retrySends(): void {
    while (this.pendingSends.length > 0) {
      const pipe = this.#pick();
      if (pipe === undefined) return;
      this.completeSend(this.pendingSends.shift()!, pipe);
    }
  }
}
