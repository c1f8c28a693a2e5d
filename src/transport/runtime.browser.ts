/**
 * The runtime adapter in use in the browser build, which puts this file in place of
 * `runtime.ts` (see `browser_bundle.ts`).
 *
 * @module
 */

import { browserRuntime } from "./browser_runtime.ts";
import type { Runtime } from "./runtime_types.ts";

/** The adapter every other layer goes through for I/O and timers. */
export const runtime: Runtime = browserRuntime;
