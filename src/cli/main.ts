/**
 * The command-line interface: `demo`, `hub`, `worker`.
 *
 * @module
 */

import { runtime } from "../transport/runtime.ts";

/** Runs the CLI with the process arguments. */
export async function main(args: string[] = runtime.args()): Promise<void> {
  console.log("gibbs: commands are coming", args);
  await Promise.resolve();
}
