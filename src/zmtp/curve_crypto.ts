/**
 * The NaCl `crypto_box` construction CurveZMQ is built on, from audited libraries. Nothing here
 * is a primitive of our own.
 *
 * - `@noble/curves` (X25519) and `@noble/ciphers` (HSalsa20, XSalsa20-Poly1305), composed as
 *   NaCl does: `crypto_box_beforenm` is HSalsa20 over the X25519 shared secret,
 *   `crypto_box_afternm` is `crypto_secretbox` with that key. Pure JavaScript and synchronous:
 *   there from the first call, and always used for key pairs and the handshake's own boxes.
 * - libsodium itself (`libsodium-wrappers`, WebAssembly, the library libzmq uses), once
 *   {@linkcode loadFastBoxes} has loaded it, for the key agreement of each connection (5 to 10
 *   times faster) and the boxes of every frame after the handshake (about 4 times at 64 bytes,
 *   twice at 1 MiB). Until then, or where WebAssembly is not allowed, `@noble` serves; both
 *   give the same bytes (a test checks each against the other).
 *
 * @module
 */

import { x25519 } from "@noble/curves/ed25519.js";
import { hsalsa, xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
import type * as Sodium from "libsodium-wrappers";

/** Bytes of a Curve25519 key, public or secret. */
export const KEY_SIZE = 32;
/** Bytes of a box's authenticator (Poly1305 tag) in front of its ciphertext. */
export const MAC_SIZE = 16;
/** Bytes of a full XSalsa20 nonce. */
export const NONCE_SIZE = 24;
/** Scratch bytes {@linkcode sealInPlace} needs in front of the plaintext. */
export const SEAL_SCRATCH = 32;

/** "expand 32-byte k", as HSalsa20's constant words. */
const SIGMA = u32(new TextEncoder().encode("expand 32-byte k"));
const ZERO_NONCE = new Uint32Array(4);

function u32(bytes: Uint8Array): Uint32Array {
  // A fresh copy is always 4-byte aligned.
  const copy = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Uint32Array(copy.buffer, copy.byteOffset, copy.byteLength >>> 2);
}

/** A key pair as raw bytes. */
export interface RawKeyPair {
  /** The public key, 32 bytes. */
  publicKey: Uint8Array;
  /** The secret key, 32 bytes. */
  secretKey: Uint8Array;
}

/** Cryptographically random bytes (WebCrypto, present in Deno, Node and browsers). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  crypto.getRandomValues(out);
  return out;
}

/** A source of random bytes: {@linkcode randomBytes}, or a seeded one in tests. */
export type RandomSource = (n: number) => Uint8Array;

/** A fresh key pair, made as `crypto_box_keypair` (and so `zmq_curve_keypair`) makes one. */
export function generateKeyPair(random: RandomSource = randomBytes): RawKeyPair {
  const secretKey = random(KEY_SIZE);
  return { publicKey: x25519.getPublicKey(secretKey), secretKey };
}

/** The public key of a secret key (`crypto_scalarmult_base`, as `zmq_curve_public`). */
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(secretKey);
}

/**
 * `crypto_box_beforenm`: the symmetric key two parties share, from one's public key and the
 * other's secret key. Returns null when the public key is a low-order point (the shared secret
 * would be all zeros; libsodium refuses it too).
 */
export function boxKey(publicKey: Uint8Array, secretKey: Uint8Array): Uint8Array | null {
  return (fastBoxes ?? NOBLE_BOXES).boxKey(publicKey, secretKey);
}

function nobleBoxKey(publicKey: Uint8Array, secretKey: Uint8Array): Uint8Array | null {
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(secretKey, publicKey);
  } catch {
    return null;
  }
  const out = new Uint32Array(8);
  hsalsa(SIGMA, u32(shared), ZERO_NONCE, out);
  shared.fill(0);
  return new Uint8Array(out.buffer);
}

/** Seals `plaintext` under a shared (or secretbox) key: MAC then ciphertext, 16 bytes longer. */
export function seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return xsalsa20poly1305(key, nonce).encrypt(plaintext);
}

/**
 * Opens a box made by {@linkcode seal}; null when it was not sealed with this key and nonce.
 * The plaintext is a view of a fresh buffer (one copy of the box, no more).
 */
export function open(key: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array | null {
  if (box.length < MAC_SIZE) return null;
  try {
    return xsalsa20poly1305(key, nonce).decrypt(box);
  } catch {
    return null;
  }
}

/**
 * Seals in place, for the per-message path: `buffer` holds {@linkcode SEAL_SCRATCH} bytes of
 * room, then the plaintext. Afterwards `buffer[16..]` is the box (MAC, then ciphertext) and
 * `buffer[0..16]` is zeros, free for the caller's header.
 */
export function sealInPlace(key: Uint8Array, nonce: Uint8Array, buffer: Uint8Array): void {
  xsalsa20poly1305(key, nonce).encrypt(buffer.subarray(SEAL_SCRATCH), buffer);
}

/**
 * The operations that run per connection (the X25519 key agreement) and per frame (the boxes),
 * from one implementation or the other.
 */
export interface BoxEngine {
  /** Which implementation: `"libsodium"` or `"noble"`. */
  readonly name: string;
  /** As {@linkcode boxKey}. */
  boxKey(publicKey: Uint8Array, secretKey: Uint8Array): Uint8Array | null;
  /** As {@linkcode seal}. */
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** As {@linkcode open}. */
  open(key: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array | null;
}

/** The pure-JavaScript engine (`@noble/ciphers`). */
export const NOBLE_BOXES: BoxEngine = { name: "noble", boxKey: nobleBoxKey, seal, open };

let fastBoxes: BoxEngine | null = null;
let loading: Promise<BoxEngine | null> | null = null;

/**
 * Starts loading libsodium for the per-frame boxes (once; later calls return the same promise).
 * Resolves with the engine, or null when it cannot load (then `@noble/ciphers` serves).
 */
export function loadFastBoxes(): Promise<BoxEngine | null> {
  loading ??= import("libsodium-wrappers").then(async (module) => {
    // Its ES module has a default export; some bundlers hand out the namespace only.
    const sodium = (module.default ?? module) as unknown as Pick<
      typeof Sodium,
      "ready" | "crypto_box_beforenm" | "crypto_box_easy_afternm" | "crypto_box_open_easy_afternm"
    >;
    await sodium.ready;
    fastBoxes = {
      name: "libsodium",
      boxKey(publicKey, secretKey) {
        try {
          // Refuses a low-order public key (an all-zero shared secret), as noble does.
          return sodium.crypto_box_beforenm(publicKey, secretKey);
        } catch {
          return null;
        }
      },
      seal: (key, nonce, plaintext) => sodium.crypto_box_easy_afternm(plaintext, nonce, key),
      open(key, nonce, box) {
        if (box.length < MAC_SIZE) return null;
        try {
          return sodium.crypto_box_open_easy_afternm(box, nonce, key);
        } catch {
          return null;
        }
      },
    };
    return fastBoxes;
  }, () => null);
  return loading;
}

/** The engine the per-frame path uses now: libsodium once loaded, else `@noble/ciphers`. */
export function frameBoxes(): BoxEngine {
  return fastBoxes ?? NOBLE_BOXES;
}
