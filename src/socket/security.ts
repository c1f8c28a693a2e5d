/**
 * Security options of a socket, named as zeromq.js names them, and the helpers around them:
 * CURVE key pairs in Z85, the mechanism a socket's options select, an authenticator that admits
 * a list of CURVE keys, and the key files `gibbs keygen` writes.
 *
 * @module
 */

import {
  boxKey,
  generateKeyPair,
  KEY_SIZE,
  loadFastBoxes,
  publicKeyOf,
} from "../zmtp/curve_crypto.ts";
import { curveClient, curveServer } from "../zmtp/curve_mechanism.ts";
import type { Authenticator, AuthRequest, MechanismFactory } from "../zmtp/mechanism.ts";
import { plainClient, plainServer } from "../zmtp/plain_mechanism.ts";
import { z85Decode, z85Encode } from "../zmtp/z85.ts";
import { SocketError } from "./errors.ts";

/**
 * Security options of a socket (zeromq.js's names). Set `curveServer` and `curveSecretKey` on
 * the side that binds, `curveServerKey` and `curveSecretKey` on the side that connects; keys are
 * 40-character Z85 text or 32 bytes. Without any of these the socket uses NULL (no security).
 */
export interface SecurityOptions {
  /** Act as a CURVE server (default false). Needs `curveSecretKey`. */
  curveServer?: boolean;
  /** Our long-term CURVE secret key. */
  curveSecretKey?: string | Uint8Array;
  /** Our long-term CURVE public key (default: derived from `curveSecretKey`; checked if given). */
  curvePublicKey?: string | Uint8Array;
  /** The CURVE server's public key: setting it makes this socket a CURVE client. */
  curveServerKey?: string | Uint8Array;
  /** Act as a PLAIN server (default false): clients are checked by `authenticator`. */
  plainServer?: boolean;
  /** PLAIN user name: setting it (or the password) makes this socket a PLAIN client. */
  plainUsername?: string;
  /** PLAIN password. */
  plainPassword?: string;
  /** The domain passed to the authenticator, as ZAP's (default ""). */
  zapDomain?: string;
  /**
   * Decides which clients a CURVE or PLAIN server admits (ZAP's role). Without one, a CURVE
   * server admits any client that knows its public key and a PLAIN server refuses every
   * client, as libzmq does without a ZAP handler.
   */
  authenticator?: Authenticator;
}

/** A CURVE key pair as Z85 text, as `zmq_curve_keypair` gives it. */
export interface CurveKeyPair {
  /** Public key, 40 Z85 characters: give it to peers. */
  publicKey: string;
  /** Secret key, 40 Z85 characters: keep it private. */
  secretKey: string;
}

/**
 * Makes a fresh CURVE key pair, as `zmq_curve_keypair` (and zeromq.js's `curveKeyPair`) do.
 *
 * @example
 * ```ts
 * import { curveKeyPair } from "./security.ts";
 * const { publicKey, secretKey } = curveKeyPair();
 * console.log(publicKey.length, secretKey.length); // 40 40
 * ```
 */
export function curveKeyPair(): CurveKeyPair {
  const pair = generateKeyPair();
  return { publicKey: z85Encode(pair.publicKey), secretKey: z85Encode(pair.secretKey) };
}

/**
 * The public key of a CURVE secret key, as `zmq_curve_public` gives it (Z85 in, Z85 out).
 *
 * @throws {SocketError} (`EINVAL`) when `secretKey` is not a key
 */
export function curvePublicKey(secretKey: string | Uint8Array): string {
  return z85Encode(publicKeyOf(curveKey(secretKey, "secretKey")));
}

/**
 * Reads a CURVE key given as 40 Z85 characters or 32 bytes.
 *
 * @throws {SocketError} (`EINVAL`) on anything else, naming `name`
 */
export function curveKey(value: string | Uint8Array, name: string): Uint8Array {
  if (value instanceof Uint8Array) {
    if (value.length === KEY_SIZE) return value.slice();
    throw new SocketError(
      "EINVAL",
      `${name} must be 32 bytes or 40 Z85 characters, got ${value.length} bytes`,
    );
  }
  if (typeof value !== "string" || value.length !== 40) {
    throw new SocketError(
      "EINVAL",
      `${name} must be 40 Z85 characters or 32 bytes, got ${
        typeof value === "string" ? `${value.length} characters` : typeof value
      }`,
    );
  }
  try {
    return z85Decode(value);
  } catch (error) {
    throw new SocketError("EINVAL", `${name} is not Z85: ${(error as Error).message}`);
  }
}

