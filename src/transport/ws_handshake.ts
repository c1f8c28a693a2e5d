/**
 * The decisions a WebSocket server makes on an upgrade request, shared by the Deno and Node
 * adapters: which subprotocol to speak, and whether the page asking may connect.
 *
 * @module
 */

/**
 * Picks the subprotocol to answer with: the first of `supported` (ours, best first) that the
 * client offered. The offer is the `Sec-WebSocket-Protocol` header, a comma-separated list (a
 * libzmq client sends `"ZWS2.0/NULL,ZWS2.0"`); headers repeated are joined with commas too.
 * Returns null when nothing offered is supported.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chooseProtocol } from "./ws_handshake.ts";
 * const ours = ["ZWS2.0/NULL", "ZWS2.0"];
 * assert.equal(chooseProtocol("ZWS2.0, ZWS2.0/NULL", ours), "ZWS2.0/NULL"); // the best offered
 * assert.equal(chooseProtocol("ZWS2.0", ours), "ZWS2.0");
 * assert.equal(chooseProtocol("chat", ours), null);
 * ```
 */
export function chooseProtocol(
  offered: string | null | undefined,
  supported: readonly string[],
): string | null {
  if (!offered) return null;
  const names = new Set(offered.split(",").map((name) => name.trim()).filter((n) => n !== ""));
  return supported.find((name) => names.has(name)) ?? null;
}

/** The host name of a `Host` header value (`name:port`, `[v6]:port` or a bare name), lower-cased. */
function hostName(host: string): string {
  const value = host.trim().toLowerCase();
  if (value.startsWith("[")) return value.slice(0, value.indexOf("]") + 1);
  const colon = value.lastIndexOf(":");
  return colon < 0 ? value : value.slice(0, colon);
}

/**
 * Tells whether a client may connect from `origin` (the `Origin` header, which browsers always
 * send and other clients usually do not). Without an `Origin` the client is not a browser page
 * and is let in: origins guard against other sites' pages, not against programs. With an
 * allowlist, the origin must be in it (or the list holds `"*"`); without one, the page must come
 * from the same host name as the one it connects to (any port, any scheme).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { originAllowed } from "./ws_handshake.ts";
 * assert.ok(originAllowed("http://127.0.0.1:8080", "127.0.0.1:5020")); // same host
 * assert.ok(!originAllowed("https://evil.example", "127.0.0.1:5020"));
 * assert.ok(originAllowed("https://app.example", "hub:5020", ["https://app.example"]));
 * assert.ok(originAllowed(null, "hub:5020")); // not a browser
 * ```
 */
export function originAllowed(
  origin: string | null | undefined,
  host: string | null | undefined,
  allowlist?: readonly string[],
): boolean {
  if (origin === null || origin === undefined) return true;
  if (allowlist !== undefined) {
    const wanted = origin.toLowerCase();
    return allowlist.some((entry) => entry === "*" || entry.toLowerCase() === wanted);
  }
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    // "null" (a sandboxed page or a file:// one) and other opaque origins: no host to compare.
    return false;
  }
  return host !== null && host !== undefined && url.hostname.toLowerCase() === hostName(host);
}
