/**
 * Options shared by every socket type, with their defaults.
 *
 * @module
 */

import { DEFAULT_MAX_MESSAGE_SIZE } from "../zmtp/constants.ts";
import type { Authenticator, MechanismFactory } from "../zmtp/mechanism.ts";
import { securityMechanism, type SecurityOptions } from "./security.ts";

/**
 * What a {@linkcode SocketEvent} reports, named as zeromq.js names its socket events:
 * - `bind` / `bind:error`: an endpoint is listening, or could not be bound;
 * - `accept` / `accept:error`: a peer connected to a bound endpoint, or was refused before its
 *   handshake (the connection limit; on `ws://`, a WebSocket upgrade refused: its origin,
 *   subprotocol or path, or a request not complete in time), or the listener failed to accept;
 * - `connect` / `connect:retry`: a connection to an endpoint opened, or failed and will be tried
 *   again after `interval` ms;
 * - `handshake`: a peer finished the ZMTP handshake and may exchange messages;
 * - `handshake:error:protocol` / `handshake:error:auth` / `handshake:error:other`: a peer was
 *   dropped before its handshake finished, for breaking the protocol, for failing
 *   authentication, or for another reason (its routing id already in use, a timeout);
 * - `disconnect`: a connection ended (with `code` and `reason` when we dropped the peer);
 * - `end`: the socket was closed.
 */
export type SocketEventType =
  | "bind"
  | "bind:error"
  | "accept"
  | "accept:error"
  | "connect"
  | "connect:retry"
  | "handshake"
  | "handshake:error:protocol"
  | "handshake:error:auth"
  | "handshake:error:other"
  | "disconnect"
  | "end";

/** Something that happened to a socket's connections, for logs and tests. */
export interface SocketEvent {
  /** What happened (see {@linkcode SocketEventType}). */
  type: SocketEventType;
  /** Endpoint the event concerns (bound or connected). */
  endpoint: string;
  /** Address of the peer, when known. */
  remote?: string;
  /** Why a peer was dropped or refused, in words. */
  reason?: string;
  /** Machine-readable reason (a `ZmtpError` code, or `"duplicate-identity"`, ...). */
  code?: string;
  /** Routing id of the peer (on `handshake` and `disconnect` of a peer that finished it). */
  routingId?: Uint8Array;
  /** The peer's handshake metadata, names lower-cased (on `handshake`). */
  properties?: ReadonlyMap<string, Uint8Array>;
  /** Milliseconds until the next attempt (on `connect:retry`). */
  interval?: number;
  /** The user id an authenticator gave the peer (on `handshake`, CURVE and PLAIN servers). */
  userId?: string;
  /** The WebSocket subprotocol agreed (`ws://` and `wss://` peers, on `accept` and `connect`). */
  protocol?: string;
}

/**
 * Options of a socket. Times are in milliseconds. The security options (CURVE, PLAIN) are those
 * of {@linkcode SecurityOptions}.
 */
export interface SocketOptions extends SecurityOptions {
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
  /** Delay before reconnecting, as libzmq's `ZMQ_RECONNECT_IVL` (default 100). */
  reconnectInterval?: number;
  /**
   * Largest delay between reconnect attempts, doubling from the first, as libzmq's
   * `ZMQ_RECONNECT_IVL_MAX`; 0 keeps `reconnectInterval` fixed (default 0, as libzmq and
   * zeromq.js have it: a peer that comes back is reached within one interval).
   */
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
   * Receives connection events (see {@linkcode SocketEventType}). The socket itself logs
   * nothing; a callback that throws is reported once on standard error and never breaks a
   * connection.
   */
  onEvent?: (event: SocketEvent) => void;
  /**
   * Security mechanism, for plug-ins of your own (default: what the security options select,
   * else NULL).
   */
  mechanism?: MechanismFactory;
  /**
   * Application metadata sent to every peer in the ZMTP handshake, as libzmq's `ZMQ_METADATA`
   * does: names start with `X-`; a peer sees them in its `handshake` event's `properties`
   * (names lower-cased). Peers that do not know a property ignore it.
   */
  metadata?: Readonly<Record<string, string | Uint8Array>>;
}

/** Options with their defaults applied. */
export type ResolvedOptions =
  & Required<
    Omit<
      SocketOptions,
      "routingId" | "onEvent" | "mechanism" | "metadata" | keyof SecurityOptions
    >
  >
  & Pick<SocketOptions, "onEvent" | "mechanism">
  & {
    routingId: Uint8Array | undefined;
    metadata: ReadonlyMap<string, Uint8Array> | undefined;
    authenticator: Authenticator | undefined;
    zapDomain: string;
  };
const SECURITY_KEYS: readonly (keyof SecurityOptions)[] = [
  "curveServer",
  "curveSecretKey",
  "curvePublicKey",
  "curveServerKey",
  "plainServer",
  "plainUsername",
  "plainPassword",
  "zapDomain",
  "authenticator",
];

/** Applies defaults and checks values. */
export function resolveOptions(options: SocketOptions): ResolvedOptions {
  const routingId = typeof options.routingId === "string"
    ? new TextEncoder().encode(options.routingId)
    : options.routingId;
  if (routingId !== undefined && (routingId.length === 0 || routingId.length > 255)) {
    throw new RangeError(`routingId must be 1 to 255 bytes, got ${routingId.length}`);
  }
  const mechanism = options.mechanism ?? securityMechanism(options);
  const general: Partial<SocketOptions> = stripUndefined(options);
  // Keys stay inside the mechanism factory, not on the options object.
  for (const key of SECURITY_KEYS) delete general[key];
  const resolved: ResolvedOptions = {
    sendHighWaterMark: 1000,
    receiveHighWaterMark: 1000,
    sendTimeout: -1,
    receiveTimeout: -1,
    linger: 1000,
    reconnectInterval: 100,
    reconnectMaxInterval: 0,
    maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
    handshakeTimeout: 30_000,
    heartbeatInterval: 0,
    heartbeatTimeout: 0,
    heartbeatTimeToLive: 0,
    maxConnections: 0,
    ...general,
    routingId,
    metadata: resolveMetadata(options.metadata),
    mechanism,
    authenticator: options.authenticator,
    zapDomain: options.zapDomain ?? "",
  };
  for (const key of ["sendHighWaterMark", "receiveHighWaterMark"] as const) {
    if (!(resolved[key] >= 1)) throw new RangeError(`${key} must be at least 1`);
  }
  return resolved;
}

function resolveMetadata(
  metadata: SocketOptions["metadata"],
): ReadonlyMap<string, Uint8Array> | undefined {
  if (metadata === undefined) return undefined;
  const map = new Map<string, Uint8Array>();
  for (const [name, value] of Object.entries(metadata)) {
    if (!/^X-[\x21-\x7e]{1,253}$/i.test(name)) {
      throw new RangeError(
        `metadata property "${name}" must start with "X-" and be 3 to 255 printable ASCII bytes`,
      );
    }
    map.set(name, typeof value === "string" ? new TextEncoder().encode(value) : value);
  }
  return map;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Options of one `trySend`, a Router's or a Dealer's. */
export interface TrySendOptions {
  /**
   * Copy frames of 64 KiB and more instead of referring to them until written (default true:
   * `trySend` returns no promise that would say when the caller may change them again). Pass
   * false only for bytes nobody changes afterwards.
   */
  copy?: boolean;
}
