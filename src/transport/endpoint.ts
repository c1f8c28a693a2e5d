/**
 * Parsing and formatting of ZeroMQ endpoints (`tcp://host:port`, `ipc://path`).
 *
 * @module
 */

/** A parsed endpoint. */
export type Endpoint =
  | { transport: "tcp"; host: string; port: number }
  | { transport: "ipc"; path: string };

import { TransportError } from "./errors.ts";

function invalid(endpoint: string, reason: string): TransportError {
  return new TransportError("EINVAL", `Invalid endpoint "${endpoint}": ${reason}`);
}

/**
 * Parses an endpoint. `tcp://*:PORT` binds every IPv4 interface; port `0` or `*` asks the system
 * for a free port. `localhost` means 127.0.0.1, as it does for libzmq without IPv6.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseEndpoint } from "./endpoint.ts";
 * assert.deepEqual(parseEndpoint("tcp://*:5019"), { transport: "tcp", host: "0.0.0.0", port: 5019 });
 * assert.deepEqual(parseEndpoint("ipc:///tmp/hub.sock"), { transport: "ipc", path: "/tmp/hub.sock" });
 * ```
 *
 * @throws {TransportError} `EINVAL` for an unknown transport or a malformed address
 */
export function parseEndpoint(endpoint: string): Endpoint {
  const match = /^([a-z]+):\/\/(.+)$/.exec(endpoint);
  if (!match) throw invalid(endpoint, "expected TRANSPORT://ADDRESS");
  const [, transport, address] = match;
  if (transport === "ipc") return { transport: "ipc", path: address };
  if (transport !== "tcp") {
    throw invalid(endpoint, `unsupported transport "${transport}" (tcp and ipc are)`);
  }
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
  if (host === "localhost") host = "127.0.0.1";
  return { transport: "tcp", host, port };
}

/** Formats a parsed endpoint back to its string form. */
export function formatEndpoint(endpoint: Endpoint): string {
  if (endpoint.transport === "ipc") return `ipc://${endpoint.path}`;
  const host = endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host;
  return `tcp://${host}:${endpoint.port}`;
}
