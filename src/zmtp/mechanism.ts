/**
 * The security-mechanism plug-in interface: NULL, PLAIN and CURVE implement it.
 *
 * A mechanism runs the handshake commands after the greeting, may ask the driver to
 * authenticate the peer (the role ZAP, RFC 27, plays in libzmq), and may hand the connection a
 * {@linkcode FrameBox} that seals every frame sent after the handshake and opens every frame
 * received (CURVE does; NULL and PLAIN do not).
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

/** What the peer's greeting said, as far as a mechanism cares. */
export interface PeerGreeting {
  /** The peer's as-server flag. */
  asServer: boolean;
}

/** Who asks to be let in: what an {@linkcode Authenticator} decides on. */
export interface AuthRequest {
  /** `"PLAIN"` or `"CURVE"`. */
  mechanism: string;
  /** The peer's address (`ip:port`, or the ipc path). Filled in by the socket. */
  address: string;
  /** The routing id the peer announced (empty when it announced none). */
  routingId: Uint8Array;
  /** The socket's `zapDomain` (empty by default). Filled in by the socket. */
  domain: string;
  /** CURVE: the client's long-term public key, 32 bytes. */
  publicKey?: Uint8Array;
  /** CURVE: the same key as Z85 text (40 characters). */
  publicKeyZ85?: string;
  /** PLAIN: the user name the client sent. */
  username?: string;
  /** PLAIN: the password the client sent. */
  password?: string;
}

/**
 * An authenticator's answer: `true` / `false`, or an object that can also name the user (kept
 * as the peer's user id, as ZAP's User-Id) and say why a peer is refused (logged).
 */
export type AuthDecision = boolean | {
  /** Let the peer in. */
  allow: boolean;
  /** The user id to record for an admitted peer. */
  userId?: string;
  /** Why a peer is refused, for the log. */
  reason?: string;
  /**
   * ZAP status code sent to a refused peer in the ERROR command: 300 (temporary), 400
   * (refused, the default) or 500 (internal error).
   */
  status?: 300 | 400 | 500;
};

/**
 * Decides whether a peer may connect, playing ZAP's role (RFC 27): given the mechanism, the
 * peer's address and routing id and its credentials, it allows or denies. It may be async; the
 * handshake waits for it (up to the socket's `handshakeTimeout`). A thrown error or rejected
 * promise refuses the peer with status 500.
 */
export type Authenticator = (request: AuthRequest) => AuthDecision | Promise<AuthDecision>;

/**
 * The authenticator's answer in the form a mechanism takes: allowed or not, with a reason and a
 * status for refusals.
 */
export interface AuthOutcome {
  /** Let the peer in. */
  allow: boolean;
  /** User id for an admitted peer. */
  userId?: string;
  /** Why the peer was refused. */
  reason: string;
  /** ZAP status: 200 when allowed, else 300, 400 or 500. */
  status: number;
}

/**
 * Seals and opens frames after the handshake (CURVE's MESSAGE command). One instance serves
 * one connection and both directions.
 */
export interface FrameBox {
  /**
   * Seals one frame; returns the body to send as an ordinary (non-command) frame. `flags` is
   * 0x01 MORE and/or 0x02 COMMAND, as the box carries them.
   */
  seal(flags: number, body: Uint8Array): Uint8Array;
  /**
   * Opens the body of one received frame.
   *
   * @throws {ZmtpError} when it is not a box, does not open, or replays a nonce
   */
  open(body: Uint8Array): { flags: number; body: Uint8Array };
  /** Bytes a sealed frame adds to its body. */
  readonly overhead: number;
}

/** Outcome of handing a handshake command (or an authentication outcome) to a mechanism. */
export type MechanismStep =
  | { done: false; authenticate?: AuthRequest }
  | {
    done: true;
    /** The peer's metadata properties, names lower-cased. */
    properties: Map<string, Uint8Array>;
    /** Frame protection for everything after the handshake, if the mechanism has one. */
    box?: FrameBox;
    /** The user id the authenticator gave an admitted client. */
    userId?: string;
    /** The client's long-term public key (CURVE, server side). */
    publicKey?: Uint8Array;
  };

/**
 * A ZMTP security mechanism. One instance serves one connection; create it through a
 * {@linkcode MechanismFactory}.
 */
export interface Mechanism {
  /** Name as written in the greeting, e.g. `"NULL"`. */
  readonly name: string;
  /** The as-server flag we announce. */
  readonly asServer: boolean;
  /**
   * Called once both greetings are exchanged.
   *
   * @throws {ZmtpError} when the peer's greeting does not fit (both sides servers, say)
   */
  start(context: MechanismContext, peer: PeerGreeting): void;
  /**
   * Handles one handshake command from the peer. A step with `authenticate` asks the driver
   * for a decision, given back through {@linkcode Mechanism.onAuthenticated}.
   *
   * @throws {ZmtpError} when the peer breaks the mechanism's rules
   */
  onCommand(name: string, data: Uint8Array, context: MechanismContext): MechanismStep;
  /**
   * Takes the decision asked for by an `authenticate` step.
   *
   * @throws {ZmtpError} when the peer is refused (after queueing an ERROR command)
   */
  onAuthenticated?(outcome: AuthOutcome, context: MechanismContext): MechanismStep;
  /**
   * What may explain a peer that closed the connection during the handshake (a CURVE server
   * that could not open our HELLO closes without a word), or undefined.
   */
  closedDuringHandshake?(): string | undefined;
}

/** Creates a fresh mechanism for each connection. */
export type MechanismFactory = () => Mechanism;

/**
 * Turns what an {@linkcode Authenticator} returned (or threw, passed as `failure`) into the
 * outcome a mechanism takes.
 */
export function toAuthOutcome(decision: AuthDecision | undefined, failure?: unknown): AuthOutcome {
  if (failure !== undefined) {
    const message = failure instanceof Error ? failure.message : String(failure);
    return { allow: false, status: 500, reason: `the authenticator failed: ${message}` };
  }
  if (decision === true) return { allow: true, status: 200, reason: "" };
  if (decision === false) {
    return { allow: false, status: 400, reason: "the authenticator refused it" };
  }
  if (typeof decision !== "object" || decision === null || typeof decision.allow !== "boolean") {
    return {
      allow: false,
      status: 500,
      reason: `the authenticator answered ${JSON.stringify(decision)}, not a decision`,
    };
  }
  if (decision.allow) {
    return { allow: true, status: 200, reason: "", userId: decision.userId };
  }
  const status = decision.status === 300 || decision.status === 500 ? decision.status : 400;
  return { allow: false, status, reason: decision.reason ?? "the authenticator refused it" };
}
