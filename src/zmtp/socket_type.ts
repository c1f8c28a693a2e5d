/**
 * ZeroMQ socket types and which of them may talk to each other.
 *
 * @module
 */

/** Socket types as written in the `Socket-Type` property. */
export type SocketType =
  | "PAIR"
  | "PUB"
  | "SUB"
  | "REQ"
  | "REP"
  | "DEALER"
  | "ROUTER"
  | "PULL"
  | "PUSH"
  | "XPUB"
  | "XSUB";

const COMPATIBLE: Record<SocketType, readonly string[]> = {
  PAIR: ["PAIR"],
  PUB: ["SUB", "XSUB"],
  SUB: ["PUB", "XPUB"],
  REQ: ["REP", "ROUTER"],
  REP: ["REQ", "DEALER"],
  DEALER: ["REP", "DEALER", "ROUTER"],
  ROUTER: ["REQ", "DEALER", "ROUTER"],
  PULL: ["PUSH"],
  PUSH: ["PULL"],
  XPUB: ["SUB", "XSUB"],
  XSUB: ["PUB", "XPUB"],
};

/**
 * Tells whether a socket of type `ours` may talk to a peer announcing `theirs` (RFC 37's table).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { socketTypesMatch } from "./socket_type.ts";
 * assert.equal(socketTypesMatch("DEALER", "ROUTER"), true);
 * assert.equal(socketTypesMatch("DEALER", "PUB"), false);
 * ```
 */
export function socketTypesMatch(ours: SocketType, theirs: string): boolean {
  return COMPATIBLE[ours].includes(theirs);
}
