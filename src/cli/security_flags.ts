/**
 * The CLI's security: `gibbs keygen`, and the CURVE flags of `gibbs hub` and `gibbs worker`.
 * Secret keys come from files or environment variables, never from the command line (where any
 * user of the machine can read them in the process list).
 *
 * @module
 */

import {
  allowCurveKeys,
  curveKey,
  curveKeyPair,
  curvePublicKey,
  formatSecretKeyFile,
  parseAuthorizedKeys,
  parseSecretKeyFile,
  type SecurityOptions,
} from "../socket/security.ts";
import { runtime } from "../transport/runtime.ts";
import type { SocketError } from "../socket/errors.ts";

/** Environment variable holding a secret key (Z85) when no key file is given. */
export const SECRET_KEY_ENV = "GIBBS_CURVE_SECRET_KEY";
/** Environment variable holding the hub's public key for workers. */
export const SERVER_KEY_ENV = "GIBBS_CURVE_SERVER_KEY";

/** Usage text of `gibbs keygen`. */
export const KEYGEN_USAGE = `gibbs keygen — make a CURVE key pair (as zmq_curve_keypair makes one)

Usage:
  gibbs keygen FILE [--force]

Writes the secret key to FILE with mode 0600, in the ZeroMQ certificate format (pyzmq's
zmq.auth.load_certificate reads it), and prints the public key (40 Z85 characters) on stdout.
An existing FILE is kept unless --force is given.`;

/** Flags of `gibbs hub` (parseArgs options) and their usage lines. */
export const HUB_SECURITY_FLAGS = {
  "curve-secret-key-file": { type: "string" },
  "authorized-keys": { type: "string" },
} as const;
/** Usage lines of the hub's security flags. */
export const HUB_SECURITY_USAGE = `
CURVE (encryption; with --authorized-keys, only listed workers may join):
  --curve-secret-key-file F   the hub's secret key, as written by gibbs keygen
                              (or the Z85 key in $${SECRET_KEY_ENV})
  --authorized-keys F         worker public keys, one Z85 key per line, optionally followed by
                              a name; # comments. Every other worker is refused and logged.`;

/** Flags of `gibbs worker` (parseArgs options). */
export const WORKER_SECURITY_FLAGS = {
  "curve-server-key": { type: "string" },
  "curve-secret-key-file": { type: "string" },
} as const;
/** Usage lines of the worker's security flags. */
export const WORKER_SECURITY_USAGE = `
CURVE (encryption toward a hub that has a CURVE key):
  --curve-server-key KEY      the hub's public key, Z85 (or $${SERVER_KEY_ENV})
  --curve-secret-key-file F   this worker's secret key, as written by gibbs keygen
                              (or the Z85 key in $${SECRET_KEY_ENV}); without one the worker
                              uses a fresh key pair, which a hub with --authorized-keys refuses`;

type Fail = (message: string) => never;

async function secretKey(file: string | undefined, fail: Fail): Promise<string | undefined> {
  if (file !== undefined) {
    let text: string;
    try {
      text = await runtime.readTextFile(file);
    } catch (error) {
      fail(`cannot read the secret key file ${file}: ${(error as Error).message}`);
    }
    try {
      return parseSecretKeyFile(text).secretKey;
    } catch (error) {
      fail(`${file}: ${(error as Error).message}`);
    }
  }
  const fromEnv = runtime.env(SECRET_KEY_ENV);
  if (fromEnv === undefined || fromEnv === "") return undefined;
  try {
    curveKey(fromEnv.trim(), SECRET_KEY_ENV);
  } catch (error) {
    fail((error as SocketError).message);
  }
  return fromEnv.trim();
}

/**
 * The hub's security options from its flags, or undefined without CURVE. `say` reports what
 * was set up (the public key workers need).
 */
export async function hubSecurity(
  values: { "curve-secret-key-file"?: string; "authorized-keys"?: string },
  fail: Fail,
  say: (message: string) => void,
): Promise<SecurityOptions | undefined> {
  const secret = await secretKey(values["curve-secret-key-file"], fail);
  const keysFile = values["authorized-keys"];
  if (secret === undefined) {
    if (keysFile !== undefined) {
      fail(
        `--authorized-keys needs the hub's own key: --curve-secret-key-file F or $${SECRET_KEY_ENV}`,
      );
    }
    return undefined;
  }
  const security: SecurityOptions = { curveServer: true, curveSecretKey: secret };
  let admitted = "any worker that knows the public key";
  if (keysFile !== undefined) {
    let text: string;
    try {
      text = await runtime.readTextFile(keysFile);
    } catch (error) {
      fail(`cannot read the authorized keys file ${keysFile}: ${(error as Error).message}`);
    }
    try {
      const keys = parseAuthorizedKeys(text);
      security.authenticator = allowCurveKeys(keys);
      admitted = `the ${keys.length} workers listed in ${keysFile}`;
    } catch (error) {
      fail(`${keysFile}: ${(error as Error).message}`);
    }
  }
  say(`gibbs hub: CURVE on, public key ${curvePublicKey(secret)}; admitting ${admitted}`);
  return security;
}

/** The worker's security options from its flags, or undefined without CURVE. */
export async function workerSecurity(
  values: { "curve-server-key"?: string; "curve-secret-key-file"?: string },
  fail: Fail,
  say: (message: string) => void,
): Promise<SecurityOptions | undefined> {
  const serverKey = values["curve-server-key"] ?? runtime.env(SERVER_KEY_ENV);
  let secret = await secretKey(values["curve-secret-key-file"], fail);
  if (serverKey === undefined || serverKey === "") {
    if (values["curve-secret-key-file"] !== undefined) {
      fail(`--curve-secret-key-file needs the hub's public key: --curve-server-key KEY`);
    }
    return undefined;
  }
  try {
    curveKey(serverKey.trim(), "--curve-server-key");
  } catch (error) {
    fail((error as SocketError).message);
  }
  if (secret === undefined) {
    const pair = curveKeyPair();
    secret = pair.secretKey;
    say(`gibbs worker: no secret key given, using a fresh key pair (public key ${pair.publicKey})`);
  }
  return { curveServerKey: serverKey.trim(), curveSecretKey: secret };
}

/** `gibbs keygen FILE [--force]`. */
export async function keygen(file: string, force: boolean, fail: Fail): Promise<void> {
  const pair = curveKeyPair();
  try {
    await runtime.writeSecretFile(file, formatSecretKeyFile(pair), force);
  } catch (error) {
    const message = (error as Error).message;
    fail(
      /exist/i.test(`${(error as Error).name} ${message}`)
        ? `${file} exists already: keeping it (use --force to replace it)`
        : `cannot write ${file}: ${message}`,
    );
  }
  console.error(`gibbs keygen: secret key written to ${file} (mode 0600); public key:`);
  console.log(pair.publicKey);
}
