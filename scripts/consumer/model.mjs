/**
 * The consumer test's model: a default-exported function, as a Node user would write one.
 * Its result names the runtime and process that computed it, so a check can tell who served.
 */
import process from "node:process";

export default async function model(x, options = {}) {
  // Long enough that parallel requests spread over the workers.
  await new Promise((resolve) => setTimeout(resolve, 20));
  return {
    value: x * 2 + (options.offset ?? 0),
    runtime: typeof globalThis.Deno === "undefined" ? "node" : "deno",
    pid: process.pid,
  };
}
