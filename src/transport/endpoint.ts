/**
 * Parsing and formatting of ZeroMQ endpoints (`tcp://host:port`, `ipc://path`,
 * `ws://host:port/path`, `wss://host:port/path`).
 *
 * @module
 */

import { TransportError } from "./errors.ts";

/** A parsed WebSocket endpoint (ZWS 2.0, RFC 45): `ws://` or `wss://` (TLS). */
export interface WebSocketEndpoint {
  /** `ws` or `wss`. */
  transport: "ws" | "wss";
  /**
   * Host as written (a name is kept: a `wss://` certificate is checked against it); `*` binds
   * every IPv4 interface and reads `0.0.0.0`.
   */
  host: string;
  /** Port; 0 asks the system for a free one when binding. */
  port: number;
  /** Request path, `/` when none is given. */
  path: string;
}

/** A parsed endpoint. */
export type Endpoint =
  | { transport: "tcp"; host: string; port: number }
  | { transport: "ipc"; path: string }
  | WebSocketEndpoint;

function invalid(endpoint: string, reason: string): TransportError {
  return new TransportError("EINVAL", `Invalid endpoint "${endpoint}": ${reason}`);
}

/**
 * Parses an endpoint. `tcp://*:PORT` binds every IPv4 interface; port `0` or `*` asks the system
 * for a free port. `localhost` means 127.0.0.1, as it does for libzmq without IPv6 (a WebSocket
 * endpoint keeps host names as written).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseEndpoint } from "./endpoint.ts";
 * assert.deepEqual(parseEndpoint("tcp://*:5019"), { transport: "tcp", host: "0.0.0.0", port: 5019 });
 * assert.deepEqual(parseEndpoint("ipc:///tmp/hub.sock"), { transport: "ipc", path: "/tmp/hub.sock" });
 * assert.deepEqual(parseEndpoint("ws://localhost:5020"), {
 *   transport: "ws",
 *   host: "localhost",
 *   port: 5020,
 *   path: "/",
 * });
 * ```
 *
 * @throws {TransportError} `EINVAL` for an unknown transport or a malformed address
 */
export function parseEndpoint(endpoint: string): Endpoint {
  const match = /^([a-z]+):\/\/(.+)$/.exec(endpoint);
  if (!match) throw invalid(endpoint, "expected TRANSPORT://ADDRESS");
  const [, transport, address] = match;
  if (transport === "ipc") return { transport: "ipc", path: address };
  if (transport === "ws" || transport === "wss") {
    return parseWebSocket(endpoint, transport, address);
  }
  if (transport !== "tcp") {
    throw invalid(endpoint, `unsupported transport "${transport}" (tcp, ipc, ws and wss are)`);
  }
  const { host, port } = hostAndPort(endpoint, address);
  return { transport: "tcp", host: host === "localhost" ? "127.0.0.1" : host, port };
}

function parseWebSocket(
  endpoint: string,
  transport: "ws" | "wss",
  address: string,
): WebSocketEndpoint {
  const slash = address.indexOf("/");
  const authority = slash < 0 ? address : address.slice(0, slash);
  const path = slash < 0 ? "/" : address.slice(slash);
  if (/[\s#?]/.test(path)) {
    throw invalid(endpoint, "a WebSocket path may not hold spaces, ? or #");
  }
  return { transport, ...hostAndPort(endpoint, authority), path };
}

/** Splits `HOST:PORT`; `*` means every IPv4 interface and port `*` or 0 any free port. */
function hostAndPort(endpoint: string, address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  if (colon <= 0) throw invalid(endpoint, "expected HOST:PORT");
  let host = address.slice(0, colon);
  const portText = address.slice(colon + 1);
  const port = portText === "*" ? 0 : Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || portText === "") {
    throw invalid(endpoint, `port "${portText}" is not 0 to 65535 or *`);
  }
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "*") host = "0.0.0.0";
  if (host === "") throw invalid(endpoint, "expected HOST:PORT");
  return { host, port };
}

/** Formats a parsed endpoint back to its string form (a WebSocket path `/` is left out). */
export function formatEndpoint(endpoint: Endpoint): string {
  if (endpoint.transport === "ipc") return `ipc://${endpoint.path}`;
  const host = endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host;
  if (endpoint.transport === "tcp") return `tcp://${host}:${endpoint.port}`;
  const path = endpoint.path === "/" ? "" : endpoint.path;
  return `${endpoint.transport}://${host}:${endpoint.port}${path}`;
}

/** The URL a WebSocket client opens for an endpoint (the path `/` included). */
export function webSocketUrl(endpoint: WebSocketEndpoint): string {
  const host = endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host;
  return `${endpoint.transport}://${host}:${endpoint.port}${endpoint.path}`;
}