/**
 * The mechanism a socket's security options select, or undefined for NULL.
 *
 * @throws {SocketError} (`EINVAL`) on missing, malformed or contradictory options
 */
export function securityMechanism(options: SecurityOptions): MechanismFactory | undefined {
  const curve = options.curveServer || options.curveServerKey !== undefined;
  const plain = options.plainServer || options.plainUsername !== undefined ||
    options.plainPassword !== undefined;
  if (curve && plain) {
    throw new SocketError("EINVAL", "CURVE and PLAIN options are both set: choose one mechanism");
  }
  if (curve) return curveMechanism(options);
  if (plain) {
    if (options.plainServer) {
      if (options.plainUsername !== undefined || options.plainPassword !== undefined) {
        throw new SocketError(
          "EINVAL",
          "plainServer is set together with plainUsername/plainPassword: a socket is a PLAIN " +
            "server or a PLAIN client",
        );
      }
      const authenticate = options.authenticator !== undefined;
      return () => plainServer({ authenticate });
    }
    const credentials = {
      username: options.plainUsername ?? "",
      password: options.plainPassword ?? "",
    };
    const bytes = new TextEncoder();
    if (
      bytes.encode(credentials.username).length > 255 ||
      bytes.encode(credentials.password).length > 255
    ) {
      throw new SocketError("EINVAL", "plainUsername and plainPassword are at most 255 bytes each");
    }
    return () => plainClient(credentials);
  }
  return undefined;
}

function curveMechanism(options: SecurityOptions): MechanismFactory {
  // libsodium for the per-frame boxes loads while the socket connects (see curve_crypto.ts).
  loadFastBoxes();
  if (options.curveServer && options.curveServerKey !== undefined) {
    throw new SocketError(
      "EINVAL",
      "curveServer is set together with curveServerKey: a socket is a CURVE server or a CURVE " +
        "client (which sets the server's key)",
    );
  }
  const role = options.curveServer ? "CURVE server (curveServer)" : "CURVE client (curveServerKey)";
  if (options.curveSecretKey === undefined) {
    throw new SocketError(
      "EINVAL",
      `a ${role} needs curveSecretKey (make a pair with curveKeyPair())`,
    );
  }
  const secretKey = curveKey(options.curveSecretKey, "curveSecretKey");
  const publicKey = publicKeyOf(secretKey);
  if (options.curvePublicKey !== undefined) {
    const given = curveKey(options.curvePublicKey, "curvePublicKey");
    if (z85Encode(given) !== z85Encode(publicKey)) {
      throw new SocketError(
        "EINVAL",
        `curvePublicKey ${z85Encode(given)} is not the public key of curveSecretKey (that is ` +
          `${z85Encode(publicKey)})`,
      );
    }
  }
  if (options.curveServer) {
    const authenticate = options.authenticator !== undefined;
    return () => curveServer({ publicKey, secretKey, authenticate });
  }
  const serverKey = curveKey(options.curveServerKey!, "curveServerKey");
  if (boxKey(serverKey, secretKey) === null) {
    throw new SocketError(
      "EINVAL",
      `curveServerKey ${z85Encode(serverKey)} is not a usable Curve25519 public key`,
    );
  }
  return () => curveClient({ publicKey, secretKey, serverKey });
}

/** One entry of an authorized-keys list. */
export interface AuthorizedKey {
  /** The client's public key, Z85. */
  publicKey: string;
  /** The text after the key on its line (a name), if any: becomes the peer's user id. */
  comment?: string;
}

/**
 * Parses an authorized-keys file, as SSH's `authorized_keys` reads: one Z85 public key per line,
 * optionally followed by a name; blank lines and `#` comments are skipped (no key can start with
 * `#`: it is the last Z85 digit, and a group starting with it would exceed 32 bits).
 *
 * @example
 * ```ts
 * import { parseAuthorizedKeys } from "./security.ts";
 * const keys = parseAuthorizedKeys("# workers\nrq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 gpu-1\n");
 * console.log(keys); // [{ publicKey: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", comment: "gpu-1" }]
 * ```
 *
 * @throws {SyntaxError} naming the line that holds neither a key nor a comment
 */
