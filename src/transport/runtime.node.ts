/**
 * The runtime adapter in use in the npm build, which puts this file in place of `runtime.ts`.
 *
 * @module
 */

import { nodeRuntime } from "./node_runtime.ts";
import type { Runtime } from "./runtime_types.ts";

/** The adapter every other layer goes through for I/O, timers, signals and processes. */
export const runtime: Runtime = nodeRuntime;
