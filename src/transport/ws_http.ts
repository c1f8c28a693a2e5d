/**
 * The WebSocket opening handshake (RFC 6455, section 4), sans-IO: reading an HTTP/1.1 request
 * or response head from bytes in any split (with a size limit), checking an upgrade request and
 * answering it, and writing and checking a client's request.
 *
 * @module
 */

import { WebSocketError } from "./ws_errors.ts";

/** Longest HTTP head accepted, in bytes: upgrade requests are a few hundred. */
export const HEAD_MAX = 16 * 1024;
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** A parsed HTTP head: its first line's parts and its headers, names lower-cased. */
export interface HttpHead {
  /** Request: method, target, version. Response: version, status code, reason. */
  line: [string, string, string];
  /** Header values by lower-cased name; repeated headers are joined with ", ". */
  headers: Map<string, string>;
}

/**
 * Accumulates bytes until a whole HTTP head (up to the blank line) arrived.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpHeadReader } from "./ws_http.ts";
 * const reader = new HttpHeadReader();
 * const got = reader.feed(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\nrest"));
 * assert.deepEqual(got?.head.line, ["GET", "/", "HTTP/1.1"]);
 * assert.equal(got?.head.headers.get("host"), "a");
 * assert.equal(got?.rest.length, 4);
 * ```
 */
export class HttpHeadReader {
  #bytes = new Uint8Array(0);

