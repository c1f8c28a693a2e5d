/**
 * The security-mechanism plug-in interface: NULL now, PLAIN and CURVE later implement it.
 *
 * @module
 */

/** What a mechanism may do to the connection during the handshake. */
export interface MechanismContext {
  /** Metadata properties of our side (`Socket-Type`, `Identity`) to announce. */
  readonly localProperties: ReadonlyMap<string, Uint8Array>;
  /** Queues a command body for the peer. */
  sendCommand(body: Uint8Array): void;
}

/** Outcome of handing a handshake command to a mechanism. */
export type MechanismStep =
  | { done: false }
  | { done: true; properties: Map<string, Uint8Array> };

/**
 * A ZMTP security mechanism. One instance serves one connection; create it through a
 * {@linkcode MechanismFactory}.
 */
export interface Mechanism {
  /** Name as written in the greeting, e.g. `"NULL"`. */
  readonly name: string;
  /** The as-server flag we announce. */
  readonly asServer: boolean;
  /** Called once both greetings are exchanged. */
  start(context: MechanismContext): void;
  /**
   * Handles one handshake command from the peer.
   *
   * @throws {ZmtpError} when the peer breaks the mechanism's rules
   */
  onCommand(name: string, data: Uint8Array, context: MechanismContext): MechanismStep;
}

/** Creates a fresh mechanism for each connection. */
export type MechanismFactory = () => Mechanism;