export function parseAuthorizedKeys(text: string): AuthorizedKey[] {
  const keys: AuthorizedKey[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = /^(\S+)(?:\s+(.*))?$/.exec(line)!;
    const [word, rest] = [match[1], match[2]?.trim()];
    if (word.length === 40 && isZ85(word)) {
      keys.push(rest ? { publicKey: word, comment: rest } : { publicKey: word });
    } else {
      throw new SyntaxError(
        `authorized keys, line ${i + 1}: "${line.slice(0, 60)}" is not a 40-character Z85 ` +
          "public key (nor a # comment)",
      );
    }
  }
  return keys;
}

function isZ85(text: string): boolean {
  try {
    z85Decode(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * An authenticator that admits the CURVE clients whose public keys are listed and refuses every
 * other client (PLAIN ones included), with a reason naming the key. An entry's comment becomes
 * the admitted peer's user id.
 *
 * @example
 * ```ts
 * import { allowCurveKeys, curveKeyPair } from "./security.ts";
 * const worker = curveKeyPair();
 * const authenticator = allowCurveKeys([{ publicKey: worker.publicKey, comment: "gpu-1" }]);
 * // new Router({ curveServer: true, curveSecretKey, authenticator })
 * console.log(typeof authenticator); // "function"
 * ```
 */
export function allowCurveKeys(keys: Iterable<string | AuthorizedKey>): Authenticator {
  const allowed = new Map<string, string | undefined>();
  for (const key of keys) {
    const entry = typeof key === "string" ? { publicKey: key } : key;
    // Normalised through the bytes, so that a key given as bytes elsewhere still matches.
    allowed.set(z85Encode(curveKey(entry.publicKey, "authorized key")), entry.comment);
  }
  return (request: AuthRequest) => {
    if (request.mechanism !== "CURVE" || request.publicKeyZ85 === undefined) {
      return { allow: false, reason: `only CURVE clients are admitted, not ${request.mechanism}` };
    }
    if (!allowed.has(request.publicKeyZ85)) {
      return {
        allow: false,
        reason: `key ${request.publicKeyZ85} is not among the ${allowed.size} authorized keys`,
      };
    }
    return { allow: true, userId: allowed.get(request.publicKeyZ85) ?? request.publicKeyZ85 };
  };
}

/**
 * The text of a secret key file in the ZeroMQ certificate format (as czmq's `zcert` and pyzmq's
 * `zmq.auth.create_certificates` write it, so `zmq.auth.load_certificate` reads it).
 */
export function formatSecretKeyFile(pair: CurveKeyPair, note = "made by gibbs keygen"): string {
  return [
    `#   ZeroMQ CURVE **Secret** Certificate, ${note}`,
    "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.",
    "",
    "metadata",
    "curve",
    `    public-key = "${pair.publicKey}"`,
    `    secret-key = "${pair.secretKey}"`,
    "",
  ].join("\n");
}

/**
 * Reads a secret key file: the ZeroMQ certificate format (`secret-key = "..."`), or a file
 * holding only the 40 Z85 characters of the key (`#` comment lines allowed).
 *
 * @throws {SyntaxError} when no secret key is found
 */
export function parseSecretKeyFile(text: string): CurveKeyPair {
  const quoted = /^\s*secret-key\s*=\s*["']?([^"'\s]{40})["']?\s*$/m.exec(text);
  let secret = quoted?.[1];
  if (secret === undefined) {
    for (const raw of text.split(/\r?\n/)) {
      const line = raw.trim();
      if (line.length === 40 && isZ85(line)) {
        secret = line;
        break;
      }
    }
  }
  if (secret === undefined || !isZ85(secret)) {
    throw new SyntaxError(
      'no CURVE secret key found (expected a line secret-key = "<40 Z85 characters>", as ' +
        "gibbs keygen writes, or the 40 characters alone)",
    );
  }
  return { publicKey: curvePublicKey(secret), secretKey: secret };
}