  /**
   * Adds a chunk (read during the call only). Returns the head and the bytes after it once
   * complete, or null while more are needed.
   *
   * @throws {WebSocketError} `bad-request` when the head is malformed or over {@linkcode HEAD_MAX}
   */
  feed(chunk: Uint8Array): { head: HttpHead; rest: Uint8Array } | null {
    const bytes = new Uint8Array(this.#bytes.length + chunk.length);
    bytes.set(this.#bytes);
    bytes.set(chunk, this.#bytes.length);
    const from = Math.max(0, this.#bytes.length - 3);
    this.#bytes = bytes;
    for (let i = from; i + 3 < bytes.length; i++) {
      if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
        if (i > HEAD_MAX) break;
        const head = parseHead(latin1.decode(bytes.subarray(0, i)));
        return { head, rest: bytes.slice(i + 4) };
      }
    }
    if (bytes.length > HEAD_MAX) {
      throw new WebSocketError("bad-request", `HTTP head longer than ${HEAD_MAX} bytes`);
    }
    return null;
  }
}

function parseHead(text: string): HttpHead {
  const lines = text.split("\r\n");
  const first = lines[0].split(" ");
  if (first.length < 3) {
    throw new WebSocketError("bad-request", `malformed first line "${lines[0]}"`);
  }
  const line: [string, string, string] = [first[0], first[1], first.slice(2).join(" ")];
  const headers = new Map<string, string>();
  for (const raw of lines.slice(1)) {
    const colon = raw.indexOf(":");
    // Obsolete line folding (a line starting with a space) is refused, as RFC 9112 allows.
    if (colon <= 0 || raw[0] === " " || raw[0] === "\t") {
      throw new WebSocketError("bad-request", `malformed header line "${raw.slice(0, 80)}"`);
    }
    const name = raw.slice(0, colon).trim().toLowerCase();
    const value = raw.slice(colon + 1).trim();
    const before = headers.get(name);
    headers.set(name, before === undefined ? value : `${before}, ${value}`);
  }
  return { line, headers };
}

/** True when the comma-separated header `value` holds `token` (case-insensitive). */
function hasToken(value: string | undefined, token: string): boolean {
  return value !== undefined &&
    value.split(",").some((part) => part.trim().toLowerCase() === token);
}

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64 of SHA-1(key + GUID). */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** A fresh random `Sec-WebSocket-Key`: 16 random bytes, base64. */
export function randomKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
}

/** What a server needs from an upgrade request, once checked. */
export interface UpgradeRequest {
  /** The request path, without query. */
  path: string;
  /** `Sec-WebSocket-Key`. */
  key: string;
  /** The `Origin` header, if any. */
  origin: string | undefined;
  /** The `Host` header. */
  host: string;
  /** The `Sec-WebSocket-Protocol` header, if any. */
  protocols: string | undefined;
}

/** A request refused: the HTTP status to answer and why. */
export class HandshakeRefusal extends Error {
  /** HTTP status code of the answer. */
  readonly status: number;
  /** Extra response headers. */
  readonly headers: Record<string, string>;

  /** Creates a refusal answering `status`. */
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = "HandshakeRefusal";
    this.status = status;
    this.headers = headers;
  }
}

/**
 * Checks that a request head is a WebSocket upgrade (RFC 6455, 4.2.1).
 *
 * @throws {HandshakeRefusal} with the status to answer (400, 405, 426) when it is not
 */
export function checkUpgradeRequest(head: HttpHead): UpgradeRequest {
  const [method, target, version] = head.line;
  const h = head.headers;
  if (!hasToken(h.get("upgrade"), "websocket")) {
    throw new HandshakeRefusal(
      426,
      "This is a ZeroMQ WebSocket endpoint (ZWS 2.0): connect with WebSocket",
      { upgrade: "websocket", connection: "Upgrade" },
    );
  }
  if (method !== "GET") throw new HandshakeRefusal(405, `method ${method}, expected GET`);
  if (version !== "HTTP/1.1") throw new HandshakeRefusal(400, `${version}, expected HTTP/1.1`);
  if (!hasToken(h.get("connection"), "upgrade")) {
    throw new HandshakeRefusal(400, "Connection header without the upgrade token");
  }
  if (h.get("sec-websocket-version") !== "13") {
    throw new HandshakeRefusal(426, "WebSocket version 13 only", {
      "sec-websocket-version": "13",
    });
  }
  const key = h.get("sec-websocket-key") ?? "";
  let decoded = "";
  try {
    decoded = atob(key);
  } catch {
    // checked below
  }
  if (decoded.length !== 16) throw new HandshakeRefusal(400, "bad Sec-WebSocket-Key");
  const host = h.get("host");
  if (host === undefined) throw new HandshakeRefusal(400, "no Host header");
  let path: string;
  try {
    path = new URL(target, "http://host").pathname;
  } catch {
    throw new HandshakeRefusal(400, `bad request target ${target.slice(0, 80)}`);
  }
  return {
    path,
    key,
    origin: h.get("origin"),
    host,
    protocols: h.get("sec-websocket-protocol"),
  };
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  426: "Upgrade Required",
  503: "Service Unavailable",
};

/** The bytes of the `101 Switching Protocols` answer. */
export async function upgradeResponse(key: string, protocol: string): Promise<Uint8Array> {
  return encoder.encode(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n` +
      `Sec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
  );
}

/** The bytes of an HTTP error answer that closes the connection. */
export function errorResponse(
  status: number,
  text: string,
  headers: Record<string, string> = {},
): Uint8Array {
  const body = encoder.encode(`${text}\n`);
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\nConnection: close\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  const bytes = encoder.encode(`${head}\r\n`);
  const out = new Uint8Array(bytes.length + body.length);
  out.set(bytes);
  out.set(body, bytes.length);
  return out;
}

/** The bytes of a client's upgrade request. */
export function upgradeRequest(
  host: string,
  path: string,
  key: string,
  protocols: readonly string[],
): Uint8Array {
  return encoder.encode(
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: ${protocols.join(", ")}\r\n\r\n`,
  );
}

/**
 * Checks a server's answer to our upgrade request (RFC 6455, 4.2.2); returns the subprotocol
 * it chose.
 *
 * @throws {WebSocketError} when the server refused or answered wrongly
 */
export async function checkUpgradeResponse(
  head: HttpHead,
  key: string,
  protocols: readonly string[],
): Promise<string> {
  const [, status, reason] = head.line;
  const h = head.headers;
  if (status !== "101") {
    throw new WebSocketError("bad-handshake", `server answered ${status} ${reason}`);
  }
  if (!hasToken(h.get("upgrade"), "websocket") || !hasToken(h.get("connection"), "upgrade")) {
    throw new WebSocketError("bad-handshake", "101 answer without Upgrade: websocket");
  }
  if (h.get("sec-websocket-accept") !== await acceptKey(key)) {
    throw new WebSocketError("bad-handshake", "wrong Sec-WebSocket-Accept");
  }
  const protocol = h.get("sec-websocket-protocol") ?? "";
  if (!protocols.includes(protocol)) {
    throw new WebSocketError(
      "unknown-subprotocol",
      `server chose subprotocol "${protocol}", not one of ${protocols.join(", ")}`,
    );
  }
  return protocol;
}
