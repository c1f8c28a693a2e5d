/**
 * The NULL mechanism (RFC 37): no security, each side sends READY with its metadata.
 *
 * @module
 */

import { encodeCommand, encodeProperties, parseErrorReason, parseProperties } from "./command.ts";
import { ZmtpError } from "./errors.ts";
import type { Mechanism, MechanismContext, MechanismStep } from "./mechanism.ts";

/**
 * Creates the NULL mechanism for one connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nullMechanism } from "./null_mechanism.ts";
 * assert.equal(nullMechanism().name, "NULL");
 * ```
 */
export function nullMechanism(): Mechanism {
  return {
    name: "NULL",
    asServer: false,
    start(context: MechanismContext): void {
      context.sendCommand(encodeCommand("READY", encodeProperties(context.localProperties)));
    },
    onCommand(name: string, data: Uint8Array): MechanismStep {
      if (name === "READY") return { done: true, properties: parseProperties(data) };
      if (name === "ERROR") {
        throw new ZmtpError("peer-error", `peer refused the handshake: ${parseErrorReason(data)}`);
      }
      throw new ZmtpError("handshake-failed", `unexpected ${name} command during NULL handshake`);
    },
  };
}
