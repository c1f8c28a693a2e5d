/**
 * A slice of the CURVE fuzz properties that `scripts/fuzz.ts` runs at length: a fixed number of
 * cases each (a case costs several X25519 operations, 10 to 200 ms on a loaded machine), so that
 * the slice covers the same ground whatever the load. A failure reports the seed and path that
 * replay it.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { CURVE_PROPERTIES } from "./_security_cases.ts";

/** Cases per property. */
const CASES = 25;

describe("CURVE fuzz slice", () => {
  for (const [name, make] of Object.entries(CURVE_PROPERTIES)) {
    test(name, { timeout: 120_000 }, () => {
      const details = fc.check(make(), { numRuns: CASES });
      if (details.failed) {
        throw new Error(
          `${name}: ${fc.defaultReportMessage(details)}\n${details.errorInstance}\n` +
            `replay: deno run -A scripts/fuzz.ts --property ${name} --seed ${details.seed}` +
            ` --path ${details.counterexamplePath}`,
        );
      }
      assert.equal(details.numRuns, CASES);
    });
  }
});
