/**
 * Identifiers: worker routing ids and request ids, 32 lowercase hex chars like a uuid4's hex.
 *
 * @module
 */

/** A random 32-char lowercase hex string (128 random bits, as `uuid.uuid4().hex` has 122). */
export function randomHexId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = "";
  for (const b of bytes) out += HEX[b];
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * Makes request ids cheaply: a random 16-hex-char prefix per generator and a 16-hex-char
 * counter, so ids stay unique across hubs and 32 hex chars long as gibbs makes them.
 */
export function requestIdGenerator(): () => string {
  const prefix = randomHexId().slice(0, 16);
  let counter = 0;
  return () => prefix + (counter++).toString(16).padStart(16, "0");
}
