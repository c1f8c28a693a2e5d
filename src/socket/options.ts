/**
 * Options shared by every socket type, with their defaults.
 *
 * @module
 */

import type { MechanismFactory } from "../zmtp/mechanism.ts";

/** Something that happened to a socket's connections, for logs and tests. */
export interface SocketEvent {
  /** What happened. */
  type:
    | "listening"
    | "accepted"
    | "connected"
    | "connect-failed"
    | "handshake"
    | "disconnected"
    | "rejected"
    | "closed";
  /** Endpoint the event concerns (bound or connected). */
  endpoint: string;
  /** Address of the peer, when known. */
  remote?: string;
  /** Why a peer was dropped or refused, in words. */
  reason?: string;
  /** Machine-readable reason (a `ZmtpError` code, or `"duplicate-identity"`, ...). */
  code?: string;
  /** Routing id of the peer (ROUTER, on `handshake` and `disconnected`). */
  routingId?: Uint8Array;
  /** The WebSocket subprotocol agreed (`ws://` and `wss://` peers, on `accepted`/`connected`). */
  protocol?: string;
}

/** Options of a socket. Times are in milliseconds. */
export interface SocketOptions {
  /** Our routing id, sent to peers as `Identity` (string or bytes, 1 to 255 bytes). */
  routingId?: string | Uint8Array;
  /** Most messages queued for one peer before `send` waits (default 1000). */
  sendHighWaterMark?: number;
  /** Most messages queued from one peer before we stop reading from it (default 1000). */
  receiveHighWaterMark?: number;
  /** How long `send` may wait for room; -1 waits forever (default -1). */
  sendTimeout?: number;
  /** How long `receive` may wait for a message; -1 waits forever (default -1). */
  receiveTimeout?: number;
  /** How long `close` keeps unsent messages trying to leave; -1 forever (default 1000). */
  linger?: number;
  /** First delay before reconnecting (default 100). */
  reconnectInterval?: number;
  /** Largest delay between reconnect attempts, doubling from the first; 0 keeps it fixed (default 1000). */
  reconnectMaxInterval?: number;
  /** Largest message accepted from a peer, in bytes (default 256 MiB); a peer over it is dropped. */
  maxMessageSize?: number;
  /** A peer that has not finished the handshake in this time is dropped (default 30000; 0 never). */
  handshakeTimeout?: number;
  /** Send a ZMTP PING this often (default 0: never). */
  heartbeatInterval?: number;
  /** Drop a peer silent this long after our PING (default: the interval). */
  heartbeatTimeout?: number;
  /** TTL announced in our PINGs: the peer drops us after this much silence (default 0: none). */
  heartbeatTimeToLive?: number;
  /** Most simultaneous connections; more are refused at once (default 0: no limit). */
  maxConnections?: number;
  /**
   * Receives connection events. Without it, peers dropped for a protocol violation are logged
   * with `console.warn`.
   */
  onEvent?: (event: SocketEvent) => void;
  /** Security mechanism (default NULL). */
  mechanism?: MechanismFactory;
}

/** Options with their defaults applied. */
export type ResolvedOptions =
  & Required<Omit<SocketOptions, "routingId" | "onEvent" | "mechanism">>
  & Pick<SocketOptions, "onEvent" | "mechanism">
  & { routingId: Uint8Array | undefined };

/** Applies defaults and checks values. */
export function resolveOptions(options: SocketOptions): ResolvedOptions {
  const routingId = typeof options.routingId === "string"
    ? new TextEncoder().encode(options.routingId)
    : options.routingId;
  if (routingId !== undefined && (routingId.length === 0 || routingId.length > 255)) {
    throw new RangeError(`routingId must be 1 to 255 bytes, got ${routingId.length}`);
  }
  const resolved: ResolvedOptions = {
    sendHighWaterMark: 1000,
    receiveHighWaterMark: 1000,
    sendTimeout: -1,
    receiveTimeout: -1,
    linger: 1000,
    reconnectInterval: 100,
    reconnectMaxInterval: 1000,
    maxMessageSize: 256 * 1024 * 1024,
    handshakeTimeout: 30_000,
    heartbeatInterval: 0,
    heartbeatTimeout: 0,
    heartbeatTimeToLive: 0,
    maxConnections: 0,
    ...stripUndefined(options),
    routingId,
  };
  for (const key of ["sendHighWaterMark", "receiveHighWaterMark"] as const) {
    if (!(resolved[key] >= 1)) throw new RangeError(`${key} must be at least 1`);
  }
  return resolved;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
