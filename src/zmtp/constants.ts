/**
 * Numbers fixed by the ZMTP 3.x specifications (RFC 23, RFC 37).
 *
 * @module
 */

/** Size of the whole greeting in bytes. */
export const GREETING_SIZE = 64;
/** Size of the signature that opens the greeting. */
export const SIGNATURE_SIZE = 10;
/** Offset and size of the mechanism name inside the greeting. */
export const MECHANISM_OFFSET = 12;
/** Mechanism names are padded with zero bytes to this size. */
export const MECHANISM_SIZE = 20;
/** Offset of the as-server byte inside the greeting. */
export const AS_SERVER_OFFSET = 32;

/** Major version we speak. */
export const VERSION_MAJOR = 3;
/** Minor version we announce by default (ZMTP 3.1). */
export const VERSION_MINOR = 1;

/** Frame flag: more frames follow in this message. */
export const FLAG_MORE = 0x01;
/** Frame flag: the size field is 8 bytes instead of 1. */
export const FLAG_LONG = 0x02;
/** Frame flag: the frame is a command, not message data. */
export const FLAG_COMMAND = 0x04;

/** Largest body a frame with a 1-byte size field can carry. */
export const SHORT_FRAME_MAX = 255;

/** Most context bytes a PING may carry (RFC 37). */
export const PING_CONTEXT_MAX = 16;
/**
 * Largest PING TTL we send, in tenths of a second: libzmq mishandles TTLs of 65.6 s and more.
 */
export const PING_TTL_MAX = 655;

/** Default largest message accepted from a peer, in bytes (256 MiB). */
export const DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024 * 1024;
/** Default largest number of frames in one message. */
export const DEFAULT_MAX_FRAMES = 65_536;
