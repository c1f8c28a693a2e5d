/**
 * The runtime adapter in use. The npm build replaces this file with `runtime.node.ts`.
 *
 * @module
 */

import { denoRuntime } from "./deno_runtime.ts";
import type { Runtime } from "./runtime_types.ts";

/** The adapter every other layer goes through for I/O, timers, signals and processes. */
export const runtime: Runtime = denoRuntime;
