/**
 * The browser build of the library in the npm package: built by `scripts/build_npm.ts` into
 * the package's `browser/gibbs.js` (exported as `gibbs-zmq/browser`) and read from there. The
 * npm build puts this file in place of `browser_bundle.ts`.
 *
 * @module
 */

import { readFile } from "node:fs/promises";

let read: Promise<Uint8Array> | undefined;

/** The browser bundle the package ships, read once per process. */
export function browserBundle(): Promise<Uint8Array> {
  read ??= readFile(new URL("../../browser/gibbs.js", import.meta.url));
  read.catch(() => (read = undefined));
  return read;
}
