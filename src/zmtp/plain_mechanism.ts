/**
 * The PLAIN mechanism (RFC 24): a user name and password in clear text, checked by the server's
 * authenticator. It protects nothing on the wire: use it on trusted networks only, or prefer
 * CURVE.
 *
 * The server authenticates once the client's INITIATE arrived, so that the authenticator also
 * sees the routing id the client announced; a refused client gets an ERROR command either way,
 * as the RFC asks.
 *
 * @module
 */

import {
  describeRefusal,
  encodeCommand,
  encodeError,
  encodeProperties,
  parseErrorReason,
  parseProperties,
} from "./command.ts";
import { ZmtpError } from "./errors.ts";
import type {
  AuthOutcome,
  Mechanism,
  MechanismContext,
  MechanismStep,
  PeerGreeting,
} from "./mechanism.ts";

const EMPTY = new Uint8Array(0);
const decoder = new TextDecoder();

/** Options of a PLAIN client. */
export interface PlainClientOptions {
  /** User name, at most 255 bytes of UTF-8. */
  username: string;
  /** Password, at most 255 bytes of UTF-8. */
  password: string;
}

/** Options of a PLAIN server. */
export interface PlainServerOptions {
  /**
   * True when the socket has an authenticator to ask. Without one every client is refused, as
   * libzmq refuses them without a ZAP handler.
   */
  authenticate: boolean;
}

/**
 * Creates the client side of PLAIN for one connection.
 *
 * @example
 * ```ts
 * import { plainClient } from "./plain_mechanism.ts";
 * const mechanism = plainClient({ username: "admin", password: "secret" });
 * console.log(mechanism.name, mechanism.asServer); // "PLAIN" false
 * ```
 */
export function plainClient(options: PlainClientOptions): Mechanism {
  const username = new TextEncoder().encode(options.username);
  const password = new TextEncoder().encode(options.password);
  if (username.length > 255 || password.length > 255) {
    throw new RangeError("PLAIN user names and passwords are at most 255 bytes");
  }
  let state: "welcome" | "ready" | "done" = "welcome";
  return {
    name: "PLAIN",
    asServer: false,
    start(context: MechanismContext): void {
      // No role check here: libzmq (4.3) writes as-server 0 in its greeting whatever its role.
      const hello = new Uint8Array(2 + username.length + password.length);
      hello[0] = username.length;
      hello.set(username, 1);
      hello[1 + username.length] = password.length;
      hello.set(password, 2 + username.length);
      context.sendCommand(encodeCommand("HELLO", hello));
    },
    onCommand(name: string, data: Uint8Array, context: MechanismContext): MechanismStep {
      if (name === "ERROR" && state !== "done") {
        throw new ZmtpError("auth-failed", describeRefusal(parseErrorReason(data)));
      }
      if (name === "WELCOME" && state === "welcome") {
        if (data.length !== 0) {
          throw new ZmtpError(
            "malformed-command",
            `PLAIN WELCOME carries ${data.length} bytes, expected none`,
          );
        }
        state = "ready";
        context.sendCommand(encodeCommand("INITIATE", encodeProperties(context.localProperties)));
        return { done: false };
      }
      if (name === "READY" && state === "ready") {
        state = "done";
        return { done: true, properties: parseProperties(data) };
      }
      if (name === "HELLO") {
        throw new ZmtpError(
          "handshake-failed",
          "the peer sent HELLO: it is a PLAIN client too, and one side must be a PLAIN server",
        );
      }
      throw new ZmtpError(
        "handshake-failed",
        `unexpected ${name} command during the PLAIN handshake`,
      );
    },
    closedDuringHandshake(): string | undefined {
      return state === "welcome"
        ? "the PLAIN server closed the connection after our HELLO without an ERROR: it refused " +
          "our credentials (libzmq does so when it has no ZAP handler)"
        : state === "ready"
        ? "the PLAIN server closed the connection after our INITIATE"
        : undefined;
    },
  };
}

/**
 * Creates the server side of PLAIN for one connection.
 *
 * @example
 * ```ts
 * import { plainServer } from "./plain_mechanism.ts";
 * console.log(plainServer({ authenticate: true }).asServer); // true
 * ```
 */
export function plainServer(options: PlainServerOptions): Mechanism {
  let state: "hello" | "initiate" | "auth" | "done" = "hello";
  let username = "";
  let password = "";
  let properties = new Map<string, Uint8Array>();
  const mechanism: Mechanism = {
    name: "PLAIN",
    asServer: true,
    start(_context: MechanismContext, peer: PeerGreeting): void {
      if (peer.asServer) {
        throw new ZmtpError(
          "handshake-failed",
          "both sides are PLAIN servers: the peer must be a client",
        );
      }
    },
    onCommand(name: string, data: Uint8Array, context: MechanismContext): MechanismStep {
      if (name === "HELLO" && state === "hello") {
        // username-length username password-length password, nothing after.
        const userLength = data[0];
        const passAt = 1 + userLength;
        if (data.length < 2 || passAt >= data.length || passAt + 1 + data[passAt] !== data.length) {
          throw new ZmtpError(
            "malformed-command",
            `PLAIN HELLO of ${data.length} bytes is not a user name and a password`,
          );
        }
        username = decoder.decode(data.subarray(1, passAt));
        password = decoder.decode(data.subarray(passAt + 1));
        state = "initiate";
        context.sendCommand(encodeCommand("WELCOME"));
        return { done: false };
      }
      if (name === "INITIATE" && state === "initiate") {
        properties = parseProperties(data);
        state = "auth";
        if (!options.authenticate) {
          return mechanism.onAuthenticated!({
            allow: false,
            status: 400,
            reason: "PLAIN server without an authenticator refuses every client (as libzmq does " +
              "without a ZAP handler)",
          }, context);
        }
        return {
          done: false,
          authenticate: {
            mechanism: "PLAIN",
            address: "",
            domain: "",
            routingId: properties.get("identity") ?? EMPTY,
            username,
            password,
          },
        };
      }
      throw new ZmtpError(
        "handshake-failed",
        `unexpected ${name} command during the PLAIN handshake`,
      );
    },
    onAuthenticated(outcome: AuthOutcome, context: MechanismContext): MechanismStep {
      if (state !== "auth") throw new Error("PLAIN: no authentication was asked for");
      password = "";
      if (!outcome.allow) {
        context.sendCommand(encodeError(String(outcome.status)));
        throw new ZmtpError(
          "auth-failed",
          `PLAIN user ${JSON.stringify(username)} refused: ${outcome.reason}`,
        );
      }
      state = "done";
      context.sendCommand(encodeCommand("READY", encodeProperties(context.localProperties)));
      return { done: true, properties, userId: outcome.userId ?? username };
    },
  };
  return mechanism;
}
