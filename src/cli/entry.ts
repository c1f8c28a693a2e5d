/**
 * Script entry of the CLI, for child processes and the npm package's `gibbs` bin.
 *
 * @module
 */

import { main } from "./main.ts";

await main();
