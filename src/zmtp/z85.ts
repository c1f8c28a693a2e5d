/**
 * Z85 (ZeroMQ RFC 32): the text form of CURVE keys, 5 printable characters for every 4 bytes.
 *
 * @module
 */

const ALPHABET =
  "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
/** Character code to digit value, -1 for characters outside the alphabet. */
const DIGITS = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DIGITS[ALPHABET.charCodeAt(i)] = i;

/**
 * Encodes bytes as Z85. The length must be a multiple of 4 (a CURVE key's 32 bytes give 40
 * characters).
 *
 * @example
 * ```ts
 * import { z85Encode } from "./z85.ts";
 * // RFC 32's test vector
 * const text = z85Encode(new Uint8Array([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]));
 * console.log(text); // "HelloWorld"
 * ```
 *
 * @throws {RangeError} when the length is not a multiple of 4
 */
export function z85Encode(data: Uint8Array): string {
  if (data.length % 4 !== 0) {
    throw new RangeError(`Z85 encodes whole groups of 4 bytes, got ${data.length} bytes`);
  }
  let text = "";
  for (let at = 0; at < data.length; at += 4) {
    let value = ((data[at] << 24) | (data[at + 1] << 16) | (data[at + 2] << 8) | data[at + 3]) >>>
      0;
    let group = "";
    for (let i = 0; i < 5; i++) {
      group = ALPHABET[value % 85] + group;
      value = Math.floor(value / 85);
    }
    text += group;
  }
  return text;
}

/**
 * Decodes Z85 text. The length must be a multiple of 5 and every character in the Z85 alphabet.
 *
 * @example
 * ```ts
 * import { z85Decode } from "./z85.ts";
 * console.log(z85Decode("HelloWorld")); // Uint8Array(8) [0x86, 0x4f, 0xd2, 0x6f, ...]
 * ```
 *
 * @throws {RangeError} on a wrong length, a character outside the alphabet, or a group past
 *   2^32 - 1
 */
export function z85Decode(text: string): Uint8Array {
  if (text.length % 5 !== 0) {
    throw new RangeError(`Z85 text comes in groups of 5 characters, got ${text.length}`);
  }
  const out = new Uint8Array((text.length / 5) * 4);
  for (let at = 0, o = 0; at < text.length; at += 5, o += 4) {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const code = text.charCodeAt(at + i);
      const digit = code < 128 ? DIGITS[code] : -1;
      if (digit < 0) {
        throw new RangeError(
          `character ${JSON.stringify(text[at + i])} at ${at + i} is not in the Z85 alphabet`,
        );
      }
      value = value * 85 + digit;
    }
    if (value > 0xffff_ffff) {
      throw new RangeError(`Z85 group "${text.slice(at, at + 5)}" is larger than 32 bits`);
    }
    out[o] = value >>> 24;
    out[o + 1] = (value >>> 16) & 0xff;
    out[o + 2] = (value >>> 8) & 0xff;
    out[o + 3] = value & 0xff;
  }
  return out;
}
